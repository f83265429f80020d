// Command recordsweep writes one inventory naming every package version that
// a folder of OSV records mentions, so berth and osv-scanner can be compared
// on the same records at every boundary those records draw: each
// introduced, fixed, last_affected and limit version, and every entry of a
// versions list, of every affected package of every ecosystem berth matches
// against OSV.
//
//	recordsweep -records ../shared/vulndata/osv -o /tmp/sweep
//
// writes /tmp/sweep/inventory.json, berth's inventory of every package
// (`berth scan --from-report`), and the same packages for osv-scanner: Go modules
// as go.mod files (gomod/N/go.mod holds the Nth version of each module), the
// rest as berth's CycloneDX SBOM, sweep.cdx.json (`osv-scanner scan source
// -L sweep.cdx.json -r gomod`). Go modules are kept out of the SBOM because
// osv-scanner's purl reader lowercases Go module paths, so it would never
// match github.com/0xJacky/Nginx-UI; a module version that a go.mod cannot
// require (20.10.0 of a module without +incompatible) stays in the SBOM.
// bench/scan.sh runs both tools and bench/findingscmp lists the differences.
package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/report"
)

// ecosystems maps the OSV ecosystems whose records berth matches to the
// inventory ecosystem of the packages they name.
var ecosystems = map[string]inventory.Ecosystem{
	"npm":       inventory.NPM,
	"PyPI":      inventory.PyPI,
	"Go":        inventory.Go,
	"Maven":     inventory.Maven,
	"crates.io": inventory.Cargo,
	"RubyGems":  inventory.Gem,
	"Packagist": inventory.Composer,
	"NuGet":     inventory.NuGet,
}

// location is where every swept package says it was found.
const location = "/sweep"

func main() {
	records := flag.String("records", "", "folder of <ECOSYSTEM>/all.zip OSV feeds")
	debianTracker := flag.String("debian-tracker", "", "Debian security tracker folder (data/DSA/list, data/DLA/list)")
	alpineSecDB := flag.String("alpine-secdb", "", "Alpine secdb folder (<branch>/<repo>.json)")
	out := flag.String("o", "", "output folder")
	flag.Parse()
	if *out == "" || *records == "" && *debianTracker == "" && *alpineSecDB == "" {
		fmt.Fprintln(os.Stderr, "usage: recordsweep [-records DIR] [-debian-tracker DIR] [-alpine-secdb DIR] -o DIR")
		os.Exit(2)
	}
	err := func() error {
		if *records != "" {
			if err := run(*records, *out); err != nil {
				return err
			}
		}
		for _, f := range []struct {
			dir  string
			feed func(string) distroFeed
		}{{*debianTracker, debianFeed}, {*alpineSecDB, alpineFeed}} {
			if f.dir == "" {
				continue
			}
			if err := sweepDistro(context.Background(), f.feed(f.dir), filepath.Join(*out, "distro")); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "recordsweep:", err)
		os.Exit(1)
	}
}

func run(records, out string) error {
	versions := map[pkgKey]map[string]bool{}
	ecos := slices.Sorted(func(yield func(string) bool) {
		for e := range ecosystems {
			if !yield(e) {
				return
			}
		}
	})
	for _, eco := range ecos {
		path := filepath.Join(records, eco, "all.zip")
		if err := readFeed(path, eco, versions); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
	}
	inv := inventoryOf(versions)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(out, "inventory.json"), func(w io.Writer) error {
		return report.EncodeSBOM(w, "json", &inv, report.Options{})
	}); err != nil {
		return err
	}
	sbom, gomods := splitGoModules(inv)
	if err := writeFile(filepath.Join(out, "sweep.cdx.json"), func(w io.Writer) error {
		return report.EncodeSBOM(w, "cyclonedx", &sbom, report.Options{})
	}); err != nil {
		return err
	}
	dir := filepath.Join(out, "gomod")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for i, mods := range gomods {
		d := filepath.Join(dir, fmt.Sprintf("%04d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(d, "go.mod"), func(w io.Writer) error {
			return writeGoMod(w, mods)
		}); err != nil {
			return err
		}
	}
	fmt.Printf("%d package versions of %d packages; %d in the SBOM, the rest in %d go.mod files\n",
		len(inv.Packages), len(versions), len(sbom.Packages), len(gomods))
	return nil
}

type pkgKey struct {
	eco  inventory.Ecosystem
	name string
}

// readFeed adds the versions every record of one all.zip names.
func readFeed(path, eco string, versions map[pkgKey]map[string]bool) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, ".json") {
			continue
		}
		rec, err := readRecord(f)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", path, f.Name, err)
		}
		for _, aff := range rec.Affected {
			if aff.Package.Ecosystem != eco || aff.Package.Name == "" {
				continue
			}
			k := pkgKey{ecosystems[eco], aff.Package.Name}
			for _, v := range mentioned(aff) {
				if versions[k] == nil {
					versions[k] = map[string]bool{}
				}
				versions[k][v] = true
			}
		}
	}
	return nil
}

