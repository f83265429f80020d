// Package sqlite is the embedded meta.Store: one SQLite database file in WAL
// mode (modernc.org/sqlite, pure Go), written through a single connection
// and read through a small pool, so readers never wait for a writer and
// writers never race each other.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/registry/event"
)

// readers is the size of the read connection pool. Reads are short indexed
// lookups; a few connections keep every core busy.
const readers = 4

// Store is a meta.Store in one SQLite database.
type Store struct {
	w *sql.DB // exactly one connection: SQLite allows one writer at a time
	r *sql.DB // query_only connections

	manifestStmt *sql.Stmt
	tagStmt      *sql.Stmt
	blobSizeStmt *sql.Stmt
}

var _ meta.Store = (*Store)(nil)

// Open opens (creating and migrating if needed) the database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("meta database path %q: must not contain '?' or '#'", path)
	}
	if err := privateFiles(path); err != nil {
		return nil, fmt.Errorf("meta database %s: %w", path, err)
	}
	// synchronous(NORMAL) in WAL mode: a commit is durable once written to
	// the WAL, which survives a crash of the process (kill -9); a power cut
	// may roll back the last commits, never half of one. Blob content is
	// fsynced before the metadata naming it commits, so a rolled-back push
	// leaves garbage, not a manifest without its blobs. FULL would add an
	// fsync (2 ms here) to every push's two to three commits.
	common := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	w, err := sql.Open("sqlite", common+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open meta database %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("meta database %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open meta database %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	r.SetConnMaxLifetime(0)
	s := &Store{w: w, r: r}
	for _, p := range []struct {
		stmt **sql.Stmt
		q    string
	}{
		{&s.manifestStmt, `SELECT media_type, artifact_type, subject, content, pushed_at FROM manifests
			WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND digest = ?`},
		{&s.tagStmt, `SELECT digest FROM tags
			WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND name = ?`},
		{&s.blobSizeStmt, `SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
			WHERE rb.repository_id = (SELECT id FROM repositories WHERE name = ?) AND rb.digest = ?`},
	} {
		if *p.stmt, err = r.PrepareContext(ctx, p.q); err != nil {
			s.Close()
			return nil, fmt.Errorf("meta database %s: prepare: %w", path, err)
		}
	}
	return s, nil
}

// privateFiles creates the database file owner-only (0600) before SQLite
// opens it, and takes group and other access away from an existing one
// and its -wal and -shm files. The database holds password hashes; SQLite
// would create it 0644 less the umask, whatever the directory's mode, and
// creates -wal and -shm with the database file's mode.
func privateFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&0o700); err != nil {
				return err
			}
		}
	}
	return nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this berth (%d)", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return fmt.Errorf("migrate: set version: %w", err)
	}
	return tx.Commit()
}

// Close implements meta.Store.
func (s *Store) Close() error {
	for _, st := range []*sql.Stmt{s.manifestStmt, s.tagStmt, s.blobSizeStmt} {
		if st != nil {
			st.Close()
		}
	}
	return errors.Join(s.r.Close(), s.w.Close())
}

// Ping implements meta.Store.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("meta database: %w", err)
	}
	return nil
}

func now() int64 { return time.Now().UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n) }

// inTx runs fn in a write transaction.
func (s *Store) inTx(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
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

// exists reports whether query finds a row.
func exists(ctx context.Context, q querier, query string, args ...any) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// repositoryID returns the id of repo, or ErrRepositoryUnknown.
func repositoryID(ctx context.Context, q querier, repo string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, "SELECT id FROM repositories WHERE name = ?", repo).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: %s", meta.ErrRepositoryUnknown, repo)
	}
	if err != nil {
		return 0, fmt.Errorf("repository %s: %w", repo, err)
	}
	return id, nil
}

// ensureRepository returns the id of repo, creating it if needed.
func ensureRepository(ctx context.Context, tx *sql.Tx, repo string) (int64, error) {
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO repositories (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", repo, now()); err != nil {
		return 0, fmt.Errorf("create repository %s: %w", repo, err)
	}
	return repositoryID(ctx, tx, repo)
}

func limit(n int) int {
	if n < 0 {
		return -1
	}
	return n
}

