package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"

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
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, ChangesChannel, encodeChange(e)); err != nil {
			return fmt.Errorf("announce %s event: %w", e.Kind, err)
		}
	}
	return nil
}

// ChangesChannel is the channel every registry change is announced on,
// by a NOTIFY in the transaction that makes it: PostgreSQL delivers it to
// every listening replica when, and only if, the change commits, so each
// replica's manifest cache forgets what another replica changed.
const ChangesChannel = "berth_registry"

// change is a notification's payload: what a cache must forget.
type change struct {
	Kind       event.Kind    `json:"k"`
	Repository string        `json:"r"`
	Digest     digest.Digest `json:"d,omitempty"`
	Tags       []string      `json:"t,omitempty"`
	// Subject is the manifest's subject: a signature or attestation
	// pushed as a referrer changes what the pull-time policy decides
	// about it.
	Subject digest.Digest `json:"s,omitempty"`
	// All says the change was too large to describe (PostgreSQL bounds a
	// payload to 8000 bytes): forget everything.
	All bool `json:"all,omitempty"`
}

// maxPayload keeps a notification under PostgreSQL's 8000-byte limit.
const maxPayload = 7900

func encodeChange(e event.Event) string {
	raw, _ := json.Marshal(change{Kind: e.Kind, Repository: e.Repository, Digest: e.Digest, Tags: e.Tags, Subject: e.Subject})
	if len(raw) > maxPayload {
		return `{"all":true}`
	}
	return string(raw)
}

// DecodeChange reads a notification of ChangesChannel: the change, or
// all when a cache must forget everything (a change too large to
// describe, or a payload it cannot read).
func DecodeChange(payload string) (e event.Event, all bool) {
	var c change
	if err := json.Unmarshal([]byte(payload), &c); err != nil || c.All || c.Repository == "" {
		return event.Event{}, true
	}
	return event.Event{Kind: c.Kind, Repository: c.Repository, Digest: c.Digest, Tags: c.Tags, Subject: c.Subject}, false
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