func readRecord(f *zip.File) (*osv.Vulnerability, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var rec osv.Vulnerability
	if err := json.NewDecoder(rc).Decode(&rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// mentioned lists the versions an affected entry names: the boundaries of
// its ECOSYSTEM and SEMVER ranges and its versions list. GIT ranges name
// commits, which no package manager installs.
func mentioned(aff osv.Affected) []string {
	out := slices.Clone(aff.Versions)
	for _, r := range aff.Ranges {
		if r.Type == osv.RangeGit {
			continue
		}
		for _, ev := range r.Events {
			for _, v := range []string{ev.Introduced, ev.Fixed, ev.LastAffected, ev.Limit} {
				if v != "" && v != "0" && v != "*" {
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// inventoryOf turns the swept versions into packages as berth's analyzers
// write them: Go modules with the "v" their go.sum and build info carry,
// the standard library as the toolchain names itself (go1.21.5).
func inventoryOf(versions map[pkgKey]map[string]bool) inventory.Inventory {
	inv := inventory.Inventory{Source: "recordsweep", Layers: []inventory.Layer{}}
	for k, vs := range versions {
		for v := range vs {
			p := inventory.Package{Ecosystem: k.eco, Name: k.name, Version: v, Locations: []string{location}, Analyzer: "recordsweep"}
			if k.eco == inventory.Go {
				var ok bool
				if p.Version, ok = goVersion(k.name, v); !ok {
					continue
				}
			}
			p.PURL = inventory.PURL(p, nil)
			inv.Packages = append(inv.Packages, p)
		}
	}
	slices.SortFunc(inv.Packages, func(a, b inventory.Package) int {
		return strings.Compare(a.PURL, b.PURL)
	})
	return inv
}

// goVersion writes a Go database version (always without "v") the way a
// binary's build info does. The toolchain has no module version: records
// for it describe the go command, which no scanned artifact carries.
func goVersion(name, v string) (string, bool) {
	switch name {
	case "toolchain":
		return "", false
	case "stdlib":
		// go1.21.5 for 1.21.5; go1.20 for 1.20.0 as releases before 1.21
		// named themselves. Pre-releases are left out: their semver form
		// (1.21.0-rc.2) does not say which toolchain spelling produced it.
		if strings.Contains(v, "-") {
			return "", false
		}
		if strings.HasSuffix(v, ".0") && olderThan121(v) {
			v = strings.TrimSuffix(v, ".0")
		}
		return "go" + v, true
	}
	if strings.HasPrefix(v, "v") {
		return v, true
	}
	return "v" + v, true
}

// olderThan121 reports whether a 1.N.0 release predates Go 1.21, the first
// to call its first release "go1.21.0" rather than "go1.21".
func olderThan121(v string) bool {
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major == 1 && minor < 21
}

// splitGoModules takes out of inv the Go modules (not the standard
// library) that a go.mod can require, and spreads them over as few module
// lists as possible, each naming a module at most once.
func splitGoModules(inv inventory.Inventory) (inventory.Inventory, [][]inventory.Package) {
	rest := inv
	rest.Packages = nil
	var lists [][]inventory.Package
	slot := map[string]int{} // module path → next list to use
	for _, p := range inv.Packages {
		if p.Ecosystem != inventory.Go || p.Name == "stdlib" || !requirable(p.Name, p.Version) {
			rest.Packages = append(rest.Packages, p)
			continue
		}
		i := slot[p.Name]
		slot[p.Name]++
		if i == len(lists) {
			lists = append(lists, nil)
		}
		lists[i] = append(lists[i], p)
	}
	return rest, lists
}

// canonicalSemver is what a go.mod require line accepts as a version.
var canonicalSemver = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+incompatible)?$`)

// majorSuffix finds a module path's major version: /v2 or gopkg.in's .v2.
var majorSuffix = regexp.MustCompile(`(?:/|^gopkg\.in/.*\.)v([0-9]+)$`)

// requirable reports whether go.mod can require path at version: the
// version is canonical semver and its major version agrees with the path
// (golang.org/x/mod/module.CheckPathMajor's rule).
func requirable(path, version string) bool {
	m := canonicalSemver.FindStringSubmatch(version)
	if m == nil {
		return false
	}
	major, incompatible := m[1], m[6] != ""
	if s := majorSuffix.FindStringSubmatch(path); s != nil {
		if strings.HasPrefix(path, "gopkg.in/") {
			// An old go command wrote v0.0.0- pseudo-versions for .v1 paths.
			return !incompatible && (major == s[1] || s[1] == "1" && strings.HasPrefix(version, "v0.0.0-"))
		}
		return !incompatible && major == s[1]
	}
	if major == "0" || major == "1" {
		return !incompatible
	}
	return incompatible
}

func writeGoMod(w io.Writer, mods []inventory.Package) error {
	var b strings.Builder
	b.WriteString("module recordsweep.example/sweep\n\nrequire (\n")
	for _, p := range mods {
		fmt.Fprintf(&b, "\t%s %s\n", p.Name, p.Version)
	}
	b.WriteString(")\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// writeFile writes through a temporary file renamed into place.
func writeFile(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".recordsweep-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
