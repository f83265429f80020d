// Package shared makes the replicas of a scale-out deployment scan with
// one vulnerability database: the replica that updates it publishes the
// file it built in the shared database (Store), and every replica
// installs the published file in its live database (Replica) at start,
// when the publication is announced, and before every scan and re-match,
// so that no job matches against a database older than the published one.
//
// With one replica on SQLite none of this is used: its live database is
// the only one.
package shared

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"berth.dev/berth/internal/vulndb/live"
)

// Published describes the database file every replica scans with.
type Published struct {
	// Digest is the sha256 digest of the file ("sha256:hex").
	Digest string
	// UpdatedAt is the database's own (vulndb.Info.UpdatedAt).
	UpdatedAt   time.Time
	Size        int64
	PublishedAt time.Time
}

// Errors of a Store.
var (
	// ErrNone means no database was published yet.
	ErrNone = errors.New("no vulnerability database published")
	// ErrGone means the database asked for is not the published one any
	// more (a newer one replaced it).
	ErrGone = errors.New("vulnerability database no longer published")
)

// Store keeps the published database.
type Store interface {
	// Latest describes the published database (ErrNone if none).
	Latest(ctx context.Context) (Published, error)
	// Publish makes the p.Size bytes read from r, whose digest must be
	// p.Digest, the published database, replacing the one before, and
	// announces it: all or nothing (a short read or another digest
	// publishes nothing).
	Publish(ctx context.Context, p Published, r io.Reader) error
	// Fetch writes the published database of that digest to w and
	// describes it; content that does not match its digest or size is an
	// error (w then holds part of it).
	Fetch(ctx context.Context, digest string, w io.Writer) (Published, error)
	Close() error
}

// Replica keeps one replica's live database the published one.
type Replica struct {
	store Store
	db    *live.DB
	log   *slog.Logger

	// mu serialises installs and this replica's updates: jobs that find
	// the database out of date wait for one download.
	mu sync.Mutex
	// updating is set while this replica updates (and then publishes) the
	// database: it started from the published one, so jobs use the local
	// one meanwhile rather than wait for the update.
	updating atomic.Bool
	kick     chan struct{}
}

// NewReplica returns the replica's syncer; db must compute digests
// (live.Config.Digests).
func NewReplica(store Store, db *live.DB, log *slog.Logger) *Replica {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Replica{store: store, db: db, log: log.With("component", "vulndb"), kick: make(chan struct{}, 1)}
}

// Sync makes the live database the published one, downloading it if it
// differs: one indexed query when it is already. Nothing published yet is
// not an error (the live database, if any, stays). While this replica
// updates the database, Sync returns at once: the update began from the
// published database and publishes its own.
func (r *Replica) Sync(ctx context.Context) error {
	if r.updating.Load() {
		return nil
	}
	p, err := r.store.Latest(ctx)
	switch {
	case errors.Is(err, ErrNone):
		return nil
	case err != nil:
		return fmt.Errorf("published vulnerability database: %w", err)
	case p.Digest == r.db.Digest():
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.syncLocked(ctx)
}

// maxRaces bounds the downloads a sync starts when newer publications
// keep replacing the one it fetches.
const maxRaces = 3

func (r *Replica) syncLocked(ctx context.Context) error {
	for range maxRaces {
		p, err := r.store.Latest(ctx)
		switch {
		case errors.Is(err, ErrNone):
			return nil
		case err != nil:
			return fmt.Errorf("published vulnerability database: %w", err)
		case p.Digest == r.db.Digest():
			return nil
		}
		start := time.Now()
		_, err = r.db.Install(ctx, p.Digest, func(ctx context.Context, w io.Writer) error {
			_, err := r.store.Fetch(ctx, p.Digest, w)
			return err
		})
		if errors.Is(err, ErrGone) {
			continue // replaced while asked for: fetch the newer one
		}
		if err != nil {
			return fmt.Errorf("fetch the published vulnerability database: %w", err)
		}
		r.log.InfoContext(ctx, "installed the published vulnerability database", "digest", p.Digest,
			"updated_at", p.UpdatedAt, "size", p.Size, "took", time.Since(start).Round(time.Millisecond))
		return nil
	}
	return fmt.Errorf("fetch the published vulnerability database: replaced %d times while fetched", maxRaces)
}

// Update runs update (the live database's Update) starting from the
// published database, and publishes what it built: the replica that
// updates is the one that publishes, and its update's changes (the
// re-matches it queues) are measured from what the other replicas have.
// A database built but not published fails the update, to be retried.
func (r *Replica) Update(ctx context.Context, update func(context.Context) (*live.Change, error)) (*live.Change, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.syncLocked(ctx); err != nil {
		return nil, err
	}
	r.updating.Store(true)
	defer r.updating.Store(false)
	ch, err := update(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.publish(ctx); err != nil {
		return nil, fmt.Errorf("publish the updated vulnerability database: %w", err)
	}
	return ch, nil
}

// publish stores the live database's file as the published one.
func (r *Replica) publish(ctx context.Context) error {
	return r.db.WithFile(func(g *live.Generation, path string) error {
		if g.Digest == "" {
			return errors.New("the live database's digest is not known")
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		p := Published{Digest: g.Digest, UpdatedAt: g.Info.UpdatedAt, Size: st.Size()}
		if err := r.store.Publish(ctx, p, f); err != nil {
			return err
		}
		r.log.InfoContext(ctx, "published the vulnerability database", "digest", p.Digest, "updated_at", p.UpdatedAt, "size", p.Size)
		return nil
	})
}

// Kick asks Run to sync soon (a publication was announced); it never
// blocks.
func (r *Replica) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run syncs at once and after every Kick until ctx ends, in the
// background: requests never wait for a download, and jobs that need the
// new database before it arrives sync themselves. A failure is logged and
// retried at the next kick or job.
func (r *Replica) Run(ctx context.Context) {
	for {
		if err := r.Sync(ctx); err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "could not install the published vulnerability database", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
	}
}
