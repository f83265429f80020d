// Package bun reads bun.lock, the text lockfile of the Bun runtime's
// package manager (Bun 1.2+; the older binary bun.lockb is not read).
package bun

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
	"berth.dev/berth/internal/inventory/analyzers/npm"
)

// Analyzer reads bun.lock files.
type Analyzer struct{}

// Name implements inventory.Analyzer.
func (Analyzer) Name() string { return "bun-lock" }

// Version implements inventory.Analyzer.
func (Analyzer) Version() int { return 3 }

// MaxFileBytes implements inventory.Analyzer.
func (Analyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (Analyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isLock(p)
}

// Analyze implements inventory.Analyzer. Like npm's lockfiles, each set
// names the node_modules beside it, so that entries nothing installed
// there are not reported when it holds installed packages.
func (a Analyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	res, err := inventory.AnalyzeFiles(ctx, files, a.Name(), isLock, Parse)
	if err != nil {
		return nil, err
	}
	for i := range res.Sets {
		res.Sets[i].InstalledUnder = path.Join(path.Dir(res.Sets[i].Origin), "node_modules")
	}
	return res, nil
}

func isLock(p string) bool {
	return path.Base(p) == "bun.lock" && !strings.Contains("/"+p, "/node_modules/")
}

type deps struct {
	// Version is a workspace's own, from its package.json.
	Version              string            `json:"version"`
	Dependencies         map[string]string `json:"dependencies"`
	OptionalDependencies map[string]string `json:"optionalDependencies"`
	PeerDependencies     map[string]string `json:"peerDependencies"`
	DevDependencies      map[string]string `json:"devDependencies"`
}

type lock struct {
	LockfileVersion *int                       `json:"lockfileVersion"`
	Workspaces      map[string]deps            `json:"workspaces"`
	Packages        map[string]json.RawMessage `json:"packages"`
}

type entry struct {
	key, name, version string
	// local marks a workspace member or a local folder (file:, link:),
	// the project's own code.
	local bool
	deps  deps
}

// Parse reads a bun.lock. Each "packages" entry is an array whose first
// element is the resolution "name@version" (or name@github:…,
// name@https://…, name@workspace:…); for registry packages the third is
// the package's metadata with its dependencies. Workspace members
// (name@workspace:PATH, with the version the workspaces section gives
// PATH) and local folders (file:, link:) are the project's own code and
// are listed as local; the project itself is not in "packages". Git,
// tarball and file entries are reported without a version. A package
// that only the workspaces' devDependencies reach is dev.
func Parse(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var l lock
	if err := json.Unmarshal(stripJSONC(data), &l); err != nil {
		return nil, fmt.Errorf("parse bun.lock: %w", err)
	}
	if l.LockfileVersion == nil {
		return nil, errors.New("not a bun.lock: no lockfileVersion")
	}
	entries := map[string]*entry{}
	for key, raw := range l.Packages {
		var arr []json.RawMessage
		if err := json.Unmarshal(raw, &arr); err != nil || len(arr) == 0 {
			return nil, fmt.Errorf("package %q is not an array", key)
		}
		var res string
		if err := json.Unmarshal(arr[0], &res); err != nil {
			return nil, fmt.Errorf("package %q: resolution is not a string", key)
		}
		name, ref, ok := splitDescriptor(res)
		if !ok {
			return nil, fmt.Errorf("package %q: resolution %q is not name@version", key, res)
		}
		e := &entry{key: key, name: name, version: ref}
		if dir, ok := strings.CutPrefix(ref, "workspace:"); ok {
			e.version, e.local = l.Workspaces[path.Clean(dir)].Version, true
		} else {
			e.local = npm.IsLocalFolder(ref, "file:", "link:")
		}
		if strings.ContainsAny(e.version, ":/") {
			e.version = ""
		}
		for _, el := range arr[1:] {
			// The metadata object is the first object element; git and
			// tarball entries have it second, registry ones third.
			if len(el) > 0 && el[0] == '{' {
				_ = json.Unmarshal(el, &e.deps) // metadata of another shape has no edges
				break
			}
		}
		entries[key] = e
	}
	dev := devOnly(l.Workspaces, entries)
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var pkgs []inventory.Package
	seen := map[string]int{}
	for _, k := range keys {
		e := entries[k]
		id := e.name + "@" + e.version
		if i, ok := seen[id]; ok {
			pkgs[i].Dev = pkgs[i].Dev && dev[k]
			pkgs[i].Local = pkgs[i].Local && e.local
			continue
		}
		seen[id] = len(pkgs)
		p := inventory.Package{
			Ecosystem: inventory.NPM, Name: e.name, Version: e.version,
			Locations: []string{location}, Analyzer: analyzer, Dev: dev[k], Local: e.local,
		}
		for _, m := range []map[string]string{e.deps.Dependencies, e.deps.OptionalDependencies} {
			for d := range m {
				p.DependsOn = append(p.DependsOn, d)
			}
		}
		sort.Strings(p.DependsOn)
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// devOnly marks the entries the workspaces reach only through
// devDependencies. A dependency D of the entry keyed K resolves to the
// entry K/D, else to D under K's parents, else to the top-level D, as
// node_modules nesting does.
func devOnly(workspaces map[string]deps, entries map[string]*entry) map[string]bool {
	resolve := func(from, dep string) string {
		for k := from; ; {
			if k == "" {
				if _, ok := entries[dep]; ok {
					return dep
				}
				return ""
			}
			if _, ok := entries[k+"/"+dep]; ok {
				return k + "/" + dep
			}
			k = parentKey(k)
		}
	}
	reach := func(roots func(deps) []map[string]string) map[string]bool {
		seen := map[string]bool{}
		var queue []string
		visit := func(from, dep string) {
			if k := resolve(from, dep); k != "" && !seen[k] {
				seen[k] = true
				queue = append(queue, k)
			}
		}
		for _, w := range workspaces {
			for _, m := range roots(w) {
				for d := range m {
					visit("", d)
				}
			}
		}
		for len(queue) > 0 {
			k := queue[0]
			queue = queue[1:]
			e := entries[k]
			for _, m := range []map[string]string{e.deps.Dependencies, e.deps.OptionalDependencies, e.deps.PeerDependencies} {
				for d := range m {
					visit(k, d)
				}
			}
		}
		return seen
	}
	prod := reach(func(d deps) []map[string]string {
		return []map[string]string{d.Dependencies, d.OptionalDependencies, d.PeerDependencies}
	})
	out := map[string]bool{}
	for k := range reach(func(d deps) []map[string]string { return []map[string]string{d.DevDependencies} }) {
		out[k] = !prod[k]
	}
	return out
}

// parentKey drops the last package name of a key: "a/@s/b" → "a",
// "@s/a/b" → "@s/a", "a" → "".
func parentKey(k string) string {
	var names []string
	parts := strings.Split(k, "/")
	for i := 0; i < len(parts); i++ {
		if strings.HasPrefix(parts[i], "@") && i+1 < len(parts) {
			names = append(names, parts[i]+"/"+parts[i+1])
			i++
			continue
		}
		names = append(names, parts[i])
	}
	return strings.Join(names[:len(names)-1], "/")
}

// splitDescriptor splits "name@ref" at the first "@" after the name (a
// scope's leading "@" aside).
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

// stripJSONC turns JSON with comments and trailing commas, as Bun
// writes it, into JSON: comments outside strings are removed, and a comma
// followed (after blanks) by "]" or "}" is dropped.
func stripJSONC(data []byte) []byte {
	out := make([]byte, 0, len(data))
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			out = append(out, c)
			switch c {
			case '\\':
				if i+1 < len(data) {
					i++
					out = append(out, data[i])
				}
			case '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
			out = append(out, c)
		case c == '/' && i+1 < len(data) && data[i+1] == '/':
			for i < len(data) && data[i] != '\n' {
				i++
			}
			if i < len(data) {
				out = append(out, '\n')
			}
		case c == '/' && i+1 < len(data) && data[i+1] == '*':
			end := bytes.Index(data[i+2:], []byte("*/"))
			if end < 0 {
				return out
			}
			i += end + 3
		case c == ',':
			j := i + 1
			for j < len(data) && (data[j] == ' ' || data[j] == '\t' || data[j] == '\n' || data[j] == '\r') {
				j++
			}
			if j < len(data) && (data[j] == ']' || data[j] == '}') {
				continue
			}
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return out
}
