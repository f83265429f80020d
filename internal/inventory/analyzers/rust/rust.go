// Package rust finds Rust crates: those locked in Cargo.lock (format v1
// to v4) and those that cargo-auditable embedded, as zlib-compressed JSON in
// a ".dep-v0" section, into a compiled binary.
package rust

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"berth.dev/berth/internal/inventory"
)

// LockAnalyzer reads Cargo.lock.
type LockAnalyzer struct{}

// Name implements inventory.Analyzer.
func (LockAnalyzer) Name() string { return "cargo-lock" }

// Version implements inventory.Analyzer.
func (LockAnalyzer) Version() int { return 1 }

// MaxFileBytes implements inventory.Analyzer.
func (LockAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (LockAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isCargoLock(p)
}

// Analyze implements inventory.Analyzer.
func (a LockAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isCargoLock, ParseCargoLock)
}

func isCargoLock(p string) bool { return path.Base(p) == "Cargo.lock" }

// ParseCargoLock reads a Cargo.lock of any format version. The crates of
// the workspace itself (no "source") are kept: they are the roots of the
// dependency graph, and a published crate can be vendored as a path
// dependency.
func ParseCargoLock(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var lock struct {
		Version int `toml:"version"`
		Package []struct {
			Name    string `toml:"name"`
			Version string `toml:"version"`
			// Dependencies are "name", "name version" or, in v1,
			// "name version (source)".
			Dependencies []string `toml:"dependencies"`
		} `toml:"package"`
	}
	if _, err := toml.Decode(string(data), &lock); err != nil {
		return nil, fmt.Errorf("parse Cargo.lock: %w", err)
	}
	if lock.Version > 4 {
		return nil, fmt.Errorf("unsupported Cargo.lock version %d", lock.Version)
	}
	var pkgs []inventory.Package
	for i, e := range lock.Package {
		if e.Name == "" || e.Version == "" {
			return nil, fmt.Errorf("package %d has no name or version", i+1)
		}
		p := pkg(e.Name, e.Version, location, analyzer)
		var deps []string
		for _, d := range e.Dependencies {
			if name, _, _ := strings.Cut(d, " "); name != "" {
				deps = append(deps, name)
			}
		}
		if len(deps) > 0 {
			sort.Strings(deps)
			p.DependsOn = slices.Compact(deps)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

func pkg(name, version, location, analyzer string) inventory.Package {
	return inventory.Package{
		Ecosystem: inventory.Cargo,
		Name:      name,
		Version:   version,
		Locations: []string{location},
		Analyzer:  analyzer,
	}
}
