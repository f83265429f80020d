// Package sqlite is the embedded webhook.Store, in the same SQLite file as
// the registry's metadata (meta.db), versioned as the "webhook" component.
// Times are Unix nanoseconds, lists comma-separated text.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	sqlitedb "berth.dev/berth/internal/audit/sqlite"
	"berth.dev/berth/internal/webhook"
)

// Hook ids use AUTOINCREMENT so that a deleted hook's id is never given to
// a new hook: a delivery job queued for the old one must not reach it.
var migrations = []string{`
CREATE TABLE webhooks (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	project_id TEXT NOT NULL,
	project    TEXT NOT NULL,
	url        TEXT NOT NULL,
	events     TEXT NOT NULL,
	secret     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	created_by TEXT NOT NULL,
	UNIQUE (project_id, url)
);

CREATE TABLE webhook_attempts (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	hook_id     INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
	delivery_id TEXT NOT NULL,
	event_id    TEXT NOT NULL,
	event_type  TEXT NOT NULL,
	attempt     INTEGER NOT NULL,
	at          INTEGER NOT NULL,
	status_code INTEGER NOT NULL,
	error       TEXT NOT NULL,
	duration    INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_by_hook ON webhook_attempts(hook_id, id);
CREATE INDEX webhook_attempts_by_at ON webhook_attempts(at);

CREATE TABLE webhook_dead_letters (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	delivery_id   TEXT NOT NULL UNIQUE,
	hook_id       INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
	project_id    TEXT NOT NULL,
	attempts      INTEGER NOT NULL,
	status_code   INTEGER NOT NULL,
	error         TEXT NOT NULL,
	at            INTEGER NOT NULL,
	event_id      TEXT NOT NULL,
	event_type    TEXT NOT NULL,
	event_source  TEXT NOT NULL,
	event_subject TEXT NOT NULL,
	event_time    INTEGER NOT NULL,
	event_data    TEXT NOT NULL
);
CREATE INDEX webhook_dead_letters_by_hook ON webhook_dead_letters(hook_id, id);
CREATE INDEX webhook_dead_letters_by_at ON webhook_dead_letters(at);
`}

// Store is a webhook.Store in SQLite.
type Store struct{ db *sqlitedb.DB }

var _ webhook.Store = (*Store)(nil)

