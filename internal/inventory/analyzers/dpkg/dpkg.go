// Package dpkg reads the Debian package database: var/lib/dpkg/status, and
// the one-file-per-package var/lib/dpkg/status.d/ that distroless images
// carry instead.
package dpkg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
)

const (
	statusFile = "var/lib/dpkg/status"
	statusDir  = "var/lib/dpkg/status.d/"
	// maxStatusBytes bounds what is read into memory: the status file of a
	// full desktop install is about 10 MiB.
	maxStatusBytes = 64 << 20
)

// Analyzer reads dpkg status databases.
type Analyzer struct{}

func (Analyzer) Name() string { return "dpkg" }
func (Analyzer) Version() int { return 2 }

// MaxFileBytes implements inventory.Analyzer: status files (copyright
// files are asked for only up to maxCopyrightBytes).
func (Analyzer) MaxFileBytes() int64 { return maxStatusBytes }

// FixedPaths implements inventory.FixedPathAnalyzer: the status file,
// also when var/lib/dpkg or the file itself is a symlink.
func (Analyzer) FixedPaths() []string { return []string{statusFile} }

func (Analyzer) Required(p string, info fs.FileInfo) bool {
	if p == statusFile {
		return true
	}
	if _, ok := copyrightPackage(p); ok {
		return info == nil || info.Size() <= maxCopyrightBytes
	}
	// status.d holds one stanza file per package, plus <pkg>.md5sums beside
	// it on some distroless images.
	return strings.HasPrefix(p, statusDir) && !strings.Contains(p[len(statusDir):], "/") &&
		!strings.HasSuffix(p, ".md5sums")
}

func (Analyzer) Analyze(_ context.Context, files fs.FS) (*inventory.Result, error) {
	var names []string
	if _, err := fs.Stat(files, statusFile); err == nil {
		names = append(names, statusFile)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("stat /%s: %w", statusFile, err)
	}
	more, err := fs.Glob(files, statusDir+"*")
	if err != nil {
		return nil, fmt.Errorf("list /%s: %w", statusDir, err)
	}
	sort.Strings(more)
	names = append(names, more...)

	res := &inventory.Result{}
	if err := readCopyrights(files, res); err != nil {
		return nil, err
	}
	for _, name := range names {
		st, err := fs.Stat(files, name)
		if err != nil || st.IsDir() {
			continue
		}
		data, err := fs.ReadFile(files, name)
		if err != nil {
			return nil, fmt.Errorf("read /%s: %w", name, err)
		}
		pkgs, warns := ParseStatus(data, "/"+name)
		res.Warns = append(res.Warns, warns...)
		if len(pkgs) > 0 {
			res.Sets = append(res.Sets, inventory.PackageSet{Origin: name, Packages: pkgs})
		}
	}
	return res, readLinkedCopyrights(files, res)
}

// readLinkedCopyrights finds the copyright files of packages whose doc
// directory is a symlink to another package's (libgcc-s1 → gcc-12-base):
// the layer's FS resolves the link when the target was read here.
func readLinkedCopyrights(files fs.FS, res *inventory.Result) error {
	have := map[string]bool{}
	for _, lf := range res.Licenses {
		have[lf.Package] = true
	}
	for _, set := range res.Sets {
		for _, p := range set.Packages {
			if have[p.Name] {
				continue
			}
			have[p.Name] = true
			origin := docDir + p.Name + copyrightName
			data, err := fs.ReadFile(files, origin)
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, image.ErrSymlinkLoop) {
				continue
			}
			if err != nil {
				return fmt.Errorf("read /%s: %w", origin, err)
			}
			if lics := ParseCopyright(data); len(lics) > 0 {
				res.Licenses = append(res.Licenses, inventory.LicenseFile{Origin: origin, Ecosystem: inventory.Deb, Package: p.Name, Licenses: lics})
			}
		}
	}
	return nil
}

// readCopyrights reads every usr/share/doc/*/copyright of the layer.
func readCopyrights(files fs.FS, res *inventory.Result) error {
	paths, err := fs.Glob(files, docDir+"*"+copyrightName)
	if err != nil {
		return fmt.Errorf("list /%s: %w", docDir, err)
	}
	for _, p := range paths {
		pkg, ok := copyrightPackage(p)
		if !ok {
			continue
		}
		data, err := fs.ReadFile(files, p)
		if err != nil {
			return fmt.Errorf("read /%s: %w", p, err)
		}
		if lics := ParseCopyright(data); len(lics) > 0 {
			res.Licenses = append(res.Licenses, inventory.LicenseFile{Origin: p, Ecosystem: inventory.Deb, Package: pkg, Licenses: lics})
		}
	}
	return nil
}

