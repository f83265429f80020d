// Package reportstest is the suite every reports.Store implementation
// passes (SQLite now, PostgreSQL later).
package reportstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/secret"
)

// RealReport is the path of a real stored report (kitchen-sink's), seen
// from the implementations' packages.
const RealReport = "../../report/testdata/kitchen-sink.report.json"

// Factory makes an empty store; reopen returns a new Store over the same
// database, as a restarted process sees it.
type Factory func(t testing.TB) (s reports.Store, reopen func() reports.Store)

// Run runs the suite.
func Run(t *testing.T, f Factory) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"StatesAndReports", testStates},
		{"AffectedByKeys", testAffected},
		{"VersionGuard", testVersionGuard},
		{"RecordsAndDigests", testListing},
		{"ConcurrentPuts", testConcurrent},
		{"StoreRematches", testStoreRematches},
		{"RematchInputs", testRematchInputs},
		{"DeltaRematch", testDeltaRematch},
		{"RealReportRoundTrip", testRealReport},
		{"MarkPending", testMarkPending},
		{"VulnerabilityIndex", testVulnerable},
		{"VulnerabilityIndexKeptAcrossRematches", testVulnerableKept},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, f) })
	}
}

func dg(s string) digest.Digest { return digest.FromString(s) }

// report is a small report with the given findings (id:severity:status).
func report(pkgs int, findings ...string) *match.Report {
	r := &match.Report{SchemaVersion: match.ReportSchemaVersion, MatchedAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Findings: []match.Finding{}}
	for i := range pkgs {
		r.Inventory.Packages = append(r.Inventory.Packages, inventory.Package{Ecosystem: inventory.NPM, Name: fmt.Sprintf("p%d", i), Version: "1.0.0"})
	}
	for _, f := range findings {
		var id, sev, st string
		fmt.Sscanf(f, "%s %s %s", &id, &sev, &st)
		r.Findings = append(r.Findings, match.Finding{ID: id, Severity: match.Severity(sev), Status: match.Status(st)})
	}
	return r
}

func testStates(t *testing.T, f Factory) {
	ctx := context.Background()
	s, reopen := f(t)
	d := dg("img")
	if _, err := s.Get(ctx, d, false); !errors.Is(err, reports.ErrNotFound) {
		t.Fatalf("Get of an unknown digest: %v", err)
	}
	start := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	if err := s.SetScan(ctx, d, reports.Scan{Status: reports.Pending}); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Get(ctx, d, true)
	if err != nil || rec.Scan.Status != reports.Pending || rec.HasReport() || rec.Report != nil {
		t.Fatalf("pending: %+v, %v", rec, err)
	}
	if err := s.SetScan(ctx, d, reports.Scan{Status: reports.Running, StartedAt: start}); err != nil {
		t.Fatal(err)
	}
	db := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	r := report(3, "CVE-1 CRITICAL fixed", "CVE-2 HIGH affected", "CVE-3 HIGH fixed", "CVE-4 NONE fixed", "GHSA-5 UNKNOWN affected")
	done := reports.Scan{Status: reports.Done, StartedAt: start, FinishedAt: start.Add(time.Second), DBUpdatedAt: db}
	if err := s.Put(ctx, d, done, r, []string{"npm\x00p0"}, -1); err != nil {
		t.Fatal(err)
	}
	for _, st := range []reports.Store{s, reopen()} {
		rec, err := st.Get(ctx, d, true)
		if err != nil {
			t.Fatal(err)
		}
		want := reports.Summary{Critical: 1, High: 2, Low: 1, Unknown: 1, Total: 5, Fixable: 3, Packages: 3}
		if rec.Summary != want {
			t.Errorf("summary %+v, want %+v", rec.Summary, want)
		}
		if rec.Scan != done || rec.Version != 1 || rec.Report == nil || len(rec.Report.Findings) != 5 ||
			rec.Report.Findings[1].ID != "CVE-2" || !rec.Report.MatchedAt.Equal(r.MatchedAt) {
			t.Errorf("record %+v (report %+v)", rec, rec.Report)
		}
		if noReport, err := st.Get(ctx, d, false); err != nil || noReport.Report != nil || noReport.Summary != want {
			t.Errorf("Get without report: %+v, %v", noReport, err)
		}
	}
	// A failed rescan keeps the last report.
	failed := reports.Scan{Status: reports.Failed, StartedAt: start, FinishedAt: start, Error: "layer 2: unexpected EOF"}
	if err := s.SetScan(ctx, d, failed); err != nil {
		t.Fatal(err)
	}
	rec, err = s.Get(ctx, d, true)
	if err != nil || rec.Scan.Status != reports.Failed || rec.Scan.Error != failed.Error || rec.Report == nil || rec.Summary.Total != 5 ||
		!rec.Scan.DBUpdatedAt.Equal(db) {
		t.Errorf("after a failed rescan: %+v, %v", rec, err)
	}
	if err := s.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, d, false); !errors.Is(err, reports.ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
	if got, _ := s.Affected(ctx, []string{"npm\x00p0"}); len(got) != 0 {
		t.Errorf("keys survived Delete: %v", got)
	}
}

