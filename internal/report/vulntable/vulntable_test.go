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
	if plain := encode(t, &match.Report{}, table.Options{}); plain != strings.Join(header(), "  ")+"\n" {
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