func collectStrings(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Repositories implements meta.Store.
func (s *Store) Repositories(ctx context.Context, last string, n int) ([]string, error) {
	names, err := collectStrings(s.r.QueryContext(ctx, `SELECT name FROM repositories r
		WHERE name > ? AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id)
		ORDER BY name LIMIT ?`, last, limit(n)))
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	return names, nil
}

// RepositoryNames implements meta.Store.
func (s *Store) RepositoryNames(ctx context.Context) ([]string, error) {
	names, err := collectStrings(s.r.QueryContext(ctx, "SELECT name FROM repositories ORDER BY name"))
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	return names, nil
}

// upsertBlob records a blob whose content was verified: only a verified
// write (or a mount of a verified blob) knows its true size.
const upsertBlob = `INSERT INTO blobs (digest, size, last_used) VALUES (?, ?, ?)
	ON CONFLICT (digest) DO UPDATE SET size = excluded.size, last_used = excluded.last_used`

const upsertLink = `INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES (?, ?, ?)
	ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = excluded.linked_at`

// claimBlob records a claim on a blob: a new record has no size yet (-1);
// an existing one keeps its verified size and only its last use moves.
const claimBlob = `INSERT INTO blobs (digest, size, last_used) VALUES (?, -1, ?)
	ON CONFLICT (digest) DO UPDATE SET last_used = excluded.last_used`

// TouchBlob implements meta.Store.
func (s *Store) TouchBlob(ctx context.Context, d digest.Digest) error {
	if _, err := s.w.ExecContext(ctx, claimBlob, d.String(), now()); err != nil {
		return fmt.Errorf("touch blob %s: %w", d, err)
	}
	return nil
}

// SetBlobSize implements meta.Store.
func (s *Store) SetBlobSize(ctx context.Context, d digest.Digest, size int64) error {
	res, err := s.w.ExecContext(ctx, "UPDATE blobs SET size = ? WHERE digest = ?", size, d.String())
	if err != nil {
		return fmt.Errorf("set size of blob %s: %w", d, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("%w: %s", meta.ErrBlobUnknown, d)
	}
	return nil
}

func link(ctx context.Context, tx *sql.Tx, repoID int64, d digest.Digest, size int64) error {
	t := now()
	if _, err := tx.ExecContext(ctx, upsertBlob, d.String(), size, t); err != nil {
		return fmt.Errorf("record blob %s: %w", d, err)
	}
	if _, err := tx.ExecContext(ctx, upsertLink, repoID, d.String(), t); err != nil {
		return fmt.Errorf("link blob %s: %w", d, err)
	}
	// Pushed again: a manifest naming it is welcome again.
	if _, err := tx.ExecContext(ctx, "DELETE FROM pruned_blob_links WHERE repository_id = ? AND digest = ?", repoID, d.String()); err != nil {
		return fmt.Errorf("link blob %s: %w", d, err)
	}
	return nil
}

// LinkBlob implements meta.Store.
func (s *Store) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	return s.inTx(ctx, "link blob", func(tx *sql.Tx) error {
		id, err := ensureRepository(ctx, tx, repo)
		if err != nil {
			return err
		}
		return link(ctx, tx, id, d, size)
	})
}

// LinkUploadedBlob implements meta.Store.
func (s *Store) LinkUploadedBlob(ctx context.Context, uploadID string, d digest.Digest, size int64) error {
	return s.inTx(ctx, "finish upload", func(tx *sql.Tx) error {
		var repoID int64
		err := tx.QueryRowContext(ctx, "SELECT repository_id FROM uploads WHERE id = ?", uploadID).Scan(&repoID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s", meta.ErrUploadUnknown, uploadID)
		}
		if err != nil {
			return fmt.Errorf("upload %s: %w", uploadID, err)
		}
		if err := link(ctx, tx, repoID, d, size); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM uploads WHERE id = ?", uploadID); err != nil {
			return fmt.Errorf("end upload %s: %w", uploadID, err)
		}
		return nil
	})
}

// BlobSize implements meta.Store.
func (s *Store) BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	var size int64
	err := s.blobSizeStmt.QueryRowContext(ctx, repo, d.String()).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: %s in %s", meta.ErrBlobUnknown, d, repo)
	}
	if err != nil {
		return 0, fmt.Errorf("blob %s in %s: %w", d, repo, err)
	}
	return size, nil
}

