package scanservice

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"berth.dev/berth/internal/backend"
	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers"
	"berth.dev/berth/internal/jobs"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/vulndb/live"
)

// harness is a service over real stores in a temporary data directory,
// with a local OSV feed folder as its only source.
type harness struct {
	t       testing.TB
	svc     *Service
	meta    meta.Store
	blobs   blob.Store
	reports reports.Store
	db      *live.DB
	queue   *jobs.Queue
	feed    string

	mu      sync.Mutex
	notices []Notice
	// onStored, when set, hears Options.Stored (stageHarness).
	onStored func(digest.Digest)
}

// newHarness starts a service on fresh stores. Its job queue polls every
// 20 ms, so that tests see retried and scheduled jobs soon; configure
// changes that (the benchmarks take the server's defaults).
func newHarness(t testing.TB, configure ...func(*jobs.Config)) *harness {
	t.Helper()
	return newHarnessOn(t, backend.SQLite, configure...)
}

// newHarnessOn is newHarness with the stores the server would open for
// storage.meta metaURL (backend.SQLite, or a postgres:// URL for the
// reports and the job queue in that database), as internal/backend
// chooses them.
func newHarnessOn(t testing.TB, metaURL string, configure ...func(*jobs.Config)) *harness {
	t.Helper()
	ctx := context.Background()
	// Not t.TempDir: a fuzz target's test names hold '#', which a SQLite
	// path must not.
	dir, err := os.MkdirTemp("", "scanservice-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &harness{t: t, feed: filepath.Join(dir, "feed")}
	set, err := backend.Open(ctx, backend.Config{Dir: dir, Meta: metaURL})
	if err != nil {
		t.Fatal(err)
	}
	h.meta, h.blobs = set.Meta, set.Blobs
	if h.reports, err = set.OpenReports(ctx); err != nil {
		set.Close()
		t.Fatal(err)
	}
	if h.db, err = live.Open(live.Config{Dir: filepath.Join(dir, "vulndb"), Sources: []string{h.feed}}); err != nil {
		t.Fatal(err)
	}
	qcfg := set.Jobs(jobs.Config{PollInterval: 20 * time.Millisecond, RetryBase: 20 * time.Millisecond, RetryMax: time.Second})
	for _, c := range configure {
		c(&qcfg)
	}
	if h.queue, err = jobs.Open(ctx, qcfg); err != nil {
		t.Fatal(err)
	}
	cache, err := inventory.OpenCache(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	h.svc = New(Options{Meta: h.meta, Blobs: h.blobs, Reports: h.reports, DB: h.db, Queue: h.queue,
		Inventory: &inventory.Scanner{Analyzers: analyzers.All(), Cache: cache}, SBOMReferrers: true, ToolVersion: "test",
		Notify: func(_ context.Context, n Notice) {
			h.mu.Lock()
			h.notices = append(h.notices, n)
			h.mu.Unlock()
		}})
	h.svc.Register(h.queue)
	if err := h.queue.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.queue.Stop(stop)
		h.queue.Close()
		h.db.Close()
		h.reports.Close()
		set.Close()
	})
	return h
}

// stopWorkers stops the harness's job workers: jobs queued from then on
// wait, so a test can run one by hand.
func (h *harness) stopWorkers() {
	h.t.Helper()
	stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.queue.Stop(stop); err != nil {
		h.t.Fatal(err)
	}
}

