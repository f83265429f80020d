package audit

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
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
	// AnchorFile is the path of the append-only file the chain's signed
	// tip is also written to (AnchorFileName in the data directory), so
	// that a log wiped or rolled back inside the store is detected; empty
	// writes none. Open refuses a store that holds less than the file
	// records (ErrAnchorMismatch).
	AnchorFile string
	// AnchorEvery is the least time between two lines of the anchor file
	// (and two deliveries to Sink); zero means one second. The newest tip
	// is always written on Close.
	AnchorEvery time.Duration
	// Sink, if set, receives each anchor written to the file, best effort,
	// from a goroutine of its own.
	Sink AnchorSink
	// MaxWaiting bounds the entries held in memory while the store
	// fails; past it Health reports Full. Zero means 50,000.
	MaxWaiting int
	// CloseTimeout is how long Close keeps retrying a failing store
	// before it gives up on what it holds; zero means 10 s.
	CloseTimeout time.Duration
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

// Defaults of Options, and the retry interval of a failing store or
// anchor file (doubling from retryMin to retryMax, short so that writes
// resume soon after space returns).
const (
	defaultAnchorEvery  = time.Second
	defaultMaxWaiting   = 50_000
	defaultCloseTimeout = 10 * time.Second
	retryMin            = 50 * time.Millisecond
	retryMax            = time.Second
)

// ErrAnchorMismatch is returned by Open when the store holds less than, or
// something other than, what the anchor file records.
var ErrAnchorMismatch = errors.New("the audit log does not match its anchor file")

// Log appends entries to a Store from one goroutine, in batches, so that
// recording costs a request a channel send. It never drops an entry while
// the process lives: when the buffer is full, Record waits; when the store
// fails (a full disk), the entries are held in memory, retried, and Health
// says so, so that the server can refuse changes until they are stored.
type Log struct {
	store     Store
	signer    crypto.Signer
	log       *slog.Logger
	retention time.Duration

	anchors      *anchorFile // nil without Options.AnchorFile
	sink         *sinkSender // nil without Options.Sink
	anchorEvery  time.Duration
	maxWaiting   int
	closeTimeout time.Duration

	mu     sync.RWMutex // held for reading by senders, for writing by Close
	closed bool
	queue  chan item
	done   chan struct{}

	health   atomic.Pointer[health]
	nWaiting atomic.Int64
	closeErr error // set by the writer before done closes

	// Owned by the writer goroutine.
	seq       int64
	prev      string
	buf       []Entry // the first backing array of waiting, reused
	waiting   []Entry // recorded, not yet stored (sealed only to store)
	full      bool
	storeErr  error
	fileErr   error
	retryAt   time.Time
	retryWait time.Duration
	unfiled   *Checkpoint // newest stored tip not yet in the anchor file
	filedAt   time.Time
}

// health is what Health reports, published by the writer on changes.
type health struct {
	err  error
	full bool
}

