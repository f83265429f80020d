// Package packagesconfig reads NuGet's packages.config, the package list
// of .NET Framework projects before PackageReference.
package packagesconfig

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"berth.dev/berth/internal/inventory"
)

// Analyzer reads packages.config files.
type Analyzer struct{}

// Name implements inventory.Analyzer.
func (Analyzer) Name() string { return "nuget-packages-config" }

// Version implements inventory.Analyzer.
func (Analyzer) Version() int { return 2 }

// MaxFileBytes implements inventory.Analyzer.
func (Analyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (Analyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isPackagesConfig(p)
}

// Analyze implements inventory.Analyzer.
func (a Analyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isPackagesConfig, Parse)
}

func isPackagesConfig(p string) bool { return path.Base(p) == "packages.config" }

type config struct {
	XMLName  xml.Name `xml:"packages"`
	Packages []struct {
		ID      string `xml:"id,attr"`
		Version string `xml:"version,attr"`
		// DevelopmentDependency marks build-time packages (analyzers,
		// build tools) that the application does not ship.
		DevelopmentDependency string `xml:"developmentDependency,attr"`
	} `xml:"package"`
}

// Parse reads the <package id version> elements of a packages.config. An
// element without an id or version is skipped and named in the error; the
// others are still read.
func Parse(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var c config
	if err := xml.NewDecoder(bytes.NewReader(data)).Decode(&c); err != nil {
		return nil, fmt.Errorf("parse packages.config: %w", err)
	}
	var pkgs []inventory.Package
	var bad []string
	for _, p := range c.Packages {
		id, v := strings.TrimSpace(p.ID), strings.TrimSpace(p.Version)
		if id == "" || v == "" {
			bad = append(bad, strconv.Quote(id))
			continue
		}
		pkgs = append(pkgs, inventory.Package{
			Ecosystem: inventory.NuGet, Name: id, Version: v,
			Locations: []string{location}, Analyzer: analyzer,
			Dev: strings.EqualFold(strings.TrimSpace(p.DevelopmentDependency), "true"),
		})
	}
	if len(bad) > 0 {
		return pkgs, fmt.Errorf("packages without an id or version, skipped: %s", strings.Join(bad, ", "))
	}
	return pkgs, nil
}
