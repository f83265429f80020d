// Package postgres is the webhook.Store of a scale-out deployment: hooks,
// the delivery log and dead letters in the shared PostgreSQL database, so
// any replica delivers and any replica shows them. The model is the SQLite
// store's (times as Unix nanoseconds, lists as comma-separated text).
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"berth.dev/berth/internal/pgdb"
	"berth.dev/berth/internal/webhook"
)

const component = "webhook"

// Ids come from sequences, which never hand out a number twice: a
// delivery job queued for a deleted hook must not reach a new one.
var migrations = []string{`
CREATE TABLE webhooks (
	id         BIGSERIAL PRIMARY KEY,
	project_id TEXT NOT NULL,
	project    TEXT NOT NULL,
	url        TEXT NOT NULL,
	events     TEXT NOT NULL,
	secret     TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	created_by TEXT NOT NULL,
	UNIQUE (project_id, url)
);

CREATE TABLE webhook_attempts (
	id          BIGSERIAL PRIMARY KEY,
	hook_id     BIGINT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
	delivery_id TEXT NOT NULL,
	event_id    TEXT NOT NULL,
	event_type  TEXT NOT NULL,
	attempt     INTEGER NOT NULL,
	at          BIGINT NOT NULL,
	status_code INTEGER NOT NULL,
	error       TEXT NOT NULL,
	duration    BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_by_hook ON webhook_attempts(hook_id, id);
CREATE INDEX webhook_attempts_by_at ON webhook_attempts(at);

CREATE TABLE webhook_dead_letters (
	id            BIGSERIAL PRIMARY KEY,
	delivery_id   TEXT NOT NULL UNIQUE,
	hook_id       BIGINT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
	project_id    TEXT NOT NULL,
	attempts      INTEGER NOT NULL,
	status_code   INTEGER NOT NULL,
	error         TEXT NOT NULL,
	at            BIGINT NOT NULL,
	event_id      TEXT NOT NULL,
	event_type    TEXT NOT NULL,
	event_source  TEXT NOT NULL,
	event_subject TEXT NOT NULL,
	event_time    BIGINT NOT NULL,
	event_data    TEXT NOT NULL
);
CREATE INDEX webhook_dead_letters_by_hook ON webhook_dead_letters(hook_id, id);
CREATE INDEX webhook_dead_letters_by_at ON webhook_dead_letters(at);
`}

// Store is a webhook.Store in PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
}

var _ webhook.Store = (*Store)(nil)

// Open connects to the database at url, migrates the webhook tables and
// returns a Store that closes its pool on Close.
func Open(ctx context.Context, url string) (*Store, error) {
	pool, err := pgdb.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("webhook database: %w", err)
	}
	s, err := New(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownPool = true
	return s, nil
}

