// Package postgres is the shared.Store of a scale-out deployment: the
// published vulnerability database, its file in chunks, in the shared
// PostgreSQL database. Only the newest is kept; publishing it is one
// transaction, announced on ChangesChannel when it commits.
package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"berth.dev/berth/internal/pgdb"
	"berth.dev/berth/internal/vulndb/shared"
)

const component = "vulndb"

var migrations = []string{`
CREATE TABLE vulndb_published (
	digest       TEXT PRIMARY KEY,
	updated_at   BIGINT NOT NULL,
	size         BIGINT NOT NULL,
	published_at BIGINT NOT NULL
);
CREATE INDEX vulndb_published_newest ON vulndb_published (published_at DESC);
CREATE TABLE vulndb_chunks (
	digest TEXT NOT NULL REFERENCES vulndb_published (digest) ON DELETE CASCADE,
	seq    INTEGER NOT NULL,
	data   BYTEA NOT NULL,
	PRIMARY KEY (digest, seq)
);
`}

// ChangesChannel is where a publication is announced when it commits
// (the payload is its digest), so that every replica installs it.
const ChangesChannel = "berth_vulndb"

// DefaultChunkSize is the size of one stored chunk of the file: a few
// MiB, so a database of hundreds of MiB is a few hundred rows and only one
// chunk is in memory at a time.
const DefaultChunkSize = 4 << 20

// publishLock is the advisory lock key that makes publications take
// turns ("berthvdb").
const publishLock = 0x6265727468766462

// Store is a shared.Store in PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	// ChunkSize is the size of the stored chunks; DefaultChunkSize when
	// zero.
	ChunkSize int
}

var _ shared.Store = (*Store)(nil)

// New migrates the tables behind pool and returns a Store over them;
// Close leaves the pool open.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if err := pgdb.Migrate(ctx, pool, component, migrations); err != nil {
		return nil, fmt.Errorf("vulnerability database store: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close implements shared.Store.
func (s *Store) Close() error { return nil }

// Latest implements shared.Store.
func (s *Store) Latest(ctx context.Context) (shared.Published, error) {
	p, err := scanPublished(s.pool.QueryRow(ctx, `SELECT digest, updated_at, size, published_at FROM vulndb_published
		ORDER BY published_at DESC LIMIT 1`))
	if errors.Is(err, pgx.ErrNoRows) {
		return p, shared.ErrNone
	}
	if err != nil {
		return p, fmt.Errorf("published vulnerability database: %w", err)
	}
	return p, nil
}

func scanPublished(row pgx.Row) (shared.Published, error) {
	var p shared.Published
	var updated, published int64
	err := row.Scan(&p.Digest, &updated, &p.Size, &published)
	p.UpdatedAt, p.PublishedAt = time.Unix(0, updated).UTC(), time.Unix(0, published).UTC()
	return p, err
}

// Publish implements shared.Store: in one transaction, the databases
// published before are deleted, the new one's row inserted and its file
// streamed in as chunks, checked against p's size and digest, and the
// publication announced; readers see the old one until it commits.
func (s *Store) Publish(ctx context.Context, p shared.Published, r io.Reader) error {
	size := s.ChunkSize
	if size <= 0 {
		size = DefaultChunkSize
	}
	if p.PublishedAt.IsZero() {
		p.PublishedAt = time.Now().UTC()
	}
	buf := make([]byte, size)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Two publications at once would each delete the other's row
		// only if they take turns.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(publishLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM vulndb_published"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO vulndb_published (digest, updated_at, size, published_at) VALUES ($1, $2, $3, $4)`,
			p.Digest, p.UpdatedAt.UnixNano(), p.Size, p.PublishedAt.UnixNano()); err != nil {
			return err
		}
		h := sha256.New()
		var n int64
		for seq := 0; ; seq++ {
			k, err := io.ReadFull(r, buf)
			if k > 0 {
				h.Write(buf[:k])
				n += int64(k)
				if _, err := tx.Exec(ctx, "INSERT INTO vulndb_chunks (digest, seq, data) VALUES ($1, $2, $3)",
					p.Digest, seq, buf[:k]); err != nil {
					return err
				}
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("read the database file: %w", err)
			}
		}
		if n != p.Size {
			return fmt.Errorf("the database file has %d bytes, not %d", n, p.Size)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != p.Digest {
			return fmt.Errorf("the database file has digest %s, not %s", got, p.Digest)
		}
		_, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", ChangesChannel, p.Digest)
		return err
	})
	if err != nil {
		return fmt.Errorf("publish vulnerability database %s: %w", p.Digest, err)
	}
	return nil
}

// Fetch implements shared.Store. It reads one snapshot (a publication
// committing meanwhile does not cut it short) and checks the chunks'
// order, the size and the digest.
func (s *Store) Fetch(ctx context.Context, digest string, w io.Writer) (shared.Published, error) {
	var p shared.Published
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		p, err = scanPublished(tx.QueryRow(ctx, "SELECT digest, updated_at, size, published_at FROM vulndb_published WHERE digest = $1", digest))
		if errors.Is(err, pgx.ErrNoRows) {
			return shared.ErrGone
		}
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT seq, data FROM vulndb_chunks WHERE digest = $1 ORDER BY seq", digest)
		if err != nil {
			return err
		}
		defer rows.Close()
		h := sha256.New()
		var n int64
		want := 0
		var seq int
		var data []byte
		for rows.Next() {
			if err := rows.Scan(&seq, &data); err != nil {
				return err
			}
			if seq != want {
				return fmt.Errorf("chunk %d is missing", want)
			}
			want++
			h.Write(data)
			n += int64(len(data))
			if _, err := w.Write(data); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if n != p.Size {
			return fmt.Errorf("stored content has %d bytes, not %d", n, p.Size)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
			return fmt.Errorf("stored content has digest %s: damaged", got)
		}
		return nil
	})
	if err != nil {
		return p, fmt.Errorf("fetch vulnerability database %s: %w", digest, err)
	}
	return p, nil
}
