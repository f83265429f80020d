package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"berth.dev/berth/internal/registry/event"
)

// recordEvents adds es to the outbox inside the transaction making the
// change, with the actor of ctx and the time now unless an event has them.
//
// Writers take the outbox lock first and hold it to their commit. Without
// it a transaction could draw sequence number 5, another 6, and 6 commit
// first: a reader that acted on 6 and moved past it would never see 5.
// Under the lock numbers are drawn in commit order, so a reader that sees
// an event sees every event before it. Call it last in a transaction: the
// lock is held from here to the commit.
func recordEvents(ctx context.Context, tx pgx.Tx, es ...event.Event) error {
	if len(es) == 0 {
		return nil
	}
	if err := advisoryLock(ctx, tx, lockOutbox, false); err != nil {
		return fmt.Errorf("record events: %w", err)
	}
	for _, e := range es {
		if e.Actor == "" {
			e.Actor = event.ActorFrom(ctx)
		}
		if e.At.IsZero() {
			e.At = time.Now()
		}
		payload, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("record %s event: %w", e.Kind, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO events (at, payload) VALUES ($1, $2)`, e.At.UnixNano(), payload); err != nil {
			return fmt.Errorf("record %s event: %w", e.Kind, err)
		}
	}
	return nil
}

// Events implements meta.Store.
func (s *Store) Events(ctx context.Context, after int64, n int) ([]event.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, payload FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit(n))
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var out []event.Event
	for rows.Next() {
		var seq int64
		var payload []byte
		if err := rows.Scan(&seq, &payload); err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		var e event.Event
		if err := json.Unmarshal(payload, &e); err != nil {
			return nil, fmt.Errorf("read event %d: %w", seq, err)
		}
		e.Seq = seq
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// DeleteEvents implements meta.Store.
func (s *Store) DeleteEvents(ctx context.Context, through int64) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM events WHERE seq <= $1`, through); err != nil {
		return fmt.Errorf("delete events through %d: %w", through, err)
	}
	return nil
}
