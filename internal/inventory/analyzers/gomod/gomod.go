// Package gomod finds the Go modules a Go project requires: the require
// directives of its go.mod with the replace directives applied, and, for a
// go.mod that declares a language version before Go 1.17 (whose require
// list names direct dependencies only), the module versions whose content
// go.sum holds a hash of.
//
// It does not report the standard library. A go.mod's go directive is the
// oldest language version the module accepts and its toolchain directive
// the one the go command prefers, not the toolchain the program is built
// with; matching the standard library at that version would report every
// flaw fixed since, whichever toolchain builds it. A built binary names its
// toolchain, and the gobinary analyzer reports the standard library from
// it.
package gomod

import (
	"context"
	"fmt"
	"go/version"
	"io/fs"
	"path"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	modpath "golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"berth.dev/berth/internal/inventory"
)

// maxFileBytes bounds a go.mod or go.sum: the largest in the wild (big
// monorepos' go.sum) are a few megabytes.
const maxFileBytes = 16 << 20

// Analyzer reads go.mod files, and go.sum beside those that need it.
type Analyzer struct{}

// Name implements inventory.Analyzer.
func (Analyzer) Name() string { return "gomod" }

// Version implements inventory.Analyzer.
func (Analyzer) Version() int { return 3 }

// MaxFileBytes implements inventory.Analyzer.
func (Analyzer) MaxFileBytes() int64 { return maxFileBytes }

// Required implements inventory.Analyzer.
func (Analyzer) Required(p string, info fs.FileInfo) bool {
	base := path.Base(p)
	return (base == "go.mod" || base == "go.sum") && info.Mode().IsRegular() && !ignored(p)
}

// ignored reports whether p lies where go.mod files describe something other
// than a project: the module cache (every directory of a downloaded module
// is named path@version), vendored copies of dependencies, and testdata,
// which the go command itself never builds.
func ignored(p string) bool {
	for _, dir := range strings.Split(path.Dir(p), "/") {
		if dir == "vendor" || dir == "testdata" || strings.Contains(dir, "@") {
			return true
		}
	}
	return false
}

// Analyze implements inventory.Analyzer. A go.sum is only read for the
// go.mod beside it in the same layer.
func (a Analyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	isMod := func(p string) bool { return path.Base(p) == "go.mod" }
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isMod, func(mod []byte, location, analyzer string) ([]inventory.Package, error) {
		sum, err := fs.ReadFile(files, path.Join(path.Dir(location[1:]), "go.sum"))
		if err != nil {
			sum = nil
		}
		return Parse(mod, sum, location, analyzer)
	})
}

// module is a module path at a version.
type module struct{ name, version string }

// Parse reads one go.mod (and its go.sum, which may be nil) found at
// location. The module the go.mod declares is the project itself, not a
// dependency, and is not listed, as no other lockfile's own project is
// (npm's root package, uv's or pylock's project, a POM's own coordinates)
// and as osv-scalibr, osv-scanner and syft do not list it. (A built
// binary's main module is listed: the binary is the thing shipped.)
//
// A requirement on a version the go.mod excludes is not built: the go
// command ignores it (before Go 1.16 it took the next higher version).
// What is built instead, if anything, is the higher version go.sum holds
// content hashes for; without one no file here names a version, the
// requirement is not reported, and the error names it (the rest are
// returned).
func Parse(mod, sum []byte, location, analyzer string) ([]inventory.Package, error) {
	f, err := modfile.Parse(location, mod, nil)
	if err != nil {
		return nil, err
	}
	excluded := map[module]bool{}
	for _, e := range f.Exclude {
		excluded[module{e.Mod.Path, e.Mod.Version}] = true
	}
	var built map[string]string
	if sum != nil {
		built = builtVersions(sum)
	}
	var skipped []string
	var required []module
	seen := map[string]bool{}
	for _, r := range f.Require {
		// The syntax alone, not CheckPath: a module that a replace
		// directive maps to a local directory needs no dot in its name.
		if err := modpath.CheckImportPath(r.Mod.Path); err != nil {
			return nil, fmt.Errorf("require %q: %w", r.Mod.Path, err)
		}
		seen[r.Mod.Path] = true
		v := r.Mod.Version
		if excluded[module{r.Mod.Path, v}] {
			if b, ok := built[r.Mod.Path]; ok && semver.Compare(b, v) > 0 && !excluded[module{r.Mod.Path, b}] {
				v = b
			} else {
				skipped = append(skipped, r.Mod.Path+"@"+v)
				continue
			}
		}
		required = append(required, module{r.Mod.Path, v})
	}
	for _, r := range f.Replace {
		if r.New.Version != "" {
			if err := modpath.CheckImportPath(r.New.Path); err != nil {
				return nil, fmt.Errorf("replace %q: %w", r.New.Path, err)
			}
		}
	}
	// Before Go 1.17 (and without a go directive, which the go command
	// reads as 1.16) go.mod lists only direct dependencies. go.sum has a
	// content hash for each module version whose code the build needed;
	// lines ending in /go.mod only hash a module graph the go command read.
	goVersion := "1.16"
	if f.Go != nil {
		goVersion = f.Go.Version
	}
	if version.Compare("go"+goVersion, "go1.17") < 0 && sum != nil {
		main := ""
		if f.Module != nil {
			main = f.Module.Mod.Path
		}
		for name, v := range built {
			if !seen[name] && name != main && !excluded[module{name, v}] {
				required = append(required, module{name, v})
			}
		}
	}
	pkgs := make([]inventory.Package, 0, len(required))
	added := map[module]bool{}
	for _, m := range required {
		m = replaced(f.Replace, m.name, m.version)
		if added[m] {
			continue
		}
		added[m] = true
		pkgs = append(pkgs, inventory.Package{Ecosystem: inventory.Go, Name: m.name, Version: m.version, Locations: []string{location}, Analyzer: analyzer})
	}
	slices.SortFunc(pkgs, func(a, b inventory.Package) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return semver.Compare(a.Version, b.Version)
	})
	if len(skipped) > 0 {
		return pkgs, fmt.Errorf("required versions the go.mod excludes, not reported (the go command ignores them): %s", strings.Join(skipped, ", "))
	}
	return pkgs, nil
}

// replaced applies the replace directives to a required module, as the go
// command does: a directive naming a version applies to that version only,
// and wins over one naming none. A replacement by a local directory has no
// version and a file path for a name: the module keeps its own name,
// without a version, as the gobinary analyzer reports it.
func replaced(reps []*modfile.Replace, name, version string) module {
	var match *modfile.Replace
	for _, r := range reps {
		if r.Old.Path != name || r.Old.Version != "" && r.Old.Version != version {
			continue
		}
		if match == nil || r.Old.Version != "" {
			match = r
		}
	}
	switch {
	case match == nil:
		return module{name, version}
	case match.New.Version == "":
		return module{name, ""}
	}
	return module{match.New.Path, match.New.Version}
}

// builtVersions reads go.sum: per module, the highest version whose content
// (not just go.mod) is hashed. Malformed lines are skipped: go.sum is a
// cache of hashes, and a line the go command would reject tells nothing.
func builtVersions(sum []byte) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(string(sum), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 3 || strings.HasSuffix(fields[1], "/go.mod") || !semver.IsValid(fields[1]) {
			continue
		}
		if v, ok := out[fields[0]]; !ok || semver.Compare(fields[1], v) > 0 {
			out[fields[0]] = fields[1]
		}
	}
	return out
}
