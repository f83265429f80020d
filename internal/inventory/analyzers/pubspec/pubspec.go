// Package pubspec reads pubspec.lock, the lockfile of Dart's and
// Flutter's package manager pub.
package pubspec

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers/internal/yamlmap"
)

// Analyzer reads pubspec.lock files.
type Analyzer struct{}

// Name implements inventory.Analyzer.
func (Analyzer) Name() string { return "pubspec-lock" }

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

func isLock(p string) bool { return path.Base(p) == "pubspec.lock" }

type lock struct {
	Packages yamlmap.Map[struct {
		// Dependency is "direct main", "direct dev", "direct overridden"
		// or "transitive".
		Dependency string `yaml:"dependency"`
		// Source is hosted, git, path or sdk.
		Source  string `yaml:"source"`
		Version string `yaml:"version"`
	}] `yaml:"packages"`
	Sdks yamlmap.Map[string] `yaml:"sdks"`
}

// Parse reads the packages of a pubspec.lock. Packages of the Flutter SDK
// (source sdk, such as flutter_test) come with the SDK and carry its
// placeholder version 0.0.0: they are listed, as the peers list them,
// but Local, since pub.dev's advisories are not about them. A direct dev
// dependency is dev (the lock does not say which transitive packages only
// dev dependencies reach).
func Parse(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var l lock
	if err := yamlmap.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("parse pubspec.lock: %w", err)
	}
	if l.Packages == nil && l.Sdks == nil {
		return nil, errors.New("not a pubspec.lock: no packages or sdks")
	}
	var pkgs []inventory.Package
	for _, name := range sortedKeys(l.Packages) {
		e := l.Packages[name]
		if e.Version == "" {
			return nil, fmt.Errorf("package %q has no version", name)
		}
		pkgs = append(pkgs, inventory.Package{
			Ecosystem: inventory.Pub, Name: name, Version: e.Version,
			Locations: []string{location}, Analyzer: analyzer,
			Dev:   e.Dependency == "direct dev",
			Local: e.Source == "sdk",
		})
	}
	return pkgs, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
