package pgdb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Listener hears PostgreSQL notifications on a connection of its own, so
// that what one replica changes reaches every replica's caches: writers
// NOTIFY inside the transaction making the change, and PostgreSQL
// delivers it to every listening session when (and only if) it commits.
//
// Notifications travel on their own, so a request reaching this replica
// just after another replica committed could come before the
// notification. Sync closes that gap: it runs a query on the listening
// connection, and PostgreSQL delivers every notification of a transaction
// committed before the query ahead of the query's answer (a committing
// session signals the listeners before its client hears of the commit).
// Callers waiting together share one query.
//
// A notification sent while the connection is down is lost, so a
// listener tells its user when it stops listening (caches must stop
// trusting what they hold) and when it listens again (caches start
// afresh); Sync fails meanwhile.
type Listener struct {
	// Channels are LISTENed to.
	Channels []string
	// Notify is called for each notification, in the order PostgreSQL
	// delivers them, on the listener's goroutine.
	Notify func(channel, payload string)
	// Settle, if set, is called after notifications were delivered and
	// before the Syncs waiting for them return: it applies what they
	// called for (a reload), once for a burst of them. An error fails
	// those Syncs.
	Settle func(context.Context) error
	// Listening is called with true once the connection listens (at
	// start and after every reconnection) and with false when it fails.
	Listening func(bool)
	// Retry is the wait between attempts to connect; one second when
	// zero.
	Retry time.Duration

	mu         sync.Mutex
	listening  bool
	waiters    []chan error
	cancelWait context.CancelFunc // interrupts the idle wait for a Sync
}

// ErrNotListening is Sync's error while the listener is not connected.
var ErrNotListening = errors.New("not hearing the database's notifications")

// Sync returns once every notification of a transaction that committed
// before it was called has been delivered and settled.
func (l *Listener) Sync(ctx context.Context) error {
	reply := make(chan error, 1)
	l.mu.Lock()
	if !l.listening {
		l.mu.Unlock()
		return ErrNotListening
	}
	l.waiters = append(l.waiters, reply)
	if l.cancelWait != nil {
		l.cancelWait()
		l.cancelWait = nil
	}
	l.mu.Unlock()
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run listens until ctx ends, reconnecting after failures.
func (l *Listener) Run(ctx context.Context, pool *pgxpool.Pool) {
	retry := l.Retry
	if retry == 0 {
		retry = time.Second
	}
	for ctx.Err() == nil {
		l.listen(ctx, pool)
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

// setListening records the state and fails the waiting Syncs when the
// connection is lost.
func (l *Listener) setListening(on bool) {
	l.mu.Lock()
	l.listening = on
	var waiters []chan error
	if !on {
		waiters, l.waiters = l.waiters, nil
	}
	l.mu.Unlock()
	for _, w := range waiters {
		w <- ErrNotListening
	}
	if l.Listening != nil {
		l.Listening(on)
	}
}

// listen connects, listens and delivers notifications until the
// connection fails or ctx ends.
func (l *Listener) listen(ctx context.Context, pool *pgxpool.Pool) error {
	cfg := pool.Config().ConnConfig.Copy()
	// Delivered as they are read, in order, during a wait or a query.
	cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) {
		if l.Notify != nil {
			l.Notify(n.Channel, n.Payload)
		}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, ch := range l.Channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return fmt.Errorf("listen %s: %w", ch, err)
		}
	}
	l.setListening(true)
	defer l.setListening(false)
	for {
		l.mu.Lock()
		batch := l.waiters
		l.waiters = nil
		var wctx context.Context
		var cancel context.CancelFunc
		if len(batch) == 0 {
			// A connection that died without a word (a host gone, a
			// partition) would leave the wait waiting forever: after a
			// quiet while, the connection must answer a query.
			wctx, cancel = context.WithTimeout(ctx, checkEvery)
			l.cancelWait = cancel
		}
		l.mu.Unlock()

		if len(batch) > 0 {
			// The Syncs in batch began before this query: what committed
			// before them arrives ahead of its answer.
			_, err := conn.Exec(ctx, "SELECT 1")
			if err == nil && l.Settle != nil {
				err = l.Settle(ctx)
			}
			for _, w := range batch {
				w <- err
			}
			if err != nil {
				return err
			}
			continue
		}
		err := conn.PgConn().WaitForNotification(wctx)
		l.mu.Lock()
		l.cancelWait = nil
		l.mu.Unlock()
		timedOut := wctx.Err() != nil
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil:
			if l.Settle != nil {
				if err := l.Settle(ctx); err != nil {
					return err
				}
			}
		case timedOut && !conn.IsClosed():
			l.mu.Lock()
			syncing := len(l.waiters) > 0
			l.mu.Unlock()
			if syncing {
				continue // the Sync's query checks the connection too
			}
			pctx, pcancel := context.WithTimeout(ctx, checkEvery)
			_, err := conn.Exec(pctx, "SELECT 1")
			pcancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}
