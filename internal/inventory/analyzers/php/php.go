// Package php finds Composer packages: those locked in composer.lock and
// those installed under vendor/, as vendor/composer/installed.json records
// them (Composer 1 wrote a bare array, Composer 2 an object with
// "packages" and "dev-package-names").
package php

import (
	"bytes"
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

// LockAnalyzer reads composer.lock.
type LockAnalyzer struct{}

// Name implements inventory.Analyzer.
func (LockAnalyzer) Name() string { return "composer-lock" }

// Version implements inventory.Analyzer.
func (LockAnalyzer) Version() int { return 1 }

// MaxFileBytes implements inventory.Analyzer.
func (LockAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (LockAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isLock(p)
}

// Analyze implements inventory.Analyzer.
func (a LockAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isLock, ParseLock)
}

// isLock skips the lockfiles that packages under vendor/ ship.
func isLock(p string) bool {
	return path.Base(p) == "composer.lock" && !strings.HasPrefix(p, "vendor/") && !strings.Contains(p, "/vendor/")
}

// InstalledAnalyzer reads vendor/composer/installed.json.
type InstalledAnalyzer struct{}

// Name implements inventory.Analyzer.
func (InstalledAnalyzer) Name() string { return "composer-installed" }

// Version implements inventory.Analyzer.
func (InstalledAnalyzer) Version() int { return 1 }

// MaxFileBytes implements inventory.Analyzer.
func (InstalledAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (InstalledAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isInstalled(p)
}

// Analyze implements inventory.Analyzer.
func (a InstalledAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isInstalled, ParseInstalled)
}

func isInstalled(p string) bool {
	return p == "vendor/composer/installed.json" || strings.HasSuffix(p, "/vendor/composer/installed.json")
}

type composerPackage struct {
	Name    string            `json:"name"`
	Version string            `json:"version"`
	License json.RawMessage   `json:"license"`
	Require map[string]string `json:"require"`
}

// ParseLock reads a composer.lock: "packages" are runtime dependencies,
// "packages-dev" dev-only ones.
func ParseLock(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var lock struct {
		Packages    *[]composerPackage `json:"packages"`
		PackagesDev []composerPackage  `json:"packages-dev"`
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		return nil, fmt.Errorf("parse composer.lock: %w", err)
	}
	if lock.Packages == nil {
		return nil, errors.New("not a composer.lock: no packages")
	}
	pkgs, err := convert(*lock.Packages, nil, location, analyzer)
	if err != nil {
		return nil, err
	}
	dev, err := convert(lock.PackagesDev, nil, location, analyzer)
	if err != nil {
		return nil, err
	}
	for i := range dev {
		dev[i].Dev = true
	}
	return append(pkgs, dev...), nil
}

// ParseInstalled reads installed.json in either Composer generation.
func ParseInstalled(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var list []composerPackage
	var devNames []string
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '[' {
		if err := json.Unmarshal(data, &list); err != nil {
			return nil, fmt.Errorf("parse installed.json: %w", err)
		}
	} else {
		var v2 struct {
			Packages        *[]composerPackage `json:"packages"`
			DevPackageNames []string           `json:"dev-package-names"`
		}
		if err := json.Unmarshal(data, &v2); err != nil {
			return nil, fmt.Errorf("parse installed.json: %w", err)
		}
		if v2.Packages == nil {
			return nil, errors.New("not an installed.json: no packages")
		}
		list, devNames = *v2.Packages, v2.DevPackageNames
	}
	return convert(list, devNames, location, analyzer)
}

func convert(list []composerPackage, devNames []string, location, analyzer string) ([]inventory.Package, error) {
	dev := map[string]bool{}
	for _, n := range devNames {
		dev[n] = true
	}
	var pkgs []inventory.Package
	for i, e := range list {
		if e.Name == "" || e.Version == "" {
			return nil, fmt.Errorf("package %d has no name or version", i+1)
		}
		p := inventory.Package{
			Ecosystem: inventory.Composer,
			Name:      e.Name,
			Version:   e.Version,
			Licenses:  licenses(e.License),
			Locations: []string{location},
			Analyzer:  analyzer,
			Dev:       dev[e.Name],
		}
		for dep := range e.Require {
			// Platform requirements (php, ext-json, lib-icu) are not
			// packages.
			if strings.Contains(dep, "/") {
				p.DependsOn = append(p.DependsOn, dep)
			}
		}
		sort.Strings(p.DependsOn)
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// licenses reads "license", a list of SPDX ids or (in old packages) one
// string.
func licenses(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	var one string
	if json.Unmarshal(raw, &one) == nil && one != "" {
		return []string{one}
	}
	return nil
}
