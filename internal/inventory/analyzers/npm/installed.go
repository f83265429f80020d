package npm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"berth.dev/berth/internal/inventory"
)

// InstalledAnalyzer reads node_modules/<name>/package.json and
// node_modules/@scope/<name>/package.json: the packages npm, Yarn or pnpm
// actually installed. Other package.json files (the application's own,
// test fixtures inside a package, sub-entry points such as lodash/fp) are
// not packages and are not read.
type InstalledAnalyzer struct{}

// Name implements inventory.Analyzer.
func (InstalledAnalyzer) Name() string { return "npm-installed" }

// Version implements inventory.Analyzer.
func (InstalledAnalyzer) Version() int { return 1 }

// MaxFileBytes implements inventory.Analyzer.
func (InstalledAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (InstalledAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isInstalledManifest(p)
}

// Analyze implements inventory.Analyzer.
func (a InstalledAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isInstalledManifest, parseInstalled)
}

func isInstalledManifest(p string) bool {
	if path.Base(p) != "package.json" {
		return false
	}
	dir := path.Dir(p)
	parent := path.Dir(dir)
	if strings.HasPrefix(path.Base(parent), "@") {
		parent = path.Dir(parent)
	}
	return path.Base(parent) == "node_modules"
}

type manifest struct {
	Name    string          `json:"name"`
	Version string          `json:"version"`
	License json.RawMessage `json:"license"`
	// Licenses is the form npm deprecated long ago; old packages still
	// carry it.
	Licenses json.RawMessage `json:"licenses"`
}

func parseInstalled(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parse package.json: %w", err)
	}
	if m.Name == "" || m.Version == "" {
		return nil, errors.New("package.json has no name or version")
	}
	p := pkg(m.Name, m.Version, location, analyzer)
	p.Licenses = licenses(m.License, m.Licenses)
	return []inventory.Package{p}, nil
}

// licenses reads the "license" field, a string or (deprecated) an object
// {"type": …}, falling back to the deprecated "licenses" array.
func licenses(license, list json.RawMessage) []string {
	type typed struct {
		Type string `json:"type"`
	}
	var s string
	if json.Unmarshal(license, &s) == nil && s != "" {
		return []string{s}
	}
	var t typed
	if json.Unmarshal(license, &t) == nil && t.Type != "" {
		return []string{t.Type}
	}
	var ts []typed
	var out []string
	if json.Unmarshal(list, &ts) == nil {
		for _, t := range ts {
			if t.Type != "" {
				out = append(out, t.Type)
			}
		}
	}
	return out
}
