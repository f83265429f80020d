package npm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"berth.dev/berth/internal/inventory/analyzers/internal/yamlmap"

	"berth.dev/berth/internal/inventory"
)

// PNPMAnalyzer reads pnpm-lock.yaml, lockfileVersion 5.x (pnpm 6–7), 6.0
// (pnpm 8) and 9.0 (pnpm 9–10).
type PNPMAnalyzer struct{}

// Name implements inventory.Analyzer.
func (PNPMAnalyzer) Name() string { return "pnpm-lock" }

// Version implements inventory.Analyzer.
func (PNPMAnalyzer) Version() int { return 6 }

// MaxFileBytes implements inventory.Analyzer.
func (PNPMAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (PNPMAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isPNPMLock(p)
}

// Analyze implements inventory.Analyzer.
func (a PNPMAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	res, err := inventory.AnalyzeFiles(ctx, files, a.Name(), isPNPMLock, ParsePNPMLock)
	return markInstalledUnder(res), err
}

func isPNPMLock(p string) bool { return isLockfile(p, "pnpm-lock.yaml") }

type pnpmLock struct {
	// LockfileVersion is a number in 5.x files and a string since 6.0.
	LockfileVersion yaml.Node                 `yaml:"lockfileVersion"`
	Importers       yamlmap.Map[pnpmImporter] `yaml:"importers"`
	// The root project's dependencies, before v9 moved them into
	// importers["."].
	pnpmImporter `yaml:",inline"`
	Packages     yamlmap.Map[pnpmPackage] `yaml:"packages"`
	Snapshots    yamlmap.Map[pnpmPackage] `yaml:"snapshots"`
}

type pnpmImporter struct {
	Dependencies         yamlmap.Map[yaml.Node] `yaml:"dependencies"`
	OptionalDependencies yamlmap.Map[yaml.Node] `yaml:"optionalDependencies"`
	DevDependencies      yamlmap.Map[yaml.Node] `yaml:"devDependencies"`
	// PackageManagerDependencies is pnpm itself, pinned in the separate
	// first document pnpm 10 writes (managePackageManagerVersions).
	PackageManagerDependencies yamlmap.Map[yaml.Node] `yaml:"packageManagerDependencies"`
}

// isEnvDocument reports whether lock is the document pnpm 10 writes
// before the lockfile proper to pin pnpm itself: its packages are the
// package manager, a build tool, not the application's dependencies.
func (lock *pnpmLock) isEnvDocument() bool {
	env := false
	for _, imp := range lock.Importers {
		if len(imp.Dependencies)+len(imp.OptionalDependencies)+len(imp.DevDependencies) > 0 {
			return false
		}
		env = env || imp.PackageManagerDependencies != nil
	}
	return env
}

type pnpmPackage struct {
	// Name and Version are set for packages not from the registry
	// (tarballs, git), whose keys are not name@version.
	Name                 string              `yaml:"name"`
	Version              string              `yaml:"version"`
	Dev                  *bool               `yaml:"dev"`
	Dependencies         yamlmap.Map[string] `yaml:"dependencies"`
	OptionalDependencies yamlmap.Map[string] `yaml:"optionalDependencies"`
	// Resolution is a mapping with a directory key for a local folder
	// dependency (file:); read only for that, so a resolution of
	// another shape costs nothing.
	Resolution yaml.Node `yaml:"resolution"`
}

// ParsePNPMLock reads a pnpm lockfile. pnpm 10 may write two YAML
// documents, the first pinning pnpm itself: its packages are listed as
// dev, like the other tools that build the application but are not part
// of it (they come from the registry, so they are matched).
func ParsePNPMLock(data []byte, location, analyzer string) ([]inventory.Package, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var (
		s       set
		docs    int
		unnamed []string
	)
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse pnpm-lock.yaml: %w", err)
		}
		var lock pnpmLock
		if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
			if err := yamlmap.Decode(doc.Content[0], &lock); err != nil {
				return nil, fmt.Errorf("parse pnpm-lock.yaml: %w", err)
			}
		}
		env := lock.isEnvDocument()
		if !env {
			docs++
		}
		if err := pnpmDocument(&s, &lock, env, location, analyzer, &unnamed); err != nil {
			return nil, err
		}
	}
	if docs == 0 {
		return nil, errors.New("pnpm-lock.yaml holds no lockfile")
	}
	if len(unnamed) > 0 {
		return s.pkgs, fmt.Errorf("package keys not name@version, skipped: %s", strings.Join(unnamed, ", "))
	}
	return s.pkgs, nil
}

