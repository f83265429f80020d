// Package npm finds JavaScript packages: the package.json of every package
// installed under node_modules, and the lockfiles of npm (package-lock.json
// v1–v3, npm-shrinkwrap.json), Yarn (v1 and Berry yarn.lock) and pnpm
// (pnpm-lock.yaml v5–v9).
//
// Each file is its own PackageSet. An image that holds both node_modules
// and a lockfile yields both, each with its own origin: the lockfile says
// what was meant to be installed (and which packages are dev-only), the
// node_modules tree says what is there; the inventory's merge lists a
// package found both ways once, with both files as locations.
package npm

import (
	"path"
	"strings"

	"berth.dev/berth/internal/inventory"
)

// inNodeModules reports whether p lies inside a node_modules directory.
func inNodeModules(p string) bool {
	return strings.HasPrefix(p, "node_modules/") || strings.Contains(p, "/node_modules/")
}

// isLockfile reports whether p has the base name name and is a project's
// own lockfile rather than one shipped inside an installed package.
func isLockfile(p, name string) bool {
	return path.Base(p) == name && !inNodeModules(p)
}

// splitNameVersion splits "name@version" and "@scope/name@version" at the
// last "@" that is not the scope's.
func splitNameVersion(s string) (name, version string, ok bool) {
	i := strings.LastIndex(s, "@")
	if i <= 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// splitDescriptor splits a descriptor "name@reference" at the first "@"
// after the name, a scope's leading "@" aside: the reference may hold
// more ("fsevents@patch:fsevents@npm%3A2.3.2#…",
// "pkg@ssh://git@github.com/o/r.git#sha").
func splitDescriptor(s string) (name, ref string, ok bool) {
	if len(s) < 2 {
		return "", "", false
	}
	i := strings.Index(s[1:], "@") + 1
	if i <= 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// plainVersion returns v when it is a version, and "" when it is a
// reference that names none: a git URL (git+ssh://…, github:o/r#sha), a
// tarball URL or a local path (file:…). Such references may carry
// credentials and are never reported as versions.
func plainVersion(v string) string {
	if strings.ContainsAny(v, ":/") {
		return ""
	}
	return v
}

// IsLocalFolder reports whether the reference ref names a folder of the
// local file system through one of the given protocols ("file:",
// "link:", "portal:"): the project's own code, not a registry package. A
// file: tarball (.tgz, .tar.gz, .tar) is a packed package, usually one
// from the registry, and is not a folder.
func IsLocalFolder(ref string, protocols ...string) bool {
	for _, proto := range protocols {
		p, ok := strings.CutPrefix(ref, proto)
		if !ok {
			continue
		}
		// Yarn Berry appends "#path" and "::locator=…" to file: and
		// portal: references.
		p, _, _ = strings.Cut(p, "::")
		p, _, _ = strings.Cut(p, "#")
		p = strings.ToLower(p)
		return !strings.HasSuffix(p, ".tgz") && !strings.HasSuffix(p, ".tar.gz") && !strings.HasSuffix(p, ".tar")
	}
	return false
}

// markInstalledUnder tells the merge where each lockfile's packages get
// installed: node_modules beside the lockfile. When that directory holds
// installed packages, a lockfile entry without a copy there is not
// reported (pruned dev dependencies, a later layer's deletion).
func markInstalledUnder(res *inventory.Result) *inventory.Result {
	if res == nil {
		return nil
	}
	for i := range res.Sets {
		res.Sets[i].InstalledUnder = path.Join(path.Dir(res.Sets[i].Origin), "node_modules")
	}
	return res
}

// set collects packages, keeping one of each name and version; a package
// that any occurrence needs at run time is not dev-only, and one that any
// occurrence takes from the registry is not local.
type set struct {
	pkgs []inventory.Package
	seen map[string]int
}

func (s *set) add(p inventory.Package) {
	if s.seen == nil {
		s.seen = map[string]int{}
	}
	key := p.Name + "@" + p.Version
	if i, ok := s.seen[key]; ok {
		s.pkgs[i].Dev = s.pkgs[i].Dev && p.Dev
		s.pkgs[i].Local = s.pkgs[i].Local && p.Local
		return
	}
	s.seen[key] = len(s.pkgs)
	s.pkgs = append(s.pkgs, p)
}

func pkg(name, version, location, analyzer string) inventory.Package {
	return inventory.Package{
		Ecosystem: inventory.NPM,
		Name:      name,
		Version:   version,
		Locations: []string{location},
		Analyzer:  analyzer,
	}
}
