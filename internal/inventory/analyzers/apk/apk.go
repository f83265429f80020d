// Package apk reads the Alpine package database, lib/apk/db/installed, or
// usr/lib/apk/db/installed where /lib is usr-merged (Wolfi and Chainguard
// images since 2025: /lib is a symlink to usr/lib).
package apk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"

	"berth.dev/berth/internal/inventory"
)

// installedFiles are where apk keeps its database.
var installedFiles = []string{"lib/apk/db/installed", "usr/lib/apk/db/installed"}

const (
	// maxInstalledBytes bounds what is read into memory; a large Alpine
	// install has a few MiB.
	maxInstalledBytes = 64 << 20
)

// Analyzer reads the apk installed database.
type Analyzer struct{}

func (Analyzer) Name() string { return "apk" }
func (Analyzer) Version() int { return 2 } // 2: usr/lib/apk/db/installed

// MaxFileBytes implements inventory.Analyzer.
func (Analyzer) MaxFileBytes() int64 { return maxInstalledBytes }

func (Analyzer) Required(p string, _ fs.FileInfo) bool { return slices.Contains(installedFiles, p) }

// FixedPaths implements inventory.FixedPathAnalyzer.
func (Analyzer) FixedPaths() []string { return installedFiles }

func (Analyzer) Analyze(_ context.Context, files fs.FS) (*inventory.Result, error) {
	res := &inventory.Result{}
	for _, name := range installedFiles {
		data, err := fs.ReadFile(files, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read /%s: %w", name, err)
		}
		pkgs, warns := ParseInstalled(data, "/"+name)
		res.Warns = append(res.Warns, warns...)
		if len(pkgs) > 0 {
			res.Sets = append(res.Sets, inventory.PackageSet{Origin: name, Packages: pkgs})
		}
	}
	return res, nil
}

type record struct {
	pkg      inventory.Package
	depends  []string
	provides []string
	line     int
}

// ParseInstalled reads the records of an apk installed database: blocks of
// "K:value" lines separated by blank lines (apk-tools' db format). A record
// without a name or version is skipped with a warning naming its line.
func ParseInstalled(data []byte, location string) ([]inventory.Package, []string) {
	var (
		recs  []record
		warns []string
		cur   *record
		bad   string
	)
	flush := func() {
		if cur == nil {
			return
		}
		switch {
		case bad != "":
			warns = append(warns, fmt.Sprintf("%s: record at line %d skipped: %s", location, cur.line, bad))
		case cur.pkg.Name == "" || cur.pkg.Version == "":
			warns = append(warns, fmt.Sprintf("%s: record at line %d skipped: no P: (name) or V: (version)", location, cur.line))
		default:
			if cur.pkg.SourceName == "" {
				cur.pkg.SourceName = cur.pkg.Name
			}
			cur.pkg.SourceVersion = cur.pkg.Version
			cur.pkg.Locations = []string{location}
			recs = append(recs, *cur)
		}
		cur, bad = nil, ""
	}
	lineNo := 0
	for len(data) > 0 {
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		lineNo++
		l = bytes.TrimRight(l, "\r")
		if len(bytes.TrimSpace(l)) == 0 {
			flush()
			continue
		}
		if cur == nil {
			cur = &record{line: lineNo, pkg: inventory.Package{Ecosystem: inventory.APK, Analyzer: "apk"}}
		}
		if len(l) < 2 || l[1] != ':' {
			if bad == "" {
				bad = fmt.Sprintf("line %d is not K:value", lineNo)
			}
			continue
		}
		v := string(l[2:])
		switch l[0] {
		case 'P':
			cur.pkg.Name = v
		case 'V':
			cur.pkg.Version = v
		case 'A':
			cur.pkg.Arch = v
		case 'o':
			cur.pkg.SourceName = v
		case 'L':
			if v != "" {
				cur.pkg.Licenses = []string{v}
			}
		case 'D':
			cur.depends = append(cur.depends, strings.Fields(v)...)
		case 'p':
			cur.provides = append(cur.provides, strings.Fields(v)...)
		}
	}
	flush()
	return resolve(recs), warns
}

// resolve turns each record's dependencies (package names, "so:" and
// "cmd:" names that other packages provide, with version constraints) into
// the names of installed packages.
func resolve(recs []record) []inventory.Package {
	provider := map[string]string{}
	for _, r := range recs {
		provider[r.pkg.Name] = r.pkg.Name
		for _, p := range r.provides {
			provider[bareName(p)] = r.pkg.Name
		}
	}
	pkgs := make([]inventory.Package, 0, len(recs))
	for _, r := range recs {
		seen := map[string]bool{}
		for _, d := range r.depends {
			if strings.HasPrefix(d, "!") {
				continue // a conflict, not a dependency
			}
			if name, ok := provider[bareName(d)]; ok && name != r.pkg.Name && !seen[name] {
				seen[name] = true
				r.pkg.DependsOn = append(r.pkg.DependsOn, name)
			}
		}
		sort.Strings(r.pkg.DependsOn)
		pkgs = append(pkgs, r.pkg)
	}
	return pkgs
}

// bareName strips a version constraint: "so:libc.musl-x86_64.so.1=1",
// "busybox>=1.36" → the name alone.
func bareName(s string) string {
	if i := strings.IndexAny(s, "=<>~"); i >= 0 {
		return s[:i]
	}
	return s
}
