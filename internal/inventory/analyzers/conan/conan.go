// Package conan reads conan.lock, the lockfile of the C and C++ package
// manager Conan: the Conan 2 form (lockfile version 0.5, "requires"
// lists of references) and the Conan 1 graph lock (0.4, "graph_lock"
// nodes).
package conan

import (
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

// Analyzer reads conan.lock files.
type Analyzer struct{}

// Name implements inventory.Analyzer.
func (Analyzer) Name() string { return "conan-lock" }

// Version implements inventory.Analyzer.
func (Analyzer) Version() int { return 4 }

// MaxFileBytes implements inventory.Analyzer.
func (Analyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (Analyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isLock(p)
}

// Analyze implements inventory.Analyzer.
func (a Analyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isLock, Parse)
}

func isLock(p string) bool { return path.Base(p) == "conan.lock" }

type lock struct {
	Version        string   `json:"version"`
	Requires       []string `json:"requires"`
	BuildRequires  []string `json:"build_requires"`
	PythonRequires []string `json:"python_requires"`
	GraphLock      *struct {
		Nodes map[string]struct {
			Ref string `json:"ref"`
			// Pref is the package reference the lock formats before
			// Conan 1.22 (lock versions 0.1–0.3) write instead of ref:
			// the reference and ":package_id".
			Pref string `json:"pref"`
			// Path is set on the consumer: the conanfile of the
			// project itself, not a package.
			Path string `json:"path"`
			// BuildRequires lists node ids of tools needed only to
			// build (Conan 1 "build_requires"): a list, or in the
			// early formats an object from reference to node id.
			BuildRequires json.RawMessage `json:"build_requires"`
		} `json:"nodes"`
	} `json:"graph_lock"`
}

// Parse reads a conan.lock. Build and python requirements (tools used to
// build, not linked) are dev. A reference that is not name/version is
// skipped and named in the error; the others are still returned.
func Parse(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var l lock
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("parse conan.lock: %w", err)
	}
	out := &collector{location: location, analyzer: analyzer, seen: map[string]int{}}
	switch {
	case l.GraphLock != nil:
		// The consumer is the project itself, often with no ref; a node
		// only other nodes' build_requires reach is dev.
		build := map[string]bool{}
		for _, n := range l.GraphLock.Nodes {
			for _, id := range nodeIDs(n.BuildRequires) {
				build[id] = true
			}
		}
		ids := make([]string, 0, len(l.GraphLock.Nodes))
		for id := range l.GraphLock.Nodes {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			n := l.GraphLock.Nodes[id]
			ref := n.Ref
			if ref == "" {
				ref = n.Pref
			}
			// The early formats mark the consumer by its conanfile
			// path; since 0.4 node "0" is the consumer, and a node
			// with a ref and a path is an editable package.
			consumer := id == "0" || n.Ref == "" && n.Path != ""
			if ref != "" && !consumer {
				out.add(ref, build[id])
			}
		}
	case l.Version != "":
		for _, list := range []struct {
			refs []string
			dev  bool
		}{{l.Requires, false}, {l.BuildRequires, true}, {l.PythonRequires, true}} {
			for _, ref := range list.refs {
				out.add(ref, list.dev)
			}
		}
	default:
		return nil, errors.New("not a conan.lock: no version or graph_lock")
	}
	return out.pkgs, errors.Join(out.errs...)
}

// nodeIDs reads a node's list of node ids, written as a list or as an
// object whose values are the ids.
func nodeIDs(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	var byRef map[string]string
	if json.Unmarshal(raw, &byRef) == nil {
		for _, id := range byRef {
			list = append(list, id)
		}
	}
	return list
}

type collector struct {
	location, analyzer string
	pkgs               []inventory.Package
	seen               map[string]int
	errs               []error
}

// add reads a reference "name/version[@user/channel][#revision[%time]]"
// or a package reference, which adds ":package_id[#revision]".
func (c *collector) add(ref string, dev bool) {
	ref, _, _ = strings.Cut(ref, ":")
	ref, _, _ = strings.Cut(ref, "#")
	ref, _, _ = strings.Cut(ref, "@")
	name, version, ok := strings.Cut(ref, "/")
	if !ok || name == "" || version == "" || strings.ContainsAny(name+version, "/ \t") {
		c.errs = append(c.errs, fmt.Errorf("reference %q is not name/version", ref))
		return
	}
	key := name + "/" + version
	if i, ok := c.seen[key]; ok {
		c.pkgs[i].Dev = c.pkgs[i].Dev && dev
		return
	}
	c.seen[key] = len(c.pkgs)
	c.pkgs = append(c.pkgs, inventory.Package{
		Ecosystem: inventory.Conan, Name: name, Version: version,
		Locations: []string{c.location}, Analyzer: c.analyzer, Dev: dev,
	})
}
