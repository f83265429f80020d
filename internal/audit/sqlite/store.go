package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"berth.dev/berth/internal/audit"
)

// migrations of the audit tables. Times are Unix nanoseconds.
var migrations = []string{`
CREATE TABLE audit_entries (
	seq        INTEGER PRIMARY KEY,
	at         INTEGER NOT NULL,
	actor      TEXT NOT NULL,
	source_ip  TEXT NOT NULL,
	action     TEXT NOT NULL,
	project    TEXT NOT NULL,
	repository TEXT NOT NULL,
	digest     TEXT NOT NULL,
	result     TEXT NOT NULL,
	detail     TEXT NOT NULL,
	count      INTEGER NOT NULL,
	prev_hash  TEXT NOT NULL,
	hash       TEXT NOT NULL
);
-- Pulls make this the busiest table; each index costs every pull. Time
-- (retention, ranges) and project (what members may query) are indexed;
-- other filters walk the table newest first until the page is full.
CREATE INDEX audit_entries_by_at ON audit_entries(at);
CREATE INDEX audit_entries_by_project ON audit_entries(project, seq);

CREATE TABLE audit_checkpoints (
	kind      TEXT PRIMARY KEY,
	seq       INTEGER NOT NULL,
	hash      TEXT NOT NULL,
	at        INTEGER NOT NULL,
	signature BLOB NOT NULL
);
`, `
-- Sync rewrites this row with synchronous=FULL: a commit that changes
-- nothing writes nothing, and so would not fsync the WAL.
CREATE TABLE audit_sync (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	at INTEGER NOT NULL
);
`}

// Store is an audit.Store in SQLite.
type Store struct{ db *DB }

var _ audit.Store = (*Store)(nil)

// Open opens (creating and migrating if needed) the audit tables in the
// database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := OpenDB(ctx, path, "audit", migrations)
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

const entryColumns = "seq, at, actor, source_ip, action, project, repository, digest, result, detail, count, prev_hash, hash"

type scanner interface{ Scan(...any) error }

func scanEntry(row scanner) (audit.Entry, error) {
	var e audit.Entry
	var at int64
	var result string
	err := row.Scan(&e.Seq, &at, &e.Actor, &e.SourceIP, &e.Action, &e.Project, &e.Repository, &e.Digest,
		&result, &e.Detail, &e.Count, &e.PrevHash, &e.Hash)
	e.Time, e.Result = time.Unix(0, at), audit.Result(result)
	return e, err
}

// rowsPerInsert is how many entries one INSERT statement carries: binding
// and stepping one statement per row is most of the cost of a row.
const rowsPerInsert = 64

// Append implements audit.Store.
func (s *Store) Append(ctx context.Context, entries []audit.Entry, anchor audit.Checkpoint) error {
	return s.db.InTx(ctx, "audit append", func(tx *sql.Tx) error {
		for len(entries) > 0 {
			n := min(len(entries), rowsPerInsert)
			q := "INSERT INTO audit_entries (" + entryColumns + ") VALUES " +
				strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?), ", n-1) + "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
			args := make([]any, 0, n*13)
			for _, e := range entries[:n] {
				args = append(args, e.Seq, e.Time.UnixNano(), e.Actor, e.SourceIP, e.Action, e.Project,
					e.Repository, e.Digest, string(e.Result), e.Detail, max(e.Count, 1), e.PrevHash, e.Hash)
			}
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("audit append entries %d to %d: %w", entries[0].Seq, entries[n-1].Seq, err)
			}
			entries = entries[n:]
		}
		return putCheckpoint(ctx, tx, "anchor", anchor)
	})
}

