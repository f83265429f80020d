// Package sqlite is the embedded audit.Store, kept in the same SQLite file
// as the registry's metadata (meta.db) so that a data directory stays one
// database to back up. It also provides DB, the connection pair and
// per-component migrations that the other stores living beside the meta
// store (internal/auth/sqlite) share.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// readers is the size of the read connection pool.
const readers = 2

// DB is one SQLite file opened as internal/meta/sqlite opens it: WAL mode,
// one writer connection (SQLite has one writer at a time, and the busy
// timeout makes this process's writers queue behind each other), and a
// small pool of query-only readers.
type DB struct {
	W *sql.DB
	R *sql.DB
}

// OpenDB opens path and brings component's tables to the newest of
// migrations. Each component keeps its own version in the
// schema_versions table; the meta store's PRAGMA user_version is left to
// it. Migrations are appended, never edited, and kept to SQL that
// PostgreSQL also runs.
func OpenDB(ctx context.Context, path, component string, migrations []string) (*DB, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("database path %q: must not contain '?' or '#'", path)
	}
	common := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	w, err := sql.Open("sqlite", common+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := migrate(ctx, w, component, migrations); err != nil {
		w.Close()
		return nil, fmt.Errorf("%s database %s: %w", component, path, err)
	}
	r, err := sql.Open("sqlite", common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	r.SetConnMaxLifetime(0)
	return &DB{W: w, R: r}, nil
}

// Close closes both pools.
func (db *DB) Close() error { return errors.Join(db.R.Close(), db.W.Close()) }

func migrate(ctx context.Context, db *sql.DB, component string, migrations []string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_versions (
		component TEXT PRIMARY KEY,
		version   INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var version int
	err = tx.QueryRowContext(ctx, "SELECT version FROM schema_versions WHERE component = ?", component).Scan(&version)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this berth (%d)", version, len(migrations))
	}
	if version == len(migrations) {
		return nil
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_versions (component, version) VALUES (?, ?)
		ON CONFLICT (component) DO UPDATE SET version = excluded.version`, component, len(migrations)); err != nil {
		return fmt.Errorf("migrate: set version: %w", err)
	}
	return tx.Commit()
}

// InTx runs fn in a write transaction.
func (db *DB) InTx(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	tx, err := db.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", what, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", what, err)
	}
	return nil
}
