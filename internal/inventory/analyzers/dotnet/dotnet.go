// Package dotnet finds NuGet packages in .NET applications: from the
// <app>.deps.json file the SDK writes beside every published app, and from
// NuGet's packages.lock.json in source trees.
package dotnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"berth.dev/berth/internal/inventory"
)

// Analyzer reads *.deps.json files.
type Analyzer struct{}

// Name implements inventory.Analyzer.
func (Analyzer) Name() string { return "dotnet-deps" }

// Version implements inventory.Analyzer.
func (Analyzer) Version() int { return 5 }

// MaxFileBytes implements inventory.Analyzer.
func (Analyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (Analyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isDepsJSON(p)
}

func isDepsJSON(p string) bool { return strings.HasSuffix(p, ".deps.json") }

// Analyze implements inventory.Analyzer.
func (a Analyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isDepsJSON, ParseDepsJSON)
}

type depsFile struct {
	RuntimeTarget struct {
		Name string `json:"name"`
	} `json:"runtimeTarget"`
	// Targets maps a target framework to its "Name/Version" entries.
	Targets   map[string]map[string]targetEntry `json:"targets"`
	Libraries map[string]struct {
		Type string `json:"type"`
	} `json:"libraries"`
}

type targetEntry struct {
	Dependencies map[string]string `json:"dependencies"`
	// The assets the entry puts into the application: managed
	// assemblies, per-RID assets, native libraries.
	Runtime        json.RawMessage `json:"runtime"`
	RuntimeTargets json.RawMessage `json:"runtimeTargets"`
	Native         json.RawMessage `json:"native"`
}

// shipsNothing reports whether a library's entry in the runtime target
// lists no runtime, per-RID or native asset: a meta-package (such as
// NETStandard.Library, or Microsoft.NETCore.App as a package) that puts
// no code of its own into the application, as Trivy reads it. A library
// the runtime target does not list is kept.
func (d *depsFile) shipsNothing(key string) bool {
	target, ok := d.Targets[d.RuntimeTarget.Name]
	if !ok {
		return false
	}
	e, ok := target[key]
	if !ok {
		return false
	}
	return empty(e.Runtime) && empty(e.RuntimeTargets) && empty(e.Native)
}

// empty is an absent, null or {} asset list.
func empty(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null" || strings.ReplaceAll(s, " ", "") == "{}"
}

// ParseDepsJSON reads the libraries of type "package" (from NuGet) and
// "runtimepack" (the .NET runtime a self-contained app bundles, such as
// runtimepack.Microsoft.NETCore.App.Runtime.linux-x64/8.0.0, reported
// under its NuGet name Microsoft.NETCore.App.Runtime.linux-x64: the
// runtime's advisories are filed there), and "project": the application
// itself and the projects of its solution, which the peers list too,
// marked Local (their names are the developer's, not NuGet's, so they are
// never matched). Framework references are not packages, nor are NuGet
// meta-packages that ship no asset (shipsNothing; a runtime pack is always
// kept).
// Dependency edges come from the targets section. A library key that is
// not Name/Version is skipped and named in the error; the others are
// still read.
func ParseDepsJSON(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var deps depsFile
	if err := json.Unmarshal(data, &deps); err != nil {
		return nil, fmt.Errorf("parse deps.json: %w", err)
	}
	if deps.Libraries == nil {
		return nil, errors.New("not a deps.json: no libraries")
	}
	edges := map[string]map[string]bool{}
	for _, target := range deps.Targets {
		for key, entry := range target {
			for dep := range entry.Dependencies {
				if edges[key] == nil {
					edges[key] = map[string]bool{}
				}
				edges[key][dep] = true
			}
		}
	}
	keys := make([]string, 0, len(deps.Libraries))
	for k := range deps.Libraries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var pkgs []inventory.Package
	var bad []string
	for _, key := range keys {
		typ := strings.ToLower(deps.Libraries[key].Type)
		if typ != "package" && typ != "runtimepack" && typ != "project" || typ == "package" && deps.shipsNothing(key) {
			continue
		}
		name, version, ok := strings.Cut(key, "/")
		if typ == "runtimepack" {
			name = strings.TrimPrefix(name, "runtimepack.")
		}
		if !ok || name == "" || version == "" {
			bad = append(bad, strconv.Quote(key))
			continue
		}
		p := inventory.Package{
			Ecosystem: inventory.NuGet,
			Name:      name,
			Version:   version,
			Locations: []string{location},
			Analyzer:  analyzer,
			Local:     typ == "project",
		}
		for dep := range edges[key] {
			p.DependsOn = append(p.DependsOn, dep)
		}
		sort.Strings(p.DependsOn)
		pkgs = append(pkgs, p)
	}
	if len(bad) > 0 {
		return pkgs, fmt.Errorf("libraries not Name/Version, skipped: %s", strings.Join(bad, ", "))
	}
	return pkgs, nil
}