// New migrates the webhook tables behind pool and returns a Store over
// it; Close leaves the pool open.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if err := pgdb.Migrate(ctx, pool, component, migrations); err != nil {
		return nil, fmt.Errorf("webhook database: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close implements io.Closer.
func (s *Store) Close() error {
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

func (s *Store) inTx(ctx context.Context, _ string, fn func(pgx.Tx) error) error {
	return pgdb.InTx(ctx, s.pool, fn)
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func isUnique(err error) bool { return sqlState(err) == "23505" }

func isForeignKey(err error) bool { return sqlState(err) == "23503" }

type scanner interface{ Scan(...any) error }

const hookColumns = "id, project_id, project, url, events, secret <> '', created_at, created_by"

// scanHook reads hookColumns, then extra.
func scanHook(row scanner, extra ...any) (webhook.Hook, error) {
	var h webhook.Hook
	var events string
	var created int64
	dest := append([]any{&h.ID, &h.ProjectID, &h.Project, &h.URL, &events, &h.HasSecret, &created, &h.CreatedBy}, extra...)
	if err := row.Scan(dest...); err != nil {
		return h, err
	}
	h.CreatedAt = fromNanos(created)
	if events != "" {
		h.Events = strings.Split(events, ",")
	}
	return h, nil
}

// Create implements webhook.Store.
func (s *Store) Create(ctx context.Context, n webhook.NewHook) (webhook.Hook, error) {
	n, err := n.Normalize()
	if err != nil {
		return webhook.Hook{}, err
	}
	now := time.Unix(0, time.Now().UnixNano()).UTC()
	var h webhook.Hook
	err = s.inTx(ctx, "create webhook", func(tx pgx.Tx) error {
		var count int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM webhooks WHERE project_id = $1", n.ProjectID).Scan(&count); err != nil {
			return fmt.Errorf("create webhook: %w", err)
		}
		if count >= webhook.MaxHooksPerProject {
			return fmt.Errorf("%w: project %s has %d webhooks, the most allowed", webhook.ErrInvalid, n.Project, count)
		}
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO webhooks (project_id, project, url, events, secret, created_at, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
			n.ProjectID, n.Project, n.URL, strings.Join(n.Events, ","), string(n.Secret), nanos(now), n.CreatedBy).Scan(&id)
		if isUnique(err) {
			return fmt.Errorf("webhook to %s in project %s: %w", webhook.RedactURL(n.URL), n.Project, webhook.ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create webhook: %w", err)
		}
		h = webhook.Hook{ID: id, ProjectID: n.ProjectID, Project: n.Project, URL: n.URL, Events: n.Events,
			HasSecret: n.Secret != "", CreatedAt: now, CreatedBy: n.CreatedBy}
		return nil
	})
	return h, err
}

// List implements webhook.Store.
func (s *Store) List(ctx context.Context, projectID string) ([]webhook.Hook, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+hookColumns+" FROM webhooks WHERE project_id = $1 ORDER BY id", projectID)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer rows.Close()
	var out []webhook.Hook
	for rows.Next() {
		h, err := scanHook(rows)
		if err != nil {
			return nil, fmt.Errorf("list webhooks: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return out, nil
}

// Get implements webhook.Store.
func (s *Store) Get(ctx context.Context, projectID string, id int64) (webhook.Hook, error) {
	h, err := scanHook(s.pool.QueryRow(ctx, "SELECT "+hookColumns+" FROM webhooks WHERE id = $1 AND project_id = $2", id, projectID))
	if errors.Is(err, pgx.ErrNoRows) {
		return h, fmt.Errorf("webhook %d: %w", id, webhook.ErrNotFound)
	}
	if err != nil {
		return h, fmt.Errorf("webhook %d: %w", id, err)
	}
	return h, nil
}

// Secret implements webhook.Store.
func (s *Store) Secret(ctx context.Context, projectID string, id int64) (webhook.Hook, webhook.Secret, error) {
	var secret string
	h, err := scanHook(s.pool.QueryRow(ctx, "SELECT "+hookColumns+", secret FROM webhooks WHERE id = $1 AND project_id = $2",
		id, projectID), &secret)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, "", fmt.Errorf("webhook %d: %w", id, webhook.ErrNotFound)
	}
	if err != nil {
		return h, "", fmt.Errorf("webhook %d: %w", id, err)
	}
	return h, webhook.Secret(secret), nil
}

// Delete implements webhook.Store.
func (s *Store) Delete(ctx context.Context, projectID string, id int64) error {
	res, err := s.pool.Exec(ctx, "DELETE FROM webhooks WHERE id = $1 AND project_id = $2", id, projectID)
	if err != nil {
		return fmt.Errorf("delete webhook %d: %w", id, err)
	}
	if res.RowsAffected() == 0 {
		return fmt.Errorf("delete webhook %d: %w", id, webhook.ErrNotFound)
	}
	return nil
}

// DeleteProjectHooks implements webhook.Store.
func (s *Store) DeleteProjectHooks(ctx context.Context, projectID string) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM webhooks WHERE project_id = $1", projectID); err != nil {
		return fmt.Errorf("delete webhooks of project %s: %w", projectID, err)
	}
	return nil
}

// RecordAttempt implements webhook.Store.
func (s *Store) RecordAttempt(ctx context.Context, a webhook.Attempt) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO webhook_attempts
		(hook_id, delivery_id, event_id, event_type, attempt, at, status_code, error, duration)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		a.HookID, a.DeliveryID, a.EventID, a.EventType, a.Attempt, nanos(a.At), a.StatusCode, a.Error, int64(a.Duration))
	if isForeignKey(err) {
		return fmt.Errorf("record attempt: webhook %d: %w", a.HookID, webhook.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	return nil
}

// Attempts implements webhook.Store.
func (s *Store) Attempts(ctx context.Context, hookID int64, p webhook.Page) ([]webhook.Attempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, hook_id, delivery_id, event_id, event_type, attempt, at, status_code, error, duration
		FROM webhook_attempts WHERE hook_id = $1 AND ($2 = 0 OR id < $3) ORDER BY id DESC LIMIT $4`,
		hookID, p.Before, p.Before, p.Size())
	if err != nil {
		return nil, fmt.Errorf("list attempts: %w", err)
	}
	defer rows.Close()
	var out []webhook.Attempt
	for rows.Next() {
		var a webhook.Attempt
		var at, dur int64
		if err := rows.Scan(&a.ID, &a.HookID, &a.DeliveryID, &a.EventID, &a.EventType, &a.Attempt, &at,
			&a.StatusCode, &a.Error, &dur); err != nil {
			return nil, fmt.Errorf("list attempts: %w", err)
		}
		a.At, a.Duration = fromNanos(at), time.Duration(dur)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list attempts: %w", err)
	}
	return out, nil
}

// PutDeadLetter implements webhook.Store.
func (s *Store) PutDeadLetter(ctx context.Context, d webhook.DeadLetter) error {
	if d.DeliveryID == "" {
		return fmt.Errorf("%w: dead letter without a delivery id", webhook.ErrInvalid)
	}
	data := string(d.Event.Data)
	if data != "" && !json.Valid(d.Event.Data) {
		return fmt.Errorf("%w: dead letter %s: event data is not JSON", webhook.ErrInvalid, d.DeliveryID)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO webhook_dead_letters
		(delivery_id, hook_id, project_id, attempts, status_code, error, at,
			event_id, event_type, event_source, event_subject, event_time, event_data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (delivery_id) DO UPDATE SET attempts = excluded.attempts, status_code = excluded.status_code,
			error = excluded.error, at = excluded.at`,
		d.DeliveryID, d.HookID, d.ProjectID, d.Attempts, d.StatusCode, d.Error, nanos(d.At),
		d.Event.ID, d.Event.Type, d.Event.Source, d.Event.Subject, nanos(d.Event.Time), data)
	if isForeignKey(err) {
		return fmt.Errorf("dead letter %s: webhook %d: %w", d.DeliveryID, d.HookID, webhook.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("dead letter %s: %w", d.DeliveryID, err)
	}
	return nil
}

const deadLetterColumns = `id, delivery_id, hook_id, project_id, attempts, status_code, error, at,
	event_id, event_type, event_source, event_subject, event_time, event_data`

func scanDeadLetter(row scanner) (webhook.DeadLetter, error) {
	var d webhook.DeadLetter
	var at, evTime int64
	var data string
	if err := row.Scan(&d.ID, &d.DeliveryID, &d.HookID, &d.ProjectID, &d.Attempts, &d.StatusCode, &d.Error, &at,
		&d.Event.ID, &d.Event.Type, &d.Event.Source, &d.Event.Subject, &evTime, &data); err != nil {
		return d, err
	}
	d.At, d.Event.Time = fromNanos(at), fromNanos(evTime)
	if data != "" {
		d.Event.Data = json.RawMessage(data)
	}
	return d, nil
}

// DeadLetters implements webhook.Store.
func (s *Store) DeadLetters(ctx context.Context, hookID int64, p webhook.Page) ([]webhook.DeadLetter, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+deadLetterColumns+` FROM webhook_dead_letters
		WHERE hook_id = $1 AND ($2 = 0 OR id < $3) ORDER BY id DESC LIMIT $4`, hookID, p.Before, p.Before, p.Size())
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	var out []webhook.DeadLetter
	for rows.Next() {
		d, err := scanDeadLetter(rows)
		if err != nil {
			return nil, fmt.Errorf("list dead letters: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return out, nil
}

// DeadLetter implements webhook.Store.
func (s *Store) DeadLetter(ctx context.Context, deliveryID string) (webhook.DeadLetter, error) {
	d, err := scanDeadLetter(s.pool.QueryRow(ctx, "SELECT "+deadLetterColumns+
		" FROM webhook_dead_letters WHERE delivery_id = $1", deliveryID))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("dead letter %q: %w", deliveryID, webhook.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("dead letter %q: %w", deliveryID, err)
	}
	return d, nil
}

// DeleteDeadLetter implements webhook.Store.
func (s *Store) DeleteDeadLetter(ctx context.Context, deliveryID string) error {
	res, err := s.pool.Exec(ctx, "DELETE FROM webhook_dead_letters WHERE delivery_id = $1", deliveryID)
	if err != nil {
		return fmt.Errorf("delete dead letter %q: %w", deliveryID, err)
	}
	if res.RowsAffected() == 0 {
		return fmt.Errorf("delete dead letter %q: %w", deliveryID, webhook.ErrNotFound)
	}
	return nil
}

// Prune implements webhook.Store.
func (s *Store) Prune(ctx context.Context, before time.Time, keepPerHook int) (int64, error) {
	var removed int64
	err := s.inTx(ctx, "prune webhook log", func(tx pgx.Tx) error {
		exec := func(table, query string, arg any) error {
			res, err := tx.Exec(ctx, query, arg)
			if err != nil {
				return fmt.Errorf("prune %s: %w", table, err)
			}
			removed += res.RowsAffected()
			return nil
		}
		for _, table := range []string{"webhook_attempts", "webhook_dead_letters"} {
			if err := exec(table, "DELETE FROM "+table+" WHERE at < $1", nanos(before)); err != nil {
				return err
			}
			if keepPerHook <= 0 {
				continue
			}
			if err := exec(table, `DELETE FROM `+table+` WHERE id IN (SELECT id FROM (
					SELECT id, ROW_NUMBER() OVER (PARTITION BY hook_id ORDER BY id DESC) AS n FROM `+table+`
				) AS ranked WHERE n > $1)`, keepPerHook); err != nil {
				return err
			}
		}
		return nil
	})
	return removed, err
}
