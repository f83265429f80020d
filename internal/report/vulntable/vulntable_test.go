package vulntable

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"berth.dev/berth/internal/golden"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report/internal/fixture"
	"berth.dev/berth/internal/report/table"
	"berth.dev/berth/internal/vex"
)

var layouts = []struct {
	name string
	opts table.Options
}{
	{"plain", table.Options{}},
	{"terminal", table.Options{Terminal: true, Width: 150, Color: true}},
}

func encode(t testing.TB, r *match.Report, opts table.Options) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, r, opts); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// sgr matches the colour sequences the table itself writes.
var sgr = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func TestKitchenSinkGolden(t *testing.T) {
	r := fixture.KitchenSinkReport(t)
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			out := encode(t, r, l.opts)
			golden.Check(t, filepath.Join("testdata", "kitchen-sink."+l.name+".txt"), []byte(out))
			checkWidth(t, out, l.opts)
		})
	}
}

// TestKitchenSinkRows reads the plain table as a script would: one line
// per finding, every field in its column.
func TestKitchenSinkRows(t *testing.T) {
	r := fixture.KitchenSinkReport(t)
	out := encode(t, r, table.Options{})
	lines := strings.Split(out, "\n")
	header := lines[0]
	col := func(line, name string) string {
		start := strings.Index(header, name)
		rest := line[start:]
		if i := strings.Index(rest, "  "); i >= 0 {
			rest = rest[:i]
		}
		return strings.TrimSpace(rest)
	}
	rows := map[string]string{}
	for _, line := range lines[1 : 1+len(r.Findings)] {
		rows[col(line, "ID")] = line
	}
	if len(rows) != len(r.Findings) {
		t.Fatalf("%d distinct rows for %d findings", len(rows), len(r.Findings))
	}
	for _, tc := range []struct{ id, pkg, version, severity, fixed, layer string }{
		{"CVE-2020-8203", "lodash", "4.17.15", "HIGH", "4.17.19", "48eb869ab9ab"},
		{"CVE-2021-44906", "minimist", "1.2.0", "CRITICAL", "1.2.6", "48eb869ab9ab"},
		{"CVE-2022-32149", "golang.org/x/text", "v0.3.5", "HIGH", "0.3.8", "8fc691692aa9"},
	} {
		line, ok := rows[tc.id]
		if !ok {
			t.Errorf("no row for %s", tc.id)
			continue
		}
		for name, want := range map[string]string{"PACKAGE": tc.pkg, "VERSION": tc.version, "SEVERITY": tc.severity, "FIXED IN": tc.fixed, "LAYER": tc.layer} {
			if got := col(line, name); got != want {
				t.Errorf("%s: %s = %q, want %q", tc.id, name, got, want)
			}
		}
	}
	// The VEX note travels in the title; suppressed findings are not rows.
	if !strings.Contains(rows["CVE-2022-32149"], "[vex: under_investigation]") {
		t.Errorf("CVE-2022-32149 row lacks its VEX note: %s", rows["CVE-2022-32149"])
	}
	if _, ok := rows["CVE-2020-7598"]; ok {
		t.Error("VEX-suppressed CVE-2020-7598 has a row")
	}
	for _, want := range []string{"48eb869ab9ab  COPY app/ /app/", "8fc691692aa9  COPY ks-app /usr/local/bin/ks-app"} {
		if !strings.Contains(out, want) {
			t.Errorf("layer legend lacks %q", want)
		}
	}
}

func TestAwkwardGolden(t *testing.T) {
	for _, a := range fixture.AwkwardReports() {
		for _, l := range layouts {
			t.Run(a.Name+"/"+l.name, func(t *testing.T) {
				out := encode(t, a.R, l.opts)
				name := strings.ReplaceAll(a.Name, " ", "-")
				golden.Check(t, filepath.Join("testdata", "awkward", name+"."+l.name+".txt"), []byte(out))
				checkWidth(t, out, l.opts)
				// Only the table's own colour sequences may reach the
				// terminal; package data is escaped.
				if rest := sgr.ReplaceAllString(out, ""); strings.ContainsAny(rest, "\x1b\x07\u202e") {
					t.Errorf("control characters in output:\n%q", out)
				}
			})
		}
	}
}

func TestTerminalExtras(t *testing.T) {
	empty := encode(t, &match.Report{}, table.Options{Terminal: true, Width: 80})
	if !strings.Contains(empty, "No vulnerabilities found.") || !strings.HasSuffix(empty, "0 vulnerabilities\n") {
		t.Errorf("empty report:\n%s", empty)
	}
	if plain := encode(t, &match.Report{}, table.Options{}); plain != "TARGET  "+strings.Join(header(), "  ")+"\n" {
		t.Errorf("empty plain report is %q, want the header alone", plain)
	}
	out := encode(t, fixture.KitchenSinkReport(t), table.Options{Terminal: true, Width: 100})
	for _, want := range []string{
		"CVE-2020-7598 in minimist 1.2.0: VEX not_affected, vulnerable_code_not_in_execute_path",
		"CVE-2021-38561 in golang.org/x/text v0.3.5: ignored by .trivyignore:2",
		"24 vulnerabilities: CRITICAL 1, HIGH 3, MEDIUM 3, LOW 1, UNKNOWN 16; 2 suppressed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal table lacks %q", want)
		}
	}
}

