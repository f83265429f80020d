package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"berth.dev/berth/internal/registry/event"
)

// recordEvent adds e to the outbox inside the transaction making the
// change, with the actor of ctx and the time now unless e has them.
func recordEvent(ctx context.Context, tx *sql.Tx, e event.Event) error {
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
	if _, err := tx.ExecContext(ctx, `INSERT INTO events (at, payload) VALUES (?, ?)`, e.At.UnixNano(), payload); err != nil {
		return fmt.Errorf("record %s event: %w", e.Kind, err)
	}
	return nil
}

// Events implements meta.Store.
func (s *Store) Events(ctx context.Context, after int64, n int) ([]event.Event, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit(n))
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
	if _, err := s.w.ExecContext(ctx, `DELETE FROM events WHERE seq <= ?`, through); err != nil {
		return fmt.Errorf("delete events through %d: %w", through, err)
	}
	return nil
}
