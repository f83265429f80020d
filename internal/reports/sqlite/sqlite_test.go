package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/reports/reportstest"
)

func TestSuite(t *testing.T) {
	reportstest.Run(t, func(t testing.TB) (reports.Store, func() reports.Store) {
		path := filepath.Join(t.TempDir(), "meta.db")
		open := func() reports.Store {
			s, err := Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return open(), open
	})
}

// TestIndexesReportsStoredBeforeTheIndex: reports stored by a berth
// without the vulnerability index are found from the findings' keys kept
// beside them, and indexed from them by IndexVulnerabilities.
func TestIndexesReportsStoredBeforeTheIndex(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("old")
	r := &match.Report{SchemaVersion: match.ReportSchemaVersion, Findings: []match.Finding{{ID: "CVE-2026-7", Aliases: []string{"GHSA-xxxx-yyyy-zzzz"}, Severity: match.SeverityHigh}}}
	if err := s.Put(ctx, d, reports.Scan{Status: reports.Done}, r, nil, -1); err != nil {
		t.Fatal(err)
	}
	// What an older berth left: no index rows, the report not marked.
	for _, q := range []string{`DELETE FROM scan_report_vulns`, `UPDATE scan_reports SET vulns_indexed = 0`} {
		if _, err := s.db.W.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// The report is found from its findings' keys while it is not
	// indexed.
	for _, id := range []string{"CVE-2026-7", "ghsa-xxxx-yyyy-zzzz"} {
		if got, err := s.Vulnerable(ctx, id); err != nil || len(got) != 1 || got[0] != d {
			t.Errorf("Vulnerable(%s) before indexing = %v, %v", id, got, err)
		}
	}
	if got, err := s.Vulnerable(ctx, "CVE-2026-70"); err != nil || len(got) != 0 {
		t.Errorf("Vulnerable(CVE-2026-70), a prefix of none of its ids = %v, %v", got, err)
	}
	s.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.IndexVulnerabilities(ctx); err != nil || n != 1 {
		t.Fatalf("IndexVulnerabilities after reopening = %d, %v; want the one report", n, err)
	}
	var rows int
	if err := s.db.R.QueryRowContext(ctx, `SELECT count(*) FROM scan_report_vulns`).Scan(&rows); err != nil || rows != 2 {
		t.Errorf("index rows: %d, %v; want 2", rows, err)
	}
	for _, id := range []string{"CVE-2026-7", "ghsa-xxxx-yyyy-zzzz"} {
		if got, err := s.Vulnerable(ctx, id); err != nil || len(got) != 1 || got[0] != d {
			t.Errorf("Vulnerable(%s) after indexing = %v, %v", id, got, err)
		}
	}
}

// TestIndexOfManyIDs: a report naming more ids than one insert carries
// (linkRows) is indexed under every one of them, and a report stored
// again without half of them leaves those.
func TestIndexOfManyIDs(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 2*linkRows + 7
	r := &match.Report{SchemaVersion: match.ReportSchemaVersion}
	for i := range n {
		r.Findings = append(r.Findings, match.Finding{ID: fmt.Sprintf("CVE-2026-%05d", i), Severity: match.SeverityLow})
	}
	d := digest.FromString("many")
	if err := s.Put(ctx, d, reports.Scan{Status: reports.Done}, r, nil, -1); err != nil {
		t.Fatal(err)
	}
	indexed := func(i int) bool {
		got, err := s.Vulnerable(ctx, fmt.Sprintf("cve-2026-%05d", i))
		if err != nil {
			t.Fatal(err)
		}
		return len(got) == 1 && got[0] == d
	}
	for i := range n {
		if !indexed(i) {
			t.Fatalf("CVE-2026-%05d is not indexed", i)
		}
	}
	r.Findings = r.Findings[:n/2]
	if err := s.Put(ctx, d, reports.Scan{Status: reports.Done}, r, nil, -1); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if indexed(i) != (i < n/2) {
			t.Fatalf("CVE-2026-%05d indexed: %t after the report dropped the second half", i, indexed(i))
		}
	}
}
