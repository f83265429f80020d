package npm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"berth.dev/berth/internal/inventory/analyzers/internal/yamlmap"

	"berth.dev/berth/internal/inventory"
)

// YarnAnalyzer reads yarn.lock: the v1 format of Yarn classic and the YAML
// format of Yarn Berry (2+). yarn.lock does not record which packages are
// dev-only; when the project's package.json lies beside it in the same
// layer, a package that only its devDependencies reach is marked dev.
type YarnAnalyzer struct{}

// Name implements inventory.Analyzer.
func (YarnAnalyzer) Name() string { return "yarn-lock" }

// Version implements inventory.Analyzer.
func (YarnAnalyzer) Version() int { return 6 }

// MaxFileBytes implements inventory.Analyzer.
func (YarnAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required asks for yarn.lock files and for the projects' package.json
// files that may sit beside them.
func (YarnAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && (isYarnLock(p) || isLockfile(p, "package.json"))
}

// Analyze implements inventory.Analyzer.
func (a YarnAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	// A package.json that cannot be read costs only the dev flags: the
	// lockfile's packages are still reported.
	var warns []string
	parse := func(data []byte, location, analyzer string) ([]inventory.Package, error) {
		manifestPath := path.Join(path.Dir(location[1:]), "package.json")
		manifest, err := fs.ReadFile(files, manifestPath)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			manifest = nil
		case err != nil:
			return nil, fmt.Errorf("read /%s: %w", manifestPath, err)
		case !json.Valid(manifest):
			warns = append(warns, fmt.Sprintf("/%s: not JSON; dev dependencies of %s not marked", manifestPath, location))
			manifest = nil
		}
		return parseYarnLock(data, manifest, location, analyzer)
	}
	res, err := inventory.AnalyzeFiles(ctx, files, a.Name(), isYarnLock, parse)
	if err != nil {
		return nil, err
	}
	res.Warns = append(res.Warns, warns...)
	return markInstalledUnder(res), nil
}

func isYarnLock(p string) bool { return isLockfile(p, "yarn.lock") }

// ParseYarnLock reads a yarn.lock of either generation, without the
// project's package.json (so nothing is marked dev).
func ParseYarnLock(data []byte, location, analyzer string) ([]inventory.Package, error) {
	return parseYarnLock(data, nil, location, analyzer)
}

func parseYarnLock(data, manifest []byte, location, analyzer string) ([]inventory.Package, error) {
	var (
		entries []yarnEntry
		err     error
	)
	if bytes.Contains(data, []byte("\n__metadata:")) || bytes.HasPrefix(data, []byte("__metadata:")) {
		entries, err = parseBerry(data)
	} else {
		entries, err = parseYarnV1(data)
	}
	if err != nil {
		return nil, err
	}
	var dev map[int]bool
	if manifest != nil {
		if dev, err = yarnDevOnly(entries, manifest); err != nil {
			return nil, fmt.Errorf("package.json beside it: %w", err)
		}
	}
	var s set
	for i, e := range entries {
		p := pkg(e.name, e.version, location, analyzer)
		p.DependsOn = sortedKeys(e.deps)
		p.Dev = dev[i]
		p.Local = e.local
		s.add(p)
	}
	return s.pkgs, nil
}

// yarnEntry is one resolved package of a yarn.lock, in either format.
type yarnEntry struct {
	name, version string
	// local marks a workspace member or a local folder (file:, link:,
	// portal:), the project's own code.
	local bool
	// specs are the "name@range" descriptors the entry resolves, as its
	// header lists them.
	specs []string
	// deps maps a dependency's name to its range; name@range is one of
	// the specs of the entry it resolves to.
	deps map[string]string
}