// feedOf writes the OSV feed with the given npm records: id → (package, fixed).
func (h *harness) writeFeed(recs map[string][2]string) {
	h.t.Helper()
	npm := filepath.Join(h.feed, "npm")
	if err := os.MkdirAll(npm, 0o755); err != nil {
		h.t.Fatal(err)
	}
	os.WriteFile(filepath.Join(h.feed, "ecosystems.txt"), []byte("npm\n"), 0o644)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range recs {
			if !yield(id) {
				return
			}
		}
	}) {
		r := osv.Vulnerability{ID: id, Modified: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Summary: "flaw " + id,
			Affected: []osv.Affected{{Package: osv.Package{Ecosystem: "npm", Name: recs[id][0]},
				Ranges: []osv.Range{{Type: osv.RangeSemver, Events: []osv.Event{{Introduced: "0"}, {Fixed: recs[id][1]}}}}}},
			DatabaseSpecific: json.RawMessage(`{"severity":"HIGH"}`)}
		w, _ := zw.Create(id + ".json")
		json.NewEncoder(w).Encode(r)
	}
	zw.Close()
	if err := os.WriteFile(filepath.Join(npm, "all.zip"), buf.Bytes(), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// push stores an image holding the npm packages (name@version) in repo,
// as the registry would: blobs first, then the manifest, tagged.
func (h *harness) push(repo, tag string, pkgs ...string) digest.Digest {
	h.t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	add := func(name, body string) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	for _, p := range pkgs {
		var name, ver string
		fmt.Sscanf(p, "%s %s", &name, &ver)
		add("app/node_modules/"+name+"/package.json", fmt.Sprintf(`{"name":%q,"version":%q,"license":"MIT"}`, name, ver))
	}
	tw.Close()
	return h.pushLayer(repo, tag, tb.Bytes(), types.OCIUncompressedLayer)
}

// pushLayer stores a one-layer image whose layer blob is raw, of media
// type mt.
func (h *harness) pushLayer(repo, tag string, raw []byte, mt types.MediaType) digest.Digest {
	h.t.Helper()
	ctx := context.Background()
	tb := bytes.NewBuffer(raw)
	layer := static.NewLayer(tb.Bytes(), mt)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		h.t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, _ := img.RawConfigFile()
	cfgDigest, _ := img.ConfigName()
	ld, _ := layer.Digest()
	for _, b := range []struct {
		d       digest.Digest
		content []byte
	}{{digest.Digest(cfgDigest.String()), cfg}, {digest.Digest(ld.String()), tb.Bytes()}} {
		if err := h.meta.TouchBlob(ctx, b.d); err != nil {
			h.t.Fatal(err)
		}
		if _, err := h.blobs.Put(ctx, b.d, bytes.NewReader(b.content)); err != nil {
			h.t.Fatal(err)
		}
		if err := h.meta.LinkBlob(ctx, repo, b.d, int64(len(b.content))); err != nil {
			h.t.Fatal(err)
		}
	}
	manifest, _ := img.RawManifest()
	d := digest.FromBytes(manifest)
	m := &meta.Manifest{Digest: d, MediaType: string(types.OCIManifestSchema1), ArtifactType: string(types.OCIConfigJSON), Content: manifest,
		References: []meta.Reference{{Digest: digest.Digest(cfgDigest.String()), Kind: meta.RefBlob}, {Digest: digest.Digest(ld.String()), Kind: meta.RefLayer}}}
	if err := h.meta.PutManifest(ctx, repo, m, []string{tag}); err != nil {
		h.t.Fatal(err)
	}
	if err := h.svc.OnPush(ctx, repo, m); err != nil {
		h.t.Fatal(err)
	}
	return d
}

// waitIdle waits until the scan and maintenance queues have nothing left
// to do.
func (h *harness) waitIdle() {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		counts, err := h.queue.Counts(context.Background())
		if err != nil {
			h.t.Fatal(err)
		}
		busy := 0
		for _, q := range counts {
			for _, st := range unfinished {
				busy += q[st]
			}
		}
		if busy == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Say which jobs, and why they were retried, so a failure on a loaded
	// machine can be told from a job that never ends.
	busy, err := h.queue.List(context.Background(), river.NewJobListParams().States(unfinished...).First(50))
	if err != nil {
		h.t.Fatal(err)
	}
	var jobs []string
	for _, j := range busy {
		line := fmt.Sprintf("%s #%d %s attempt %d", j.Kind, j.ID, j.State, j.Attempt)
		if n := len(j.Errors); n > 0 {
			line += ": " + j.Errors[n-1].Error
		}
		jobs = append(jobs, line)
	}
	h.t.Fatalf("queue still busy after 5 minutes:\n%s", strings.Join(jobs, "\n"))
}

// unfinished are the states of a job that has yet to end.
var unfinished = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled, rivertype.JobStatePending}