// Open opens (creating and migrating if needed) the webhook tables in the
// database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.OpenDB(ctx, path, "webhook", migrations)
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

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

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func isForeignKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "FOREIGN KEY constraint failed")
}

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
	err = s.db.InTx(ctx, "create webhook", func(tx *sql.Tx) error {
		var count int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM webhooks WHERE project_id = ?", n.ProjectID).Scan(&count); err != nil {
			return fmt.Errorf("create webhook: %w", err)
		}
		if count >= webhook.MaxHooksPerProject {
			return fmt.Errorf("%w: project %s has %d webhooks, the most allowed", webhook.ErrInvalid, n.Project, count)
		}
		var id int64
		err := tx.QueryRowContext(ctx, `INSERT INTO webhooks (project_id, project, url, events, secret, created_at, created_by)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
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
	rows, err := s.db.R.QueryContext(ctx, "SELECT "+hookColumns+" FROM webhooks WHERE project_id = ? ORDER BY id", projectID)
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
	h, err := scanHook(s.db.R.QueryRowContext(ctx, "SELECT "+hookColumns+" FROM webhooks WHERE id = ? AND project_id = ?", id, projectID))
	if errors.Is(err, sql.ErrNoRows) {
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
	h, err := scanHook(s.db.R.QueryRowContext(ctx, "SELECT "+hookColumns+", secret FROM webhooks WHERE id = ? AND project_id = ?",
		id, projectID), &secret)
	if errors.Is(err, sql.ErrNoRows) {
		return h, "", fmt.Errorf("webhook %d: %w", id, webhook.ErrNotFound)
	}
	if err != nil {
		return h, "", fmt.Errorf("webhook %d: %w", id, err)
	}
	return h, webhook.Secret(secret), nil
}

// Delete implements webhook.Store.
func (s *Store) Delete(ctx context.Context, projectID string, id int64) error {
	res, err := s.db.W.ExecContext(ctx, "DELETE FROM webhooks WHERE id = ? AND project_id = ?", id, projectID)
	if err != nil {
		return fmt.Errorf("delete webhook %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete webhook %d: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("delete webhook %d: %w", id, webhook.ErrNotFound)
	}
	return nil
}

// DeleteProjectHooks implements webhook.Store.
func (s *Store) DeleteProjectHooks(ctx context.Context, projectID string) error {
	if _, err := s.db.W.ExecContext(ctx, "DELETE FROM webhooks WHERE project_id = ?", projectID); err != nil {
		return fmt.Errorf("delete webhooks of project %s: %w", projectID, err)
	}
	return nil
}

// RecordAttempt implements webhook.Store.
func (s *Store) RecordAttempt(ctx context.Context, a webhook.Attempt) error {
	_, err := s.db.W.ExecContext(ctx, `INSERT INTO webhook_attempts
		(hook_id, delivery_id, event_id, event_type, attempt, at, status_code, error, duration)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
	rows, err := s.db.R.QueryContext(ctx, `SELECT id, hook_id, delivery_id, event_id, event_type, attempt, at, status_code, error, duration
		FROM webhook_attempts WHERE hook_id = ? AND (? = 0 OR id < ?) ORDER BY id DESC LIMIT ?`,
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
	_, err := s.db.W.ExecContext(ctx, `INSERT INTO webhook_dead_letters
		(delivery_id, hook_id, project_id, attempts, status_code, error, at,
			event_id, event_type, event_source, event_subject, event_time, event_data)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
	rows, err := s.db.R.QueryContext(ctx, "SELECT "+deadLetterColumns+` FROM webhook_dead_letters
		WHERE hook_id = ? AND (? = 0 OR id < ?) ORDER BY id DESC LIMIT ?`, hookID, p.Before, p.Before, p.Size())
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
	d, err := scanDeadLetter(s.db.R.QueryRowContext(ctx, "SELECT "+deadLetterColumns+
		" FROM webhook_dead_letters WHERE delivery_id = ?", deliveryID))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("dead letter %q: %w", deliveryID, webhook.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("dead letter %q: %w", deliveryID, err)
	}
	return d, nil
}

// DeleteDeadLetter implements webhook.Store.
func (s *Store) DeleteDeadLetter(ctx context.Context, deliveryID string) error {
	res, err := s.db.W.ExecContext(ctx, "DELETE FROM webhook_dead_letters WHERE delivery_id = ?", deliveryID)
	if err != nil {
		return fmt.Errorf("delete dead letter %q: %w", deliveryID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete dead letter %q: %w", deliveryID, err)
	} else if n == 0 {
		return fmt.Errorf("delete dead letter %q: %w", deliveryID, webhook.ErrNotFound)
	}
	return nil
}

// Prune implements webhook.Store.
func (s *Store) Prune(ctx context.Context, before time.Time, keepPerHook int) (int64, error) {
	var removed int64
	err := s.db.InTx(ctx, "prune webhook log", func(tx *sql.Tx) error {
		exec := func(table, query string, arg any) error {
			res, err := tx.ExecContext(ctx, query, arg)
			if err != nil {
				return fmt.Errorf("prune %s: %w", table, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("prune %s: %w", table, err)
			}
			removed += n
			return nil
		}
		for _, table := range []string{"webhook_attempts", "webhook_dead_letters"} {
			if err := exec(table, "DELETE FROM "+table+" WHERE at < ?", nanos(before)); err != nil {
				return err
			}
			if keepPerHook <= 0 {
				continue
			}
			if err := exec(table, `DELETE FROM `+table+` WHERE id IN (SELECT id FROM (
					SELECT id, ROW_NUMBER() OVER (PARTITION BY hook_id ORDER BY id DESC) AS n FROM `+table+`
				) AS ranked WHERE n > ?)`, keepPerHook); err != nil {
				return err
			}
		}
		return nil
	})
	return removed, err
}
