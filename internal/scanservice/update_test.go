package scanservice

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/vulndb"
)

// TestUpdateRequestedWhileOneRuns: a requested update is not absorbed by
// one already queued or running (which may have read the feeds before
// they changed); it runs unless an update started after the request, and
// scheduled updates still collapse into one.
func TestUpdateRequestedWhileOneRuns(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// The harness's workers stop: the jobs below are inserted, not run.
	h.stopWorkers()
	insert := func(args UpdateDBArgs) *rivertype.JobInsertResult {
		t.Helper()
		res, err := h.queue.Insert(ctx, args, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if first, again := insert(UpdateDBArgs{}), insert(UpdateDBArgs{}); !again.UniqueSkippedAsDuplicate || again.Job.ID != first.Job.ID {
		t.Errorf("a second scheduled update was queued beside the first")
	}
	t1 := time.Now().UTC()
	a, b := insert(UpdateDBArgs{RequestedAt: t1}), insert(UpdateDBArgs{RequestedAt: t1.Add(time.Millisecond)})
	if a.UniqueSkippedAsDuplicate || b.UniqueSkippedAsDuplicate {
		t.Errorf("a requested update was absorbed by another (skipped: %v, %v)", a.UniqueSkippedAsDuplicate, b.UniqueSkippedAsDuplicate)
	}

	// Run by hand: the first request updates; a request made before that
	// update started is covered by it; one made after it runs again and
	// sees the feed's new record.
	w := &updateWorker{s: h.svc}
	job := func(at time.Time) *river.Job[UpdateDBArgs] {
		return &river.Job[UpdateDBArgs]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: 3}, Args: UpdateDBArgs{RequestedAt: at}}
	}
	h.writeFeed(map[string][2]string{"GHSA-one": {"lodash", "4.17.21"}})
	before := time.Now().UTC()
	if err := w.Work(ctx, job(before)); err != nil {
		t.Fatal(err)
	}
	first := h.db.Status().Info.UpdatedAt
	h.writeFeed(map[string][2]string{"GHSA-one": {"lodash", "4.17.21"}, "GHSA-two": {"minimist", "1.2.6"}})
	if err := w.Work(ctx, job(before.Add(-time.Second))); err != nil {
		t.Fatal(err)
	}
	if got := h.db.Status().Info; !got.UpdatedAt.Equal(first) {
		t.Errorf("a request older than the last update ran again (database of %v, want %v)", got.UpdatedAt, first)
	}
	if err := w.Work(ctx, job(time.Now().UTC())); err != nil {
		t.Fatal(err)
	}
	if got := h.db.Status().Info; got.UpdatedAt.Equal(first) || got.Records != 2 {
		t.Errorf("a request made after the last update did not update: %d records, database of %v", got.Records, got.UpdatedAt)
	}
}

// TestRematchArgsHoldNoNUL: the changed keys a re-match job carries are
// stored as river job arguments, which PostgreSQL keeps as jsonb: it
// refuses the NUL every vulndb key holds, so none may reach the JSON.
func TestRematchArgsHoldNoNUL(t *testing.T) {
	b, err := json.Marshal(RematchArgs{Keys: deltaKeys([]string{vulndb.Key("npm", "lodash"), vulndb.Key("Debian:12", "openssl")})})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(`\u0000`)) {
		t.Errorf("job arguments hold a NUL: %s", b)
	}
}

// TestCoverageChangeRematches: a database that gains the records of a
// release changes the reports of that release's images even where none
// of their keys changed (they were unmatchable, and are now matched and
// clean), so those reports are re-matched too.
func TestCoverageChangeRematches(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.writeFeed(map[string][2]string{"GHSA-one": {"lodash", "4.17.21"}})
	if _, err := h.db.Update(ctx); err != nil {
		t.Fatal(err)
	}
	inv := inventory.Inventory{Distro: &inventory.Distro{ID: "debian", VersionID: "12"}, Packages: []inventory.Package{
		{Ecosystem: inventory.Deb, Name: "openssl", Version: "3.0.11-1~deb12u2", SourceName: "openssl", SourceVersion: "3.0.11-1~deb12u2", Analyzer: "dpkg"},
		{Ecosystem: inventory.NPM, Name: "lodash", Version: "4.17.20", Analyzer: "npm"},
	}}
	gen := h.db.Acquire()
	rep, err := h.svc.engine(gen).Match(ctx, &inv)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("debian image")
	if err := h.reports.Put(ctx, d, reports.Scan{Status: reports.Done, DBUpdatedAt: gen.Info.UpdatedAt}, rep, lookupKeys(inv), -1); err != nil {
		t.Fatal(err)
	}
	gen.Release()
	uncovered := func() bool {
		return slices.ContainsFunc(h.report(d).Report.Warnings, func(w string) bool { return strings.Contains(w, "no Debian:12 records") })
	}
	if !uncovered() {
		t.Fatalf("before: no warning that Debian 12 is not covered: %q", h.report(d).Report.Warnings)
	}

	// The feed gains Debian 12, with a record for another package.
	deb := filepath.Join(h.feed, "Debian:12")
	if err := os.MkdirAll(deb, 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("DSA-1.json")
	json.NewEncoder(w).Encode(osv.Vulnerability{ID: "DSA-1", Modified: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Affected: []osv.Affected{{Package: osv.Package{Ecosystem: "Debian:12", Name: "zlib"},
			Ranges: []osv.Range{{Type: osv.RangeEcosystem, Events: []osv.Event{{Introduced: "0"}, {Fixed: "1:1.2.13.dfsg-1"}}}}}}})
	zw.Close()
	if err := os.WriteFile(filepath.Join(deb, "all.zip"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.feed, "ecosystems.txt"), []byte("npm\nDebian:12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ch, err := h.svc.UpdateDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Coverage, []string{"Debian:12"}) {
		t.Errorf("coverage change %q, want Debian:12", ch.Coverage)
	}
	h.waitIdle()
	if rec := h.report(d); !rec.Scan.DBUpdatedAt.Equal(ch.To) || uncovered() {
		t.Errorf("after: report matched against the database of %v (want %v), warnings %q", rec.Scan.DBUpdatedAt, ch.To, rec.Report.Warnings)
	}
}
