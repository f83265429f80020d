package npm

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"berth.dev/berth/internal/inventory"
)

// YarnAnalyzer reads yarn.lock: the v1 format of Yarn classic and the YAML
// format of Yarn Berry (2+). Neither records which packages are dev-only.
type YarnAnalyzer struct{}

// Name implements inventory.Analyzer.
func (YarnAnalyzer) Name() string { return "yarn-lock" }

// Version implements inventory.Analyzer.
func (YarnAnalyzer) Version() int { return 1 }

// Required implements inventory.Analyzer.
func (YarnAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isYarnLock(p)
}

// Analyze implements inventory.Analyzer.
func (a YarnAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return analyzeFiles(ctx, files, a.Name(), isYarnLock, ParseYarnLock)
}

func isYarnLock(p string) bool { return isLockfile(p, "yarn.lock") }

// ParseYarnLock reads a yarn.lock of either generation.
func ParseYarnLock(data []byte, location, analyzer string) ([]inventory.Package, error) {
	if bytes.Contains(data, []byte("\n__metadata:")) || bytes.HasPrefix(data, []byte("__metadata:")) {
		return parseBerry(data, location, analyzer)
	}
	return parseYarnV1(data, location, analyzer)
}

type berryEntry struct {
	Version              string            `yaml:"version"`
	Resolution           string            `yaml:"resolution"`
	Dependencies         map[string]string `yaml:"dependencies"`
	OptionalDependencies map[string]string `yaml:"optionalDependencies"`
}

func parseBerry(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse yarn.lock: %w", err)
	}
	var s set
	for _, key := range sortedKeys(doc) {
		if key == "__metadata" {
			continue
		}
		node := doc[key]
		var e berryEntry
		if err := node.Decode(&e); err != nil {
			return nil, fmt.Errorf("parse yarn.lock entry %q: %w", key, err)
		}
		// resolution is "name@protocol:reference"; the project and its
		// workspaces resolve to workspace: and are not dependencies.
		name, ref, ok := splitNameVersion(e.Resolution)
		if !ok || e.Version == "" {
			return nil, fmt.Errorf("yarn.lock entry %q has no resolution or version", key)
		}
		if strings.HasPrefix(ref, "workspace:") {
			continue
		}
		p := pkg(name, e.Version, location, analyzer)
		p.DependsOn = sortedKeys(e.Dependencies, e.OptionalDependencies)
		s.add(p)
	}
	return s.pkgs, nil
}

// parseYarnV1 reads Yarn classic's own format: unindented, comma-separated
// specifiers ending in ":" open an entry; two-space-indented "key value"
// lines describe it, and "dependencies:" opens a four-space-indented list.
func parseYarnV1(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var (
		s       set
		cur     *yarnEntry
		section string
		lineNo  int
	)
	flush := func() error {
		if cur == nil {
			return nil
		}
		if cur.version == "" {
			return fmt.Errorf("line %d: entry %q has no version", cur.line, cur.name)
		}
		p := pkg(cur.name, cur.version, location, analyzer)
		p.DependsOn = sortedKeys(cur.deps)
		s.add(p)
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
			name, err := yarnV1Name(strings.TrimSuffix(trimmed, ":"))
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", lineNo, err)
			}
			cur, section = &yarnEntry{name: name, line: lineNo}, ""
		case cur == nil:
			return nil, fmt.Errorf("line %d: indented line outside an entry", lineNo)
		case indent == 2:
			key, value, _ := strings.Cut(trimmed, " ")
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
			key, _, _ := strings.Cut(trimmed, " ")
			dep, err := unquote(key)
			if err != nil {
				return nil, fmt.Errorf("line %d: dependency: %w", lineNo, err)
			}
			if cur.deps == nil {
				cur.deps = map[string]bool{}
			}
			cur.deps[dep] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read yarn.lock: %w", err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return s.pkgs, nil
}

type yarnEntry struct {
	name, version string
	deps          map[string]bool
	line          int
}

// yarnV1Name takes the package name from an entry header such as
// `"@babel/core@^7.0.0", "@babel/core@^7.1.0"` or `lodash@^4.17.15`. An
// alias (`alias@npm:real@^1.0.0`) names the real package.
func yarnV1Name(header string) (string, error) {
	first, _, _ := strings.Cut(header, ",")
	spec, err := unquote(strings.TrimSpace(first))
	if err != nil {
		return "", err
	}
	// The first "@" after a scope's leading one separates name and
	// range; the range itself may hold more (aliases, tarball URLs).
	i := 0
	if spec != "" {
		i = strings.Index(spec[1:], "@") + 1
	}
	if i <= 0 {
		return "", fmt.Errorf("no package name in %q", header)
	}
	name, rng := spec[:i], spec[i+1:]
	if real, ok := strings.CutPrefix(rng, "npm:"); ok {
		if n, _, ok := splitNameVersion(real); ok {
			name = n
		}
	}
	return name, nil
}

// unquote strips the double quotes yarn puts around values that need them.
func unquote(s string) (string, error) {
	if strings.HasPrefix(s, `"`) {
		return strconv.Unquote(s)
	}
	return s, nil
}
