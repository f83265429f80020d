// Package ruby finds Ruby gems: the specifications of installed gems
// (…/specifications/*.gemspec, as RubyGems writes them on install, and
// Debian's rubygems-integration copies) and Bundler's Gemfile.lock.
package ruby

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"

	"berth.dev/berth/internal/inventory"
)

// GemspecAnalyzer reads the gemspecs of installed gems.
type GemspecAnalyzer struct{}

// Name implements inventory.Analyzer.
func (GemspecAnalyzer) Name() string { return "gemspec" }

// Version implements inventory.Analyzer.
func (GemspecAnalyzer) Version() int { return 1 }

// MaxFileBytes implements inventory.Analyzer.
func (GemspecAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (GemspecAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isInstalledGemspec(p)
}

// Analyze implements inventory.Analyzer.
func (a GemspecAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isInstalledGemspec, ParseGemspec)
}

// isInstalledGemspec matches specifications/x.gemspec and
// specifications/default/x.gemspec (the gems that ship with Ruby). A
// .gemspec in a gem's source tree is hand-written Ruby and is not read.
func isInstalledGemspec(p string) bool {
	if !strings.HasSuffix(p, ".gemspec") {
		return false
	}
	dir := path.Dir(p)
	if path.Base(dir) == "default" {
		dir = path.Dir(dir)
	}
	return path.Base(dir) == "specifications"
}

var (
	// The attribute lines RubyGems writes: `s.name = "rake".freeze`,
	// `s.version = "13.0.6"`, `s.licenses = ["MIT".freeze]`. Hand-written
	// forms such as `spec.license = 'MIT'` match too.
	gemspecAttr = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s*\w+\.(name|version|licenses?)\s*=\s*(.+)$`) })
	quoted      = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'`) })
)

// ParseGemspec reads the name, version and licenses of a gemspec without
// evaluating it.
func ParseGemspec(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var name, version string
	var licenses []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		m := gemspecAttr().FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		values := quotedStrings(m[2])
		if len(values) == 0 {
			continue
		}
		switch m[1] {
		case "name":
			if name == "" {
				name = values[0]
			}
		case "version":
			if version == "" {
				version = values[0]
			}
		default:
			licenses = append(licenses, values...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read gemspec: %w", err)
	}
	if name == "" || version == "" {
		return nil, errors.New("gemspec has no literal name or version")
	}
	return []inventory.Package{{
		Ecosystem: inventory.Gem,
		Name:      name,
		Version:   version,
		Licenses:  licenses,
		Locations: []string{location},
		Analyzer:  analyzer,
	}}, nil
}

func quotedStrings(s string) []string {
	var out []string
	for _, m := range quoted().FindAllStringSubmatch(s, -1) {
		if m[1] != "" {
			out = append(out, m[1])
		} else if m[2] != "" {
			out = append(out, m[2])
		}
	}
	return out
}

// LockAnalyzer reads Bundler's Gemfile.lock (and gems.locked, its newer
// name).
type LockAnalyzer struct{}

// Name implements inventory.Analyzer.
func (LockAnalyzer) Name() string { return "gemfile-lock" }

// Version implements inventory.Analyzer.
func (LockAnalyzer) Version() int { return 1 }

// MaxFileBytes implements inventory.Analyzer.
func (LockAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (LockAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isGemfileLock(p)
}

// Analyze implements inventory.Analyzer.
func (a LockAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isGemfileLock, ParseGemfileLock)
}

func isGemfileLock(p string) bool {
	base := path.Base(p)
	return base == "Gemfile.lock" || base == "gems.locked"
}

// ParseGemfileLock reads the specs of every GEM, GIT and PATH section:
// four-space-indented "name (version[-platform])" lines, each followed by
// its six-space-indented dependencies. The lockfile does not say which
// Gemfile group a gem belongs to, so none is marked dev.
func ParseGemfileLock(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var (
		pkgs    []inventory.Package
		section string
		inSpecs bool
		seen    = map[string]bool{}
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		text := strings.TrimSpace(line)
		switch {
		case indent == 0:
			section, inSpecs = text, false
		case section != "GEM" && section != "GIT" && section != "PATH":
		case indent == 2:
			inSpecs = text == "specs:"
		case !inSpecs:
		case indent == 4:
			name, version, err := specLine(text)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			if seen[name+"@"+version] {
				// One gem locked for several platforms.
				continue
			}
			seen[name+"@"+version] = true
			pkgs = append(pkgs, inventory.Package{
				Ecosystem: inventory.Gem,
				Name:      name,
				Version:   version,
				Locations: []string{location},
				Analyzer:  analyzer,
			})
		case indent == 6 && len(pkgs) > 0:
			dep, _, _ := strings.Cut(text, " ")
			last := &pkgs[len(pkgs)-1]
			last.DependsOn = append(last.DependsOn, dep)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read Gemfile.lock: %w", err)
	}
	if section == "" {
		return nil, errors.New("no Gemfile.lock sections")
	}
	for i := range pkgs {
		sort.Strings(pkgs[i].DependsOn)
	}
	return pkgs, nil
}

// specLine splits "nokogiri (1.15.4-x86_64-linux)" into the name and the
// version; gem versions never contain "-", so a dash starts the platform.
func specLine(s string) (name, version string, err error) {
	name, rest, ok := strings.Cut(s, " (")
	if !ok || !strings.HasSuffix(rest, ")") || name == "" {
		return "", "", fmt.Errorf("want a spec line \"name (version)\", got %q", s)
	}
	version, _, _ = strings.Cut(strings.TrimSuffix(rest, ")"), "-")
	if version == "" {
		return "", "", fmt.Errorf("spec line %q has no version", s)
	}
	return name, version, nil
}
