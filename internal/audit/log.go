package audit

import (
	"context"
	"crypto"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Options configures a Log.
type Options struct {
	// Retention prunes entries older than this; zero keeps everything.
	Retention time.Duration
	// Buffer is how many entries may wait to be written before Record
	// blocks; zero means 8192.
	Buffer int
	Logger *slog.Logger
}

// maxBatch bounds the entries written in one transaction, and gatherFor
// how long the writer waits for a batch to fill.
const (
	maxBatch  = 512
	gatherFor = 20 * time.Millisecond
)

// housekeeping is how often the Log prunes (with a retention) and logs its
// anchor, so that log shipping keeps an outside copy of the chain's tip.
const housekeeping = time.Hour

// Log appends entries to a Store from one goroutine, in batches, so that
// recording costs a request a channel send. It never drops an entry: when
// the buffer is full, Record waits.
type Log struct {
	store     Store
	signer    crypto.Signer
	log       *slog.Logger
	retention time.Duration

	mu     sync.RWMutex // held for reading by senders, for writing by Close
	closed bool
	queue  chan item
	done   chan struct{}

	// Owned by the writer goroutine.
	seq  int64
	prev string
}

// item is an entry to write, or a request to flush or prune (done set).
type item struct {
	entry Entry
	done  chan error
	// pruneBefore, when set on a request, prunes entries older than it.
	pruneBefore time.Time
}

// Open starts a Log over store; signer signs its checkpoints.
func Open(ctx context.Context, store Store, signer crypto.Signer, opts Options) (*Log, error) {
	l := &Log{store: store, signer: signer, log: opts.Logger, retention: opts.Retention, done: make(chan struct{})}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	buffer := opts.Buffer
	if buffer <= 0 {
		buffer = 8192
	}
	l.queue = make(chan item, buffer)
	last, ok, err := store.Last(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if ok {
		l.seq, l.prev = last.Seq, last.Hash
	} else {
		// Everything may have been pruned: continue from the checkpoint.
		cp, ok, err := store.Pruned(ctx)
		if err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		if ok {
			l.seq, l.prev = cp.Seq, cp.Hash
		}
	}
	go l.run()
	return l, nil
}

// Record queues e. Time defaults to now. After Close it is an error.
func (l *Log) Record(e Entry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.Result == "" {
		e.Result = Success
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	l.queue <- item{entry: e}
	return nil
}

// Flush waits until every entry recorded before it is stored.
func (l *Log) Flush(ctx context.Context) error {
	done := make(chan error, 1)
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	l.queue <- item{done: done}
	l.mu.RUnlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Prune removes entries older than cutoff now, after everything queued
// before it is stored. The retention does this hourly; this is for the
// operator's explicit request and for tests.
func (l *Log) Prune(ctx context.Context, cutoff time.Time) error {
	done := make(chan error, 1)
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	l.queue <- item{done: done, pruneBefore: cutoff}
	l.mu.RUnlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes what is queued and stops. Entries are never lost on a
// graceful shutdown: Close returns once they are stored (or the store
// failed, which it reports).
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.queue)
	l.mu.Unlock()
	<-l.done
	return nil
}

func (l *Log) run() {
	defer close(l.done)
	tick := time.NewTicker(housekeeping)
	defer tick.Stop()
	l.housekeep()
	batch := make([]Entry, 0, maxBatch)
	gather := time.NewTimer(gatherFor)
	gather.Stop()
	var next *item // a request that ended the previous batch
	for {
		var it item
		if next != nil {
			it, next = *next, nil
		} else {
			var ok bool
			select {
			case it, ok = <-l.queue:
			case <-tick.C:
				l.housekeep()
				continue
			}
			if !ok {
				return
			}
		}
		if it.done != nil {
			var err error
			if !it.pruneBefore.IsZero() {
				err = l.prune(context.Background(), it.pruneBefore)
			}
			it.done <- err
			continue
		}
		// Gather for a moment: one transaction and one signature per
		// batch instead of per entry is what lets the log keep up with
		// pulls. A flush or prune request, a full batch or a closing
		// queue ends the gathering early.
		batch = append(batch[:0], it.entry)
		gather.Reset(gatherFor)
	collect:
		for len(batch) < maxBatch {
			select {
			case more, ok := <-l.queue:
				if !ok {
					break collect
				}
				if more.done != nil {
					next = &more
					break collect
				}
				batch = append(batch, more.entry)
			case <-gather.C:
				break collect
			}
		}
		gather.Stop()
		l.write(coalesce(batch))
	}
}

// coalesce folds successful pulls that are alike in everything but time
// into one entry with a count: a fleet pulling one image, or a client
// pulling in a loop, costs one row per batch instead of one per pull.
func coalesce(batch []Entry) []Entry {
	type pullKey struct{ actor, ip, project, repo, digest, detail string }
	var seen map[pullKey]int
	out := batch[:0]
	for _, e := range batch {
		if e.Action != ActionPull || e.Result != Success {
			out = append(out, e)
			continue
		}
		k := pullKey{e.Actor, e.SourceIP, e.Project, e.Repository, e.Digest, e.Detail}
		if i, ok := seen[k]; ok {
			out[i].Count = max(out[i].Count, 1) + max(e.Count, 1)
			continue
		}
		if seen == nil {
			seen = map[pullKey]int{}
		}
		seen[k] = len(out)
		out = append(out, e)
	}
	return out
}

// write seals and stores a batch, retrying a failing store a few times;
// if it still fails the entries go to the process log, so they exist
// somewhere.
func (l *Log) write(batch []Entry) error {
	if len(batch) == 0 {
		return nil
	}
	seq, prev := l.seq, l.prev
	for i := range batch {
		seq++
		batch[i].Seq, batch[i].PrevHash = seq, prev
		batch[i].Hash = Hash(batch[i])
		prev = batch[i].Hash
	}
	last := batch[len(batch)-1]
	anchor, err := signCheckpoint(l.signer, kindAnchor, Checkpoint{Seq: last.Seq, Hash: last.Hash, Time: last.Time})
	if err == nil {
		for attempt, wait := 0, 50*time.Millisecond; attempt < 5; attempt, wait = attempt+1, wait*2 {
			if err = l.store.Append(context.Background(), batch, anchor); err == nil {
				l.seq, l.prev = seq, prev
				return nil
			}
			time.Sleep(wait)
		}
	}
	for _, e := range batch {
		l.log.Error("audit entry could not be stored", "error", err, "actor", e.Actor, "action", e.Action,
			"project", e.Project, "repository", e.Repository, "digest", e.Digest, "result", e.Result,
			"source_ip", e.SourceIP, "detail", e.Detail, "time", e.Time)
	}
	return fmt.Errorf("audit log: %w", err)
}

// housekeep prunes past the retention and logs the anchor.
func (l *Log) housekeep() {
	ctx := context.Background()
	if l.retention > 0 {
		if err := l.prune(ctx, time.Now().Add(-l.retention)); err != nil {
			l.log.Error("audit retention", "error", err)
		}
	}
	if cp, ok, err := l.store.Anchor(ctx); err == nil && ok {
		l.log.Info("audit anchor", "seq", cp.Seq, "hash", cp.Hash)
	}
}

// prune deletes entries older than cutoff, keeping a signed checkpoint of
// the last one deleted, and records the pruning in the chain. It runs on
// the writer goroutine, so it never races an append.
func (l *Log) prune(ctx context.Context, cutoff time.Time) error {
	last, ok, err := l.store.LastBefore(ctx, cutoff)
	if err != nil || !ok {
		return err
	}
	cp, err := signCheckpoint(l.signer, kindPruned, Checkpoint{Seq: last.Seq, Hash: last.Hash, Time: last.Time})
	if err != nil {
		return err
	}
	n, err := l.store.Prune(ctx, cp)
	if err != nil {
		return fmt.Errorf("audit retention: %w", err)
	}
	if n == 0 {
		return nil
	}
	l.log.Info("audit entries pruned", "entries", n, "through_seq", cp.Seq, "checkpoint_hash", cp.Hash)
	return l.write([]Entry{{Time: time.Now(), Actor: "berth", Action: ActionPrune, Result: Success,
		Detail: fmt.Sprintf("retention pruned %d entries through seq %d (hash %s)", n, cp.Seq, cp.Hash)}})
}