// pnpmDocument adds the packages of one lockfile document to s, all dev
// when allDev is set. An entry whose key and fields name no package and
// version (a git or local folder dependency without its name: field) is
// skipped and its key added to unnamed: one such entry must not hide the
// rest of the file. A local folder dependency (its resolution is a
// directory) is listed as local; pnpm does not name the workspace's
// member projects (importers), so they are not listed.
func pnpmDocument(s *set, lock *pnpmLock, allDev bool, location, analyzer string, unnamed *[]string) error {
	major, err := pnpmMajor(lock.LockfileVersion.Value)
	if err != nil {
		return err
	}
	// Since v9 the dependency edges live in snapshots (keyed with peer
	// suffixes) and packages holds only the metadata. A v9 file without
	// snapshots (written by other tools) still lists its packages.
	entries := lock.Packages
	var dev map[string]bool
	if major >= 9 && lock.Snapshots != nil {
		entries = lock.Snapshots
		dev = pnpmDevOnly(lock)
	}
	for _, key := range sortedKeys(entries) {
		e := entries[key]
		name, version, ok := pnpmKey(key, major)
		// A package from a tarball, git or a local folder is keyed by its
		// URL or path; its entry (or, since v9, its packages entry) names
		// it and its version.
		local := false
		for _, meta := range []pnpmPackage{lock.Packages[stripPeers(key)], e} {
			if meta.Name != "" {
				name, ok = meta.Name, true
			}
			if meta.Version != "" {
				version = meta.Version
			}
			local = local || isDirectoryResolution(&meta.Resolution)
		}
		if !ok || name == "" {
			*unnamed = append(*unnamed, strconv.Quote(key))
			continue
		}
		p := pkg(name, plainVersion(version), location, analyzer)
		switch {
		case allDev:
			p.Dev = true
		case e.Dev != nil:
			p.Dev = *e.Dev
		default:
			p.Dev = dev[key]
		}
		p.Local = local
		p.DependsOn = sortedKeys(e.Dependencies, e.OptionalDependencies)
		s.add(p)
	}
	return nil
}

// isDirectoryResolution reports whether a packages entry's resolution
// ({directory: ../pkg, type: directory}) is a local folder.
func isDirectoryResolution(n *yaml.Node) bool {
	if n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "directory" && n.Content[i+1].Value != "" {
			return true
		}
	}
	return false
}

func pnpmMajor(v string) (int, error) {
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	if err != nil || n < 5 || n > 9 {
		return 0, fmt.Errorf("unsupported lockfileVersion %q", v)
	}
	return n, nil
}

// pnpmKey splits a packages key: "/name/1.0.0_peer@2.0.0" (v5),
// "/name@1.0.0(peer@2.0.0)" (v6), "name@1.0.0(peer@2.0.0)" (v9). Scoped
// names ("@scope/name") keep their slash and leading "@". Before v9, a key
// without the leading "/" starts with the registry's host
// ("registry.example.com/name/1.0.0"), and a tarball's is its path
// ("registry.npmjs.org/name/-/name-1.0.0.tgz").
func pnpmKey(key string, major int) (name, version string, ok bool) {
	key = stripPeers(key)
	if major >= 9 {
		// pnpm 9 writes "name@1.0.0"; a file converted from v6 by another
		// tool keeps v6's leading "/", which no npm name starts with.
		return splitDescriptor(strings.TrimPrefix(key, "/"))
	}
	if rest, ok := strings.CutPrefix(key, "/"); ok {
		key = rest
	} else if _, rest, ok := strings.Cut(key, "/"); ok {
		key = rest
	}
	if pkgPath, file, ok := strings.Cut(key, "/-/"); ok {
		base := pkgPath[strings.LastIndex(pkgPath, "/")+1:]
		v, ok := strings.CutPrefix(strings.TrimSuffix(file, ".tgz"), base+"-")
		return pkgPath, v, ok && v != ""
	}
	if major >= 6 {
		return splitNameVersion(key)
	}
	i := strings.LastIndex(key, "/")
	if i <= 0 {
		return "", "", false
	}
	name, version = key[:i], key[i+1:]
	version, _, _ = strings.Cut(version, "_")
	// A registry version starts with a digit; "github.com/user/repo"
	// and "/foo/bar" (a git dependency, host stripped) name no version.
	return name, version, version != "" && version[0] >= '0' && version[0] <= '9'
}

// stripPeers removes the "(peer@version)" suffixes of v6+ keys.
func stripPeers(key string) string {
	k, _, _ := strings.Cut(key, "(")
	return k
}

// pnpmDevOnly marks the v9 snapshots that no importer reaches through its
// dependencies or optionalDependencies: v9 dropped the per-package "dev"
// field, so it is derived from the graph.
func pnpmDevOnly(lock *pnpmLock) map[string]bool {
	prod := map[string]bool{}
	var queue []string
	enqueue := func(name, version string) {
		key := name + "@" + version
		if _, ok := lock.Snapshots[key]; ok && !prod[key] {
			prod[key] = true
			queue = append(queue, key)
		}
	}
	for _, imp := range lock.Importers {
		for _, deps := range []map[string]yaml.Node{imp.Dependencies, imp.OptionalDependencies} {
			for name, n := range deps {
				// An importer's entry is {specifier, version}.
				var ref struct {
					Version string `yaml:"version"`
				}
				if yamlmap.Decode(&n, &ref) == nil {
					enqueue(name, ref.Version)
				}
			}
		}
	}
	for len(queue) > 0 {
		e := lock.Snapshots[queue[0]]
		queue = queue[1:]
		for _, deps := range []map[string]string{e.Dependencies, e.OptionalDependencies} {
			for name, version := range deps {
				enqueue(name, version)
			}
		}
	}
	dev := map[string]bool{}
	for key := range lock.Snapshots {
		dev[key] = !prod[key]
	}
	return dev
}