// UnlinkBlob implements meta.Store.
func (s *Store) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM repository_blobs
		WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND digest = ?`, repo, d.String())
	if err != nil {
		return fmt.Errorf("unlink blob %s from %s: %w", d, repo, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("%w: %s in %s", meta.ErrBlobUnknown, d, repo)
	}
	return nil
}

// MountBlob implements meta.Store.
func (s *Store) MountBlob(ctx context.Context, from, repo string, d digest.Digest) (int64, error) {
	var size int64
	err := s.inTx(ctx, "mount blob", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
			WHERE rb.repository_id = (SELECT id FROM repositories WHERE name = ?) AND rb.digest = ?`,
			from, d.String()).Scan(&size)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s in %s", meta.ErrBlobUnknown, d, from)
		}
		if err != nil {
			return fmt.Errorf("mount blob %s from %s: %w", d, from, err)
		}
		id, err := ensureRepository(ctx, tx, repo)
		if err != nil {
			return err
		}
		return link(ctx, tx, id, d, size)
	})
	return size, err
}

// BlobRepositories implements meta.Store.
func (s *Store) BlobRepositories(ctx context.Context, d digest.Digest, n int) ([]string, error) {
	names, err := collectStrings(s.r.QueryContext(ctx, `SELECT r.name FROM repository_blobs rb
		JOIN repositories r ON r.id = rb.repository_id
		WHERE rb.digest = ? ORDER BY r.name LIMIT ?`, d.String(), limit(n)))
	if err != nil {
		return nil, fmt.Errorf("repositories with blob %s: %w", d, err)
	}
	return names, nil
}

