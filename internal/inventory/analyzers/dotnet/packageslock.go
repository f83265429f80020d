package dotnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"

	"berth.dev/berth/internal/inventory"
)

// LockAnalyzer reads NuGet's packages.lock.json, which projects with
// RestorePackagesWithLockFile commit beside their project file.
type LockAnalyzer struct{}

// Name implements inventory.Analyzer.
func (LockAnalyzer) Name() string { return "nuget-lock" }

// Version implements inventory.Analyzer.
func (LockAnalyzer) Version() int { return 1 }

// MaxFileBytes implements inventory.Analyzer.
func (LockAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (LockAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isPackagesLock(p)
}

func isPackagesLock(p string) bool { return path.Base(p) == "packages.lock.json" }

// Analyze implements inventory.Analyzer.
func (a LockAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isPackagesLock, ParsePackagesLock)
}

// ParsePackagesLock reads the packages resolved for every target
// framework: "Direct", "Transitive" and "CentralTransitive" entries;
// "Project" entries are the solution's own projects.
func ParsePackagesLock(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var lock struct {
		Version      int `json:"version"`
		Dependencies map[string]map[string]struct {
			Type         string            `json:"type"`
			Resolved     string            `json:"resolved"`
			Dependencies map[string]string `json:"dependencies"`
		} `json:"dependencies"`
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		return nil, fmt.Errorf("parse packages.lock.json: %w", err)
	}
	if lock.Version < 1 || lock.Version > 2 {
		return nil, fmt.Errorf("unsupported packages.lock.json version %d", lock.Version)
	}
	if lock.Dependencies == nil {
		return nil, errors.New("not a packages.lock.json: no dependencies")
	}
	frameworks := make([]string, 0, len(lock.Dependencies))
	for f := range lock.Dependencies {
		frameworks = append(frameworks, f)
	}
	sort.Strings(frameworks)
	var pkgs []inventory.Package
	seen := map[string]bool{}
	for _, f := range frameworks {
		names := make([]string, 0, len(lock.Dependencies[f]))
		for n := range lock.Dependencies[f] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			e := lock.Dependencies[f][name]
			if e.Type == "Project" || seen[name+"@"+e.Resolved] {
				continue
			}
			if name == "" || e.Resolved == "" {
				return nil, fmt.Errorf("%s: package %q has no name or resolved version", f, name)
			}
			seen[name+"@"+e.Resolved] = true
			p := inventory.Package{
				Ecosystem: inventory.NuGet,
				Name:      name,
				Version:   e.Resolved,
				Locations: []string{location},
				Analyzer:  analyzer,
			}
			for dep := range e.Dependencies {
				p.DependsOn = append(p.DependsOn, dep)
			}
			sort.Strings(p.DependsOn)
			pkgs = append(pkgs, p)
		}
	}
	return pkgs, nil
}
