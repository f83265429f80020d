// Command peerfixtures measures berth's package inventory on the fixture
// files of the peers' own test suites (osv-scalibr's extractors, Trivy's
// dependency parsers, go-rpmdb, syft's catalogers, osv-scanner v1's
// lockfile parsers) against the packages those tests expect. It reads each test package's
// *_test.go with go/ast, takes every table entry that names a fixture
// under testdata/ and lists the expected packages as literals (syft's
// pkgtest calls: syft.go; osv-scanner's one function per case:
// osvscanner.go), puts the
// fixture into an empty root filesystem where berth's analyzer looks for
// it, runs the same scan `berth sbom dir:PATH` runs, and compares.
//
// The modules are not vendored: bench/peerfixtures.sh downloads them into
// the Go module cache and passes their directories.
//
//	peerfixtures -scalibr DIR -trivy DIR -rpmdb DIR -syft DIR -osvscanner DIR [-v]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers"
)

func main() {
	scalibr := flag.String("scalibr", "", "directory of the github.com/google/osv-scalibr module")
	rpmdb := flag.String("rpmdb", "", "directory of the github.com/knqyf263/go-rpmdb module")
	trivyDir := flag.String("trivy", "", "directory of the github.com/aquasecurity/trivy module")
	syft := flag.String("syft", "", "directory of the github.com/anchore/syft module")
	osvScanner := flag.String("osvscanner", "", "directory of the github.com/google/osv-scanner module (v1: its pkg/lockfile tests)")
	verbose := flag.Bool("v", false, "list every skipped test case, and each peer tool's misses and phantoms")
	syftBin := flag.String("run-syft", "", "syft binary: scan every placed fixture with it too, and print its figures beside berth's")
	osvBin := flag.String("run-osv-scanner", "", "osv-scanner binary: scan every placed fixture with it too, and print its figures beside berth's")
	flag.Parse()
	modules := map[string]string{"scalibr": *scalibr, "rpmdb": *rpmdb, "trivy": *trivyDir, "syft": *syft, "osvscanner": *osvScanner}
	if err := withPeers(*syftBin, *osvBin, func(tools []peerTool) error {
		return run(context.Background(), os.Stdout, modules, *verbose, tools)
	}); err != nil {
		slog.Error("peerfixtures", "err", err)
		os.Exit(1)
	}
}

// withPeers calls fn with the peer tools whose binaries are given, and
// removes what they needed (osv-scanner's empty databases) after.
func withPeers(syftBin, osvBin string, fn func([]peerTool) error) error {
	var tools []peerTool
	if syftBin != "" {
		tools = append(tools, syftTool(syftBin))
	}
	if osvBin != "" {
		db, err := emptyOSVDatabases()
		if err != nil {
			return err
		}
		defer os.RemoveAll(db)
		tools = append(tools, osvScannerTool(osvBin, db))
	}
	return fn(tools)
}

// tally is one row of the table.
type tally struct {
	cases, want, found, tp int
}

func (t *tally) add(o tally) {
	t.cases += o.cases
	t.want += o.want
	t.found += o.found
	t.tp += o.tp
}

func ratio(a, b int) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.4f", float64(a)/float64(b))
}

