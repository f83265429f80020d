package npm

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"berth.dev/berth/internal/inventory"
)

// LockAnalyzer reads npm's package-lock.json and npm-shrinkwrap.json,
// lockfileVersion 1 (npm ≤ 6), 2 and 3 (npm ≥ 7). The hidden lockfile
// node_modules/.package-lock.json is not read: it repeats what the
// installed package.json files say.
type LockAnalyzer struct{}

// Name implements inventory.Analyzer.
func (LockAnalyzer) Name() string { return "npm-lock" }

// Version implements inventory.Analyzer.
func (LockAnalyzer) Version() int { return 6 }

// MaxFileBytes implements inventory.Analyzer.
func (LockAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (LockAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isPackageLock(p)
}

// Analyze implements inventory.Analyzer.
//
// npm reads only npm-shrinkwrap.json where both it and package-lock.json
// lie in a project. Both are read here, and a package-lock.json's set
// names the shrinkwrap beside it (ShadowedBy): the merge leaves the set
// out while that shrinkwrap is in the image, whichever layers put the
// two there, and counts it again once a later layer deletes the
// shrinkwrap. Skipping the file here would see only this layer.
func (a LockAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	res, err := inventory.AnalyzeFiles(ctx, files, a.Name(), isPackageLock, ParsePackageLock)
	if res != nil {
		for i := range res.Sets {
			if dir, base := path.Split(res.Sets[i].Origin); base == "package-lock.json" {
				res.Sets[i].ShadowedBy = dir + "npm-shrinkwrap.json"
			}
		}
	}
	return markInstalledUnder(res), err
}

func isPackageLock(p string) bool {
	return isLockfile(p, "package-lock.json") || isLockfile(p, "npm-shrinkwrap.json")
}

type packageLock struct {
	LockfileVersion int                    `json:"lockfileVersion"`
	Packages        map[string]lockPackage `json:"packages"`
	Dependencies    map[string]lockDepV1   `json:"dependencies"`
}

// lockPackage is an entry of "packages" (v2, v3).
type lockPackage struct {
	Name                 string            `json:"name"`
	Version              string            `json:"version"`
	License              json.RawMessage   `json:"license"`
	Dev                  bool              `json:"dev"`
	Link                 bool              `json:"link"`
	Resolved             string            `json:"resolved"`
	Dependencies         map[string]string `json:"dependencies"`
	OptionalDependencies map[string]string `json:"optionalDependencies"`
	DevDependencies      map[string]string `json:"devDependencies"`
	PeerDependencies     map[string]string `json:"peerDependencies"`
}

// lockDepV1 is an entry of the nested "dependencies" tree (v1).
type lockDepV1 struct {
	Version      string               `json:"version"`
	Dev          bool                 `json:"dev"`
	Requires     map[string]string    `json:"requires"`
	Dependencies map[string]lockDepV1 `json:"dependencies"`
}

// ParsePackageLock reads an npm lockfile of any lockfileVersion.
func ParsePackageLock(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var lock packageLock
	if err := json.Unmarshal(data, &lock); err != nil {
		return nil, fmt.Errorf("parse package-lock: %w", err)
	}
	if lock.LockfileVersion < 1 || lock.LockfileVersion > 3 {
		return nil, fmt.Errorf("unsupported lockfileVersion %d", lock.LockfileVersion)
	}
	var s set
	if lock.Packages != nil {
		// v2 also carries the v1 tree for old npm; "packages" is the
		// complete one.
		packagesV2(&s, lock.Packages, location, analyzer)
	} else {
		dependenciesV1(&s, lock.Dependencies, false, location, analyzer)
	}
	return s.pkgs, nil
}

func packagesV2(s *set, entries map[string]lockPackage, location, analyzer string) {
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	folderNames := folderPackageNames(entries)
	for _, k := range keys {
		e := entries[k]
		// "" is the project itself, which the peers do not list either;
		// a link (a workspace member's or a file: folder's entry under
		// node_modules) only points at the folder's own entry, read
		// below. A git dependency may lack "version"; it is still
		// installed.
		if k == "" || e.Link {
			continue
		}
		var name string
		local := false
		if i := strings.LastIndex(k, "node_modules/"); i >= 0 {
			name = k[i+len("node_modules/"):]
		} else {
			// A key without node_modules is a folder of the project: a
			// workspace member or a file: dependency. It is named by
			// its own "name", else by the link or dependency that
			// points at it; a folder nothing names is not listed (its
			// base name would be a guess).
			name, local = folderNames[k], true
		}
		if e.Name != "" {
			// The package's own name: an alias is installed under
			// another folder name, a folder may hold any package.
			name = e.Name
		}
		if name == "" {
			continue
		}
		p := pkg(name, plainVersion(e.Version), location, analyzer)
		p.Dev = e.Dev
		p.Local = local
		p.Licenses = licenses(e.License, nil)
		p.DependsOn = sortedKeys(e.Dependencies, e.OptionalDependencies)
		s.add(p)
	}
}

// folderPackageNames maps the project's folders that the lockfile lists
// (keys without node_modules) to the package name something gives them:
// a link entry "node_modules/NAME" whose "resolved" is the folder, or a
// dependency NAME: "file:PATH" whose path, from the depending entry's
// folder, is the folder.
func folderPackageNames(entries map[string]lockPackage) map[string]string {
	names := map[string]string{}
	keys := sortedKeys(entries)
	for _, k := range keys {
		e := entries[k]
		i := strings.LastIndex(k, "node_modules/")
		if !e.Link || i < 0 || e.Resolved == "" {
			continue
		}
		if dir := path.Clean(strings.TrimPrefix(e.Resolved, "file:")); names[dir] == "" {
			names[dir] = k[i+len("node_modules/"):]
		}
	}
	for _, k := range keys {
		e := entries[k]
		for _, deps := range []map[string]string{e.Dependencies, e.OptionalDependencies, e.DevDependencies, e.PeerDependencies} {
			for _, name := range sortedKeys(deps) {
				dir, ok := strings.CutPrefix(deps[name], "file:")
				if !ok {
					continue
				}
				dir = path.Join(k, dir)
				if _, listed := entries[dir]; listed && names[dir] == "" {
					names[dir] = name
				}
			}
		}
	}
	return names
}

// dependenciesV1 adds deps and, depth first, the dependencies nested in
// them. Those nested in a development-only dependency are installed only
// for it, so they are development-only too, whether or not the writer
// flagged them (npm does; not every tool that writes v1 files does).
func dependenciesV1(s *set, deps map[string]lockDepV1, underDev bool, location, analyzer string) {
	for _, name := range sortedKeys(deps) {
		d := deps[name]
		pname, version := name, d.Version
		// An alias ("alias": {"version": "npm:real@1.0.0"}) installs
		// another package under this folder name.
		if real, ok := strings.CutPrefix(version, "npm:"); ok {
			if n, v, ok := splitNameVersion(real); ok {
				pname, version = n, v
			}
		}
		// Some writers key the tree by install path.
		if i := strings.LastIndex(pname, "node_modules/"); i >= 0 {
			pname = pname[i+len("node_modules/"):]
		}
		// A git, tarball or file dependency's "version" is its URL (with
		// any token in it): it names no version. A file: folder is the
		// project's own code.
		local := IsLocalFolder(version, "file:")
		version = plainVersion(version)
		if pname != "" {
			p := pkg(pname, version, location, analyzer)
			p.Dev = d.Dev || underDev
			p.Local = local
			p.DependsOn = sortedKeys(d.Requires)
			s.add(p)
		}
		dependenciesV1(s, d.Dependencies, d.Dev || underDev, location, analyzer)
	}
}

// sortedKeys returns the union of the maps' keys, sorted; nil when empty.
func sortedKeys[V any](maps ...map[string]V) []string {
	var keys []string
	for _, m := range maps {
		for k := range m {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys)
	return slices.Compact(keys)
}