// waitKind waits until no job of kind is left to run.
func (h *harness) waitKind(kind string) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		left, err := h.queue.List(context.Background(), river.NewJobListParams().Kinds(kind).States(unfinished...).First(1))
		if err != nil {
			h.t.Fatal(err)
		}
		if len(left) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("%s jobs still queued after 5 minutes", kind)
}

func (h *harness) report(d digest.Digest) *reports.Record {
	h.t.Helper()
	rec, err := h.reports.Get(context.Background(), d, true)
	if err != nil {
		h.t.Fatal(err)
	}
	return rec
}

func findingIDs(r *match.Report) []string {
	var ids []string
	for _, f := range r.Findings {
		ids = append(ids, f.ID+"@"+f.Package.Name)
	}
	slices.Sort(ids)
	return ids
}

func (h *harness) takeNotices() []Notice {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.notices
	h.notices = nil
	return out
}

func TestScanOnPushAndRematch(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.writeFeed(map[string][2]string{"GHSA-lodash-1": {"lodash", "4.17.21"}})
	if _, err := h.svc.UpdateDB(ctx); err != nil {
		t.Fatal(err)
	}
	a := h.push("team/a", "v1", "lodash 4.17.20", "minimist 1.2.5")
	b := h.push("team/b", "v1", "qs 6.10.1")
	// The same image in a second repository is not scanned again.
	h.push("other/a", "latest", "lodash 4.17.20", "minimist 1.2.5")
	h.waitIdle()

	ra := h.report(a)
	if ra.Scan.Status != reports.Done || !slices.Equal(findingIDs(ra.Report), []string{"GHSA-lodash-1@lodash"}) || ra.Version != 1 {
		t.Fatalf("image a: %+v, findings %v, version %d", ra.Scan, findingIDs(ra.Report), ra.Version)
	}
	if rb := h.report(b); rb.Scan.Status != reports.Done || len(rb.Report.Findings) != 0 || rb.Summary.Packages != 1 {
		t.Fatalf("image b: %+v, findings %v", rb.Scan, findingIDs(rb.Report))
	}
	// Every repository holding a scanned image hears of its one result
	// (a repeat of the same notice, which receivers drop, is allowed: the
	// scan finishing and the push of an image already scanned may both
	// announce it).
	var completed []string
	seen := map[string]bool{}
	for _, n := range h.takeNotices() {
		key := n.Repository + "@" + n.Digest.String() + " " + n.Scan.FinishedAt.String()
		if n.Type == NoticeScanCompleted && !seen[key] {
			seen[key] = true
			completed = append(completed, n.Repository)
		}
	}
	slices.Sort(completed)
	if !slices.Equal(completed, []string{"other/a", "team/a", "team/b"}) {
		t.Errorf("scan.completed went to %v", completed)
	}
	// The SBOM referrer is attached in every repository holding the image.
	for _, repo := range []string{"team/a", "other/a"} {
		refs, err := h.meta.Referrers(ctx, repo, a, ArtifactTypeCycloneDX)
		if err != nil || len(refs) != 1 {
			t.Errorf("%s: SBOM referrers %v, %v", repo, refs, err)
		}
	}

	// A new advisory for minimist reaches image a only, and an advisory
	// for a package nobody has changes nothing.
	h.writeFeed(map[string][2]string{
		"GHSA-lodash-1":   {"lodash", "4.17.21"},
		"GHSA-minimist-2": {"minimist", "1.2.6"},
		"GHSA-nobody-3":   {"left-pad", "9.9.9"},
	})
	ch, err := h.svc.UpdateDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ch.KeysChanged != 2 {
		t.Errorf("update changed %d keys, want 2 (minimist, left-pad)", ch.KeysChanged)
	}
	h.waitIdle()
	ra = h.report(a)
	if !slices.Equal(findingIDs(ra.Report), []string{"GHSA-lodash-1@lodash", "GHSA-minimist-2@minimist"}) || ra.Version != 2 ||
		!ra.Scan.DBUpdatedAt.Equal(ch.To) {
		t.Errorf("image a after the update: %v, version %d, db %v (want %v)", findingIDs(ra.Report), ra.Version, ra.Scan.DBUpdatedAt, ch.To)
	}
	if rb := h.report(b); rb.Version != 1 {
		t.Errorf("image b was re-matched (version %d) though no key of it changed", rb.Version)
	}
	// The vulnerability index caught up behind the re-match.
	if n, err := h.reports.IndexVulnerabilities(ctx); err != nil || n != 0 {
		t.Errorf("after the re-match %d reports were still to index (%v)", n, err)
	}
	if got, err := h.reports.Vulnerable(ctx, "GHSA-minimist-2"); err != nil || !slices.Equal(got, []digest.Digest{a}) {
		t.Errorf("images with GHSA-minimist-2: %v, %v", got, err)
	}
	var news []Notice
	for _, n := range h.takeNotices() {
		if n.Type == NoticeVulnerabilitiesNew {
			news = append(news, n)
		}
	}
	slices.SortFunc(news, func(x, y Notice) int { return strings.Compare(x.Repository, y.Repository) })
	if len(news) != 2 || news[0].Repository != "other/a" || news[1].Repository != "team/a" ||
		len(news[1].New) != 1 || news[1].New[0].ID != "GHSA-minimist-2" || news[1].Digest != a ||
		!slices.Equal(news[1].Tags, []string{"v1"}) {
		t.Errorf("vulnerabilities.new notices: %+v", news)
	}
}

