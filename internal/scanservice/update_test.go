package scanservice

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

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
