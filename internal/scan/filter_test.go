package scan

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
)

func TestSeverityFilter(t *testing.T) {
	const (
		C, H, M, L, N, U = match.SeverityCritical, match.SeverityHigh, match.SeverityMedium, match.SeverityLow, match.SeverityNone, match.SeverityUnknown
	)
	tests := []struct {
		spec    string
		list    []match.Severity
		wantErr string
	}{
		{spec: ""},
		{spec: "HIGH,CRITICAL", list: []match.Severity{H, C}},
		{spec: "low, high", list: []match.Severity{L, H}},
		{spec: "UNKNOWN", list: []match.Severity{U}},
		// A threshold is that rating and above, never UNKNOWN unless named.
		{spec: "HIGH+", list: []match.Severity{C, H}},
		{spec: " medium+ ", list: []match.Severity{C, H, M}},
		{spec: "HIGH+,UNKNOWN", list: []match.Severity{C, H, U}},
		{spec: "NONE+", list: []match.Severity{C, H, M, L, N}},
		{spec: "UNKNOWN+", list: []match.Severity{C, H, M, L, N, U}},
		{spec: "CRITICAL,HIGH+", list: []match.Severity{C, H}},
		{spec: "SEVERE", wantErr: "unknown severity"},
		{spec: "+", wantErr: "unknown severity"},
		{spec: ",", wantErr: "empty severity list"},
	}
	for _, tc := range tests {
		f, err := SeverityFilter(tc.spec)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil || f.MinSeverity != "" || !slices.Equal(f.Severities, tc.list) {
			t.Errorf("%q: min %q list %v err %v; want list %v", tc.spec, f.MinSeverity, f.Severities, err, tc.list)
		}
	}
}

// TestSeverityFilterApplied runs both forms through match.Filter: the list
// keeps exactly its ratings, and so does a threshold: UNKNOWN only when
// named (issue 18: HIGH+ had kept 17 UNKNOWN findings of 21).
func TestSeverityFilterApplied(t *testing.T) {
	r := &match.Report{}
	for _, s := range []match.Severity{match.SeverityCritical, match.SeverityHigh, match.SeverityMedium, match.SeverityLow, match.SeverityUnknown} {
		r.Findings = append(r.Findings, match.Finding{ID: string(s), Severity: s, Status: match.StatusFixed})
	}
	for spec, want := range map[string][]string{
		"HIGH,CRITICAL": {"CRITICAL", "HIGH"},
		"MEDIUM+":       {"CRITICAL", "HIGH", "MEDIUM"},
		"HIGH+,UNKNOWN": {"CRITICAL", "HIGH", "UNKNOWN"},
		"UNKNOWN":       {"UNKNOWN"},
		"":              {"CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"},
	} {
		f, err := SeverityFilter(spec)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, fd := range f.Apply(r).Findings {
			got = append(got, fd.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%q kept %v, want %v", spec, got, want)
		}
	}
}

func TestFindIgnoreFile(t *testing.T) {
	dir := t.TempDir()
	if got, err := FindIgnoreFile(dir); got != "" || err != nil {
		t.Errorf("empty dir: %q %v", got, err)
	}
	write := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("CVE-2020-8203\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(".trivyignore.yaml")
	if got, _ := FindIgnoreFile(dir); filepath.Base(got) != ".trivyignore.yaml" {
		t.Errorf("got %q, want .trivyignore.yaml", got)
	}
	write(".trivyignore")
	if got, _ := FindIgnoreFile(dir); filepath.Base(got) != ".trivyignore" {
		t.Errorf("got %q, want .trivyignore before the YAML file", got)
	}
	write(".berthignore")
	if got, _ := FindIgnoreFile(dir); filepath.Base(got) != ".berthignore" {
		t.Errorf("got %q, want .berthignore first", got)
	}

	other := t.TempDir()
	if err := os.Mkdir(filepath.Join(other, ".berthignore"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := FindIgnoreFile(other); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory named .berthignore: %v", err)
	}
}

func TestSummary(t *testing.T) {
	inv := inventory.Inventory{Source: "oci-archive:/images/kitchen-sink.oci.tar"}
	finding := func(id string, s match.Severity, fixed bool) match.Finding {
		f := match.Finding{ID: id, Severity: s, Status: match.StatusAffected}
		if fixed {
			f.Status, f.FixedVersions = match.StatusFixed, []string{"1"}
		}
		return f
	}
	all := &match.Report{Inventory: inv, Findings: []match.Finding{
		finding("A", match.SeverityCritical, true), finding("B", match.SeverityHigh, true), finding("C", match.SeverityHigh, false),
		finding("D", match.SeverityLow, true), finding("E", match.SeverityUnknown, true),
	}}
	tests := []struct {
		filter match.Filter
		want   string
	}{
		{match.Filter{}, "kitchen-sink: 5 vulnerabilities (CRITICAL 1, HIGH 2, LOW 1, UNKNOWN 1)"},
		{match.Filter{IgnoreUnfixed: true, Severities: []match.Severity{match.SeverityHigh}}, "kitchen-sink: 1 vulnerability (HIGH 1), 4 hidden by filters"},
		{match.Filter{Severities: []match.Severity{match.SeverityMedium}}, "kitchen-sink: no vulnerabilities, 5 hidden by filters"},
	}
	for _, tc := range tests {
		if got := Summarize(all, tc.filter.Apply(all)).String(); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
	// Suppressions are counted apart from filters.
	shown := match.Filter{}.Apply(all)
	shown.Suppressed = append(shown.Suppressed, match.Suppressed{Finding: shown.Findings[0], By: "vex"})
	shown.Findings = shown.Findings[1:]
	if got, want := Summarize(all, shown).String(), "kitchen-sink: 4 vulnerabilities (HIGH 2, LOW 1, UNKNOWN 1), 1 suppressed"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := ImageName(&inventory.Inventory{Source: "registry.example.com/team/app:1.2"}); got != "registry.example.com/team/app:1.2" {
		t.Errorf("ImageName = %q", got)
	}
}
