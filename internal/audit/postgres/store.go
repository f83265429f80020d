// Package postgres is the audit.Store of a scale-out deployment: one
// hash chain in the shared PostgreSQL database that every replica appends
// to. Appends take turns on an advisory lock held to their commit, and
// AppendSealing seals each batch after the tip the database holds, so the
// replicas' entries interleave into one chain with no gap and no fork.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/pgdb"
)

const component = "audit"

// migrations of the audit tables: the schema the SQLite store reached.
var migrations = []string{`
CREATE TABLE audit_entries (
	seq        BIGINT PRIMARY KEY,
	at         BIGINT NOT NULL,
	actor      TEXT NOT NULL,
	source_ip  TEXT NOT NULL,
	action     TEXT NOT NULL,
	project    TEXT NOT NULL,
	repository TEXT NOT NULL,
	digest     TEXT NOT NULL,
	result     TEXT NOT NULL,
	detail     TEXT NOT NULL,
	count      BIGINT NOT NULL,
	prev_hash  TEXT NOT NULL,
	hash       TEXT NOT NULL
);
CREATE INDEX audit_entries_by_at ON audit_entries(at);
CREATE INDEX audit_entries_by_project ON audit_entries(project, seq);

CREATE TABLE audit_checkpoints (
	kind      TEXT PRIMARY KEY,
	seq       BIGINT NOT NULL,
	hash      TEXT NOT NULL,
	at        BIGINT NOT NULL,
	signature BYTEA NOT NULL
);
`}

// Store is an audit.Store in PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
}

var (
	_ audit.Store        = (*Store)(nil)
	_ audit.SealingStore = (*Store)(nil)
)

// Open connects to the database at url, migrates the audit tables and
// returns a Store that closes its pool on Close.
func Open(ctx context.Context, url string) (*Store, error) {
	pool, err := pgdb.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("audit database: %w", err)
	}
	s, err := New(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownPool = true
	return s, nil
}

// New migrates the audit tables behind pool and returns a Store over it;
// Close leaves the pool open.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if err := pgdb.Migrate(ctx, pool, component, migrations); err != nil {
		return nil, fmt.Errorf("audit database: %w", err)
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

// Sync implements audit.Store: a PostgreSQL commit is durable once it
// returns (synchronous_commit, the server's default), so there is nothing
// to do.
func (s *Store) Sync(context.Context) error { return nil }

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

// Append implements audit.Store. Entries go in with COPY. The entries
// were sealed by the caller; Log uses AppendSealing instead, which seals
// them after the database's own tip.
func (s *Store) Append(ctx context.Context, entries []audit.Entry, anchor audit.Checkpoint) error {
	return s.inTx(ctx, "audit append", func(tx pgx.Tx) error {
		if err := lockChain(ctx, tx); err != nil {
			return err
		}
		return appendEntries(ctx, tx, entries, anchor)
	})
}

// chainLock is the advisory lock every append holds to its commit
// ("bertaud").
const chainLock = 0x62657274617564

func lockChain(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(chainLock)); err != nil {
		return fmt.Errorf("audit append: lock the chain: %w", err)
	}
	return nil
}

func appendEntries(ctx context.Context, tx pgx.Tx, entries []audit.Entry, anchor audit.Checkpoint) error {
	rows := make([][]any, len(entries))
	for i, e := range entries {
		rows[i] = []any{e.Seq, e.Time.UnixNano(), e.Actor, e.SourceIP, e.Action, e.Project,
			e.Repository, e.Digest, string(e.Result), e.Detail, max(e.Count, 1), e.PrevHash, e.Hash}
	}
	if len(rows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_entries"}, strings.Split(entryColumns, ", "), pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("audit append entries %d to %d: %w", entries[0].Seq, entries[len(entries)-1].Seq, err)
		}
	}
	return putCheckpoint(ctx, tx, "anchor", anchor)
}

// AppendSealing implements audit.SealingStore: under the chain's lock it
// reads the tip every replica appended to, lets seal number and chain the
// entries after it, and stores them with the anchor seal signed. Replicas
// appending at once take turns, so there is one chain with no gap or fork.
func (s *Store) AppendSealing(ctx context.Context, entries []audit.Entry,
	seal func(seq int64, prev string) (audit.Checkpoint, error)) error {
	return s.inTx(ctx, "audit append", func(tx pgx.Tx) error {
		if err := lockChain(ctx, tx); err != nil {
			return err
		}
		var seq int64
		var prev string
		err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1").Scan(&seq, &prev)
		if errors.Is(err, pgx.ErrNoRows) {
			// Everything may have been pruned: continue from the checkpoint.
			err = tx.QueryRow(ctx, "SELECT seq, hash FROM audit_checkpoints WHERE kind = 'pruned'").Scan(&seq, &prev)
			if errors.Is(err, pgx.ErrNoRows) {
				seq, prev, err = 0, "", nil
			}
		}
		if err != nil {
			return fmt.Errorf("audit append: read the tip: %w", err)
		}
		anchor, err := seal(seq, prev)
		if err != nil {
			return err
		}
		return appendEntries(ctx, tx, entries, anchor)
	})
}

func putCheckpoint(ctx context.Context, tx pgx.Tx, kind string, cp audit.Checkpoint) error {
	if _, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (kind, seq, hash, at, signature) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (kind) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, at = excluded.at, signature = excluded.signature`,
		kind, cp.Seq, cp.Hash, cp.Time.UnixNano(), cp.Signature); err != nil {
		return fmt.Errorf("audit %s checkpoint: %w", kind, err)
	}
	return nil
}

func (s *Store) oneEntry(ctx context.Context, where string, args ...any) (audit.Entry, bool, error) {
	e, err := scanEntry(s.pool.QueryRow(ctx, "SELECT "+entryColumns+" FROM audit_entries "+where, args...))
	if errors.Is(err, pgx.ErrNoRows) {
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
	return s.oneEntry(ctx, "WHERE at < $1 ORDER BY seq DESC LIMIT 1", t.UnixNano())
}

// Query implements audit.Store.
func (s *Store) Query(ctx context.Context, f audit.Filter) ([]audit.Entry, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Actor != "" {
		add("actor = $%d", f.Actor)
	}
	if f.Project != "" {
		add("project = $%d", f.Project)
	}
	if f.Action != "" {
		add("action = $%d", f.Action)
	}
	if f.Result != "" {
		add("result = $%d", string(f.Result))
	}
	if !f.Since.IsZero() {
		add("at >= $%d", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("at < $%d", f.Until.UnixNano())
	}
	if f.Before > 0 {
		add("seq < $%d", f.Before)
	}
	q := "SELECT " + entryColumns + " FROM audit_entries"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, f.EffectiveLimit())
	q += fmt.Sprintf(" ORDER BY seq DESC LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, q, args...)
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
		rows, err := s.pool.Query(ctx, "SELECT "+entryColumns+" FROM audit_entries WHERE seq > $1 ORDER BY seq LIMIT $2", after, page)
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
	err := s.pool.QueryRow(ctx, "SELECT seq, hash, at, signature FROM audit_checkpoints WHERE kind = $1", kind).
		Scan(&cp.Seq, &cp.Hash, &at, &cp.Signature)
	if errors.Is(err, pgx.ErrNoRows) {
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
	err := s.inTx(ctx, "audit prune", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM audit_entries WHERE seq <= $1", cp.Seq)
		if err != nil {
			return fmt.Errorf("audit prune: %w", err)
		}
		n = tag.RowsAffected()
		return putCheckpoint(ctx, tx, "pruned", cp)
	})
	return n, err
}