// yarnDevOnly marks the entries that the manifest's devDependencies reach
// and its dependencies and optionalDependencies do not.
func yarnDevOnly(entries []yarnEntry, manifest []byte) (map[int]bool, error) {
	var m struct {
		Dependencies         map[string]string `json:"dependencies"`
		OptionalDependencies map[string]string `json:"optionalDependencies"`
		DevDependencies      map[string]string `json:"devDependencies"`
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, err
	}
	bySpec := map[string]int{}
	for i, e := range entries {
		for _, s := range e.specs {
			bySpec[s] = i
		}
	}
	// Berry writes a bare range in package.json as "npm:range" in the
	// lockfile.
	lookup := func(name, rng string) (int, bool) {
		if i, ok := bySpec[name+"@"+rng]; ok {
			return i, true
		}
		i, ok := bySpec[name+"@npm:"+rng]
		return i, ok
	}
	reach := func(roots ...map[string]string) map[int]bool {
		seen := map[int]bool{}
		var queue []int
		visit := func(name, rng string) {
			if i, ok := lookup(name, rng); ok && !seen[i] {
				seen[i] = true
				queue = append(queue, i)
			}
		}
		for _, r := range roots {
			for name, rng := range r {
				visit(name, rng)
			}
		}
		for len(queue) > 0 {
			e := entries[queue[0]]
			queue = queue[1:]
			for name, rng := range e.deps {
				visit(name, rng)
			}
		}
		return seen
	}
	prod := reach(m.Dependencies, m.OptionalDependencies)
	dev := map[int]bool{}
	for i := range reach(m.DevDependencies) {
		dev[i] = !prod[i]
	}
	return dev, nil
}

type berryEntry struct {
	Version              string              `yaml:"version"`
	Resolution           string              `yaml:"resolution"`
	Dependencies         yamlmap.Map[string] `yaml:"dependencies"`
	OptionalDependencies yamlmap.Map[string] `yaml:"optionalDependencies"`
}

func parseBerry(data []byte) ([]yarnEntry, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("parse yarn.lock: %w", err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("parse yarn.lock: not a mapping")
	}
	// Yarn's own parser lets a repeated key replace the earlier one; a
	// strict YAML decoder would reject the whole file for it (and take
	// quadratic time to find out, see yamlmap).
	doc := root.Content[0]
	byKey := map[string]*yaml.Node{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		byKey[doc.Content[i].Value] = doc.Content[i+1]
	}
	var entries []yarnEntry
	for _, key := range sortedKeys(byKey) {
		if key == "__metadata" {
			continue
		}
		var e berryEntry
		if err := yamlmap.Decode(byKey[key], &e); err != nil {
			return nil, fmt.Errorf("parse yarn.lock entry %q: %w", key, err)
		}
		// resolution is a descriptor "name@protocol:reference"; the
		// reference may hold more "@" (patch:, ssh://git@…). The project
		// itself resolves to "workspace:." and is not listed (nor do the
		// peers list it); its other workspaces, version
		// "0.0.0-use.local", and the local folders it depends on are
		// listed as local. A patch: of a registry package is still that
		// package, and a git dependency is listed as the lockfile names
		// it.
		name, ref, ok := splitDescriptor(e.Resolution)
		if !ok || e.Version == "" {
			return nil, fmt.Errorf("yarn.lock entry %q has no resolution or version", key)
		}
		if ref == "workspace:." {
			continue
		}
		entry := yarnEntry{
			name: name, version: plainVersion(e.Version), deps: map[string]string{},
			local: strings.HasPrefix(ref, "workspace:") || IsLocalFolder(ref, "file:", "link:", "portal:"),
		}
		for _, spec := range strings.Split(key, ",") {
			entry.specs = append(entry.specs, strings.TrimSpace(spec))
		}
		for _, deps := range []map[string]string{e.Dependencies, e.OptionalDependencies} {
			for n, r := range deps {
				entry.deps[n] = r
			}
		}
		entries = append(entries, entry)
	}
	return entries, nil
}