func testAffected(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	done := reports.Scan{Status: reports.Done}
	put := func(name string, keys ...string) digest.Digest {
		d := dg(name)
		if err := s.Put(ctx, d, done, report(1), keys, -1); err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := put("a", "npm\x00lodash", "Debian:12\x00openssl")
	b := put("b", "npm\x00lodash", "npm\x00lodash") // a key twice
	c := put("c", "PyPI\x00jinja2")
	got, err := s.Affected(ctx, []string{"npm\x00lodash", "Go\x00stdlib"})
	want := []digest.Digest{a, b}
	slices.Sort(want)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Affected(lodash) = %v, %v; want %v", got, err, want)
	}
	// Replacing a report replaces its keys.
	if err := s.Put(ctx, a, done, report(1), []string{"PyPI\x00jinja2"}, -1); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Affected(ctx, []string{"Debian:12\x00openssl"})
	if len(got) != 0 {
		t.Errorf("old keys of a replaced report: %v", got)
	}
	got, _ = s.Affected(ctx, []string{"PyPI\x00jinja2"})
	want = []digest.Digest{a, c}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Affected(jinja2) = %v, want %v", got, want)
	}
	// Many keys at once (past any batch size).
	var many []string
	for i := range 2000 {
		many = append(many, fmt.Sprintf("npm\x00x%d", i))
	}
	many = append(many, "PyPI\x00jinja2")
	if got, err := s.Affected(ctx, many); err != nil || len(got) != 2 {
		t.Errorf("Affected(2001 keys) = %v, %v", got, err)
	}
	if got, err := s.Affected(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("Affected(none) = %v, %v", got, err)
	}

	// By ecosystem: a, b and c now look up npm/lodash, npm/lodash and
	// PyPI/jinja2; d looks up an ecosystem whose name extends another's.
	if err := s.Put(ctx, a, done, report(1), []string{"Debian:12\x00openssl", "npm\x00zlib"}, -1); err != nil {
		t.Fatal(err)
	}
	d := put("d", "Debian:12.1\x00openssl")
	for _, tc := range []struct {
		ecos []string
		want []digest.Digest
	}{
		{[]string{"Debian:12"}, []digest.Digest{a}},
		{[]string{"npm", "PyPI"}, []digest.Digest{a, b, c}},
		{[]string{"Debian:12.1"}, []digest.Digest{d}},
		{[]string{"Debian"}, nil},
		{nil, nil},
	} {
		slices.Sort(tc.want)
		got, err := s.AffectedEcosystems(ctx, tc.ecos)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("AffectedEcosystems(%q) = %v, %v; want %v", tc.ecos, got, err, tc.want)
		}
	}
}

