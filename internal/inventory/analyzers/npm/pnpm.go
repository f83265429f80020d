package npm

import (
	"context"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"berth.dev/berth/internal/inventory"
)

// PNPMAnalyzer reads pnpm-lock.yaml, lockfileVersion 5.x (pnpm 6–7), 6.0
// (pnpm 8) and 9.0 (pnpm 9–10).
type PNPMAnalyzer struct{}

// Name implements inventory.Analyzer.
func (PNPMAnalyzer) Name() string { return "pnpm-lock" }

// Version implements inventory.Analyzer.
func (PNPMAnalyzer) Version() int { return 1 }

// MaxFileBytes implements inventory.Analyzer.
func (PNPMAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (PNPMAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isPNPMLock(p)
}

// Analyze implements inventory.Analyzer.
func (a PNPMAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isPNPMLock, ParsePNPMLock)
}

func isPNPMLock(p string) bool { return isLockfile(p, "pnpm-lock.yaml") }

type pnpmLock struct {
	// LockfileVersion is a number in 5.x files and a string since 6.0.
	LockfileVersion yaml.Node               `yaml:"lockfileVersion"`
	Importers       map[string]pnpmImporter `yaml:"importers"`
	// The root project's dependencies, before v9 moved them into
	// importers["."].
	pnpmImporter `yaml:",inline"`
	Packages     map[string]pnpmPackage `yaml:"packages"`
	Snapshots    map[string]pnpmPackage `yaml:"snapshots"`
}

type pnpmImporter struct {
	Dependencies         map[string]yaml.Node `yaml:"dependencies"`
	OptionalDependencies map[string]yaml.Node `yaml:"optionalDependencies"`
	DevDependencies      map[string]yaml.Node `yaml:"devDependencies"`
}

type pnpmPackage struct {
	// Name and Version are set for packages not from the registry
	// (tarballs, git), whose keys are not name@version.
	Name                 string            `yaml:"name"`
	Version              string            `yaml:"version"`
	Dev                  *bool             `yaml:"dev"`
	Dependencies         map[string]string `yaml:"dependencies"`
	OptionalDependencies map[string]string `yaml:"optionalDependencies"`
}

// ParsePNPMLock reads a pnpm lockfile.
func ParsePNPMLock(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var lock pnpmLock
	if err := yaml.Unmarshal(data, &lock); err != nil {
		return nil, fmt.Errorf("parse pnpm-lock.yaml: %w", err)
	}
	major, err := pnpmMajor(lock.LockfileVersion.Value)
	if err != nil {
		return nil, err
	}
	// Since v9 the dependency edges live in snapshots (keyed with peer
	// suffixes) and packages holds only the metadata.
	entries := lock.Packages
	if major >= 9 {
		entries = lock.Snapshots
	}
	var dev map[string]bool
	if major >= 9 {
		dev = pnpmDevOnly(&lock)
	}
	var s set
	for _, key := range sortedKeys(entries) {
		e := entries[key]
		name, version, ok := pnpmKey(key, major)
		if meta, found := lock.Packages[stripPeers(key)]; major >= 9 && found && meta.Name != "" {
			name, version, ok = meta.Name, meta.Version, true
		}
		if e.Name != "" && e.Version != "" {
			name, version, ok = e.Name, e.Version, true
		}
		if !ok {
			return nil, fmt.Errorf("package key %q is not name@version", key)
		}
		p := pkg(name, version, location, analyzer)
		if e.Dev != nil {
			p.Dev = *e.Dev
		} else {
			p.Dev = dev[key]
		}
		p.DependsOn = sortedKeys(e.Dependencies, e.OptionalDependencies)
		s.add(p)
	}
	return s.pkgs, nil
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
// names ("@scope/name") keep their slash and leading "@".
func pnpmKey(key string, major int) (name, version string, ok bool) {
	key = strings.TrimPrefix(stripPeers(key), "/")
	if major >= 6 {
		return splitNameVersion(key)
	}
	i := strings.LastIndex(key, "/")
	if i <= 0 {
		return "", "", false
	}
	name, version = key[:i], key[i+1:]
	version, _, _ = strings.Cut(version, "_")
	return name, version, version != ""
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
				if n.Decode(&ref) == nil {
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
