package scanservice

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers"
)

// gatedBlobs holds the first read of a blob until release is closed, so a
// test can act while a scan is reading the image.
type gatedBlobs struct {
	blob.Store
	once    sync.Once
	opened  chan struct{}
	release chan struct{}
}

func (g *gatedBlobs) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	g.once.Do(func() { close(g.opened) })
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	return g.Store.Open(ctx, d)
}

// TestDeletedWhileItsScanRunsStoresNothing: a manifest deleted while its
// scan is reading the image leaves no report behind.
func TestDeletedWhileItsScanRunsStoresNothing(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.writeFeed(map[string][2]string{"GHSA-x": {"lodash", "4.17.21"}})
	if _, err := h.svc.UpdateDB(ctx); err != nil {
		t.Fatal(err)
	}
	// The harness's own workers stop, so only the scan below runs.
	h.stopWorkers()
	d := h.push("team/going", "v1", "lodash 4.17.20")

	gated := &gatedBlobs{Store: h.blobs, opened: make(chan struct{}), release: make(chan struct{})}
	svc := New(Options{Meta: h.meta, Blobs: gated, Reports: h.reports, DB: h.db, Queue: h.queue,
		Inventory: &inventory.Scanner{Analyzers: analyzers.All()}, ToolVersion: "test"})
	job := &river.Job[ScanArgs]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: 3}, Args: ScanArgs{Digest: d.String(), Repository: "team/going"}}
	done := make(chan error, 1)
	go func() { done <- (&scanWorker{s: svc}).Work(ctx, job) }()
	select {
	case <-gated.opened:
	case err := <-done:
		t.Fatalf("the scan ended (%v) before reading the image", err)
	case <-time.After(time.Minute):
		t.Fatal("the scan did not read the image in a minute")
	}
	if _, err := h.meta.DeleteManifest(ctx, "team/going", d); err != nil {
		t.Fatal(err)
	}
	if err := svc.OnDelete(ctx, d); err != nil {
		t.Fatal(err)
	}
	close(gated.release)
	select {
	case err := <-done:
		t.Logf("the scan job ended with %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the scan did not finish in a minute")
	}
	if rec, err := h.reports.Get(ctx, d, false); err == nil {
		t.Errorf("a report was stored for a manifest deleted while its scan ran: %+v", rec)
	}
}