func testVersionGuard(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	d := dg("img")
	done := reports.Scan{Status: reports.Done}
	if err := s.Put(ctx, d, done, report(1, "CVE-1 HIGH fixed"), nil, 0); err != nil {
		t.Fatalf("first Put at version 0: %v", err)
	}
	// A re-match that read version 1 stores; one that read 0 is refused.
	if err := s.Put(ctx, d, done, report(1), nil, 0); !errors.Is(err, reports.ErrConflict) {
		t.Errorf("stale Put: %v", err)
	}
	if err := s.Put(ctx, d, done, report(1, "CVE-2 LOW fixed"), nil, 1); err != nil {
		t.Errorf("current Put: %v", err)
	}
	rec, _ := s.Get(ctx, d, true)
	if rec.Version != 2 || rec.Report.Findings[0].ID != "CVE-2" {
		t.Errorf("record after guarded puts: version %d, findings %+v", rec.Version, rec.Report.Findings)
	}
	// A state change does not move the version.
	s.SetScan(ctx, d, reports.Scan{Status: reports.Running})
	if rec, _ := s.Get(ctx, d, false); rec.Version != 2 {
		t.Errorf("SetScan moved the version to %d", rec.Version)
	}
}

func testListing(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	var all []digest.Digest
	for i := range 700 {
		d := dg(fmt.Sprint(i))
		all = append(all, d)
		if i%7 == 0 {
			s.SetScan(ctx, d, reports.Scan{Status: reports.Pending})
			continue
		}
		if err := s.Put(ctx, d, reports.Scan{Status: reports.Done}, report(1, "CVE-1 HIGH fixed"), nil, -1); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := s.Records(ctx, append(slices.Clone(all), dg("unknown")))
	if err != nil || len(recs) != 700 {
		t.Fatalf("Records: %d, %v", len(recs), err)
	}
	if r := recs[all[7]]; r.Scan.Status != reports.Pending || r.Report != nil {
		t.Errorf("pending record %+v", r)
	}
	if r := recs[all[8]]; r.Summary.High != 1 || r.Report != nil {
		t.Errorf("done record %+v", r)
	}
	// Digests pages through the digests that have a report.
	var paged []digest.Digest
	var after digest.Digest
	for {
		page, err := s.Digests(ctx, after, 64)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1]
	}
	if len(paged) != 600 || !slices.IsSorted(paged) {
		t.Errorf("Digests paged %d digests (sorted %v), want 600", len(paged), slices.IsSorted(paged))
	}
}