func putCheckpoint(ctx context.Context, tx *sql.Tx, kind string, cp audit.Checkpoint) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_checkpoints (kind, seq, hash, at, signature) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (kind) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, at = excluded.at, signature = excluded.signature`,
		kind, cp.Seq, cp.Hash, cp.Time.UnixNano(), cp.Signature); err != nil {
		return fmt.Errorf("audit %s checkpoint: %w", kind, err)
	}
	return nil
}

func (s *Store) oneEntry(ctx context.Context, where string, args ...any) (audit.Entry, bool, error) {
	e, err := scanEntry(s.db.R.QueryRowContext(ctx, "SELECT "+entryColumns+" FROM audit_entries "+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return audit.Entry{}, false, nil
	}
	if err != nil {
		return audit.Entry{}, false, fmt.Errorf("audit: %w", err)
	}
	return e, true, nil
}

// Last implements audit.Store.
func (s *Store) Last(ctx context.Context) (audit.Entry, bool, error) {
	return s.oneEntry(ctx, "ORDER BY seq DESC LIMIT 1")
}

// LastBefore implements audit.Store.
func (s *Store) LastBefore(ctx context.Context, t time.Time) (audit.Entry, bool, error) {
	// Entries are sealed in time order, so the newest old entry is the
	// one with the highest seq among them.
	return s.oneEntry(ctx, "WHERE at < ? ORDER BY seq DESC LIMIT 1", t.UnixNano())
}

// Query implements audit.Store.
func (s *Store) Query(ctx context.Context, f audit.Filter) ([]audit.Entry, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	if f.Actor != "" {
		add("actor = ?", f.Actor)
	}
	if f.Project != "" {
		add("project = ?", f.Project)
	}
	if f.Action != "" {
		add("action = ?", f.Action)
	}
	if f.Result != "" {
		add("result = ?", string(f.Result))
	}
	if !f.Since.IsZero() {
		add("at >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("at < ?", f.Until.UnixNano())
	}
	if f.Before > 0 {
		add("seq < ?", f.Before)
	}
	q := "SELECT " + entryColumns + " FROM audit_entries"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq DESC LIMIT ?"
	args = append(args, f.EffectiveLimit())
	rows, err := s.db.R.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit query: %w", err)
	}
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("audit query: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Walk implements audit.Store. It reads in pages so that a long chain
// never holds one read transaction open for the whole walk.
func (s *Store) Walk(ctx context.Context, fn func(audit.Entry) error) error {
	const page = 1000
	after := int64(-1 << 62)
	for {
		rows, err := s.db.R.QueryContext(ctx, "SELECT "+entryColumns+" FROM audit_entries WHERE seq > ? ORDER BY seq LIMIT ?", after, page)
		if err != nil {
			return fmt.Errorf("audit walk: %w", err)
		}
		var batch []audit.Entry
		for rows.Next() {
			e, err := scanEntry(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("audit walk: %w", err)
			}
			batch = append(batch, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("audit walk: %w", err)
		}
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(batch) < page {
			return nil
		}
		after = batch[len(batch)-1].Seq
	}
}

func (s *Store) checkpoint(ctx context.Context, kind string) (audit.Checkpoint, bool, error) {
	var cp audit.Checkpoint
	var at int64
	err := s.db.R.QueryRowContext(ctx, "SELECT seq, hash, at, signature FROM audit_checkpoints WHERE kind = ?", kind).
		Scan(&cp.Seq, &cp.Hash, &at, &cp.Signature)
	if errors.Is(err, sql.ErrNoRows) {
		return cp, false, nil
	}
	if err != nil {
		return cp, false, fmt.Errorf("audit %s checkpoint: %w", kind, err)
	}
	cp.Time = time.Unix(0, at)
	return cp, true, nil
}

// Anchor implements audit.Store.
func (s *Store) Anchor(ctx context.Context) (audit.Checkpoint, bool, error) {
	return s.checkpoint(ctx, "anchor")
}

// Pruned implements audit.Store.
func (s *Store) Pruned(ctx context.Context) (audit.Checkpoint, bool, error) {
	return s.checkpoint(ctx, "pruned")
}

// Prune implements audit.Store.
func (s *Store) Prune(ctx context.Context, cp audit.Checkpoint) (int64, error) {
	var n int64
	err := s.db.InTx(ctx, "audit prune", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM audit_entries WHERE seq <= ?", cp.Seq)
		if err != nil {
			return fmt.Errorf("audit prune: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("audit prune: %w", err)
		}
		return putCheckpoint(ctx, tx, "pruned", cp)
	})
	return n, err
}

// Sync implements audit.Store. Commits are synchronous=NORMAL (they
// survive a crash of the process, and a power cut may roll back the last
// ones); Sync commits once with synchronous=FULL, which fsyncs the WAL and
// with it every commit before. The Log calls it before it writes an
// anchor to the anchor file, at most once a second, so that a power cut
// never leaves the file naming entries the database lost; an fsync per
// batch would cost a busy server tens of fsyncs a second.
func (s *Store) Sync(ctx context.Context) error {
	conn, err := s.db.W.Conn(ctx)
	if err != nil {
		return fmt.Errorf("audit sync: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = FULL"); err != nil {
		return fmt.Errorf("audit sync: %w", err)
	}
	_, err = conn.ExecContext(ctx, `INSERT INTO audit_sync (id, at) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET at = excluded.at`, time.Now().UnixNano())
	if _, rerr := conn.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("audit sync: %w", err)
	}
	return nil
}

// unlimitedPages is SQLite's largest max_page_count.
const unlimitedPages = 0xfffffffe

// CapPages bounds the database at its current size plus extra pages for
// this store's writes (PRAGMA max_page_count on its writer connection):
// past it an Append fails with SQLITE_FULL, exactly as on a full disk. A
// negative extra lifts the bound. It returns the bound now in force. Tests
// use it to fill the disk for real, deterministically.
func (s *Store) CapPages(ctx context.Context, extra int64) (int64, error) {
	conn, err := s.db.W.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit cap pages: %w", err)
	}
	defer conn.Close()
	limit := int64(unlimitedPages)
	if extra >= 0 {
		var pages int64
		if err := conn.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
			return 0, fmt.Errorf("audit cap pages: %w", err)
		}
		limit = pages + extra
	}
	var got int64
	if err := conn.QueryRowContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", limit)).Scan(&got); err != nil {
		return 0, fmt.Errorf("audit cap pages: %w", err)
	}
	return got, nil
}