// PutManifest implements meta.Store.
func (s *Store) PutManifest(ctx context.Context, repo string, m *meta.Manifest, tags []string) error {
	var annotations sql.NullString
	if len(m.Annotations) > 0 {
		b, err := json.Marshal(m.Annotations)
		if err != nil {
			return fmt.Errorf("put manifest %s: annotations: %w", m.Digest, err)
		}
		annotations = sql.NullString{String: string(b), Valid: true}
	}
	var subject sql.NullString
	if m.Subject != "" {
		subject = sql.NullString{String: m.Subject.String(), Valid: true}
	}
	pushed := m.PushedAt.UnixNano()
	if m.PushedAt.IsZero() {
		pushed = now()
	}
	// A digest may be named twice (a config that is also a layer); keep
	// the strongest kind.
	refs := map[digest.Digest]meta.RefKind{}
	for _, r := range m.References {
		if k, ok := refs[r.Digest]; !ok || r.Kind < k {
			refs[r.Digest] = r.Kind
		}
	}
	return s.inTx(ctx, "put manifest", func(tx *sql.Tx) error {
		repoID, err := ensureRepository(ctx, tx, repo)
		if err != nil {
			return err
		}
		// Check every blob in the transaction that stores the manifest
		// (and, through its references, claims the blobs): a collection
		// either ran before, and its pruned links are remembered, or
		// runs after and sees the references.
		present := make(map[digest.Digest]bool, len(refs))
		missing := &meta.MissingBlobsError{}
		for _, r := range m.References {
			kind := refs[r.Digest]
			if _, checked := present[r.Digest]; checked || kind == meta.RefManifest {
				continue
			}
			linked, err := exists(ctx, tx, "SELECT 1 FROM repository_blobs WHERE repository_id = ? AND digest = ?", repoID, r.Digest.String())
			if err != nil {
				return fmt.Errorf("put manifest %s: check blob %s: %w", m.Digest, r.Digest, err)
			}
			present[r.Digest] = linked
			switch {
			case linked || kind == meta.RefExternal:
			case kind == meta.RefBlob:
				missing.Digests = append(missing.Digests, r.Digest)
			default:
				pruned, err := exists(ctx, tx, "SELECT 1 FROM pruned_blob_links WHERE repository_id = ? AND digest = ?", repoID, r.Digest.String())
				if err != nil {
					return fmt.Errorf("put manifest %s: check blob %s: %w", m.Digest, r.Digest, err)
				}
				if pruned {
					missing.Digests = append(missing.Digests, r.Digest)
					missing.Collected = append(missing.Collected, r.Digest)
				}
			}
		}
		if len(missing.Digests) > 0 {
			return missing
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO manifests
			(repository_id, digest, media_type, artifact_type, subject, annotations, size, content, pushed_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (repository_id, digest) DO UPDATE SET pushed_at = excluded.pushed_at`,
			repoID, m.Digest.String(), m.MediaType, m.ArtifactType, subject, annotations,
			len(m.Content), m.Content, pushed); err != nil {
			return fmt.Errorf("put manifest %s: %w", m.Digest, err)
		}
		for d, kind := range refs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO manifest_references (repository_id, manifest, digest, kind, present)
				VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET present = max(present, excluded.present)`, repoID, m.Digest.String(), d.String(), int(kind), present[d]); err != nil {
				return fmt.Errorf("put manifest %s: reference %s: %w", m.Digest, d, err)
			}
		}
		for _, key := range m.Signatures {
			if _, err := tx.ExecContext(ctx, `INSERT INTO signature_arrivals (key, first_seen) VALUES (?, ?)
				ON CONFLICT DO NOTHING`, key, pushed); err != nil {
				return fmt.Errorf("put manifest %s: signature arrival: %w", m.Digest, err)
			}
		}
		for _, tag := range tags {
			if _, err := tx.ExecContext(ctx, `INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
				repoID, tag, m.Digest.String(), pushed); err != nil {
				return fmt.Errorf("put manifest %s: tag %s: %w", m.Digest, tag, err)
			}
		}
		return recordEvent(ctx, tx, event.Event{Kind: event.ManifestPushed, Repository: repo, Digest: m.Digest,
			MediaType: m.MediaType, ArtifactType: m.ArtifactType, Subject: m.Subject, Tags: tags})
	})
}

// SignatureArrivals implements meta.Store.
func (s *Store) SignatureArrivals(ctx context.Context, keys []string) (map[string]time.Time, error) {
	out := make(map[string]time.Time, len(keys))
	for _, key := range keys {
		var at int64
		err := s.r.QueryRowContext(ctx, "SELECT first_seen FROM signature_arrivals WHERE key = ?", key).Scan(&at)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return nil, fmt.Errorf("signature arrivals: %w", err)
		default:
			out[key] = fromNanos(at)
		}
	}
	return out, nil
}

// Manifest implements meta.Store. Annotations are not loaded: serving a
// manifest does not need them and they are in its content.
func (s *Store) Manifest(ctx context.Context, repo string, d digest.Digest) (*meta.Manifest, error) {
	m := &meta.Manifest{Digest: d}
	var subject sql.NullString
	var pushed int64
	err := s.manifestStmt.QueryRowContext(ctx, repo, d.String()).
		Scan(&m.MediaType, &m.ArtifactType, &subject, &m.Content, &pushed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s in %s", meta.ErrManifestUnknown, d, repo)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest %s in %s: %w", d, repo, err)
	}
	m.Subject = digest.Digest(subject.String)
	m.PushedAt = fromNanos(pushed)
	return m, nil
}

// ManifestRepositories implements meta.Store.
func (s *Store) ManifestRepositories(ctx context.Context, d digest.Digest, n int) ([]string, error) {
	names, err := collectStrings(s.r.QueryContext(ctx, `SELECT r.name FROM manifests m
		JOIN repositories r ON r.id = m.repository_id WHERE m.digest = ? ORDER BY r.name LIMIT ?`, d.String(), limit(n)))
	if err != nil {
		return nil, fmt.Errorf("repositories of manifest %s: %w", d, err)
	}
	return names, nil
}

// Artifacts implements meta.Store.
func (s *Store) Artifacts(ctx context.Context, repo string, offset, n int) ([]meta.Artifact, int, error) {
	const top = `FROM manifests m WHERE m.repository_id = (SELECT id FROM repositories WHERE name = ?)
		AND m.subject IS NULL
		AND NOT EXISTS (SELECT 1 FROM manifest_references r
			WHERE r.digest = m.digest AND +r.repository_id = m.repository_id AND r.kind = ?)`
	// The unary + keeps SQLite from looking the references up by the
	// repository alone (its primary key's prefix: every reference of the
	// repository, for every manifest, 1.6 s for 1,000 images) instead of
	// by digest.
	var total int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) `+top, repo, int(meta.RefManifest)).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("artifacts of %s: %w", repo, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT m.digest, m.media_type, m.artifact_type, m.size, m.pushed_at,
		(SELECT group_concat(name, char(10)) FROM (SELECT t.name FROM tags t
			WHERE t.repository_id = m.repository_id AND t.digest = m.digest ORDER BY t.name)) `+top+`
		ORDER BY m.pushed_at DESC, m.digest LIMIT ? OFFSET ?`, repo, int(meta.RefManifest), limit(n), offset)
	if err != nil {
		return nil, 0, fmt.Errorf("artifacts of %s: %w", repo, err)
	}
	defer rows.Close()
	out := []meta.Artifact{}
	for rows.Next() {
		var a meta.Artifact
		var d string
		var pushed int64
		var tags sql.NullString
		if err := rows.Scan(&d, &a.MediaType, &a.ArtifactType, &a.Size, &pushed, &tags); err != nil {
			return nil, 0, fmt.Errorf("artifacts of %s: %w", repo, err)
		}
		a.Digest, a.PushedAt = digest.Digest(d), fromNanos(pushed)
		if tags.Valid && tags.String != "" {
			a.Tags = strings.Split(tags.String, "\n")
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("artifacts of %s: %w", repo, err)
	}
	return out, total, nil
}

// ManifestTags implements meta.Store.
func (s *Store) ManifestTags(ctx context.Context, repo string, d digest.Digest) ([]string, error) {
	tags, err := collectStrings(s.r.QueryContext(ctx, `SELECT name FROM tags
		WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND digest = ? ORDER BY name`, repo, d.String()))
	if err != nil {
		return nil, fmt.Errorf("tags of %s@%s: %w", repo, d, err)
	}
	return tags, nil
}

// Tag implements meta.Store.
func (s *Store) Tag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	var d string
	err := s.tagStmt.QueryRowContext(ctx, repo, tag).Scan(&d)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: %s:%s", meta.ErrTagUnknown, repo, tag)
	}
	if err != nil {
		return "", fmt.Errorf("tag %s:%s: %w", repo, tag, err)
	}
	return digest.Digest(d), nil
}

// DeleteManifest implements meta.Store.
func (s *Store) DeleteManifest(ctx context.Context, repo string, d digest.Digest) ([]string, error) {
	var tags []string
	err := s.inTx(ctx, "delete manifest", func(tx *sql.Tx) error {
		repoID, err := repositoryID(ctx, tx, repo)
		if errors.Is(err, meta.ErrRepositoryUnknown) {
			return fmt.Errorf("%w: %s in %s", meta.ErrManifestUnknown, d, repo)
		}
		if err != nil {
			return err
		}
		tags, err = collectStrings(tx.QueryContext(ctx,
			"SELECT name FROM tags WHERE repository_id = ? AND digest = ? ORDER BY name", repoID, d.String()))
		if err != nil {
			return fmt.Errorf("delete manifest %s: %w", d, err)
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM manifests WHERE repository_id = ? AND digest = ?", repoID, d.String())
		if err != nil {
			return fmt.Errorf("delete manifest %s: %w", d, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("%w: %s in %s", meta.ErrManifestUnknown, d, repo)
		}
		return recordEvent(ctx, tx, event.Event{Kind: event.ManifestDeleted, Repository: repo, Digest: d, Tags: tags})
	})
	return tags, err
}

// DeleteRepository implements meta.Store.
func (s *Store) DeleteRepository(ctx context.Context, repo string) ([]event.Event, error) {
	var deleted []event.Event
	err := s.inTx(ctx, "delete repository", func(tx *sql.Tx) error {
		deleted = nil // a retried transaction starts over
		repoID, err := repositoryID(ctx, tx, repo)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT m.digest, m.media_type, t.name FROM manifests m
			LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.digest = m.digest
			WHERE m.repository_id = ? ORDER BY m.digest, t.name`, repoID)
		if err != nil {
			return fmt.Errorf("delete repository %s: %w", repo, err)
		}
		var events []event.Event
		for rows.Next() {
			var d, mediaType string
			var tag sql.NullString
			if err := rows.Scan(&d, &mediaType, &tag); err != nil {
				rows.Close()
				return fmt.Errorf("delete repository %s: %w", repo, err)
			}
			if n := len(events); n == 0 || events[n-1].Digest.String() != d {
				events = append(events, event.Event{Kind: event.ManifestDeleted, Repository: repo, Digest: digest.Digest(d), MediaType: mediaType})
			}
			if tag.Valid {
				events[len(events)-1].Tags = append(events[len(events)-1].Tags, tag.String)
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("delete repository %s: %w", repo, err)
		}
		for _, q := range []string{
			// Tags and references go with their manifests (ON DELETE CASCADE).
			"DELETE FROM manifests WHERE repository_id = ?",
			"DELETE FROM repository_blobs WHERE repository_id = ?",
			"DELETE FROM pruned_blob_links WHERE repository_id = ?",
			"DELETE FROM repositories WHERE id = ? AND NOT EXISTS (SELECT 1 FROM uploads WHERE repository_id = repositories.id)",
		} {
			if _, err := tx.ExecContext(ctx, q, repoID); err != nil {
				return fmt.Errorf("delete repository %s: %w", repo, err)
			}
		}
		for _, e := range events {
			if err := recordEvent(ctx, tx, e); err != nil {
				return err
			}
		}
		deleted = events
		return nil
	})
	return deleted, err
}

// DeleteTag implements meta.Store.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	var d string
	err := s.inTx(ctx, "delete tag", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `DELETE FROM tags
			WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND name = ? RETURNING digest`,
			repo, tag).Scan(&d)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s:%s", meta.ErrTagUnknown, repo, tag)
		}
		if err != nil {
			return fmt.Errorf("delete tag %s:%s: %w", repo, tag, err)
		}
		return recordEvent(ctx, tx, event.Event{Kind: event.TagDeleted, Repository: repo, Digest: digest.Digest(d), Tags: []string{tag}})
	})
	return digest.Digest(d), err
}

