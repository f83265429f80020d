// Package conda reads the package records of conda environments: one
// conda-meta/<name>-<version>-<build>.json per installed package, which
// conda, mamba and pixi write.
package conda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"berth.dev/berth/internal/inventory"
)

// Analyzer reads conda-meta/*.json.
type Analyzer struct{}

// Name implements inventory.Analyzer.
func (Analyzer) Name() string { return "conda-meta" }

// Version implements inventory.Analyzer.
func (Analyzer) Version() int { return 1 }

// MaxFileBytes implements inventory.Analyzer.
func (Analyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (Analyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isRecord(p)
}

// Analyze implements inventory.Analyzer.
func (a Analyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isRecord, Parse)
}

func isRecord(p string) bool {
	return path.Base(path.Dir(p)) == "conda-meta" && strings.HasSuffix(p, ".json")
}

type record struct {
	Name    string   `json:"name"`
	Version string   `json:"version"`
	License string   `json:"license"`
	Depends []string `json:"depends"`
}

// Parse reads one package record: name, version, license, and the names
// its "depends" match specifications name.
func Parse(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("parse conda package record: %w", err)
	}
	if r.Name == "" || r.Version == "" {
		return nil, errors.New("conda package record has no name or version")
	}
	p := inventory.Package{
		Ecosystem: inventory.Conda, Name: r.Name, Version: r.Version,
		Locations: []string{location}, Analyzer: analyzer,
	}
	if l := strings.TrimSpace(r.License); l != "" {
		p.Licenses = []string{l}
	}
	seen := map[string]bool{}
	for _, d := range r.Depends {
		if f := strings.Fields(d); len(f) > 0 && !seen[f[0]] {
			seen[f[0]] = true
			p.DependsOn = append(p.DependsOn, f[0])
		}
	}
	sort.Strings(p.DependsOn)
	return []inventory.Package{p}, nil
}
