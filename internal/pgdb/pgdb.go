// Package pgdb is what berth's PostgreSQL stores share: opening a pool with
// an error that says what is wrong at start (not at the first request),
// versioned migrations run once under an advisory lock whichever replica
// starts first, and transactions retried when PostgreSQL aborts one to
// resolve a deadlock or a serialisation conflict.
//
// Each store keeps its own tables and migration list; they share one
// database and, in the server, one pool.
package pgdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Open connects a pool to the database at rawURL and checks it answers,
// so that a wrong address, password or database name fails the start of
// the process with PostgreSQL's own reason. The URL's password is never
// part of an error.
func Open(ctx context.Context, rawURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("postgres URL %s: %w", Redact(rawURL), errors.Unwrap(err))
	}
	// Connections die with a restarted server; the pool replaces them. A
	// health check every few seconds finds dead idle ones before a
	// request does.
	cfg.HealthCheckPeriod = 5 * time.Second
	// pgxpool's default is the number of CPUs (at least 4): a replica on
	// two cores would queue its requests behind four connections. The
	// URL's pool_max_conns still decides when given.
	if !strings.Contains(rawURL, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	cfg.MaxConnIdleTime = 5 * time.Minute
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", Redact(rawURL), err)
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s: %w", Redact(rawURL), err)
	}
	return pool, nil
}

// DefaultMaxConns bounds a pool's connections unless the URL's
// pool_max_conns says otherwise. Each replica also opens up to three of
// its own (notifications, the relay's and garbage collection's locks) and
// river's; PostgreSQL's default max_connections of 100 fits four replicas.
const DefaultMaxConns = 16

// Redact returns rawURL without its password, for messages.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// schemaVersions is the one table every component records its schema
// version in.
const schemaVersions = `CREATE TABLE IF NOT EXISTS schema_versions (
	component TEXT PRIMARY KEY,
	version   INTEGER NOT NULL
)`

// migrationLock is the advisory lock key migrations take ("berthmig").
const migrationLock = 0x626572746d6967

// Migrate brings component's tables to the latest of migrations (applied in
// order; append, never edit). All of it is one transaction under an
// advisory lock: replicas starting together wait for the first, which
// migrates while the others then find nothing to do; a migration
// interrupted halfway (a killed process, a lost connection) leaves the
// schema as it was, since PostgreSQL's DDL is transactional. A database
// migrated by a newer berth is refused.
func Migrate(ctx context.Context, pool *pgxpool.Pool, component string, migrations []string) error {
	return InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
			return fmt.Errorf("migrate %s: lock: %w", component, err)
		}
		if _, err := tx.Exec(ctx, schemaVersions); err != nil {
			return fmt.Errorf("migrate %s: %w", component, err)
		}
		var version int
		err := tx.QueryRow(ctx, "SELECT version FROM schema_versions WHERE component = $1", component).Scan(&version)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("migrate %s: read version: %w", component, err)
		}
		if version > len(migrations) {
			return fmt.Errorf("%s schema version %d is newer than this berth (%d)", component, version, len(migrations))
		}
		for i := version; i < len(migrations); i++ {
			if _, err := tx.Exec(ctx, migrations[i]); err != nil {
				return fmt.Errorf("%s migration %d: %w", component, i+1, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_versions (component, version) VALUES ($1, $2)
			ON CONFLICT (component) DO UPDATE SET version = excluded.version`, component, len(migrations)); err != nil {
			return fmt.Errorf("migrate %s: set version: %w", component, err)
		}
		return nil
	})
}

// maxAttempts bounds InTx's retries of transactions PostgreSQL aborted.
const maxAttempts = 5

// InTx runs fn in a transaction and commits it. A transaction aborted as a
// deadlock victim or for a serialisation failure is run again (fn must be
// safe to repeat: it only talks to the database through tx).
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	return InTxOptions(ctx, pool, pgx.TxOptions{}, fn)
}

// InTxOptions is InTx with transaction options.
func InTxOptions(ctx context.Context, pool *pgxpool.Pool, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = pgx.BeginTxFunc(ctx, pool, opts, fn)
		if err == nil || !Retryable(err) || attempt == maxAttempts || ctx.Err() != nil {
			return err
		}
		// Let the transaction that won go ahead.
		select {
		case <-time.After(time.Duration(attempt*attempt) * 5 * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
}

// Retryable reports whether err is PostgreSQL aborting a transaction that
// would succeed if run again: a deadlock or a serialisation failure.
func Retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return true
		}
	}
	return false
}

// Unavailable reports whether err means the database cannot be reached or
// is not accepting work right now (restarting, shutting down, out of
// connections): a condition the caller should answer with "try again
// later" rather than as a failure of the request.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "08", // connection exception
			"57", // operator intervention: admin_shutdown, cannot_connect_now, ...
			"53": // insufficient resources: too_many_connections, disk_full, ...
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return pgconn.SafeToRetry(err)
}

// Querier is what pool, connection and transaction share for queries.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	_ Querier = (*pgxpool.Pool)(nil)
	_ Querier = (pgx.Tx)(nil)
)

// Strings collects the single text column of rows.
func Strings(rows pgx.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