// ParseStatus reads the stanzas of a dpkg status file and returns the
// installed packages. location names the file in warnings and in each
// package's Locations. A malformed stanza is skipped with a warning; the
// others are kept.
func ParseStatus(data []byte, location string) ([]inventory.Package, []string) {
	var (
		pkgs  []inventory.Package
		warns []string
		deps  [][]string // dependency names per package, resolved at the end
	)
	lineNo, stanzaLine := 0, 0
	var stanza [][]byte
	flush := func() {
		if len(stanza) == 0 {
			return
		}
		defer func() { stanza = stanza[:0] }()
		fields, err := parseFields(stanza)
		if err == nil {
			var pkg inventory.Package
			var installed bool
			pkg, installed, err = packageFrom(fields)
			if err == nil && installed {
				pkg.Locations = []string{location}
				pkgs = append(pkgs, pkg)
				deps = append(deps, dependencyNames(fields["Depends"], fields["Pre-Depends"]))
			}
		}
		if err != nil {
			warns = append(warns, fmt.Sprintf("%s: stanza at line %d skipped: %v", location, stanzaLine, err))
		}
	}
	for len(data) > 0 {
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		lineNo++
		if len(bytes.TrimSpace(l)) == 0 {
			flush()
			continue
		}
		if len(stanza) == 0 {
			stanzaLine = lineNo
		}
		stanza = append(stanza, l)
	}
	flush()
	resolveDependencies(pkgs, deps)
	return pkgs, warns
}

// parseFields reads "Key: value" lines with continuation lines that start
// with a space or tab. Only the fields we use are kept.
func parseFields(lines [][]byte) (map[string]string, error) {
	fields := make(map[string]string, 8)
	var key string
	for _, l := range lines {
		l = bytes.TrimRight(l, "\r")
		if l[0] == ' ' || l[0] == '\t' {
			if key == "" {
				return nil, errors.New("continuation line before any field")
			}
			if _, keep := wanted[key]; keep {
				fields[key] += "\n" + strings.TrimSpace(string(l))
			}
			continue
		}
		if l[0] == '#' {
			continue
		}
		k, v, ok := bytes.Cut(l, []byte{':'})
		if !ok || len(k) == 0 || bytes.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("line %q is not a field", truncate(l))
		}
		key = string(k)
		if _, keep := wanted[key]; keep {
			if _, dup := fields[key]; dup {
				return nil, fmt.Errorf("field %s repeated", key)
			}
			fields[key] = strings.TrimSpace(string(v))
		}
	}
	return fields, nil
}

var wanted = map[string]struct{}{
	"Package": {}, "Status": {}, "Version": {}, "Source": {}, "Architecture": {},
	"Depends": {}, "Pre-Depends": {},
}

func truncate(b []byte) string {
	const max = 40
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// packageFrom builds the package of one stanza. ok is false for a package
// that is known to dpkg but not installed (removed, config-files, …).
func packageFrom(f map[string]string) (pkg inventory.Package, ok bool, err error) {
	name := f["Package"]
	if name == "" {
		return pkg, false, errors.New("no Package field")
	}
	if !validName(name) {
		return pkg, false, fmt.Errorf("invalid package name %q", name)
	}
	// A status.d file has no Status field: everything listed is installed.
	if st, has := f["Status"]; has {
		words := strings.Fields(st)
		if len(words) != 3 {
			return pkg, false, fmt.Errorf("package %s: invalid Status %q", name, st)
		}
		if words[2] != "installed" {
			return pkg, false, nil
		}
	}
	version := f["Version"]
	if version == "" || strings.ContainsAny(version, " \t\n") {
		return pkg, false, fmt.Errorf("package %s: missing or invalid Version %q", name, version)
	}
	srcName, srcVersion := name, version
	if src := f["Source"]; src != "" {
		n, v, hasVersion := strings.Cut(src, " ")
		srcName = n
		if hasVersion {
			v = strings.TrimSpace(v)
			if !strings.HasPrefix(v, "(") || !strings.HasSuffix(v, ")") || len(v) < 3 {
				return pkg, false, fmt.Errorf("package %s: invalid Source %q", name, src)
			}
			srcVersion = v[1 : len(v)-1]
		}
		if !validName(srcName) {
			return pkg, false, fmt.Errorf("package %s: invalid Source %q", name, src)
		}
	}
	return inventory.Package{
		Ecosystem:     inventory.Deb,
		Name:          name,
		Version:       version,
		SourceName:    srcName,
		SourceVersion: srcVersion,
		Arch:          f["Architecture"],
		Analyzer:      "dpkg",
	}, true, nil
}

// validName accepts Debian package names (lower case alphanumerics and
// + - .), leniently: upper case is seen in the wild in third-party packages.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '+', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}

// dependencyNames lists every package named in Depends and Pre-Depends,
// all alternatives included, without version constraints or arch
// qualifiers.
func dependencyNames(fields ...string) []string {
	var names []string
	for _, field := range fields {
		for _, clause := range strings.Split(field, ",") {
			for _, alt := range strings.Split(clause, "|") {
				alt = strings.TrimSpace(alt)
				if i := strings.IndexAny(alt, " (["); i >= 0 {
					alt = alt[:i]
				}
				alt, _, _ = strings.Cut(alt, ":")
				if alt != "" {
					names = append(names, alt)
				}
			}
		}
	}
	return names
}

// resolveDependencies keeps, for each package, the dependencies installed in
// the same database, so DependsOn is a graph within the set.
func resolveDependencies(pkgs []inventory.Package, deps [][]string) {
	installed := make(map[string]bool, len(pkgs))
	for _, p := range pkgs {
		installed[p.Name] = true
	}
	for i := range pkgs {
		seen := map[string]bool{}
		for _, d := range deps[i] {
			if installed[d] && !seen[d] && d != pkgs[i].Name {
				seen[d] = true
				pkgs[i].DependsOn = append(pkgs[i].DependsOn, d)
			}
		}
		sort.Strings(pkgs[i].DependsOn)
	}
}
