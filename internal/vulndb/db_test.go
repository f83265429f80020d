package vulndb_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/vulndb"
)

// The matcher (internal/match) reads records through exactly this method.
var _ interface {
	Vulnerabilities(ctx context.Context, ecosystem, name string) ([]*osv.Vulnerability, error)
} = (*vulndb.DB)(nil)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func rec(id string, affected ...osv.Affected) *osv.Vulnerability {
	return &osv.Vulnerability{ID: id, Modified: t0, Summary: "summary of " + id, Details: "long details of " + id, Affected: affected}
}

func aff(eco, name string, events ...osv.Event) osv.Affected {
	return osv.Affected{
		Package: osv.Package{Ecosystem: eco, Name: name},
		Ranges:  []osv.Range{{Type: osv.RangeEcosystem, Events: events}},
	}
}

func fixed(v string) []osv.Event { return []osv.Event{{Introduced: "0"}, {Fixed: v}} }

// build installs a DB made from one source's records in a new directory.
func build(t testing.TB, source string, recs ...*osv.Vulnerability) (string, *vulndb.Info) {
	t.Helper()
	dir := t.TempDir()
	info := install(t, dir, t0, source, recs...)
	return dir, info
}

func install(t testing.TB, dir string, at time.Time, source string, recs ...*osv.Vulnerability) *vulndb.Info {
	t.Helper()
	ws, err := vulndb.OpenWorkspace(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	tmp, err := ws.TempPath()
	if err != nil {
		t.Fatal(err)
	}
	b, err := vulndb.NewBuilder(tmp)
	if err != nil {
		t.Fatal(err)
	}
	sink := b.Sink(source)
	for _, r := range recs {
		if err := sink.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Finish(at); err != nil {
		t.Fatal(err)
	}
	info, err := ws.Install(tmp)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func open(t testing.TB, dir string) *vulndb.DB {
	t.Helper()
	db, err := vulndb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func ids(vs []*osv.Vulnerability) string {
	var out []string
	for _, v := range vs {
		out = append(out, v.ID)
	}
	return strings.Join(out, ",")
}

func TestLookup(t *testing.T) {
	multi := rec("GHSA-multi",
		aff("Go", "golang.org/x/net", fixed("0.7.0")...),
		aff("Go", "golang.org/x/net/http2", fixed("0.7.0")...),
		aff("Go", "golang.org/x/net", osv.Event{Introduced: "1.0.0"}, osv.Event{Fixed: "1.0.1"}),
		aff("npm", "other", fixed("1.0.0")...),
	)
	dir, info := build(t, "test",
		rec("PYSEC-1", aff("PyPI", "jw.util", fixed("1.2")...)),
		rec("DSA-1-1", aff("Debian:11", "curl", fixed("7.74.0-1.3+deb11u7")...), aff("Debian:10", "curl", fixed("7.64.0-4+deb10u5")...)),
		multi,
		rec("UBUNTU-CVE-1", aff("Ubuntu:22.04:LTS", "openssl", fixed("3.0.2-0ubuntu1.10")...)),
	)
	if info.Records != 4 || info.Packages != 7 {
		t.Errorf("info: %d records in %d packages, want 4 in 7", info.Records, info.Packages)
	}
	db := open(t, dir)
	ctx := context.Background()
	tests := []struct {
		eco, name, want string
	}{
		{"PyPI", "JW_Util", "PYSEC-1"},
		{"PyPI", "jw-util", "PYSEC-1"},
		{"Debian:11", "curl", "DSA-1-1"},
		{"Debian:10", "curl", "DSA-1-1"},
		{"Debian:12", "curl", ""},
		{"Go", "golang.org/x/net", "GHSA-multi"},
		{"Go", "golang.org/x/net/http2", "GHSA-multi"},
		{"npm", "other", "GHSA-multi"},
		{"npm", "absent", ""},
		{"Go", "Golang.org/x/net", ""}, // Go module paths are case-sensitive
		{"Ubuntu:22.04", "openssl", "UBUNTU-CVE-1"},
	}
	for _, tt := range tests {
		got, err := db.Vulnerabilities(ctx, tt.eco, tt.name)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.eco, tt.name, err)
		}
		if ids(got) != tt.want {
			t.Errorf("Vulnerabilities(%s, %s) = %q, want %q", tt.eco, tt.name, ids(got), tt.want)
		}
	}

	// A lookup sees only the affected entries of the package asked for,
	// without Details; Vulnerability(id) has the whole record.
	got, _ := db.Vulnerabilities(ctx, "Go", "golang.org/x/net")
	v := got[0]
	if len(v.Affected) != 2 || v.Affected[0].Package.Name != "golang.org/x/net" || v.Affected[1].Ranges[0].Events[1].Fixed != "1.0.1" {
		t.Errorf("affected entries of golang.org/x/net: %+v", v.Affected)
	}
	if v.Details != "" || v.Summary != "summary of GHSA-multi" || !v.Modified.Equal(t0) {
		t.Errorf("lookup record: details %q summary %q modified %v", v.Details, v.Summary, v.Modified)
	}
	full, err := db.Vulnerability(ctx, "GHSA-multi")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(full)
	b, _ := json.Marshal(multi)
	if string(a) != string(b) {
		t.Errorf("Vulnerability:\n got %s\nwant %s", a, b)
	}
	if v, err := db.Vulnerability(ctx, "NOPE"); v != nil || err != nil {
		t.Errorf("Vulnerability(NOPE) = %v, %v; want nil, nil", v, err)
	}
	ub, _ := db.Vulnerabilities(ctx, "Ubuntu:22.04", "openssl")
	if eco := ub[0].Affected[0].Package.Ecosystem; eco != "Ubuntu:22.04" {
		t.Errorf("Ubuntu entry looked up as Ubuntu:22.04 has ecosystem %q", eco)
	}
	if want := map[string]int{"PyPI": 1, "Debian:11": 1, "Debian:10": 1, "Go": 1, "npm": 1, "Ubuntu:22.04": 1}; !equalCounts(info.Ecosystems, want) {
		t.Errorf("ecosystems %v, want %v", info.Ecosystems, want)
	}
	for eco, want := range map[string]bool{"Debian:11": true, "Ubuntu:22.04:LTS": true, "Ubuntu:22.04": true, "Debian:12": false, "Alpine:v3.19": false} {
		if got := db.HasEcosystem(eco); got != want {
			t.Errorf("HasEcosystem(%s) = %v, want %v", eco, got, want)
		}
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestSkippedRecordsAreCounted(t *testing.T) {
	withdrawn := rec("W-1", aff("npm", "a", fixed("1.0.0")...))
	withdrawn.Withdrawn = t0
	dir, info := build(t, "test",
		rec("BAD-VERSION", aff("PyPI", "a", fixed("not a version!")...)),
		rec("HALF-BAD", aff("PyPI", "a", fixed("1.0")...), aff("Debian:11", "b", fixed("??bad??")...)),
		rec("BAD-EVENT", osv.Affected{Package: osv.Package{Ecosystem: "npm", Name: "a"}, Ranges: []osv.Range{{Type: "SEMVER", Events: []osv.Event{{Introduced: "0", Fixed: "1.0.0"}}}}}),
		rec("BAD-TYPE", osv.Affected{Package: osv.Package{Ecosystem: "npm", Name: "a"}, Ranges: []osv.Range{{Type: "CALVER", Events: fixed("1")}}}),
		rec("NO-AFFECTED"),
		rec("NUL-NAME", aff("npm", "a\x00b", fixed("1.0.0")...)),
		rec("", aff("npm", "a", fixed("1.0.0")...)),
		withdrawn,
		rec("GOOD", aff("npm", "a", fixed("1.0.0")...)),
		rec("GOOD", aff("npm", "a", fixed("1.0.0")...)),
	)
	s := info.Sources[0]
	if info.Records != 2 || s.Records != 2 || s.Skipped != 7 || s.Duplicates != 1 {
		t.Errorf("records %d/%d skipped %d duplicates %d; want 2/2, 7, 1", info.Records, s.Records, s.Skipped, s.Duplicates)
	}
	want := map[string]string{
		"unparsable ECOSYSTEM version (PyPI)":   "BAD-VERSION",
		"unparsable ECOSYSTEM version (Debian)": "HALF-BAD",
		"malformed range event":                 "BAD-EVENT",
		"unknown range type":                    "BAD-TYPE",
		"no affected packages":                  "NO-AFFECTED",
		"package name with a NUL byte":          "NUL-NAME",
		"record without id":                     "",
		"withdrawn":                             "W-1",
	}
	got := map[string]vulndb.SkipReason{}
	for _, r := range s.Reasons {
		got[r.Reason] = r
	}
	for reason, example := range want {
		r, ok := got[reason]
		if !ok || r.Count != 1 || (example != "" && (len(r.Examples) != 1 || r.Examples[0] != example)) {
			t.Errorf("reason %q: %+v, want count 1 example %q", reason, r, example)
		}
	}
	// The status reported by a reopened DB is the same.
	db := open(t, dir)
	if got := db.Info(); got.Sources[0].Skipped != 7 || len(got.Sources[0].Reasons) != len(s.Reasons) {
		t.Errorf("reopened info: %+v", got.Sources[0])
	}
	half, _ := db.Vulnerabilities(context.Background(), "PyPI", "a")
	if ids(half) != "HALF-BAD" {
		t.Errorf("PyPI a: %q, want the usable part of HALF-BAD", ids(half))
	}
}

func TestEmptyDB(t *testing.T) {
	dir, info := build(t, "nothing")
	if info.Records != 0 {
		t.Fatalf("records %d", info.Records)
	}
	got, err := open(t, dir).Vulnerabilities(context.Background(), "npm", "a")
	if err != nil || got != nil {
		t.Fatalf("lookup in an empty DB: %v, %v", got, err)
	}
}

func TestAgeAndStaleness(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none")
	if w := vulndb.Staleness(missing, vulndb.DefaultMaxAge, t0); !strings.Contains(w, "no vulnerability database") {
		t.Errorf("missing DB: warning %q", w)
	}
	dir, _ := build(t, "test", rec("A", aff("npm", "a", fixed("1.0.0")...)))
	db := open(t, dir)
	if got := db.Age(t0.Add(time.Hour)); got != time.Hour {
		t.Errorf("Age = %v, want 1h", got)
	}
	if w := vulndb.Staleness(dir, vulndb.DefaultMaxAge, t0.Add(24*time.Hour)); w != "" {
		t.Errorf("fresh DB: warning %q", w)
	}
	if w := vulndb.Staleness(dir, vulndb.DefaultMaxAge, t0.Add(8*24*time.Hour)); !strings.Contains(w, "8 days old") {
		t.Errorf("8-day-old DB: warning %q", w)
	}
}

func TestInstallKeepsOpenReaders(t *testing.T) {
	dir, _ := build(t, "old", rec("OLD-1", aff("npm", "a", fixed("1.0.0")...)))
	old := open(t, dir)
	install(t, dir, t0.Add(time.Hour), "new", rec("NEW-1", aff("npm", "a", fixed("2.0.0")...)))

	ctx := context.Background()
	got, err := old.Vulnerabilities(ctx, "npm", "a")
	if err != nil || ids(got) != "OLD-1" {
		t.Errorf("old handle after install: %q, %v; want OLD-1", ids(got), err)
	}
	got, err = open(t, dir).Vulnerabilities(ctx, "npm", "a")
	if err != nil || ids(got) != "NEW-1" {
		t.Errorf("new handle: %q, %v; want NEW-1", ids(got), err)
	}
}

func TestWorkspaceErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := vulndb.OpenWorkspace(filepath.Join(file, "db"), time.Second); err == nil {
		t.Error("workspace under a regular file opened")
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := t.TempDir()
		os.Chmod(ro, 0o555)
		t.Cleanup(func() { os.Chmod(ro, 0o755) })
		_, err := vulndb.OpenWorkspace(ro, time.Second)
		if err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("read-only directory: err = %v, want 'not writable'", err)
		}
	}

	dir := t.TempDir()
	ws, err := vulndb.OpenWorkspace(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if _, err := vulndb.OpenWorkspace(dir, 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "another update") {
		t.Errorf("second writer: err = %v, want 'another update is running'", err)
	}
}

func TestLeftoversOfAnInterruptedWriterAreRemoved(t *testing.T) {
	dir, _ := build(t, "test", rec("A", aff("npm", "a", fixed("1.0.0")...)))
	junk := filepath.Join(dir, ".build-123.db")
	os.WriteFile(junk, []byte("half a database"), 0o644)
	open(t, dir) // a reader does not mind
	ws, err := vulndb.OpenWorkspace(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ws.Close()
	if _, err := os.Stat(junk); !os.IsNotExist(err) {
		t.Errorf("leftover still there: %v", err)
	}
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	if _, err := vulndb.Open(dir); err == nil || !strings.Contains(err.Error(), "berth db update") {
		t.Errorf("missing DB: err = %v", err)
	}
	os.WriteFile(vulndb.Path(dir), []byte("not a database at all, just text"), 0o644)
	if _, err := vulndb.Open(dir); err == nil {
		t.Error("opened a text file")
	}
}