func run(ctx context.Context, w io.Writer, modules map[string]string, verbose bool, tools []peerTool) error {
	var jobs []peerJob
	defer func() {
		for _, j := range jobs {
			os.RemoveAll(j.root)
		}
	}()
	byEco := map[string]*tally{}
	bySource := map[string]*tally{}
	var order []string
	var misses, phantoms, notes []string
	fmt.Fprintln(w, "# Test cases read, per source")
	for _, src := range sources() {
		modDir := modules[src.module]
		label := src.module + ":" + strings.TrimPrefix(strings.TrimPrefix(src.dir, "extractor/filesystem/"), "syft/pkg/cataloger/")
		if modDir == "" {
			fmt.Fprintf(w, "%-40s not measured: no -%s directory\n", label, src.module)
			continue
		}
		testDir := filepath.Join(modDir, filepath.FromSlash(src.dir))
		var cases []testCase
		var skips []skipped
		var err error
		switch src.module {
		case "syft":
			cases, skips, err = readSyft(label, modDir, testDir, src.eco)
		case "osvscanner":
			cases, skips, err = readOSVScanner(label, modDir, testDir)
		default:
			cases, skips, err = readCases(label, modDir, testDir, src.funcs, notExtractFuncs, src.pos, src.eco, src.helpers)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		used, partial := 0, 0
		perFunc := map[string]int{}
		for _, c := range cases {
			perFunc[c.Func]++
			var dest, why string
			var exec bool
			if src.placeCase != nil {
				dest, exec, why = src.placeCase(c)
			} else {
				dest, exec, why = src.place(c.Fixture)
			}
			if dest == "" {
				skips = append(skips, skipped{c.Pos, c.Fixture, why})
				continue
			}
			fixture := filepath.Join(modDir, filepath.FromSlash(src.dir), filepath.FromSlash(c.Fixture))
			if st, err := os.Stat(fixture); err != nil || st.IsDir() != c.Tree {
				// Module zips leave out folders holding a go.mod (they
				// are other modules), so such fixtures never arrive.
				skips = append(skips, skipped{c.Pos, c.Fixture, "fixture is a directory or not in the module download"})
				continue
			}
			var companions map[string]string
			if src.companions != nil {
				companions = companionsOf(src, fixture, c.Fixture)
			}
			root, err := place(fixture, dest, exec, companions)
			if err != nil {
				return fmt.Errorf("%s %s: %w", c.Pos, c.Fixture, err)
			}
			berth, warns, err := scan(ctx, root)
			if err != nil {
				os.RemoveAll(root)
				return fmt.Errorf("%s %s: %w", c.Pos, c.Fixture, err)
			}
			used++
			if c.Partial {
				partial++
			}
			if src.fixtureOnly {
				berth = fromFixture(berth, dest)
			}
			out := compare(src, c, berth)
			if len(tools) > 0 {
				// The peers scan the same root after berth's tables.
				jobs = append(jobs, peerJob{src: src, c: c, root: root, dest: dest, berth: out})
			} else {
				os.RemoveAll(root)
			}
			for eco, t := range out.per {
				if byEco[eco] == nil {
					byEco[eco] = &tally{}
				}
				byEco[eco].add(*t)
				if bySource[label] == nil {
					bySource[label] = &tally{}
					order = append(order, label)
				}
				bySource[label].add(*t)
			}
			misses = append(misses, out.misses...)
			phantoms = append(phantoms, out.phantoms...)
			if len(warns) > 0 && len(out.misses)+len(out.phantoms) > 0 {
				notes = append(notes, fmt.Sprintf("%s %s: berth warned: %s", c.Pos, c.Fixture, strings.Join(warns, "; ")))
			}
		}
		fmt.Fprintf(w, "%-40s %3d cases measured, %3d skipped\n", label, used, len(skips))
		var fns []string
		for _, f := range sortedKeys(perFunc) {
			fns = append(fns, fmt.Sprintf("%s (%d)", f, perFunc[f]))
		}
		fmt.Fprintf(w, "    from %s\n", strings.Join(fns, ", "))
		if src.sample != "" {
			fmt.Fprintf(w, "    only the expected names are compared: %s\n", src.sample)
		}
		if partial > 0 {
			fmt.Fprintf(w, "    only the expected names are compared in %d %s: the test checks a few packages one by one\n", partial, map[bool]string{true: "case", false: "cases"}[partial == 1])
		}
		if src.noDev != "" {
			fmt.Fprintf(w, "    %s\n", src.noDev)
		}
		if src.fixtureOnly {
			fmt.Fprintf(w, "    only the packages berth read from the fixture itself count: the test extracts that file alone\n")
		}
		if src.ecoAs.why != "" {
			fmt.Fprintf(w, "    %s\n", src.ecoAs.why)
		}
		reasons := map[string]int{}
		for _, s := range skips {
			reasons[s.Why]++
			if verbose {
				fmt.Fprintf(w, "    skipped %s %s: %s\n", s.Pos, s.Fixture, s.Why)
			}
		}
		for _, why := range sortedKeys(reasons) {
			fmt.Fprintf(w, "    %3d skipped: %s\n", reasons[why], why)
		}
	}

	fmt.Fprintln(w, "\n# Per source")
	printTable(w, order, bySource)
	fmt.Fprintln(w, "\n# Per ecosystem")
	ecos := sortedKeys(byEco)
	total := &tally{}
	for _, e := range ecos {
		total.add(*byEco[e])
	}
	byEco["TOTAL"] = total
	printTable(w, append(ecos, "TOTAL"), byEco)
	fmt.Fprintln(w, "\nNames compared as the ecosystem compares them: pypi by PEP 503 (lower case, runs of -_. as -), nuget case-insensitively; Go versions without the leading v, (devel) as no version, the toolchain go as stdlib and its version without go; versions otherwise exactly.")

	sort.Strings(misses)
	sort.Strings(phantoms)
	fmt.Fprintf(w, "\n# Misses (expected by the peer's test, not found by berth): %d\n", len(misses))
	for _, m := range misses {
		fmt.Fprintln(w, m)
	}
	fmt.Fprintf(w, "\n# Phantoms (found by berth, not expected by the peer's test): %d\n", len(phantoms))
	for _, p := range phantoms {
		fmt.Fprintln(w, p)
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\n# Warnings berth gave on cases that differ\n")
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	if len(tools) > 0 {
		return sideBySide(ctx, w, tools, jobs, verbose)
	}
	return nil
}

// companionsOf lists the companions of a fixture (at path fixture; rel
// inside the test package) from where they lie beside it to where they
// go beside dest. With deepCompanions, the companions' own are followed
// too, each named from its includer's folder.
func companionsOf(src source, fixture, rel string) map[string]string {
	data, err := os.ReadFile(fixture)
	if err != nil {
		return nil
	}
	out := src.companions(rel, data)
	if !src.deepCompanions {
		return out
	}
	// Only files inside the fixture's folder are followed: place copies
	// no other.
	queue := slices.DeleteFunc(slices.Sorted(maps.Keys(out)), func(p string) bool { return !filepath.IsLocal(p) })
	for len(queue) > 0 {
		from := queue[0]
		queue = queue[1:]
		data, err := os.ReadFile(filepath.Join(filepath.Dir(fixture), filepath.FromSlash(from)))
		if err != nil {
			continue // place skips it too: the module does not ship it
		}
		for inc := range src.companions(path.Join(path.Dir(rel), from), data) {
			next := path.Join(path.Dir(from), inc)
			if _, seen := out[next]; !seen && filepath.IsLocal(next) {
				out[next] = next
				queue = append(queue, next)
			}
		}
	}
	return out
}

// fromFixture keeps the packages read from the fixture itself (at dest
// in the root).
func fromFixture(fs []found, dest string) []found {
	return slices.DeleteFunc(fs, func(f found) bool { return !slices.Contains(f.locations, "/"+dest) })
}

// outcome is one case compared: its tallies per ecosystem and its misses
// and phantoms, one line each.
type outcome struct {
	per              map[string]*tally
	misses, phantoms []string
	// want and got are the packages compared, after the names are
	// normalised and the allowances applied.
	want, got map[pkg]bool
}

// total is the case's tallies over its ecosystems.
func (o outcome) total() tally {
	var t tally
	for _, x := range o.per {
		t.add(*x)
	}
	return t
}

// compare sets what berth found in one case against what the peer's test
// expects, in the ecosystems the case is about.
func compare(src source, c testCase, berth []found) outcome {
	wanted := c.Want
	if src.ecoAs.from != "" {
		wanted = make([]pkg, len(c.Want))
		for i, p := range c.Want {
			if p.Eco == src.ecoAs.from {
				p.Eco = src.eco
			}
			wanted[i] = p
		}
	}
	eco := c.ecosystem(src)
	ecos := map[string]bool{eco: true}
	for _, p := range wanted {
		ecos[p.Eco] = true
	}
	want := set(wanted)
	names := map[string]bool{}
	for p := range want {
		names[p.Name] = true
	}
	var counted []pkg
	for _, f := range berth {
		noDev := src.noDev != "" && (src.noDevRunners == nil || src.noDevRunners[c.Runner])
		if !noDev || c.WantDev || !f.dev {
			counted = append(counted, f.pkg)
		}
	}
	got := map[pkg]bool{}
	for p := range set(counted) {
		if ecos[p.Eco] && (src.sample == "" && !c.Partial || names[p.Name]) {
			got[p] = true
		}
	}
	out := outcome{per: map[string]*tally{}, want: want, got: got}
	row := func(eco string) *tally {
		if out.per[eco] == nil {
			out.per[eco] = &tally{}
		}
		return out.per[eco]
	}
	line := func(p pkg) string {
		return fmt.Sprintf("%s\t%s\t%s %s\t%s", p.Eco, c.Pos, p.Name, p.Version, c.Fixture)
	}
	for p := range want {
		row(p.Eco).want++
		if got[p] {
			row(p.Eco).tp++
		} else {
			out.misses = append(out.misses, line(p))
		}
	}
	for p := range got {
		row(p.Eco).found++
		if !want[p] {
			out.phantoms = append(out.phantoms, line(p))
		}
	}
	// A case counts once: under its ecosystem when it has packages
	// there, else under the first of the others.
	if out.per[eco] != nil || len(out.per) == 0 {
		row(eco).cases = 1
	} else {
		out.per[sortedKeys(out.per)[0]].cases = 1
	}
	return out
}

func printTable(w io.Writer, rows []string, t map[string]*tally) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tcases\texpected\tfound\ttrue pos.\trecall\tprecision\t")
	for _, r := range rows {
		x := t[r]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t\n", r, x.cases, x.want, x.found, x.tp, ratio(x.tp, x.want), ratio(x.tp, x.found))
	}
	tw.Flush()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// found is a package berth reported, with its dev flag.
type found struct {
	pkg
	dev       bool
	locations []string
}

// place copies the fixture (a file, or a directory with everything
// under it) to dest inside a new, otherwise empty root filesystem, with
// its companions beside it, and returns the root.
func place(fixture, dest string, exec bool, companions map[string]string) (root string, err error) {
	root, err = os.MkdirTemp("", "peerfixtures-")
	if err != nil {
		return "", fmt.Errorf("temp dir: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(root)
		}
	}()
	target := filepath.Join(root, filepath.FromSlash(dest))
	if err := copyFixture(fixture, target, exec); err != nil {
		return "", fmt.Errorf("place fixture: %w", err)
	}
	for from, to := range companions {
		// Only files beside the fixture: a path that leaves its folder
		// is not copied.
		if !filepath.IsLocal(from) || !filepath.IsLocal(to) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(filepath.Dir(fixture), from))
		if err != nil {
			continue // the test names a file its module does not ship
		}
		p := filepath.Join(filepath.Dir(target), to)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", fmt.Errorf("place include: %w", err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return "", fmt.Errorf("place include: %w", err)
		}
	}
	return root, nil
}