func checkWidth(t *testing.T, out string, opts table.Options) {
	t.Helper()
	if !opts.Terminal || opts.Width == 0 {
		return
	}
	for _, line := range strings.Split(out, "\n") {
		if w := table.Width(sgr.ReplaceAllString(line, "")); w > opts.Width {
			t.Errorf("line of %d cells in a %d-cell terminal: %q", w, opts.Width, line)
		}
	}
}

func BenchmarkEncodeKitchenSink(b *testing.B) {
	r := fixture.KitchenSinkReport(b)
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := Encode(&buf, r, table.Options{Terminal: true, Width: 150, Color: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzEncode: whatever text records and packages carry, the terminal table
// holds no control character of its own making and fits the width.
func FuzzEncode(f *testing.F) {
	f.Add("CVE-2020-8203", "lodash", "4.17.15", "Prototype Pollution", "4.17.19", "COPY app/ /app/", 80)
	f.Add("", "", "", "", "", "", 0)
	f.Add("<x>\x1b[2J", "na me\x1b", "1 0\u202e", "**b**\n|x|\t", "\xff", "RUN \x07", 20)
	f.Fuzz(func(t *testing.T, id, name, version, summary, fixed, createdBy string, width int) {
		width = min(max(width, 0), 400)
		p := inventory.Package{Ecosystem: inventory.NPM, Name: name, Version: version, Layer: "sha256:" + version}
		r := &match.Report{
			Inventory: inventory.Inventory{Source: name, Layers: []inventory.Layer{{DiffID: p.Layer, CreatedBy: createdBy}}},
			Findings:  []match.Finding{{ID: id, Package: p, Summary: summary, FixedVersions: []string{fixed}, Severity: match.SeverityCritical}},
			Suppressed: []match.Suppressed{{Finding: match.Finding{ID: id, Package: p}, By: "vex",
				Statement: &vex.Statement{Status: vex.NotAffected, Justification: summary, Document: createdBy}}},
		}
		opts := table.Options{Terminal: true, Width: width, Color: true}
		out := encode(t, r, opts)
		if rest := sgr.ReplaceAllString(out, ""); strings.ContainsFunc(rest, func(r rune) bool {
			return r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r))
		}) {
			t.Fatalf("control characters in output:\n%q", out)
		}
		if width >= 100 {
			checkWidth(t, out, opts)
		}
		encode(t, r, table.Options{})
	})
}

// TestMostSevereFirstByTarget is issue 18's table: the one CRITICAL
// finding used to be the last row. Rows are grouped by target (the target
// with the worst finding first) and the worst first within each.
func TestMostSevereFirstByTarget(t *testing.T) {
	debian := &inventory.Distro{ID: "debian", VersionID: "12"}
	pkg := func(eco inventory.Ecosystem, name, analyzer, location string) inventory.Package {
		return inventory.Package{Ecosystem: eco, Name: name, Version: "1", Analyzer: analyzer, Locations: []string{location}}
	}
	libc := pkg(inventory.Deb, "libc6", "dpkg", "/var/lib/dpkg/status")
	lodash := pkg(inventory.NPM, "lodash", "npm-installed", "/app/node_modules/lodash/package.json")
	express := pkg(inventory.NPM, "express", "npm-lock", "/srv/package-lock.json")
	r := &match.Report{Inventory: inventory.Inventory{Distro: debian}, Findings: []match.Finding{
		{ID: "CVE-1", Package: libc, Severity: match.SeverityLow},
		{ID: "CVE-2", Package: libc, Severity: match.SeverityMedium},
		{ID: "CVE-3", Package: lodash, Severity: match.SeverityHigh},
		{ID: "CVE-4", Package: express, Severity: match.SeverityUnknown},
		{ID: "CVE-5", Package: express, Severity: match.SeverityCritical},
	}}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(encode(t, r, table.Options{})), "\n")[1:] {
		fields := strings.Split(line, "  ")
		var cells []string
		for _, f := range fields {
			if f = strings.TrimSpace(f); f != "" {
				cells = append(cells, f)
			}
		}
		got = append(got, cells[0]+" "+cells[4]+" "+cells[5])
	}
	want := []string{
		"srv/package-lock.json (npm) CVE-5 CRITICAL",
		"srv/package-lock.json (npm) CVE-4 UNKNOWN",
		"Node.js (npm) CVE-3 HIGH",
		"debian 12 (deb) CVE-2 MEDIUM",
		"debian 12 (deb) CVE-1 LOW",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	term := encode(t, r, table.Options{Terminal: true, Width: 120})
	for _, heading := range []string{"srv/package-lock.json (npm): 2 vulnerabilities: CRITICAL 1, UNKNOWN 1\n", "Node.js (npm): 1 vulnerability: HIGH 1\n", "debian 12 (deb): 2 vulnerabilities: MEDIUM 1, LOW 1\n"} {
		if !strings.Contains(term, heading) {
			t.Errorf("terminal table lacks the heading %q:\n%s", heading, term)
		}
	}
	if strings.Index(term, "CVE-5") > strings.Index(term, "CVE-1") {
		t.Errorf("the critical finding is not listed first:\n%s", term)
	}
}
