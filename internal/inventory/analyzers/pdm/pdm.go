// Package pdm reads pdm.lock, the lockfile of the Python package manager
// PDM.
package pdm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"sync"

	"github.com/BurntSushi/toml"

	"berth.dev/berth/internal/inventory"
)

// Analyzer reads pdm.lock files.
type Analyzer struct{}

// Name implements inventory.Analyzer.
func (Analyzer) Name() string { return "pdm-lock" }

// Version implements inventory.Analyzer.
func (Analyzer) Version() int { return 1 }

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

func isLock(p string) bool { return path.Base(p) == "pdm.lock" }

type lock struct {
	Metadata *struct {
		LockVersion string `toml:"lock_version"`
	} `toml:"metadata"`
	Package []struct {
		Name    string `toml:"name"`
		Version string `toml:"version"`
		// Groups (lock_version 4.4+) names the dependency groups that
		// need the package; "default" is the project's run-time one.
		Groups       []string `toml:"groups"`
		Dependencies []string `toml:"dependencies"`
	} `toml:"package"`
}

var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s*([A-Za-z0-9][A-Za-z0-9._-]*)`) })

// Parse reads the packages of a pdm.lock. With lock_version 4.4 and
// later, a package no "default" group needs is dev; older files do not
// say. A package listed again for an extra ("requests" with
// extras = ["socks"]) is one package.
func Parse(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var l lock
	if _, err := toml.Decode(string(data), &l); err != nil {
		return nil, fmt.Errorf("parse pdm.lock: %w", err)
	}
	if l.Metadata == nil {
		return nil, errors.New("not a pdm.lock: no [metadata]")
	}
	var pkgs []inventory.Package
	at := map[string]int{}
	for _, e := range l.Package {
		if e.Name == "" || e.Version == "" {
			return nil, fmt.Errorf("package %q without a name or version", e.Name)
		}
		dev := len(e.Groups) > 0 && !slices.Contains(e.Groups, "default")
		var deps []string
		for _, d := range e.Dependencies {
			if m := nameRE().FindStringSubmatch(d); m != nil && m[1] != e.Name && !slices.Contains(deps, m[1]) {
				deps = append(deps, m[1])
			}
		}
		sort.Strings(deps)
		key := e.Name + "@" + e.Version
		if i, ok := at[key]; ok {
			pkgs[i].Dev = pkgs[i].Dev && dev
			for _, d := range deps {
				if !slices.Contains(pkgs[i].DependsOn, d) {
					pkgs[i].DependsOn = append(pkgs[i].DependsOn, d)
				}
			}
			sort.Strings(pkgs[i].DependsOn)
			continue
		}
		at[key] = len(pkgs)
		pkgs = append(pkgs, inventory.Package{
			Ecosystem: inventory.PyPI, Name: e.Name, Version: e.Version,
			Locations: []string{location}, Analyzer: analyzer, Dev: dev, DependsOn: deps,
		})
	}
	return pkgs, nil
}