// scan runs the scan berth sbom runs on dir:ROOT.
func scan(ctx context.Context, root string) ([]found, []string, error) {
	img, err := image.Open(ctx, "dir:"+root, image.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", root, err)
	}
	defer img.Close()
	sc := inventory.Scanner{Analyzers: analyzers.All()}
	inv, err := sc.Scan(ctx, img)
	if err != nil {
		return nil, nil, fmt.Errorf("scan: %w", err)
	}
	var out []found
	for _, p := range inv.Packages {
		out = append(out, found{pkg{Eco: string(p.Ecosystem), Name: p.Name, Version: p.Version}, p.Dev, p.Locations})
	}
	return out, inv.Warnings, nil
}

// copyFixture copies a fixture file, or a directory fixture with
// everything under it, to target; exec makes the copies executable.
func copyFixture(fixture, target string, exec bool) error {
	mode := os.FileMode(0o644)
	if exec {
		mode = 0o755
	}
	return filepath.WalkDir(fixture, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(fixture, p)
		if err != nil {
			return err
		}
		to := filepath.Join(target, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil // the module cache holds no links; nothing else is copied
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		return os.WriteFile(to, data, mode)
	})
}

// set normalises names where the ecosystem itself treats spellings as
// one name.
func set(ps []pkg) map[pkg]bool {
	m := map[pkg]bool{}
	for _, p := range ps {
		switch p.Eco {
		case "pypi":
			p.Name = pep503.ReplaceAllString(strings.ToLower(p.Name), "-")
		case "nuget":
			p.Name = strings.ToLower(p.Name)
		case "rpm":
			// rpm compares no epoch and epoch 0 as equal; syft writes
			// the 0 a database stores, the others leave it out.
			p.Version = strings.TrimPrefix(p.Version, "0:")
		case "golang":
			// osv-scalibr writes module versions without Go's "v", the
			// toolchain as "go" at "1.22.0" (berth: "stdlib" at
			// "go1.22.0"), and keeps a main
			// module's "(devel)", which berth writes as no version.
			p.Version = strings.TrimPrefix(p.Version, "v")
			if p.Name == "go" {
				p.Name = "stdlib"
			}
			if p.Name == "stdlib" {
				p.Version = strings.TrimPrefix(p.Version, "go") // berth, as syft: go1.22.0
			}
			if p.Version == "(devel)" {
				p.Version = ""
			}
		}
		m[p] = true
	}
	return m
}

var pep503 = regexp.MustCompile(`[-_.]+`)