// Health is whether the Log can store what it is given.
type Health struct {
	// Err is why the last attempt to store entries, or to append the tip
	// to the anchor file, failed; nil once one succeeds again.
	Err error
	// Waiting is how many entries are held in memory, not yet stored.
	Waiting int
	// Full is set once Waiting reached Options.MaxWaiting: the caller
	// should accept nothing it would have to audit until it clears.
	Full bool
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
	l := &Log{store: store, signer: signer, log: opts.Logger, retention: opts.Retention, done: make(chan struct{}),
		anchorEvery: opts.AnchorEvery, maxWaiting: opts.MaxWaiting, closeTimeout: opts.CloseTimeout,
		retryWait: retryMin, buf: make([]Entry, 0, maxBatch)}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.anchorEvery <= 0 {
		l.anchorEvery = defaultAnchorEvery
	}
	if l.maxWaiting <= 0 {
		l.maxWaiting = defaultMaxWaiting
	}
	if l.closeTimeout <= 0 {
		l.closeTimeout = defaultCloseTimeout
	}
	l.waiting = l.buf
	buffer := opts.Buffer
	if buffer <= 0 {
		buffer = 8192
	}
	l.queue = make(chan item, buffer)
	last, ok, err := store.Last(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	pruned, prunedOK, err := store.Pruned(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	var tipTime time.Time
	switch {
	case ok:
		l.seq, l.prev, tipTime = last.Seq, last.Hash, last.Time
	case prunedOK:
		// Everything may have been pruned: continue from the checkpoint.
		l.seq, l.prev, tipTime = pruned.Seq, pruned.Hash, pruned.Time
	}
	if opts.AnchorFile != "" {
		if err := l.openAnchors(ctx, opts.AnchorFile, tipTime, pruned); err != nil {
			return nil, err
		}
	}
	if opts.Sink != nil {
		l.sink = newSinkSender(opts.Sink, l.log.Warn)
	}
	l.publish()
	go l.run()
	return l, nil
}

// openAnchors checks the store against the newest anchor of the file at
// path, opens the file, and arranges for the store's tip to be written to
// it when the file lags.
func (l *Log) openAnchors(ctx context.Context, path string, tipTime time.Time, pruned Checkpoint) error {
	filed, ok, err := lastAnchor(path, l.signer.Public())
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if ok {
		if err := l.matchAnchor(ctx, path, filed, pruned); err != nil {
			return err
		}
	}
	af, err := openAnchorFile(path)
	if err != nil {
		return err
	}
	l.anchors = af
	if l.seq > 0 && (!ok || filed.Seq < l.seq) {
		if !ok {
			l.log.Warn("the audit anchor file records nothing while the log holds entries: starting it at the log's tip "+
				"(expected once, after upgrading from a berth that did not write it; otherwise the file was removed)",
				"path", path, "seq", l.seq)
		}
		cp, err := signCheckpoint(l.signer, kindAnchor, Checkpoint{Seq: l.seq, Hash: l.prev, Time: tipTime})
		if err != nil {
			af.close()
			return err
		}
		l.unfiled = &cp
	}
	return nil
}

// matchAnchor fails when the store holds less than filed says was
// written, or another entry at its sequence number: a new chain must not
// be started over a wiped or rolled-back log.
func (l *Log) matchAnchor(ctx context.Context, path string, filed Checkpoint, pruned Checkpoint) error {
	name := filepath.Base(path)
	hint := fmt.Sprintf("berth does not start a new chain over it. Run `berth audit verify --data DIR` for the details; "+
		"if the database was restored from a backup on purpose, move %s aside (keep it as evidence) and start again", path)
	if filed.Seq > l.seq {
		where := "the log is empty"
		if l.seq > 0 {
			where = fmt.Sprintf("the log ends at sequence %d", l.seq)
		}
		return fmt.Errorf("%w: %s but %s records sequence %d (written %s): entries %d to %d were deleted or the database was rolled back. %s",
			ErrAnchorMismatch, where, name, filed.Seq, filed.Time.UTC().Format(time.RFC3339), l.seq+1, filed.Seq, hint)
	}
	hash := l.prev
	if filed.Seq < l.seq {
		got, err := l.store.Query(ctx, Filter{Before: filed.Seq + 1, Limit: 1})
		if err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
		switch {
		case len(got) == 1 && got[0].Seq == filed.Seq:
			hash = got[0].Hash
		case pruned.Seq == filed.Seq:
			hash = pruned.Hash
		case pruned.Seq > filed.Seq:
			return nil // pruned since: nothing left to compare
		default:
			return fmt.Errorf("%w: entry %d, which %s records, is missing from the log. %s", ErrAnchorMismatch, filed.Seq, name, hint)
		}
	}
	if hash != filed.Hash {
		return fmt.Errorf("%w: entry %d is not the one %s records: the log was rewritten after it was anchored. %s",
			ErrAnchorMismatch, filed.Seq, name, hint)
	}
	return nil
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

// Health reports whether the Log can store what it is given. It is cheap
// (atomic loads), for a check on every request.
func (l *Log) Health() Health {
	h := Health{Waiting: int(l.nWaiting.Load())}
	if p := l.health.Load(); p != nil {
		h.Err, h.Full = p.err, p.full
	}
	return h
}

// Flush waits until every entry recorded before it is stored, and returns
// the store's error when they cannot be (they stay held and retried).
func (l *Log) Flush(ctx context.Context) error {
	return l.request(ctx, item{})
}

// Prune removes entries older than cutoff now, after everything queued
// before it is stored. The retention does this hourly; this is for the
// operator's explicit request and for tests.
func (l *Log) Prune(ctx context.Context, cutoff time.Time) error {
	return l.request(ctx, item{pruneBefore: cutoff})
}

func (l *Log) request(ctx context.Context, it item) error {
	it.done = make(chan error, 1)
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	l.queue <- it
	l.mu.RUnlock()
	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes what is queued and the newest anchor, and stops. Entries
// are not lost on a graceful shutdown: Close returns once they are stored,
// or, when the store still fails after Options.CloseTimeout, an error
// saying how many entries went to the process log (at ERROR) instead.
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
	return l.closeErr
}

func (l *Log) run() {
	defer close(l.done)
	l.housekeep()
	nextHousekeep := time.Now().Add(housekeeping)
	l.fileAnchor(false) // a tip the file lacked at Open
	for {
		timer := time.NewTimer(time.Until(l.wakeAt(nextHousekeep)))
		select {
		case it, ok := <-l.queue:
			timer.Stop()
			if !ok || l.handle(it) {
				l.shutdown()
				return
			}
		case <-timer.C:
		}
		now := time.Now()
		if l.failing() && !now.Before(l.retryAt) {
			l.retry()
		}
		if l.unfiled != nil && l.fileErr == nil && !now.Before(l.filedAt.Add(l.anchorEvery)) {
			l.fileAnchor(false)
		}
		if !now.Before(nextHousekeep) {
			l.housekeep()
			nextHousekeep = now.Add(housekeeping)
		}
	}
}

// wakeAt is when the writer has something to do without being asked.
func (l *Log) wakeAt(housekeep time.Time) time.Time {
	at := housekeep
	if l.failing() && l.retryAt.Before(at) {
		at = l.retryAt
	}
	if l.unfiled != nil && l.fileErr == nil {
		if due := l.filedAt.Add(l.anchorEvery); due.Before(at) {
			at = due
		}
	}
	return at
}

func (l *Log) failing() bool { return l.storeErr != nil || l.fileErr != nil }

// handle takes an item from the queue; it reports whether the queue was
// closed meanwhile.
func (l *Log) handle(it item) (closed bool) {
	for {
		if it.done != nil {
			it.done <- l.serve(it)
			return false
		}
		l.add(it.entry)
		if l.storeErr != nil {
			return false // held; the retry stores it
		}
		// Gather for a moment: one transaction and one signature per
		// batch instead of per entry is what lets the log keep up with
		// pulls. A flush or prune request, a full batch or a closing
		// queue ends the gathering early.
		req, closed := l.gather()
		l.storeWaiting()
		if closed || req == nil {
			return closed
		}
		it = *req
	}
}

func (l *Log) gather() (req *item, closed bool) {
	timer := time.NewTimer(gatherFor)
	defer timer.Stop()
	for len(l.waiting) < maxBatch {
		select {
		case more, ok := <-l.queue:
			if !ok {
				return nil, true
			}
			if more.done != nil {
				return &more, false
			}
			l.add(more.entry)
		case <-timer.C:
			return nil, false
		}
	}
	return nil, false
}

// serve answers a flush or prune request.
func (l *Log) serve(it item) error {
	if !it.pruneBefore.IsZero() {
		return l.prune(context.Background(), it.pruneBefore)
	}
	return l.storeWaiting()
}

func (l *Log) add(e Entry) {
	l.waiting = append(l.waiting, e)
	l.nWaiting.Store(int64(len(l.waiting)))
	if !l.full && len(l.waiting) >= l.maxWaiting {
		l.full = true
		l.log.Error("audit log: the entries held in memory reached their bound; audited requests are refused until they are stored",
			"waiting", len(l.waiting), "error", l.storeErr)
		l.publish()
	}
}

// storeWaiting seals and stores the waiting entries, a batch per
// transaction. On failure they stay waiting, in order, and are sealed
// again on the next attempt (sequence numbers advance only with a stored
// batch, so the chain never has a gap).
func (l *Log) storeWaiting() error {
	if len(l.waiting) == 0 {
		return nil
	}
	l.waiting = coalesce(l.waiting)
	for len(l.waiting) > 0 {
		chunk := l.waiting[:min(len(l.waiting), maxBatch)]
		var anchor Checkpoint
		var err error
		if shared, ok := l.store.(SealingStore); ok {
			// Other processes append to the chain too: seal after the
			// tip the store holds, while it holds the chain.
			err = shared.AppendSealing(context.Background(), chunk, func(seq int64, prev string) (Checkpoint, error) {
				l.seq, l.prev = seq, prev
				var err error
				anchor, err = l.seal(chunk)
				return anchor, err
			})
		} else if anchor, err = l.seal(chunk); err == nil {
			err = l.store.Append(context.Background(), chunk, anchor)
		}
		if err != nil {
			l.storeFailed(err)
			return fmt.Errorf("audit log: %w", err)
		}
		last := chunk[len(chunk)-1]
		l.seq, l.prev = last.Seq, last.Hash
		l.waiting = l.waiting[len(chunk):]
		if l.anchors != nil || l.sink != nil {
			l.unfiled = &anchor
			l.fileAnchor(false)
		}
	}
	// Back to the first buffer: one that grew during an outage is freed.
	l.waiting = l.buf[:0]
	l.nWaiting.Store(0)
	if l.storeErr != nil || l.full {
		l.log.Warn("audit log writable again: the held entries are stored", "seq", l.seq)
		l.storeErr, l.full = nil, false
		if l.fileErr == nil {
			l.retryWait = retryMin
		}
		l.publish()
	}
	return nil
}

// seal numbers and chains entries after the stored tip and signs the new
// tip.
func (l *Log) seal(batch []Entry) (Checkpoint, error) {
	seq, prev := l.seq, l.prev
	for i := range batch {
		seq++
		batch[i].Seq, batch[i].PrevHash = seq, prev
		batch[i].Hash = Hash(batch[i])
		prev = batch[i].Hash
	}
	last := batch[len(batch)-1]
	return signCheckpoint(l.signer, kindAnchor, Checkpoint{Seq: last.Seq, Hash: last.Hash, Time: last.Time})
}

func (l *Log) storeFailed(err error) {
	if l.storeErr == nil {
		l.log.Error("audit log cannot be written: holding its entries in memory and retrying; changes are refused until they are stored",
			"error", err, "waiting", len(l.waiting))
	}
	l.storeErr = err
	l.scheduleRetry()
	l.publish()
}

func (l *Log) scheduleRetry() {
	l.retryAt = time.Now().Add(l.retryWait)
	l.retryWait = min(2*l.retryWait, retryMax)
}

// retry runs when a failing store or anchor file is due another attempt.
func (l *Log) retry() {
	if l.storeErr != nil {
		// Fold what piled up (a fleet pulling during the outage) before
		// deciding whether the bound is still reached.
		l.waiting = coalesce(l.waiting)
		l.nWaiting.Store(int64(len(l.waiting)))
		if l.full && len(l.waiting) < l.maxWaiting {
			l.full = false
			l.publish()
		}
		if l.storeWaiting() != nil {
			return
		}
	}
	if l.fileErr != nil {
		l.fileAnchor(true)
	}
}

// fileAnchor writes the newest stored tip to the anchor file and offers
// it to the sink, at most once per AnchorEvery unless forced.
func (l *Log) fileAnchor(force bool) {
	if l.unfiled == nil {
		return
	}
	now := time.Now()
	if !force && !l.filedAt.IsZero() && now.Sub(l.filedAt) < l.anchorEvery {
		return // the writer's timer files it
	}
	cp := *l.unfiled
	// The store first: a line on disk promises that the entries it names
	// survive a power cut.
	err := l.store.Sync(context.Background())
	if err == nil && l.anchors != nil {
		err = l.anchors.append(cp)
	}
	if err != nil {
		if l.fileErr == nil {
			l.log.Error("the audit log's tip cannot be anchored; retrying, and changes are refused until it can", "error", err)
		}
		l.fileErr = fmt.Errorf("audit anchor: %w", err)
		l.scheduleRetry()
		l.publish()
		return
	}
	l.unfiled, l.filedAt = nil, now
	if l.fileErr != nil {
		l.log.Warn("audit anchor file writable again", "seq", cp.Seq)
		l.fileErr = nil
		if l.storeErr == nil {
			l.retryWait = retryMin
		}
		l.publish()
	}
	if l.sink != nil {
		l.sink.offer(cp)
	}
}

func (l *Log) publish() {
	err := l.storeErr
	if err == nil {
		err = l.fileErr
	}
	l.health.Store(&health{err: err, full: l.full})
}

// shutdown stores what is left, retrying a failing store up to the close
// timeout, writes the newest anchor and stops the sink.
func (l *Log) shutdown() {
	deadline := time.Now().Add(l.closeTimeout)
	var errs []error
	for {
		err := l.storeWaiting()
		if err == nil {
			break
		}
		if !time.Now().Before(deadline) {
			// Last resort: the process log, so that they exist somewhere.
			for _, e := range l.waiting {
				l.log.Error("audit entry could not be stored", "error", err, "actor", e.Actor, "action", e.Action,
					"project", e.Project, "repository", e.Repository, "digest", e.Digest, "result", e.Result,
					"source_ip", e.SourceIP, "detail", e.Detail, "count", max(e.Count, 1), "time", e.Time)
			}
			errs = append(errs, fmt.Errorf("%d audit entries could not be stored and were written to the process log: %w", len(l.waiting), err))
			break
		}
		time.Sleep(min(l.retryWait, time.Until(deadline)))
	}
	for l.unfiled != nil {
		l.fileAnchor(true)
		if l.unfiled == nil {
			break
		}
		if !time.Now().Before(deadline) {
			errs = append(errs, fmt.Errorf("the newest audit anchor (seq %d) was not written: %w", l.unfiled.Seq, l.fileErr))
			break
		}
		time.Sleep(min(l.retryWait, time.Until(deadline)))
	}
	if l.sink != nil {
		l.sink.close()
	}
	if l.anchors != nil {
		if err := l.anchors.close(); err != nil {
			errs = append(errs, fmt.Errorf("audit anchor file: %w", err))
		}
	}
	l.closeErr = errors.Join(errs...)
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

// housekeep prunes past the retention and logs the anchor.
func (l *Log) housekeep() {
	ctx := context.Background()
	if l.retention > 0 && l.storeErr == nil {
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
	if err := l.storeWaiting(); err != nil {
		return err
	}
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
	l.add(Entry{Time: time.Now(), Actor: "berth", Action: ActionPrune, Result: Success,
		Detail: fmt.Sprintf("retention pruned %d entries through seq %d (hash %s)", n, cp.Seq, cp.Hash)})
	return l.storeWaiting()
}
