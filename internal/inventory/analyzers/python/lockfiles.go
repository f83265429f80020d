package python

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"berth.dev/berth/internal/inventory"
)

// PoetryAnalyzer reads poetry.lock (Poetry 1.x with per-package
// "category", and 2.x with "groups").
type PoetryAnalyzer struct{}

// Name implements inventory.Analyzer.
func (PoetryAnalyzer) Name() string { return "poetry-lock" }

// Version implements inventory.Analyzer.
func (PoetryAnalyzer) Version() int { return 1 }

// MaxFileBytes implements inventory.Analyzer.
func (PoetryAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (PoetryAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isPoetryLock(p)
}

// Analyze implements inventory.Analyzer.
func (a PoetryAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isPoetryLock, ParsePoetryLock)
}

func isPoetryLock(p string) bool { return path.Base(p) == "poetry.lock" }

type poetryLock struct {
	Package []struct {
		Name         string                    `toml:"name"`
		Version      string                    `toml:"version"`
		Category     string                    `toml:"category"`
		Groups       []string                  `toml:"groups"`
		Dependencies map[string]toml.Primitive `toml:"dependencies"`
	} `toml:"package"`
}

// ParsePoetryLock reads a poetry.lock.
func ParsePoetryLock(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var lock poetryLock
	if _, err := toml.Decode(string(data), &lock); err != nil {
		return nil, fmt.Errorf("parse poetry.lock: %w", err)
	}
	var pkgs []inventory.Package
	for i, e := range lock.Package {
		if e.Name == "" || e.Version == "" {
			return nil, fmt.Errorf("package %d has no name or version", i+1)
		}
		p := pkg(e.Name, e.Version, location, analyzer)
		// Poetry 1 writes category "dev"; Poetry 2 lists the groups that
		// need the package, and "main" is the runtime group.
		p.Dev = e.Category == "dev" || (len(e.Groups) > 0 && !slices.Contains(e.Groups, "main"))
		p.DependsOn = sortedKeys(e.Dependencies)
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// PipenvAnalyzer reads Pipfile.lock.
type PipenvAnalyzer struct{}

// Name implements inventory.Analyzer.
func (PipenvAnalyzer) Name() string { return "pipenv-lock" }

// Version implements inventory.Analyzer.
func (PipenvAnalyzer) Version() int { return 1 }

// MaxFileBytes implements inventory.Analyzer.
func (PipenvAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (PipenvAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isPipfileLock(p)
}

// Analyze implements inventory.Analyzer.
func (a PipenvAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isPipfileLock, ParsePipfileLock)
}

func isPipfileLock(p string) bool { return path.Base(p) == "Pipfile.lock" }

type pipfileEntry struct {
	Version string `json:"version"`
}

// ParsePipfileLock reads a Pipfile.lock: "default" holds the runtime
// packages, "develop" the dev ones. Entries without a "==" version (VCS
// or path installs) name no release and are skipped.
func ParsePipfileLock(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var lock struct {
		Meta    *json.RawMessage        `json:"_meta"`
		Default map[string]pipfileEntry `json:"default"`
		Develop map[string]pipfileEntry `json:"develop"`
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		return nil, fmt.Errorf("parse Pipfile.lock: %w", err)
	}
	if lock.Meta == nil {
		return nil, errors.New("not a Pipfile.lock: no _meta")
	}
	var pkgs []inventory.Package
	for _, group := range []struct {
		entries map[string]pipfileEntry
		dev     bool
	}{{lock.Default, false}, {lock.Develop, true}} {
		for _, name := range sortedKeys(group.entries) {
			v, ok := strings.CutPrefix(group.entries[name].Version, "==")
			if !ok || v == "" || strings.TrimSpace(name) == "" {
				continue
			}
			p := pkg(name, v, location, analyzer)
			p.Dev = group.dev
			pkgs = append(pkgs, p)
		}
	}
	return pkgs, nil
}

// UVAnalyzer reads uv.lock.
type UVAnalyzer struct{}

// Name implements inventory.Analyzer.
func (UVAnalyzer) Name() string { return "uv-lock" }

// Version implements inventory.Analyzer.
func (UVAnalyzer) Version() int { return 1 }

// MaxFileBytes implements inventory.Analyzer.
func (UVAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (UVAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isUVLock(p)
}

// Analyze implements inventory.Analyzer.
func (a UVAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isUVLock, ParseUVLock)
}

func isUVLock(p string) bool { return path.Base(p) == "uv.lock" }

type uvDep struct {
	Name string `toml:"name"`
}

type uvPackage struct {
	Name    string `toml:"name"`
	Version string `toml:"version"`
	Source  struct {
		Registry  string `toml:"registry"`
		Editable  string `toml:"editable"`
		Virtual   string `toml:"virtual"`
		Directory string `toml:"directory"`
	} `toml:"source"`
	Dependencies         []uvDep            `toml:"dependencies"`
	OptionalDependencies map[string][]uvDep `toml:"optional-dependencies"`
	DevDependencies      map[string][]uvDep `toml:"dev-dependencies"`
}

// ParseUVLock reads a uv.lock. The projects of the workspace (editable or
// virtual sources) are the roots, not dependencies; a package reachable
// from them only through their dev-dependencies groups is dev-only.
func ParseUVLock(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var lock struct {
		Version int         `toml:"version"`
		Package []uvPackage `toml:"package"`
	}
	if _, err := toml.Decode(string(data), &lock); err != nil {
		return nil, fmt.Errorf("parse uv.lock: %w", err)
	}
	if lock.Version != 1 {
		return nil, fmt.Errorf("unsupported uv.lock version %d", lock.Version)
	}
	byName := map[string]*uvPackage{}
	var roots []*uvPackage
	for i := range lock.Package {
		e := &lock.Package[i]
		if e.Name == "" {
			return nil, fmt.Errorf("package %d has no name", i+1)
		}
		byName[e.Name] = e
		if e.Source.Editable != "" || e.Source.Virtual != "" {
			roots = append(roots, e)
		}
	}
	prod := map[string]bool{}
	var walk func(deps []uvDep)
	walk = func(deps []uvDep) {
		for _, d := range deps {
			e, ok := byName[d.Name]
			if !ok || prod[d.Name] {
				continue
			}
			prod[d.Name] = true
			walk(e.Dependencies)
			for _, opt := range e.OptionalDependencies {
				walk(opt)
			}
		}
	}
	for _, r := range roots {
		prod[r.Name] = true
		walk(r.Dependencies)
		for _, opt := range r.OptionalDependencies {
			walk(opt)
		}
	}
	var pkgs []inventory.Package
	for _, e := range lock.Package {
		if e.Source.Editable != "" || e.Source.Virtual != "" {
			continue
		}
		if e.Version == "" {
			return nil, fmt.Errorf("package %q has no version", e.Name)
		}
		p := pkg(e.Name, e.Version, location, analyzer)
		p.Dev = len(roots) > 0 && !prod[e.Name]
		var deps []string
		for _, d := range e.Dependencies {
			deps = append(deps, d.Name)
		}
		for _, opt := range e.OptionalDependencies {
			for _, d := range opt {
				deps = append(deps, d.Name)
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

// sortedKeys returns the keys of m, sorted; nil when empty.
func sortedKeys[V any](m map[string]V) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