// parseYarnV1 reads Yarn classic's own format: unindented, comma-separated
// specifiers ending in ":" open an entry; two-space-indented "key value"
// lines describe it, and "dependencies:" opens a four-space-indented list.
func parseYarnV1(data []byte) ([]yarnEntry, error) {
	var (
		entries []yarnEntry
		cur     *yarnEntry
		curLine int
		section string
		lineNo  int
	)
	flush := func() error {
		if cur == nil {
			return nil
		}
		if cur.version == "" {
			return fmt.Errorf("line %d: entry %q has no version", curLine, cur.name)
		}
		entries = append(entries, *cur)
		cur = nil
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), " \r")
		trimmed := strings.TrimLeft(line, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(line) - len(trimmed)
		switch {
		case indent == 0:
			if err := flush(); err != nil {
				return nil, err
			}
			if !strings.HasSuffix(trimmed, ":") {
				return nil, fmt.Errorf("line %d: want an entry header ending in ':'", lineNo)
			}
			e, err := yarnV1Header(strings.TrimSuffix(trimmed, ":"))
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", lineNo, err)
			}
			cur, curLine, section = &e, lineNo, ""
		case cur == nil:
			return nil, fmt.Errorf("line %d: indented line outside an entry", lineNo)
		case indent == 2:
			key, value, err := yarnKey(trimmed)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", lineNo, err)
			}
			section = ""
			switch {
			case strings.HasSuffix(key, ":") && value == "":
				section = strings.TrimSuffix(key, ":")
			case key == "version":
				v, err := unquote(value)
				if err != nil {
					return nil, fmt.Errorf("line %d: version: %w", lineNo, err)
				}
				cur.version = v
			}
		case indent >= 4 && (section == "dependencies" || section == "optionalDependencies"):
			dep, value, err := yarnKey(trimmed)
			if err != nil {
				return nil, fmt.Errorf("line %d: dependency: %w", lineNo, err)
			}
			rng, err := unquote(strings.TrimSpace(value))
			if err != nil {
				return nil, fmt.Errorf("line %d: dependency range: %w", lineNo, err)
			}
			cur.deps[dep] = rng
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read yarn.lock: %w", err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return entries, nil
}

// yarnV1Header reads an entry header such as `"@babel/core@^7.0.0",
// "@babel/core@^7.1.0"` or `lodash@^4.17.15`: the specs it resolves and
// the package name. An alias (`alias@npm:real@^1.0.0`) names the real
// package.
func yarnV1Header(header string) (yarnEntry, error) {
	e := yarnEntry{deps: map[string]string{}}
	for _, part := range strings.Split(header, ",") {
		spec, err := unquote(strings.TrimSpace(part))
		if err != nil {
			return e, err
		}
		e.specs = append(e.specs, spec)
	}
	spec := e.specs[0]
	// The first "@" after a scope's leading one separates name and
	// range; the range itself may hold more (aliases, tarball URLs). A
	// spec without a range ("balanced-match:") is the bare name, which
	// the entry's version field completes.
	if spec == "" || spec == "@" {
		return e, fmt.Errorf("no package name in %q", header)
	}
	name, rng := spec, ""
	if i := strings.Index(spec[1:], "@") + 1; i > 0 {
		name, rng = spec[:i], spec[i+1:]
	}
	if real, ok := strings.CutPrefix(rng, "npm:"); ok {
		if n, _, ok := splitNameVersion(real); ok {
			name = n
		}
	}
	e.name = name
	// A folder dependency (file:, link:) is the project's own code;
	// Yarn classic lists no workspace members.
	for _, spec := range e.specs {
		if _, r, ok := splitDescriptor(spec); ok && IsLocalFolder(r, "file:", "link:") {
			e.local = true
		}
	}
	return e, nil
}

// yarnKey splits a "key value" line; the key may be quoted, as npm 7+
// and other tools write it (`"version" "3.6.0"`, `"dependencies":`).
func yarnKey(line string) (key, value string, err error) {
	if strings.HasPrefix(line, `"`) {
		q, err := strconv.QuotedPrefix(line)
		if err != nil {
			return "", "", fmt.Errorf("key: %w", err)
		}
		key, _ = strconv.Unquote(q)
		rest := line[len(q):]
		if r, ok := strings.CutPrefix(rest, ":"); ok {
			key, rest = key+":", r
		}
		return key, strings.TrimSpace(rest), nil
	}
	key, value, _ = strings.Cut(line, " ")
	return key, value, nil
}

// unquote strips the double quotes yarn puts around values that need them.
func unquote(s string) (string, error) {
	if strings.HasPrefix(s, `"`) {
		return strconv.Unquote(s)
	}
	return s, nil
}
