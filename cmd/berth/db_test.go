package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/vulndb"
)

var updateDBGolden = flag.Bool("update-db-golden", false, "rewrite cmd/berth/testdata/db-status.golden")

// dbFeed writes an OSV folder with one good npm record and one whose
// version cannot be parsed.
func dbFeed(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "PyPI"), 0o755)
	f, err := os.Create(filepath.Join(dir, "PyPI", "all.zip"))
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for id, fixed := range map[string]string{"PYSEC-1": "2.32.0", "PYSEC-BAD": "not a version!"} {
		w, _ := zw.Create(id + ".json")
		w.Write([]byte(`{"id":"` + id + `","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"requests"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"` + fixed + `"}]}]}]}`))
	}
	zw.Close()
	f.Close()
	return dir
}

func runDB(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := newDBCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestDBCommands(t *testing.T) {
	dir := t.TempDir()
	out, _, err := runDB(t, "update", "--db-dir", dir, "--source", dbFeed(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "1 records in 1 packages (1 records skipped") {
		t.Errorf("update said %q", out)
	}

	out, stderr, err := runDB(t, "status", "--db-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Records:   1 in 1 packages", "PyPI  1", "unparsable ECOSYSTEM version (PyPI)", "PYSEC-BAD"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if stderr != "" {
		t.Errorf("fresh DB warned: %s", stderr)
	}
	_, stderr, _ = runDB(t, "status", "--db-dir", dir, "--max-age", "1ns")
	if !strings.Contains(stderr, "warning: vulnerability database is") {
		t.Errorf("stale DB: stderr %q", stderr)
	}
	out, _, err = runDB(t, "status", "--db-dir", dir, "--format", "json")
	var info vulndb.Info
	if err != nil || json.Unmarshal([]byte(out), &info) != nil || info.Sources[0].Skipped != 1 {
		t.Errorf("status --format json: %v %q", err, out)
	}

	export := filepath.Join(t.TempDir(), "db.tar.zst")
	if _, _, err := runDB(t, "export", "--db-dir", dir, export); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(export); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("export file: %v %v", st, err)
	}
	other := t.TempDir()
	if out, _, err := runDB(t, "import", "--db-dir", other, export); err != nil || !strings.Contains(out, "imported 1 records") {
		t.Fatalf("import: %q %v", out, err)
	}
	if _, _, err := runDB(t, "status", "--db-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "berth db update") {
		t.Errorf("status without a DB: %v", err)
	}
	if _, _, err := runDB(t, "import", "--db-dir", other, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("import of a missing file succeeded")
	}
}

func TestDBStatusGolden(t *testing.T) {
	updated := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	info := vulndb.Info{
		SchemaVersion: vulndb.SchemaVersion,
		UpdatedAt:     updated,
		Records:       12,
		Packages:      9,
		Ecosystems:    map[string]int{"PyPI": 4, "Debian:12": 7, "npm": 1},
		Sources: []vulndb.SourceInfo{
			{Name: "osv https://osv.example", Records: 5, Duplicates: 2, Skipped: 1, Reasons: []vulndb.SkipReason{
				{Reason: "unparsable ECOSYSTEM version (PyPI)", Count: 1, Examples: []string{"PYSEC-2019-125"}},
			}},
			{Name: "debian-tracker /srv/tracker", Records: 7},
		},
	}
	var buf bytes.Buffer
	printDBStatus(&buf, "/var/cache/berth/db/vuln.db", info, updated.Add(50*time.Hour))
	golden := filepath.Join("testdata", "db-status.golden")
	if *updateDBGolden {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if buf.String() != string(want) {
		t.Errorf("status output differs from %s (rerun with -update-db-golden):\n%s", golden, buf.String())
	}
}

// TestDBSourcesVariable: without --source, db update reads the sources in
// BERTH_DB_SOURCES (a mirror or an air-gapped folder); --source wins.
func TestDBSourcesVariable(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BERTH_DB_SOURCES", dbFeed(t))
	out, _, err := runDB(t, "update", "--db-dir", dir)
	if err != nil || !strings.Contains(out, "1 records in 1 packages") {
		t.Fatalf("update from BERTH_DB_SOURCES = %v\n%s", err, out)
	}
	t.Setenv("BERTH_DB_SOURCES", filepath.Join(t.TempDir(), "missing"))
	if _, _, err := runDB(t, "update", "--db-dir", dir); err == nil {
		t.Error("a missing source in BERTH_DB_SOURCES was accepted")
	}
	if _, _, err := runDB(t, "update", "--db-dir", dir, "--source", dbFeed(t)); err != nil {
		t.Errorf("--source did not win over BERTH_DB_SOURCES: %v", err)
	}
}