func TestScanFailuresAreRecorded(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.writeFeed(map[string][2]string{"GHSA-x": {"lodash", "4.17.21"}})
	if _, err := h.svc.UpdateDB(ctx); err != nil {
		t.Fatal(err)
	}
	d := h.push("team/broken", "v1", "lodash 4.17.20")
	h.waitIdle()
	// Corrupt the layer behind the registry's back and rescan: the layer
	// no longer hashes to its diffID.
	m, _ := h.meta.Manifest(ctx, "team/broken", d)
	var doc struct {
		Layers []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"layers"`
	}
	json.Unmarshal(m.Content, &doc)
	if err := h.blobs.Delete(ctx, doc.Layers[0].Digest); err != nil {
		t.Fatal(err)
	}
	h.takeNotices()
	if err := h.svc.Enqueue(ctx, "team/broken", d); err != nil {
		t.Fatal(err)
	}
	h.waitIdle()
	rec := h.report(d)
	if rec.Scan.Status != reports.Failed || rec.Scan.Error == "" || rec.Report == nil {
		t.Errorf("scan of an image with a missing layer: %+v (report kept: %v)", rec.Scan, rec.Report != nil)
	}
	var failed []Notice
	for _, n := range h.takeNotices() {
		if n.Type == NoticeScanFailed {
			failed = append(failed, n)
		}
	}
	if len(failed) != 1 || failed[0].Scan.Error == "" {
		t.Errorf("scan.failed notices: %+v", failed)
	}
}

func TestDeletedBeforeItsScanStoresNothing(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.writeFeed(map[string][2]string{"GHSA-x": {"lodash", "4.17.21"}})
	if _, err := h.svc.UpdateDB(ctx); err != nil {
		t.Fatal(err)
	}
	// Stop the workers so the scan waits, delete the image, then let it run.
	h.stopWorkers()
	d := h.push("team/gone", "v1", "lodash 4.17.20")
	if _, err := h.meta.DeleteManifest(ctx, "team/gone", d); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.OnDelete(ctx, d); err != nil {
		t.Fatal(err)
	}
	w := &scanWorker{s: h.svc}
	job := &river.Job[ScanArgs]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: 3}, Args: ScanArgs{Digest: d.String(), Repository: "team/gone"}}
	if err := w.Work(ctx, job); err != nil {
		t.Fatal(err)
	}
	if _, err := h.reports.Get(ctx, d, false); err == nil {
		t.Error("a report was stored for a manifest deleted before its scan")
	}
}

// The first database scans an image whose push's scan found no database,
// even while river has not yet recorded that scan's end (it records ends
// asynchronously, and a unique job still "running" absorbs a new one).
// The test runs the jobs by hand: the push's job stays queued in river's
// table after it ran, as it does between its end and the record of it.
func TestFirstDatabaseScansWhatItsPushCouldNot(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.stopWorkers()
	d := h.push("team/early", "v1", "lodash 4.17.20")
	w := &scanWorker{s: h.svc}
	pushed := &river.Job[ScanArgs]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: 3}, Args: ScanArgs{Digest: d.String(), Repository: "team/early"}}
	if err := w.Work(ctx, pushed); err != nil {
		t.Fatalf("the scan without a database: %v", err)
	}
	if rec := h.report(d); rec.Scan.Status != reports.Pending {
		t.Fatalf("without a database the scan is %+v, want pending", rec.Scan)
	}

	h.writeFeed(map[string][2]string{"GHSA-lodash-1": {"lodash", "4.17.21"}})
	if ch, err := h.svc.UpdateDB(ctx); err != nil || !ch.First {
		t.Fatalf("first update: %+v, %v", ch, err)
	}
	if _, err := h.svc.ScanAll(ctx, true); err != nil {
		t.Fatal(err)
	}
	queued, err := h.queue.List(ctx, river.NewJobListParams().Kinds(ScanArgs{}.Kind()).States(rivertype.JobStateAvailable))
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range queued {
		var args ScanArgs
		if err := json.Unmarshal(row.EncodedArgs, &args); err != nil {
			t.Fatal(err)
		}
		if args == pushed.Args {
			continue // the push's, which already ran
		}
		if err := w.Work(ctx, &river.Job[ScanArgs]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: 3}, Args: args}); err != nil {
			t.Fatalf("scan %+v: %v", args, err)
		}
	}
	rec := h.report(d)
	if rec.Scan.Status != reports.Done || rec.Report == nil {
		t.Fatalf("after the first database the image's scan is %+v, want done", rec.Scan)
	}
	if got := findingIDs(rec.Report); !slices.Equal(got, []string{"GHSA-lodash-1@lodash"}) {
		t.Errorf("findings %v, want GHSA-lodash-1", got)
	}
}

// A scan queued because the image had no report, when a scan running
// then has stored one since, does not scan again; a rescan asked for
// does.
func TestScanQueuedForAMissingReportIsNotRepeated(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.writeFeed(map[string][2]string{"GHSA-lodash-1": {"lodash", "4.17.21"}})
	if _, err := h.svc.UpdateDB(ctx); err != nil {
		t.Fatal(err)
	}
	h.stopWorkers()
	seen := time.Now() // a push reads "no report" here, while another scan runs
	d := h.push("team/a", "v1", "lodash 4.17.20")
	w := &scanWorker{s: h.svc}
	run := func(args ScanArgs) {
		t.Helper()
		job := &river.Job[ScanArgs]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: 3, CreatedAt: time.Now()}, Args: args}
		if err := w.Work(ctx, job); err != nil {
			t.Fatal(err)
		}
	}
	run(ScanArgs{Digest: d.String(), Repository: "team/a"})
	if v := h.report(d).Version; v != 1 {
		t.Fatalf("first scan stored version %d", v)
	}
	run(ScanArgs{Digest: d.String(), Repository: "other/a", Seen: seen})
	if v := h.report(d).Version; v != 1 {
		t.Errorf("a scan queued for the missing report scanned again (version %d)", v)
	}
	run(ScanArgs{Digest: d.String(), Repository: "team/a"})
	if v := h.report(d).Version; v != 2 {
		t.Errorf("a rescan asked for did not scan (version %d)", v)
	}
}

// arrivingDB is a report store over which the first database arrives
// just before a pending status is written.
type arrivingDB struct {
	reports.Store
	arrive func()
}

func (a *arrivingDB) SetScan(ctx context.Context, d digest.Digest, st reports.Scan) error {
	if st.Status == reports.Pending && a.arrive != nil {
		a.arrive()
		a.arrive = nil
	}
	return a.Store.SetScan(ctx, d, st)
}

// A scan that found no database, when the first one arrives before it
// records so, runs again rather than leave the image pending.
func TestScanRunsAgainWhenTheDatabaseArrivesAsItEnds(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.stopWorkers()
	d := h.push("team/early", "v1", "lodash 4.17.20")
	h.writeFeed(map[string][2]string{"GHSA-lodash-1": {"lodash", "4.17.21"}})
	store := &arrivingDB{Store: h.reports, arrive: func() {
		if _, err := h.db.Update(ctx); err != nil {
			t.Error(err)
		}
	}}
	svc := New(Options{Meta: h.meta, Blobs: h.blobs, Reports: store, DB: h.db, Queue: h.queue,
		Inventory: &inventory.Scanner{Analyzers: analyzers.All()}, ToolVersion: "test"})
	w := &scanWorker{s: svc}
	job := &river.Job[ScanArgs]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: 3}, Args: ScanArgs{Digest: d.String(), Repository: "team/early"}}
	var snooze *river.JobSnoozeError
	if err := w.Work(ctx, job); !errors.As(err, &snooze) || snooze.Duration != 0 {
		t.Fatalf("the scan ended with %v, want to be run again at once", err)
	}
	if err := w.Work(ctx, job); err != nil {
		t.Fatal(err)
	}
	if rec := h.report(d); rec.Scan.Status != reports.Done || rec.Report == nil {
		t.Fatalf("the scan is %+v, want done", rec.Scan)
	}
}

func TestScannable(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    meta.Manifest
		want bool
	}{
		{"image", meta.Manifest{MediaType: mediaOCIManifest, Content: []byte(`{"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip"}]}`)}, true},
		{"docker image", meta.Manifest{MediaType: mediaDockerManifest, Content: []byte(`{"config":{"mediaType":"application/vnd.docker.container.image.v1+json"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip"}]}`)}, true},
		{"index", meta.Manifest{MediaType: mediaOCIIndex, Content: []byte(`{"manifests":[]}`)}, true},
		{"cosign signature", meta.Manifest{MediaType: mediaOCIManifest, Content: []byte(`{"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json"}]}`)}, false},
		{"attestation", meta.Manifest{MediaType: mediaOCIManifest, Content: []byte(`{"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[{"mediaType":"application/vnd.dsse.envelope.v1+json"}]}`)}, false},
		{"helm chart", meta.Manifest{MediaType: mediaOCIManifest, Content: []byte(`{"config":{"mediaType":"application/vnd.cncf.helm.config.v1+json"},"layers":[{"mediaType":"application/vnd.cncf.helm.chart.content.v1.tar+gzip"}]}`)}, false},
		{"artifact", meta.Manifest{MediaType: mediaOCIManifest, Content: []byte(`{"artifactType":"application/vnd.example","config":{"mediaType":"application/vnd.oci.empty.v1+json"},"layers":[]}`)}, false},
		{"referrer", meta.Manifest{MediaType: mediaOCIManifest, Subject: digest.FromString("x"), Content: []byte(`{"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[]}`)}, false},
		{"not JSON", meta.Manifest{MediaType: mediaOCIManifest, Content: []byte(`{`)}, false},
	} {
		if got := Scannable(&tc.m); got != tc.want {
			t.Errorf("%s: Scannable = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNewFindings(t *testing.T) {
	f := func(id string, sev match.Severity, pkg string, aliases ...string) match.Finding {
		return match.Finding{ID: id, Aliases: aliases, Severity: sev, Package: inventory.Package{Name: pkg, PURL: "pkg:npm/" + pkg}}
	}
	oldFindings := []match.Finding{f("GHSA-a", match.SeverityHigh, "lodash"), f("CVE-1", match.SeverityLow, "qs")}
	var old []reports.FindingKey
	for i := range oldFindings {
		old = append(old, reports.KeyOf(&oldFindings[i]))
	}
	cur := []match.Finding{
		f("CVE-9", match.SeverityHigh, "lodash", "GHSA-a"), // the same flaw under a new primary id
		f("CVE-1", match.SeverityLow, "qs"),
		f("CVE-1", match.SeverityLow, "minimist"), // a known id in a new package
		f("CVE-2", match.SeverityCritical, "qs"),
		f("CVE-3", match.SeverityMedium, "qs"),
	}
	var got []string
	for _, n := range newFindings(old, cur) {
		got = append(got, n.ID+"@"+n.Package)
	}
	want := []string{"CVE-2@qs", "CVE-3@qs", "CVE-1@minimist"}
	if !slices.Equal(got, want) {
		t.Errorf("new findings %v, want %v (most severe first)", got, want)
	}
}

// TestHostileLayersFailTheirScanOnly pushes an image whose layer is a
// gzip bomb and one whose layer is a truncated gzip stream beside a good
// image: each bad scan fails with its reason recorded, and the good one is
// scanned.
func TestHostileLayersFailTheirScanOnly(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.writeFeed(map[string][2]string{"GHSA-x": {"lodash", "4.17.21"}})
	if _, err := h.svc.UpdateDB(ctx); err != nil {
		t.Fatal(err)
	}
	// 256 MiB of zeros in one tar entry compress to ~250 KiB: past the
	// walker's compression-ratio limit.
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "zeros", Mode: 0o644, Size: 256 << 20, Typeflag: tar.TypeReg})
	zero := make([]byte, 1<<20)
	for range 256 {
		tw.Write(zero)
	}
	tw.Close()
	zw.Close()
	var good bytes.Buffer
	gw := gzip.NewWriter(&good)
	gtw := tar.NewWriter(gw)
	body := []byte(`{"name":"lodash","version":"4.17.20"}`)
	gtw.WriteHeader(&tar.Header{Name: "node_modules/lodash/package.json", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	gtw.Write(body)
	gtw.Close()
	gw.Close()
	truncated := good.Bytes()[:good.Len()/2]

	bombD := h.pushLayer("team/bomb", "v1", bomb.Bytes(), types.OCILayer)
	cutD := h.pushLayer("team/cut", "v1", truncated, types.OCILayer)
	okD := h.push("team/ok", "v1", "lodash 4.17.20")
	h.waitIdle()
	for _, c := range []struct {
		name string
		d    digest.Digest
		want string
	}{{"bomb", bombD, "limit"}, {"truncated", cutD, "EOF"}} {
		rec, err := h.reports.Get(ctx, c.d, false)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if rec.Scan.Status != reports.Failed || !strings.Contains(rec.Scan.Error, c.want) || rec.HasReport() {
			t.Errorf("%s: scan %+v, want failed naming %q", c.name, rec.Scan, c.want)
		}
	}
	if rec := h.report(okD); rec.Scan.Status != reports.Done || len(rec.Report.Findings) != 1 {
		t.Errorf("the good image beside them: %+v", rec.Scan)
	}
}