// Tags implements meta.Store.
func (s *Store) Tags(ctx context.Context, repo, last string, n int) ([]string, error) {
	repoID, err := repositoryID(ctx, s.r, repo)
	if err != nil {
		return nil, err
	}
	tags, err := collectStrings(s.r.QueryContext(ctx,
		"SELECT name FROM tags WHERE repository_id = ? AND name > ? ORDER BY name LIMIT ?", repoID, last, limit(n)))
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", repo, err)
	}
	return tags, nil
}

// Referrers implements meta.Store.
func (s *Store) Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]meta.Descriptor, error) {
	q := `SELECT digest, media_type, size, artifact_type, annotations FROM manifests
		WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND subject = ?`
	args := []any{repo, d.String()}
	if artifactType != "" {
		q += " AND artifact_type = ?"
		args = append(args, artifactType)
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY digest", args...)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s in %s: %w", d, repo, err)
	}
	defer rows.Close()
	var out []meta.Descriptor
	for rows.Next() {
		var desc meta.Descriptor
		var annotations sql.NullString
		if err := rows.Scan(&desc.Digest, &desc.MediaType, &desc.Size, &desc.ArtifactType, &annotations); err != nil {
			return nil, fmt.Errorf("referrers of %s in %s: %w", d, repo, err)
		}
		if annotations.Valid {
			if err := json.Unmarshal([]byte(annotations.String), &desc.Annotations); err != nil {
				return nil, fmt.Errorf("referrers of %s in %s: annotations of %s: %w", d, repo, desc.Digest, err)
			}
		}
		out = append(out, desc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("referrers of %s in %s: %w", d, repo, err)
	}
	return out, nil
}

