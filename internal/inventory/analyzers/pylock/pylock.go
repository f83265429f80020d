// Package pylock reads pylock.toml, the standard Python lockfile of PEP
// 751 (pylock.toml, or pylock.<name>.toml), which pip, uv and PDM write.
package pylock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"berth.dev/berth/internal/inventory"
)

// Analyzer reads pylock.toml files.
type Analyzer struct{}

// Name implements inventory.Analyzer.
func (Analyzer) Name() string { return "pylock" }

// Version implements inventory.Analyzer.
func (Analyzer) Version() int { return 2 }

// MaxFileBytes implements inventory.Analyzer.
func (Analyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (Analyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isLock(p)
}

// Analyze implements inventory.Analyzer.
func (a Analyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isLock, Parse)
}

// isLock matches pylock.toml and pylock.<name>.toml, where the name has
// no dot (PEP 751).
func isLock(p string) bool {
	base := path.Base(p)
	if base == "pylock.toml" {
		return true
	}
	name, ok := strings.CutPrefix(base, "pylock.")
	if !ok {
		return false
	}
	name, ok = strings.CutSuffix(name, ".toml")
	return ok && name != "" && !strings.Contains(name, ".")
}

type lock struct {
	LockVersion string `toml:"lock-version"`
	Packages    []struct {
		Name    string `toml:"name"`
		Version string `toml:"version"`
		// Dependencies name other entries of packages (PEP 751 leaves
		// the form to the tool; pip and uv write name tables).
		Dependencies []map[string]any `toml:"dependencies"`
		Directory    *struct {
			Path string `toml:"path"`
		} `toml:"directory"`
	} `toml:"packages"`
}

// Parse reads the packages of a pylock.toml. A package from a VCS, a
// directory or an archive may have no version (PEP 751 makes it
// optional there); it is reported without one. The project the file
// locks (pip lock . writes it as the directory ".") is the project, not
// one of its packages, as uv.lock's root is not.
func Parse(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var l lock
	if _, err := toml.Decode(string(data), &l); err != nil {
		return nil, fmt.Errorf("parse pylock.toml: %w", err)
	}
	if l.LockVersion == "" {
		return nil, errors.New("not a pylock.toml: no lock-version")
	}
	if major, _, _ := strings.Cut(l.LockVersion, "."); major != "1" {
		return nil, fmt.Errorf("unsupported lock-version %q", l.LockVersion)
	}
	var pkgs []inventory.Package
	for _, e := range l.Packages {
		if e.Name == "" {
			return nil, errors.New("a package without a name")
		}
		if e.Directory != nil && path.Clean(e.Directory.Path) == "." {
			continue
		}
		p := inventory.Package{
			Ecosystem: inventory.PyPI, Name: e.Name, Version: e.Version,
			Locations: []string{location}, Analyzer: analyzer,
		}
		for _, d := range e.Dependencies {
			if n, ok := d["name"].(string); ok && n != "" {
				p.DependsOn = append(p.DependsOn, n)
			}
		}
		sort.Strings(p.DependsOn)
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}
