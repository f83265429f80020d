package match

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match/ignore"
	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/vex"
)

func filterReport(t *testing.T) *Report {
	t.Helper()
	crit := osv.Severity{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}
	low := osv.Severity{Type: "CVSS_V3", Score: "CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"}
	recs := []*osv.Vulnerability{
		record("GHSA-crit-crit-crit", []string{"CVE-2024-1"}, "npm", "lodash", ev("i", "0"), ev("f", "4.17.21")),
		record("GHSA-loww-loww-loww", []string{"CVE-2024-2"}, "npm", "lodash", ev("i", "0"), ev("f", "4.17.21")),
		record("GHSA-nofx-nofx-nofx", []string{"CVE-2024-3"}, "npm", "lodash", ev("i", "0")),
		record("GHSA-unkn-unkn-unkn", []string{"CVE-2024-4"}, "npm", "lodash", ev("i", "0"), ev("f", "5.0.0")),
		record("GHSA-vexd-vexd-vexd", []string{"CVE-2020-8203"}, "npm", "lodash", ev("i", "0"), ev("f", "4.17.19")),
	}
	recs[0].Severity = []osv.Severity{crit}
	recs[1].Severity = []osv.Severity{low}
	recs[2].Severity = []osv.Severity{crit}
	recs[4].Severity = []osv.Severity{crit}
	r, err := New(newMemSource(recs...)).Match(context.Background(), inventory.Inventory{
		Packages: []inventory.Package{pkg(inventory.NPM, "lodash", "4.17.15")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 5 {
		t.Fatalf("findings %d", len(r.Findings))
	}
	return r
}

func ids(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID)
	}
	slices.Sort(out)
	return out
}

func TestFilter(t *testing.T) {
	r := filterReport(t)
	now := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	ign := &ignore.List{Entries: []ignore.Entry{
		{ID: "GHSA-loww-loww-loww", Reason: "accepted", Where: "f:1"},
		{ID: "CVE-2024-4", Expires: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), Where: "f:2"},
	}}
	vx, err := vex.Load("../vex/testdata/app.openvex.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		f          Filter
		kept       []string
		suppressed []string
		warning    string
	}{
		{"nothing", Filter{Now: now}, []string{"CVE-2020-8203", "CVE-2024-1", "CVE-2024-2", "CVE-2024-3", "CVE-2024-4"}, nil, ""},
		{"min severity keeps unknown", Filter{MinSeverity: SeverityHigh, Now: now}, []string{"CVE-2020-8203", "CVE-2024-1", "CVE-2024-3", "CVE-2024-4"}, nil, ""},
		{"severity list", Filter{Severities: []Severity{SeverityLow}, Now: now}, []string{"CVE-2024-2"}, nil, ""},
		{"ignore unfixed", Filter{IgnoreUnfixed: true, Now: now}, []string{"CVE-2020-8203", "CVE-2024-1", "CVE-2024-2", "CVE-2024-4"}, nil, ""},
		{"ignore file by alias, expired entry warned", Filter{Ignore: ign, Now: now}, []string{"CVE-2020-8203", "CVE-2024-1", "CVE-2024-3", "CVE-2024-4"}, []string{"CVE-2024-2"}, "CVE-2024-4 (f:2) expired on 2024-05-01"},
		{"vex not_affected", Filter{VEX: vx, Now: now}, []string{"CVE-2024-1", "CVE-2024-2", "CVE-2024-3", "CVE-2024-4"}, []string{"CVE-2020-8203"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.f.Apply(r)
			if got := ids(out.Findings); !slices.Equal(got, tc.kept) {
				t.Errorf("kept %v, want %v", got, tc.kept)
			}
			var sup []string
			for _, s := range out.Suppressed {
				sup = append(sup, s.Finding.ID)
			}
			if !slices.Equal(sup, tc.suppressed) {
				t.Errorf("suppressed %v, want %v", sup, tc.suppressed)
			}
			if tc.warning != "" && !slices.ContainsFunc(out.Warnings, func(w string) bool { return strings.Contains(w, tc.warning) }) {
				t.Errorf("warnings %v, want one containing %q", out.Warnings, tc.warning)
			}
		})
	}
	// The stored report keeps everything.
	if len(r.Findings) != 5 || len(r.Suppressed) != 0 {
		t.Errorf("Apply changed the report it filtered")
	}
	out := Filter{VEX: vx, Ignore: ign, Now: now}.Apply(r)
	for _, s := range out.Suppressed {
		switch s.By {
		case "vex":
			if s.Statement == nil || s.Statement.Justification != "vulnerable_code_not_in_execute_path" {
				t.Errorf("vex suppression without its justification: %+v", s)
			}
		case "ignore":
			if s.IgnoreEntry == nil || s.IgnoreEntry.Reason != "accepted" {
				t.Errorf("ignore suppression without its reason: %+v", s)
			}
		default:
			t.Errorf("suppressed by %q", s.By)
		}
	}
}

