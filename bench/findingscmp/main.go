// Command findingscmp lists where berth's findings and osv-scanner's differ
// for the same input: per package (ecosystem, name, version), a finding is
// the same on both sides when their identifiers meet (berth's id and
// aliases; osv-scanner's group of ids and aliases), so GHSA/CVE/GO-/PYSEC-
// spellings of one flaw count once, as both tools merge them.
//
//	findingscmp -berth berth.json -osv osv-scanner.json
//
// berth.json is `berth scan -f json`; osv-scanner.json is `osv-scanner scan
// … --format json`. Both flags may be repeated, for inputs scanned one at a
// time (one image per distro release); their findings are added up. It
// prints a count per ecosystem, then every finding only one side reported,
// and the findings one side split that the other merged.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

func main() {
	var berthPaths listFlag
	flag.Var(&berthPaths, "berth", "berth scan -f json report (repeatable: their findings are added up)")
	var osvPaths listFlag
	flag.Var(&osvPaths, "osv", "osv-scanner --format json output (repeatable)")
	flag.Parse()
	if len(berthPaths) == 0 || len(osvPaths) == 0 {
		fmt.Fprintln(os.Stderr, "usage: findingscmp -berth BERTH.json [-berth …] -osv OSV.json [-osv …]")
		os.Exit(2)
	}
	b, err := readAll(berthPaths, readBerth)
	if err == nil {
		var o []finding
		if o, err = readAll(osvPaths, readOSVScanner); err == nil {
			write(os.Stdout, compare(b, o))
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "findingscmp:", err)
		os.Exit(1)
	}
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// pkg is a package as both tools can be brought to write it.
type pkg struct{ eco, name, version string }

func (p pkg) String() string { return p.eco + " " + p.name + "@" + p.version }

// finding is one flaw of one package: all the identifiers one tool gives it.
type finding struct {
	pkg pkg
	ids []string // sorted
}

// newPkg normalises what differs only in spelling: osv.dev's ":LTS" on
// Ubuntu releases, PyPI names to PEP 503's form, Go versions without "v"
// (build info has it, osv-scanner drops it).
func newPkg(eco, name, version string) pkg {
	eco = strings.TrimSuffix(eco, ":LTS")
	switch eco {
	case "PyPI":
		name = normalizePyPI(name)
	case "Go":
		version = strings.TrimPrefix(version, "v")
	}
	return pkg{eco, name, version}
}

func normalizePyPI(name string) string {
	f := strings.FieldsFunc(strings.ToLower(name), func(r rune) bool { return r == '-' || r == '_' || r == '.' })
	return strings.Join(f, "-")
}

func newFinding(p pkg, ids ...[]string) finding {
	var all []string
	for _, l := range ids {
		all = append(all, l...)
	}
	slices.Sort(all)
	return finding{pkg: p, ids: slices.Compact(all)}
}

func readAll(paths []string, read func(string) ([]finding, error)) ([]finding, error) {
	var out []finding
	for _, p := range paths {
		more, err := read(p)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

func readBerth(path string) ([]finding, error) {
	var r struct {
		Findings *[]struct {
			ID        string   `json:"id"`
			Aliases   []string `json:"aliases"`
			Ecosystem string   `json:"ecosystem"`
			Name      string   `json:"name"`
			Version   string   `json:"version"`
		} `json:"findings"`
	}
	if err := readJSON(path, &r); err != nil {
		return nil, err
	}
	if r.Findings == nil {
		return nil, fmt.Errorf("%s: no findings list: not a berth scan -f json report", path)
	}
	out := make([]finding, 0, len(*r.Findings))
	for _, f := range *r.Findings {
		out = append(out, newFinding(newPkg(f.Ecosystem, f.Name, f.Version), []string{f.ID}, f.Aliases))
	}
	return out, nil
}

func readOSVScanner(path string) ([]finding, error) {
	var r struct {
		Results *[]struct {
			Packages []struct {
				Package struct {
					Name, Version, Ecosystem string
				} `json:"package"`
				Groups []struct {
					IDs     []string `json:"ids"`
					Aliases []string `json:"aliases"`
				} `json:"groups"`
			} `json:"packages"`
		} `json:"results"`
	}
	if err := readJSON(path, &r); err != nil {
		return nil, err
	}
	if r.Results == nil {
		return nil, fmt.Errorf("%s: no results list: not osv-scanner JSON output", path)
	}
	var out []finding
	for _, res := range *r.Results {
		for _, p := range res.Packages {
			k := newPkg(p.Package.Ecosystem, p.Package.Name, p.Package.Version)
			for _, g := range p.Groups {
				out = append(out, newFinding(k, g.IDs, g.Aliases))
			}
		}
	}
	return out, nil
}

func readJSON(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := json.NewDecoder(f).Decode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// comparison is the outcome, per ecosystem and in detail.
type comparison struct {
	counts map[string]*counts
	// onlyOSV and onlyBerth are findings the other tool did not report.
	onlyOSV, onlyBerth []finding
	// split are findings one tool reported as several that the other
	// merged into one: each entry is the merged finding and its parts.
	split []splitFinding
}

type counts struct{ same, onlyOSV, onlyBerth int }

type splitFinding struct {
	mergedBy string // which tool merged
	merged   finding
	parts    []finding
}

func compare(berth, osvs []finding) comparison {
	c := comparison{counts: map[string]*counts{}}
	count := func(eco string) *counts {
		if c.counts[eco] == nil {
			c.counts[eco] = &counts{}
		}
		return c.counts[eco]
	}
	byPkg := func(fs []finding) map[pkg][]finding {
		m := map[pkg][]finding{}
		for _, f := range fs {
			m[f.pkg] = append(m[f.pkg], f)
		}
		return m
	}
	bp, op := byPkg(berth), byPkg(osvs)
	for _, f := range osvs {
		hits := meeting(f, bp[f.pkg])
		switch {
		case len(hits) == 0:
			c.onlyOSV = append(c.onlyOSV, f)
			count(f.pkg.eco).onlyOSV++
		case len(hits) > 1:
			c.split = append(c.split, splitFinding{mergedBy: "osv-scanner", merged: f, parts: hits})
		}
	}
	for _, f := range berth {
		hits := meeting(f, op[f.pkg])
		switch {
		case len(hits) == 0:
			c.onlyBerth = append(c.onlyBerth, f)
			count(f.pkg.eco).onlyBerth++
		case len(hits) > 1:
			c.split = append(c.split, splitFinding{mergedBy: "berth", merged: f, parts: hits})
			count(f.pkg.eco).same++
		default:
			count(f.pkg.eco).same++
		}
	}
	for _, l := range [][]finding{c.onlyOSV, c.onlyBerth} {
		slices.SortFunc(l, func(a, b finding) int {
			return strings.Compare(a.pkg.String()+" "+a.ids[0], b.pkg.String()+" "+b.ids[0])
		})
	}
	return c
}

// meeting returns the findings of candidates that share an identifier with f.
func meeting(f finding, candidates []finding) []finding {
	var out []finding
	for _, c := range candidates {
		if slices.ContainsFunc(c.ids, func(id string) bool { _, ok := slices.BinarySearch(f.ids, id); return ok }) {
			out = append(out, c)
		}
	}
	return out
}

func write(w io.Writer, c comparison) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ecosystem\tboth\tonly osv-scanner\tonly berth\t")
	var total counts
	for _, eco := range slices.Sorted(func(yield func(string) bool) {
		for e := range c.counts {
			if !yield(e) {
				return
			}
		}
	}) {
		n := c.counts[eco]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", eco, n.same, n.onlyOSV, n.onlyBerth)
		total.same += n.same
		total.onlyOSV += n.onlyOSV
		total.onlyBerth += n.onlyBerth
	}
	fmt.Fprintf(tw, "all\t%d\t%d\t%d\t\n", total.same, total.onlyOSV, total.onlyBerth)
	tw.Flush()
	list := func(title string, fs []finding) {
		if len(fs) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s (%d):\n", title, len(fs))
		for _, f := range fs {
			fmt.Fprintf(w, "  %s  %s\n", f.pkg, strings.Join(f.ids, " "))
		}
	}
	list("only osv-scanner", c.onlyOSV)
	list("only berth", c.onlyBerth)
	if len(c.split) > 0 {
		fmt.Fprintf(w, "\nmerged by one tool, split by the other (%d):\n", len(c.split))
		for _, s := range c.split {
			fmt.Fprintf(w, "  %s merged %s  %s from:\n", s.mergedBy, s.merged.pkg, strings.Join(s.merged.ids, " "))
			for _, p := range s.parts {
				fmt.Fprintf(w, "    %s\n", strings.Join(p.ids, " "))
			}
		}
	}
}