func testConcurrent(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 4 {
				d := dg(fmt.Sprint(j))
				if err := s.Put(ctx, d, reports.Scan{Status: reports.Done}, report(i), []string{fmt.Sprintf("npm\x00w%d", i)}, -1); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for j := range 4 {
		rec, err := s.Get(ctx, dg(fmt.Sprint(j)), false)
		if err != nil || rec.Version != 16 {
			t.Errorf("digest %d: version %v after 16 puts, %v", j, rec, err)
		}
	}
}

func testStoreRematches(t *testing.T, f Factory) {
	ctx := context.Background()
	s, reopen := f(t)
	a, b, c := dg("a"), dg("b"), dg("c")
	orig := report(3, "CVE-1 HIGH fixed")
	for _, d := range []digest.Digest{a, b, c} {
		if err := s.Put(ctx, d, reports.Scan{Status: reports.Done}, orig, []string{"npm\x00p0"}, -1); err != nil {
			t.Fatal(err)
		}
	}
	// b is rescanned after its re-match was computed: its re-match must
	// not overwrite the newer scan.
	if err := s.Put(ctx, b, reports.Scan{Status: reports.Done}, report(3, "CVE-9 LOW fixed"), []string{"npm\x00p0"}, -1); err != nil {
		t.Fatal(err)
	}
	db := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	newer := report(3, "CVE-1 HIGH fixed", "CVE-2 CRITICAL affected")
	var batch []reports.Rematched
	for _, d := range []digest.Digest{a, b, c} {
		batch = append(batch, reports.Rematched{Digest: d, Scan: reports.Scan{Status: reports.Done, DBUpdatedAt: db}, Report: newer, IfVersion: 1})
	}
	stored, err := s.StoreRematches(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stored, []digest.Digest{a, c}) {
		t.Errorf("stored %v, want a and c (b moved on)", stored)
	}
	for _, st := range []reports.Store{s, reopen()} {
		rec, err := st.Get(ctx, a, true)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Version != 2 || rec.Summary.Critical != 1 || len(rec.Report.Findings) != 2 || !rec.Scan.DBUpdatedAt.Equal(db) ||
			len(rec.Report.Inventory.Packages) != 3 || rec.Report.Inventory.Packages[2].Name != "p2" {
			t.Errorf("a after its re-match: version %d, summary %+v, findings %d, inventory %d packages",
				rec.Version, rec.Summary, len(rec.Report.Findings), len(rec.Report.Inventory.Packages))
		}
		if got, _ := st.Affected(ctx, []string{"npm\x00p0"}); len(got) != 3 {
			t.Errorf("lookup keys after re-matches: %v", got)
		}
		if rec, _ := st.Get(ctx, b, true); rec.Version != 2 || rec.Report.Findings[0].ID != "CVE-9" {
			t.Errorf("b's newer scan was overwritten: %+v", rec.Report.Findings)
		}
	}
	if got, err := s.StoreRematches(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("StoreRematches(nil) = %v, %v", got, err)
	}
}

func testRematchInputs(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	a, b := dg("a"), dg("b")
	r := report(4, "CVE-1 HIGH fixed", "GHSA-2 LOW affected")
	r.Findings[0].Aliases = []string{"GHSA-x"}
	r.Findings[0].Package = r.Inventory.Packages[0]
	r.Findings[1].Package = r.Inventory.Packages[3]
	db := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	if err := s.Put(ctx, a, reports.Scan{Status: reports.Done, DBUpdatedAt: db}, r, nil, -1); err != nil {
		t.Fatal(err)
	}
	s.SetScan(ctx, b, reports.Scan{Status: reports.Pending}) // no report: left out
	ins, err := s.RematchInputs(ctx, []digest.Digest{a, b, dg("unknown")})
	if err != nil || len(ins) != 1 {
		t.Fatalf("RematchInputs = %d inputs, %v", len(ins), err)
	}
	in := ins[0]
	if in.Digest != a || in.Version != 1 || !in.Scan.DBUpdatedAt.Equal(db) || len(in.Inventory.Packages) != 4 || in.Inventory.Packages[3].Name != "p3" {
		t.Errorf("input %+v", in)
	}
	want := []reports.FindingKey{
		{Package: reports.PackageKey(&r.Inventory.Packages[0]), IDs: []string{"CVE-1", "GHSA-x"}},
		{Package: reports.PackageKey(&r.Inventory.Packages[3]), IDs: []string{"GHSA-2"}},
	}
	if fmt.Sprint(in.Findings) != fmt.Sprint(want) {
		t.Errorf("finding keys %v, want %v", in.Findings, want)
	}
	// What the scan found in the image itself (secrets) survives re-matches.
	withSecret := *report(4)
	withSecret.Scanners = []string{"vuln", "secret"}
	withSecret.Secrets = []secret.Finding{{RuleID: "private-key", Severity: "CRITICAL", Match: "-----BEGIN ****"}}
	if err := s.Put(ctx, dg("s"), reports.Scan{Status: reports.Done}, &withSecret, nil, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StoreRematches(ctx, []reports.Rematched{{Digest: dg("s"), Scan: reports.Scan{Status: reports.Done, DBUpdatedAt: db},
		Report: report(4, "CVE-7 HIGH fixed"), IfVersion: 1}}); err != nil {
		t.Fatal(err)
	}
	if rec, _ := s.Get(ctx, dg("s"), true); len(rec.Report.Secrets) != 1 || rec.Report.Secrets[0].RuleID != "private-key" ||
		len(rec.Report.Scanners) != 2 || len(rec.Report.Findings) != 1 || rec.Summary.Secrets != 1 {
		t.Errorf("after a re-match the secrets are %+v (scanners %v, findings %d, summary %+v)",
			rec.Report.Secrets, rec.Report.Scanners, len(rec.Report.Findings), rec.Summary)
	}
	// After a re-match the keys are the new findings'.
	r2 := report(4, "CVE-3 CRITICAL fixed")
	r2.Findings[0].Package = r.Inventory.Packages[1]
	if _, err := s.StoreRematches(ctx, []reports.Rematched{{Digest: a, Scan: in.Scan, Report: r2, IfVersion: 1}}); err != nil {
		t.Fatal(err)
	}
	ins, _ = s.RematchInputs(ctx, []digest.Digest{a})
	if len(ins) != 1 || len(ins[0].Findings) != 1 || ins[0].Findings[0].IDs[0] != "CVE-3" {
		t.Errorf("after a re-match: %+v", ins)
	}
}

// realReport reads the RealReport fixture.
func realReport(t *testing.T) match.Report {
	t.Helper()
	raw, err := os.ReadFile(RealReport)
	if err != nil {
		t.Fatalf("real report fixture: %v", err)
	}
	var r match.Report
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("real report fixture: %v", err)
	}
	return r
}

// testRealReport stores a real report (kitchen-sink's, every kind of
// field) and reads it back unchanged.
func testRealReport(t *testing.T, f Factory) {
	r := realReport(t)
	if len(r.Findings) == 0 || len(r.Inventory.Packages) < 100 {
		t.Fatalf("fixture has %d findings, %d packages: not the real report", len(r.Findings), len(r.Inventory.Packages))
	}
	ctx := context.Background()
	s, reopen := f(t)
	d := dg("kitchen-sink")
	if err := s.Put(ctx, d, reports.Scan{Status: reports.Done}, &r, nil, -1); err != nil {
		t.Fatal(err)
	}
	rec, err := reopen().Get(ctx, d, true)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(&r)
	got, _ := json.Marshal(rec.Report)
	if string(got) != string(want) {
		t.Errorf("the report changed in the store:\n got %.400s\nwant %.400s", got, want)
	}
	ins, err := s.RematchInputs(ctx, []digest.Digest{d})
	if err != nil || len(ins) != 1 {
		t.Fatal(err)
	}
	invWant, _ := json.Marshal(&r.Inventory)
	invGot, _ := json.Marshal(&ins[0].Inventory)
	if string(invGot) != string(invWant) {
		t.Error("the inventory changed in the store")
	}
}

func testMarkPending(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	d := dg("img")
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	if err := s.MarkPending(ctx, d, t0); err != nil {
		t.Fatal(err)
	}
	if rec, err := s.Get(ctx, d, false); err != nil || rec.Scan.Status != reports.Pending {
		t.Fatalf("a new digest marked pending: %+v, %v", rec, err)
	}
	// The job started after it was queued and finished: marking it
	// pending late must not hide that.
	done := reports.Scan{Status: reports.Done, StartedAt: t0.Add(time.Second), FinishedAt: t0.Add(2 * time.Second)}
	if err := s.Put(ctx, d, done, report(1), nil, -1); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkPending(ctx, d, t0); err != nil {
		t.Fatal(err)
	}
	if rec, _ := s.Get(ctx, d, false); rec.Scan.Status != reports.Done {
		t.Errorf("a late mark overwrote a scan that started after the job was queued: %+v", rec.Scan)
	}
	// A rescan queued later marks it pending, keeping the report.
	if err := s.MarkPending(ctx, d, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if rec, _ := s.Get(ctx, d, true); rec.Scan.Status != reports.Pending || rec.Report == nil || rec.Version != 1 {
		t.Errorf("a rescan's mark: %+v (report kept: %v)", rec.Scan, rec.Report != nil)
	}
}

// testVulnerable: the vulnerability index answers by primary id and by
// alias, case-insensitively, follows Put, StoreRematches and Delete, and
// survives a reopen.
func testVulnerable(t *testing.T, f Factory) {
	ctx := context.Background()
	s, reopen := f(t)
	done := reports.Scan{Status: reports.Done}
	withAlias := func(r *match.Report, alias string) *match.Report {
		r.Findings[0].Aliases = []string{alias}
		return r
	}
	a, b, c := dg("a"), dg("b"), dg("c")
	for _, p := range []struct {
		d digest.Digest
		r *match.Report
	}{
		{a, withAlias(report(1, "CVE-2026-1 CRITICAL fixed", "CVE-2026-2 LOW affected"), "GHSA-aaaa-bbbb-cccc")},
		{b, report(1, "GHSA-aaaa-bbbb-cccc HIGH fixed")},
		{c, report(1, "CVE-2026-2 LOW affected")},
	} {
		if err := s.Put(ctx, p.d, done, p.r, nil, -1); err != nil {
			t.Fatal(err)
		}
	}
	sorted := func(ds ...digest.Digest) []digest.Digest { slices.Sort(ds); return ds }
	check := func(st reports.Store, id string, want []digest.Digest) {
		t.Helper()
		got, err := st.Vulnerable(ctx, id)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Vulnerable(%q) = %v, %v; want %v", id, got, err, want)
		}
	}
	check(s, "CVE-2026-1", []digest.Digest{a})
	check(s, "cve-2026-1", []digest.Digest{a})
	check(s, "GHSA-AAAA-BBBB-CCCC", sorted(a, b))
	check(s, "CVE-2026-2", sorted(a, c))
	check(s, "CVE-2026-404", nil)
	check(s, "", nil)
	// A rescan replaces the findings; a re-match too; a delete forgets.
	if err := s.Put(ctx, a, done, report(1, "CVE-2026-3 MEDIUM fixed"), nil, -1); err != nil {
		t.Fatal(err)
	}
	check(s, "CVE-2026-1", nil)
	check(s, "GHSA-aaaa-bbbb-cccc", []digest.Digest{b})
	// Several reports in one batch; one of them stale (a newer scan
	// replaced it), so neither it nor its index rows change.
	stored, err := s.StoreRematches(ctx, []reports.Rematched{
		{Digest: c, Scan: done, Report: report(1, "CVE-2026-1 CRITICAL fixed"), IfVersion: 1},
		{Digest: b, Scan: done, Report: report(1, "CVE-2026-6 HIGH fixed"), IfVersion: 1},
		{Digest: a, Scan: done, Report: report(1, "CVE-2026-5 HIGH fixed"), IfVersion: 99},
	})
	if err != nil || len(stored) != 2 {
		t.Fatalf("StoreRematches: %v, %v", stored, err)
	}
	check(s, "CVE-2026-2", nil)
	check(s, "CVE-2026-1", []digest.Digest{c})
	check(s, "CVE-2026-6", []digest.Digest{b})
	check(s, "GHSA-aaaa-bbbb-cccc", nil)
	check(s, "CVE-2026-5", nil)
	check(s, "CVE-2026-3", []digest.Digest{a})
	if err := s.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	check(s, "CVE-2026-6", nil)
	r := reopen()
	check(r, "CVE-2026-1", []digest.Digest{c})
	check(r, "CVE-2026-3", []digest.Digest{a})
}

// testVulnerableKept: a re-match that keeps some of a report's ids, drops
// some and adds some leaves the index naming exactly the new ones (a store
// may write the index as a diff), whatever else the batch holds: a report
// left with no findings, one unchanged, one stale, ids that differ only
// in case and an alias equal to another finding's id.
func testVulnerableKept(t *testing.T, f Factory) {
	ctx := context.Background()
	s, reopen := f(t)
	done := reports.Scan{Status: reports.Done}
	a, b, c, d := dg("a"), dg("b"), dg("c"), dg("d")
	for _, p := range []struct {
		d digest.Digest
		r *match.Report
	}{
		{a, report(1, "CVE-2026-1 HIGH fixed", "CVE-2026-2 LOW fixed", "CVE-2026-3 LOW fixed")},
		{b, report(1, "CVE-2026-1 HIGH fixed", "CVE-2026-4 LOW fixed")},
		{c, report(1, "CVE-2026-1 HIGH fixed", "CVE-2026-2 LOW fixed")},
		{d, report(1, "CVE-2026-2 LOW fixed")},
	} {
		if err := s.Put(ctx, p.d, done, p.r, nil, -1); err != nil {
			t.Fatal(err)
		}
	}
	// a keeps CVE-2026-1 and CVE-2026-3, drops CVE-2026-2 and gains
	// CVE-2026-5, whose aliases repeat it in lower case and name
	// CVE-2026-3 again.
	ra := report(1, "CVE-2026-1 HIGH fixed", "cve-2026-3 LOW fixed", "CVE-2026-5 CRITICAL affected")
	ra.Findings[2].Aliases = []string{"cve-2026-5", "CVE-2026-3", "GHSA-kept-new-1"}
	stored, err := s.StoreRematches(ctx, []reports.Rematched{
		{Digest: a, Scan: done, Report: ra, IfVersion: 1},
		{Digest: b, Scan: done, Report: report(1), IfVersion: 1},
		{Digest: c, Scan: done, Report: report(1, "CVE-2026-1 HIGH fixed", "CVE-2026-2 LOW fixed"), IfVersion: 1},
		{Digest: d, Scan: done, Report: report(1, "CVE-2026-6 LOW fixed"), IfVersion: 7},
	})
	if err != nil || len(stored) != 3 {
		t.Fatalf("StoreRematches = %v, %v; want a, b and c stored", stored, err)
	}
	want := map[string][]digest.Digest{
		"CVE-2026-1":      {a, c},
		"CVE-2026-2":      {c, d},
		"CVE-2026-3":      {a},
		"CVE-2026-4":      nil,
		"CVE-2026-5":      {a},
		"GHSA-KEPT-NEW-1": {a},
		"CVE-2026-6":      nil,
	}
	check := func(when string, st reports.Store) {
		t.Helper()
		for id, ds := range want {
			ds = slices.Clone(ds)
			slices.Sort(ds)
			if got, err := st.Vulnerable(ctx, id); err != nil || !slices.Equal(got, ds) {
				t.Errorf("%s: Vulnerable(%q) = %v, %v; want %v", when, id, got, err, ds)
			}
		}
	}
	check("after the re-match", s)
	if _, err := s.IndexVulnerabilities(ctx); err != nil {
		t.Fatal(err)
	}
	check("index caught up", s)
	// A rescan keeps one id and drops the rest.
	if err := s.Put(ctx, a, done, report(1, "CVE-2026-5 CRITICAL affected"), nil, -1); err != nil {
		t.Fatal(err)
	}
	want["CVE-2026-1"], want["CVE-2026-3"], want["GHSA-KEPT-NEW-1"] = []digest.Digest{c}, nil, nil
	check("after a rescan", s)
	check("reopened", reopen())
}

// testDeltaRematch stores a delta re-match of a real report (some stored
// findings kept as they are encoded, some dropped, one added) and reads
// back exactly what storing the whole re-matched report gives: findings,
// warnings, summary, finding keys and the vulnerability index.
func testDeltaRematch(t *testing.T, f Factory) {
	r := realReport(t)
	if len(r.Findings) < 10 {
		t.Fatalf("fixture has %d findings", len(r.Findings))
	}
	ctx := context.Background()
	s, reopen := f(t)
	delta, full := dg("delta"), dg("full")
	for _, d := range []digest.Digest{delta, full} {
		if err := s.Put(ctx, d, reports.Scan{Status: reports.Done}, &r, nil, -1); err != nil {
			t.Fatal(err)
		}
	}
	ins, err := s.RematchInputs(ctx, []digest.Digest{delta})
	if err != nil || len(ins) != 1 {
		t.Fatalf("RematchInputs = %d, %v", len(ins), err)
	}
	if want := reports.Summarize(&r); ins[0].Summary != want {
		t.Errorf("input summary %+v, want %+v", ins[0].Summary, want)
	}
	// Findings 3 and 4 are matched again: 3 is gone, 4 comes back with
	// another severity and a new flaw beside it.
	dropped := r.Findings[3]
	again := r.Findings[4]
	again.Severity = match.SeverityCritical
	added := again
	added.ID, added.Aliases = "CVE-2099-1", nil
	cur := &match.Report{SchemaVersion: r.SchemaVersion, Inventory: r.Inventory, MatchedAt: time.Date(2026, 12, 7, 1, 2, 3, 4, time.UTC),
		Findings: []match.Finding{again, added}, Warnings: []string{"a warning of the new match"}}
	kept := []match.Piece{{Start: 0, End: 3}, {New: true, Start: 0, End: 2}, {Start: 5, End: len(r.Findings)}}
	whole := *cur
	whole.Findings = match.Splice(r.Findings, cur.Findings, kept)
	db := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	st := reports.Scan{Status: reports.Done, DBUpdatedAt: db}
	batch := []reports.Rematched{
		{Digest: delta, Scan: st, Report: cur, IfVersion: 1, Kept: kept, Prev: &ins[0]},
		{Digest: full, Scan: st, Report: &whole, IfVersion: 1},
	}
	if stored, err := s.StoreRematches(ctx, batch); err != nil || len(stored) != 2 {
		t.Fatalf("StoreRematches = %v, %v", stored, err)
	}
	if batch[0].Summary != batch[1].Summary {
		t.Errorf("summary of the delta %+v, of the whole report %+v", batch[0].Summary, batch[1].Summary)
	}
	// The index answers exactly while a store leaves it behind, once it
	// is caught up, and after reopening.
	caughtUp := func() reports.Store {
		if _, err := s.IndexVulnerabilities(ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := s.IndexVulnerabilities(ctx); err != nil || n != 0 {
			t.Fatalf("IndexVulnerabilities after catching up = %d, %v", n, err)
		}
		return s
	}
	for _, st := range []reports.Store{s, caughtUp(), reopen()} {
		a, err := st.Get(ctx, delta, true)
		if err != nil {
			t.Fatal(err)
		}
		b, err := st.Get(ctx, full, true)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(a.Report)
		want, _ := json.Marshal(b.Report)
		if string(got) != string(want) {
			t.Errorf("delta stored:\n%.600s\nwhole stored:\n%.600s", got, want)
		}
		if a.Summary != b.Summary || a.Summary.Critical != reports.Summarize(&whole).Critical {
			t.Errorf("summaries: delta %+v, whole %+v", a.Summary, b.Summary)
		}
		ia, _ := st.RematchInputs(ctx, []digest.Digest{delta})
		ib, _ := st.RematchInputs(ctx, []digest.Digest{full})
		if fmt.Sprint(ia[0].Findings) != fmt.Sprint(ib[0].Findings) {
			t.Errorf("finding keys: delta %v, whole %v", ia[0].Findings, ib[0].Findings)
		}
		for _, id := range []string{added.ID, dropped.ID, r.Findings[0].ID} {
			ds, err := st.Vulnerable(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			want := slices.ContainsFunc(reports.FindingIDs(&whole), func(x string) bool { return strings.EqualFold(x, id) })
			if slices.Contains(ds, delta) != want || slices.Contains(ds, full) != want {
				t.Errorf("images with %s: %v, want both (%s, %s): %v", id, ds, delta, full, want)
			}
		}
	}
	// A delta whose stored findings are not what it read is refused.
	ins[0].Findings = ins[0].Findings[1:]
	if _, err := s.StoreRematches(ctx, []reports.Rematched{{Digest: delta, Scan: st, Report: cur, IfVersion: 2, Kept: kept, Prev: &ins[0]}}); err == nil {
		t.Error("a delta over findings that do not match their keys was stored")
	}
}