func TestParseSeverity(t *testing.T) {
	for in, want := range map[string]Severity{"high": SeverityHigh, " CRITICAL ": SeverityCritical, "unknown": SeverityUnknown} {
		if got, err := ParseSeverity(in); err != nil || got != want {
			t.Errorf("ParseSeverity(%q) = %s, %v", in, got, err)
		}
	}
	if _, err := ParseSeverity("severe"); err == nil {
		t.Errorf("ParseSeverity(severe): no error")
	}
}

func TestFilterVEXAnnotates(t *testing.T) {
	r, err := New(newMemSource(record("GHSA-29mw-wpgm-hmr9", []string{"CVE-2020-28500"}, "npm", "lodash", ev("i", "0"), ev("f", "4.17.21")))).
		Match(context.Background(), inventory.Inventory{Packages: []inventory.Package{pkg(inventory.NPM, "lodash", "4.17.15")}})
	if err != nil {
		t.Fatal(err)
	}
	vx, err := vex.Load("../vex/testdata/app.openvex.json")
	if err != nil {
		t.Fatal(err)
	}
	out := Filter{VEX: vx}.Apply(r)
	if len(out.Findings) != 1 || out.Findings[0].VEX == nil || out.Findings[0].VEX.Status != vex.Affected ||
		out.Findings[0].VEX.ActionStatement != "upgrade to 4.17.21" {
		t.Errorf("findings %+v", out.Findings)
	}
	if r.Findings[0].VEX != nil {
		t.Errorf("Apply annotated the stored report")
	}
}

func TestParseSeverities(t *testing.T) {
	got, err := ParseSeverities("high, CRITICAL,")
	if err != nil || !slices.Equal(got, []Severity{SeverityHigh, SeverityCritical}) {
		t.Errorf("ParseSeverities = %v, %v", got, err)
	}
	for _, bad := range []string{"", " , ", "HIGH,severe"} {
		if _, err := ParseSeverities(bad); err == nil {
			t.Errorf("ParseSeverities(%q): no error", bad)
		}
	}
}

// TestMatchConcurrent: one Matcher (and its shared version cache) serves
// concurrent matches; run with -race.
func TestMatchConcurrent(t *testing.T) {
	src := newMemSource(
		record("GHSA-aaaa-aaaa-aaaa", []string{"CVE-2021-1"}, "npm", "a", ev("i", "0"), ev("f", "1.2.0")),
		record("PYSEC-1", []string{"CVE-2021-2"}, "PyPI", "b", ev("i", "0"), ev("f", "2.0")),
	)
	m := New(src)
	inv := inventory.Inventory{Packages: []inventory.Package{pkg(inventory.NPM, "a", "1.1.0"), pkg(inventory.PyPI, "b", "1.0")}}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			r, err := m.Match(context.Background(), inv)
			if err == nil && len(r.Findings) != 2 {
				err = fmt.Errorf("findings %d", len(r.Findings))
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
