package server

import (
	"context"
	"errors"
	"time"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/pgdb"
	"berth.dev/berth/internal/registry/event"
)

// relay reads the registry's outbox (the changes the meta store recorded
// in the transactions that made them) and acts on each change: the
// registry's cache forgets what changed behind its back, pushed images are
// queued for scanning, reports of deleted images are forgotten, webhooks
// hear of pushes and deletes, and garbage collection's deletions are
// audited. A change is forgotten only after it was acted on, so a crash in
// between repeats it (every action is idempotent: scans are unique per
// digest, webhook deliveries per event) and never loses it.
//
// Replicas sharing a database relay one at a time (the leader of
// pgdb.LockRelay): two relays would act on each change twice, and the
// audit of a collection is not idempotent.
type relay struct {
	s      *Server
	bg     *background
	wake   *wake
	cancel context.CancelFunc
	ended  chan struct{}
	// poll bounds the wait for a change nobody kicked about (one made by
	// `berth gc` while the server was down, or by a replica).
	poll time.Duration

	failedSeq   int64
	failedCount int
}

func newRelay(s *Server, bg *background, w *wake) *relay {
	return &relay{s: s, bg: bg, wake: w, ended: make(chan struct{}), poll: time.Second}
}

// wake is the registry's in-process word that it committed a change, so
// the relay reads the outbox at once instead of at its next poll.
type wake struct{ ch chan struct{} }

func newWake() *wake { return &wake{ch: make(chan struct{}, 1)} }

// Notify implements event.Notifier.
func (w *wake) Notify(context.Context, event.Event) {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// start runs the relay until stop, whenever this process leads.
func (r *relay) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.ended)
		r.s.storage.Backends.Lead(ctx, pgdb.LockRelay, r.poll, r.run, func(leading bool) {
			if r.s.storage.Backends.Shared() {
				r.s.log.Info("outbox relay", "leading", leading)
			}
		})
	}()
}

func (r *relay) stop() {
	r.cancel()
	<-r.ended
}

// run relays until ctx ends.
func (r *relay) run(ctx context.Context) {
	t := time.NewTicker(r.poll)
	defer t.Stop()
	var after int64
	for {
		for {
			n, last, err := r.drain(after)
			after = last
			if err != nil {
				r.s.log.Error("outbox: acting on registry changes", "error", err)
				break
			}
			if n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake.ch:
		case <-t.C:
		}
	}
}

// batch is how many changes one pass reads.
const outboxBatch = 256

// drain acts on up to one batch of changes after seq and forgets them,
// returning how many and the last seq acted on.
func (r *relay) drain(after int64) (int, int64, error) {
	ctx := context.Background()
	ms := r.s.storage.Meta
	evs, err := ms.Events(ctx, after, outboxBatch)
	if err != nil || len(evs) == 0 {
		return 0, after, err
	}
	done := 0
	var actErr error
	for _, e := range evs {
		if err := r.act(ctx, e); err != nil {
			if r.failures(e.Seq) < maxOutboxAttempts {
				// Stop at the first change that could not be acted on; the
				// next pass starts there again.
				actErr = err
				break
			}
			r.s.log.Error("outbox: giving up on a registry change", "seq", e.Seq, "kind", e.Kind,
				"repository", e.Repository, "digest", e.Digest, "error", err)
		}
		done++
	}
	if done == 0 {
		return 0, after, actErr
	}
	last := evs[done-1].Seq
	if err := ms.DeleteEvents(ctx, last); err != nil {
		return 0, after, err
	}
	return done, last, actErr
}

// maxOutboxAttempts bounds the retries of one change whose action keeps
// failing, so it cannot hold up every change after it.
const maxOutboxAttempts = 10

// failures counts the failed attempts at change seq.
func (r *relay) failures(seq int64) int {
	if r.failedSeq != seq {
		r.failedSeq, r.failedCount = seq, 0
	}
	r.failedCount++
	return r.failedCount
}

// act does what one change calls for.
func (r *relay) act(ctx context.Context, e event.Event) error {
	s := r.s
	// Changes made behind the registry's back (garbage collection, SBOM
	// referrers the scanner attaches) reach its cache.
	s.reg.Notify(ctx, e)
	switch e.Kind {
	case event.ManifestPushed:
		if r.bg.vulndb != nil && s.cfg.Scan.OnPush && s.autoScan(e.Repository) {
			m, err := s.storage.Meta.Manifest(ctx, e.Repository, e.Digest)
			switch {
			case errors.Is(err, meta.ErrManifestUnknown):
				// Deleted since; its delete comes next.
			case err != nil:
				return err
			default:
				if err := r.bg.scans.OnPush(ctx, e.Repository, m); err != nil {
					return err
				}
			}
		}
	case event.ManifestDeleted:
		if err := r.bg.scans.OnDelete(ctx, e.Digest); err != nil {
			return err
		}
		if e.Actor == event.GarbageCollector {
			r.auditCollected(e)
		}
	case event.TagDeleted:
		if e.Actor == event.GarbageCollector {
			r.auditCollected(e)
		}
	}
	s.changeWebhooks(ctx, e)
	return nil
}

// auditCollected records a deletion by garbage collection, which no
// request made.
func (r *relay) auditCollected(e event.Event) {
	entry := audit.Entry{Actor: e.Actor, Action: audit.ActionDelete, Repository: e.Repository,
		Project: auth.ProjectOf(e.Repository), Digest: e.Digest.String(), Result: audit.Success,
		Detail: "garbage collection"}
	if e.Kind == event.TagDeleted && len(e.Tags) > 0 {
		entry.Detail = "garbage collection: tag " + e.Tags[0]
	}
	if err := r.s.sec.audit.Record(entry); err != nil {
		r.s.log.Warn("audit entry dropped", "error", err)
	}
}

// autoScan reports whether repo's project scans what is pushed to it (a
// project's switch; always, with authentication off).
func (s *Server) autoScan(repo string) bool {
	if s.sec.auth == nil {
		return true
	}
	p, err := s.sec.auth.Project(auth.ProjectOf(repo))
	return err != nil || p.AutoScan
}
