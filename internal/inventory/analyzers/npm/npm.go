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
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"berth.dev/berth/internal/inventory"
)

// parseFunc reads one file; location is its absolute path.
type parseFunc func(data []byte, location, analyzer string) ([]inventory.Package, error)

// analyzeFiles parses every file of files that match accepts, one
// PackageSet per file. A file that does not parse becomes a warning naming
// it; the other files are still read.
func analyzeFiles(ctx context.Context, files fs.FS, analyzer string, match func(string) bool, parse parseFunc) (*inventory.Result, error) {
	res := &inventory.Result{}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !match(p) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := fs.ReadFile(files, p)
		if err != nil {
			return fmt.Errorf("read /%s: %w", p, err)
		}
		pkgs, err := parse(data, "/"+p, analyzer)
		if err != nil {
			res.Warns = append(res.Warns, fmt.Sprintf("/%s: %v", p, err))
			return nil
		}
		if len(pkgs) > 0 {
			res.Sets = append(res.Sets, inventory.PackageSet{Origin: p, Packages: pkgs})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", analyzer, err)
	}
	return res, nil
}

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

// set collects packages, keeping one of each name and version; a package
// that any occurrence needs at run time is not dev-only.
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
