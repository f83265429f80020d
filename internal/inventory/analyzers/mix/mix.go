// Package mix reads mix.lock, the lockfile of Elixir's build tool Mix
// (and of Erlang projects built with it): a map from each dependency to
// its source, one entry per line.
package mix

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"

	"berth.dev/berth/internal/inventory"
)

// Analyzer reads mix.lock files.
type Analyzer struct{}

// Name implements inventory.Analyzer.
func (Analyzer) Name() string { return "mix-lock" }

// Version implements inventory.Analyzer.
func (Analyzer) Version() int { return 2 }

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

// isLock matches a project's mix.lock; the copies inside fetched
// dependencies (deps/<name>/mix.lock) are theirs, not the project's.
func isLock(p string) bool {
	return path.Base(p) == "mix.lock" && !strings.Contains("/"+p, "/deps/")
}

var (
	// entryRE matches `"key": {:scm, rest` at the start of an entry.
	entryRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^\s*"([^"]+)"\s*:\s*\{\s*:(\w+)\s*,\s*(.*)$`)
	})
	// hexRE matches the start of a hex entry's rest: `:name, "version"`,
	// the name an atom, quoted when it needs to be.
	hexRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^:(?:"([^"]+)"|(\w+))\s*,\s*"([^"]+)"`)
	})
	// depRE matches a dependency tuple `{:name, "requirement"` of the
	// entry's dependency list.
	depRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\{:(\w+)\s*,\s*"`) })
)

// Parse reads a mix.lock: hex packages with their version and the names
// of their dependencies; git and path dependencies under their key,
// without a version (a commit is not one, and the URL may hold a
// token). A hex entry that names no package and version is skipped and
// named in the error; the other entries are still read.
func Parse(data []byte, location, analyzer string) ([]inventory.Package, error) {
	trimmed := bytes.TrimSpace(data)
	if !bytes.HasPrefix(trimmed, []byte("%{")) {
		return nil, fmt.Errorf("not a mix.lock: no %%{ map")
	}
	var pkgs []inventory.Package
	var bad []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		m := entryRE().FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		key, scm, rest := m[1], m[2], m[3]
		p := inventory.Package{Ecosystem: inventory.Hex, Name: key, Locations: []string{location}, Analyzer: analyzer}
		if scm == "hex" {
			h := hexRE().FindStringSubmatch(rest)
			if h == nil {
				bad = append(bad, fmt.Sprintf("line %d: hex entry %q has no package name and version", n, key))
				continue
			}
			p.Name, p.Version = h[1]+h[2], h[3]
			for _, d := range depRE().FindAllStringSubmatch(rest[len(h[0]):], -1) {
				p.DependsOn = append(p.DependsOn, d[1])
			}
			sort.Strings(p.DependsOn)
		}
		pkgs = append(pkgs, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mix.lock: %w", err)
	}
	if len(bad) > 0 {
		return pkgs, fmt.Errorf("skipped: %s", strings.Join(bad, "; "))
	}
	return pkgs, nil
}
