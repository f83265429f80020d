package pgdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Work that one replica does at a time (the outbox relay, garbage
// collection) is guarded by a session advisory lock held on a connection
// of its own. PostgreSQL releases the lock when that session ends, so a
// replica that dies (kill -9, a lost network) frees its work for another
// without any lease to expire.
//
// The lock's holder checks its connection every few seconds and stops its
// work when the connection fails. Between PostgreSQL dropping a session
// and its holder noticing, another replica may already hold the lock: the
// guarded work must stay correct if it runs twice at once (it is guarded
// for efficiency, not for safety).

// lockClass is the first key of these locks ("lead"); the second names
// the work.
const lockClass = 0x6c656164

// Keys of the work run one replica at a time.
const (
	LockRelay int32 = 1 // the outbox relay
	LockGC    int32 = 2 // garbage collection
)

// checkEvery is how often a lock's holder checks its connection.
var checkEvery = 2 * time.Second

// Exclusive waits for the lock key, runs fn holding it and releases it.
// fn's context is cancelled if the lock's connection fails.
func Exclusive(ctx context.Context, pool *pgxpool.Pool, key int32, fn func(context.Context) error) error {
	held, err := lock(ctx, pool, key, true)
	if err != nil {
		return err
	}
	defer held.release()
	return held.run(ctx, fn)
}

// Lead runs fn whenever this process holds the lock key: it tries to take
// the lock, every retry while another process holds it, and runs fn while
// it does, until ctx ends. fn must return when its context is cancelled
// (the lock lost, or ctx done). onLead, if set, hears when the lock is
// taken and lost.
func Lead(ctx context.Context, pool *pgxpool.Pool, key int32, retry time.Duration, fn func(context.Context), onLead func(bool)) {
	for ctx.Err() == nil {
		held, err := lock(ctx, pool, key, false)
		if err == nil && held != nil {
			if onLead != nil {
				onLead(true)
			}
			held.run(ctx, func(ctx context.Context) error { fn(ctx); return nil })
			held.release()
			if onLead != nil {
				onLead(false)
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

// heldLock is a session advisory lock and the connection holding it: one
// of its own, not the pool's, so long work never takes a connection from
// requests.
type heldLock struct {
	conn *pgx.Conn
	key  int32
}

// lock takes the lock, waiting for it when wait is set; without wait it
// returns nil when another session holds it.
func lock(ctx context.Context, pool *pgxpool.Pool, key int32, wait bool) (*heldLock, error) {
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("advisory lock %d: %w", key, err)
	}
	if wait {
		_, err = conn.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", int32(lockClass), key)
	} else {
		var got bool
		err = conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, $2)", int32(lockClass), key).Scan(&got)
		if err == nil && !got {
			conn.Close(context.Background())
			return nil, nil
		}
	}
	if err != nil {
		// The session may hold the lock (a cancelled wait can race the
		// grant): closing it releases whatever it holds.
		conn.Close(context.Background())
		return nil, fmt.Errorf("advisory lock %d: %w", key, err)
	}
	return &heldLock{conn: conn, key: key}, nil
}

// run runs fn with a context cancelled when ctx is or when the lock's
// connection stops answering.
func (h *heldLock) run(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(checkEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				pctx, pcancel := context.WithTimeout(ctx, checkEvery)
				_, err := h.conn.Exec(pctx, "SELECT 1")
				pcancel()
				if err != nil && ctx.Err() == nil {
					cancel(fmt.Errorf("advisory lock %d lost: %w", h.key, err))
					return
				}
			}
		}
	}()
	err := fn(ctx)
	close(done)
	<-watched
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return errors.Join(err, cause)
	}
	return err
}

// release closes the connection, which ends the session and with it the
// lock.
func (h *heldLock) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.conn.Close(ctx)
}