// CreateUpload implements meta.Store.
func (s *Store) CreateUpload(ctx context.Context, u meta.Upload, limit meta.UploadLimit) error {
	return s.inTx(ctx, "create upload", func(tx *sql.Tx) error {
		repoID, err := ensureRepository(ctx, tx, u.Repository)
		if err != nil {
			return err
		}
		// Counted in the transaction that adds the session: concurrent
		// starts cannot overshoot together.
		for _, c := range []struct {
			scope string
			limit int
			query string
			arg   any
		}{
			{"account", limit.PerAccount, "SELECT count(*) FROM uploads WHERE account = ?", u.Account},
			{"repository", limit.PerRepository, "SELECT count(*) FROM uploads WHERE repository_id = ?", repoID},
		} {
			if c.limit <= 0 {
				continue
			}
			var n int
			if err := tx.QueryRowContext(ctx, c.query, c.arg).Scan(&n); err != nil {
				return fmt.Errorf("create upload %s: count sessions: %w", u.ID, err)
			}
			if n >= c.limit {
				return &meta.TooManyUploadsError{Scope: c.scope, Limit: c.limit}
			}
		}
		res, err := tx.ExecContext(ctx, "INSERT INTO uploads (id, repository_id, account, started_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
			u.ID, repoID, u.Account, u.StartedAt.UnixNano())
		if err != nil {
			return fmt.Errorf("create upload %s: %w", u.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("%w: %s", meta.ErrUploadExists, u.ID)
		}
		return nil
	})
}

// Upload implements meta.Store.
func (s *Store) Upload(ctx context.Context, id string) (meta.Upload, error) {
	u := meta.Upload{ID: id}
	var started int64
	err := s.r.QueryRowContext(ctx, `SELECT r.name, u.account, u.started_at FROM uploads u
		JOIN repositories r ON r.id = u.repository_id WHERE u.id = ?`, id).Scan(&u.Repository, &u.Account, &started)
	if errors.Is(err, sql.ErrNoRows) {
		return meta.Upload{}, fmt.Errorf("%w: %s", meta.ErrUploadUnknown, id)
	}
	if err != nil {
		return meta.Upload{}, fmt.Errorf("upload %s: %w", id, err)
	}
	u.StartedAt = fromNanos(started)
	return u, nil
}

// DeleteUpload implements meta.Store.
func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	if _, err := s.w.ExecContext(ctx, "DELETE FROM uploads WHERE id = ?", id); err != nil {
		return fmt.Errorf("delete upload %s: %w", id, err)
	}
	return nil
}

// Uploads implements meta.Store.
func (s *Store) Uploads(ctx context.Context) ([]meta.Upload, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT u.id, r.name, u.account, u.started_at FROM uploads u
		JOIN repositories r ON r.id = u.repository_id ORDER BY u.id`)
	if err != nil {
		return nil, fmt.Errorf("list uploads: %w", err)
	}
	defer rows.Close()
	var out []meta.Upload
	for rows.Next() {
		var u meta.Upload
		var started int64
		if err := rows.Scan(&u.ID, &u.Repository, &u.Account, &started); err != nil {
			return nil, fmt.Errorf("list uploads: %w", err)
		}
		u.StartedAt = fromNanos(started)
		out = append(out, u)
	}
	return out, rows.Err()
}

// ManifestRepositoriesOf lists the repositories holding each of ds (in
// lexical order), in one query per 500 digests: what ManifestRepositories
// answers for one digest, for the many an advisory search resolves at
// once. Digests no repository holds are left out. It is not part of
// meta.Store; callers find it by type assertion and fall back to
// ManifestRepositories.
func (s *Store) ManifestRepositoriesOf(ctx context.Context, ds []digest.Digest) (map[digest.Digest][]string, error) {
	out := make(map[digest.Digest][]string, len(ds))
	const batch = 500
	for start := 0; start < len(ds); start += batch {
		part := ds[start:min(start+batch, len(ds))]
		args := make([]any, len(part))
		for i, d := range part {
			args[i] = d.String()
		}
		rows, err := s.r.QueryContext(ctx, `SELECT m.digest, r.name FROM manifests m JOIN repositories r ON r.id = m.repository_id
			WHERE m.digest IN (`+strings.TrimSuffix(strings.Repeat("?,", len(part)), ",")+`) ORDER BY m.digest, r.name`, args...)
		if err != nil {
			return nil, fmt.Errorf("repositories of manifests: %w", err)
		}
		for rows.Next() {
			var d, name string
			if err := rows.Scan(&d, &name); err != nil {
				rows.Close()
				return nil, fmt.Errorf("repositories of manifests: %w", err)
			}
			out[digest.Digest(d)] = append(out[digest.Digest(d)], name)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("repositories of manifests: %w", err)
		}
	}
	return out, nil
}
