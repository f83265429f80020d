// Package postgres is the meta.Store of a scale-out deployment: every
// replica reads and writes one PostgreSQL database (jackc/pgx v5), so any
// replica serves any request.
//
// SQLite runs one writer at a time; PostgreSQL runs writers concurrently
// at READ COMMITTED, so what the embedded store got from that single
// writer is made explicit here:
//
//   - a repository's garbage collection and the pushes into it exclude each
//     other through its row (FOR UPDATE against the FOR KEY SHARE every
//     write into a repository takes);
//   - pruning blob links and storing manifests exclude each other through
//     an advisory lock (exclusive against shared), so a manifest never
//     claims a link the pruning is removing;
//   - upload limits are counted under advisory locks on the account and
//     the repository;
//   - the outbox's writers take turns at their commit, so sequence numbers
//     become visible in order (events.go);
//   - a transaction PostgreSQL aborts as a deadlock victim is run again.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/pgdb"
	"berth.dev/berth/internal/registry/event"
)

// Advisory lock keys (two-key form: the class is lockClass).
const (
	lockClass = 0x62657274 // "bert"
	// lockLinks: PruneBlobLinks exclusive, PutManifest shared.
	lockLinks = 1
	// lockOutbox: every transaction recording events, just before it does.
	lockOutbox = 2
	// lockUploadAccount / lockUploadRepository: CreateUpload's counts, the
	// second key a hash of the account or the repository id.
	lockUploadAccount    = 3
	lockUploadRepository = 4
	// lockBlob: a claim or link of a blob holds it shared (the second key
	// a hash of the digest); SweepBlobBatches holds a batch's exclusively
	// while it removes their content outside any transaction.
	lockBlob = 5
)

// Store is a meta.Store in a PostgreSQL database.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
}

var _ meta.Store = (*Store)(nil)

// Open connects to the database at url, migrates it and returns a Store
// that closes its pool on Close.
func Open(ctx context.Context, url string) (*Store, error) {
	pool, err := pgdb.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("meta database: %w", err)
	}
	s, err := New(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownPool = true
	return s, nil
}

// New migrates the database behind pool and returns a Store over it; Close
// leaves the pool open for its other users.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if err := pgdb.Migrate(ctx, pool, component, migrations); err != nil {
		return nil, fmt.Errorf("meta database: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close implements meta.Store.
func (s *Store) Close() error {
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

// Ping implements meta.Store.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("meta database: %w", err)
	}
	return nil
}

func now() int64 { return time.Now().UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n) }

func (s *Store) inTx(ctx context.Context, what string, fn func(pgx.Tx) error) error {
	if err := pgdb.InTx(ctx, s.pool, fn); err != nil {
		if isMetaError(err) {
			return err
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// isMetaError reports whether err already says what went wrong in the
// store's own terms, so inTx adds nothing to it.
func isMetaError(err error) bool {
	for _, e := range []error{meta.ErrRepositoryUnknown, meta.ErrBlobUnknown, meta.ErrManifestUnknown,
		meta.ErrTagUnknown, meta.ErrUploadUnknown, meta.ErrUploadExists, meta.ErrTooManyUploads} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func exists(ctx context.Context, q pgdb.Querier, query string, args ...any) (bool, error) {
	var one int
	err := q.QueryRow(ctx, query, args...).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func lockKey(s string) int32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return int32(h.Sum32())
}

func advisoryLock(ctx context.Context, tx pgx.Tx, key int32, shared bool) error {
	fn := "pg_advisory_xact_lock"
	if shared {
		fn = "pg_advisory_xact_lock_shared"
	}
	if _, err := tx.Exec(ctx, "SELECT "+fn+"($1, $2)", int32(lockClass), key); err != nil {
		return fmt.Errorf("advisory lock: %w", err)
	}
	return nil
}

// repositoryID returns the id of repo, or ErrRepositoryUnknown.
func repositoryID(ctx context.Context, q pgdb.Querier, repo string) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, "SELECT id FROM repositories WHERE name = $1", repo).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: %s", meta.ErrRepositoryUnknown, repo)
	}
	if err != nil {
		return 0, fmt.Errorf("repository %s: %w", repo, err)
	}
	return id, nil
}

// ensureRepository returns the id of repo, creating it if needed, and
// holds a key-share lock on its row until the transaction ends: pruning
// the repository and collecting its garbage wait for this write.
func ensureRepository(ctx context.Context, tx pgx.Tx, repo string) (int64, error) {
	for range 3 {
		var id int64
		err := tx.QueryRow(ctx, "SELECT id FROM repositories WHERE name = $1 FOR KEY SHARE", repo).Scan(&id)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("repository %s: %w", repo, err)
		}
		err = tx.QueryRow(ctx, `INSERT INTO repositories (name, created_at) VALUES ($1, $2)
			ON CONFLICT (name) DO NOTHING RETURNING id`, repo, now()).Scan(&id)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("create repository %s: %w", repo, err)
		}
		// Created concurrently: the next SELECT sees it.
	}
	return 0, fmt.Errorf("create repository %s: created and deleted concurrently, try again", repo)
}

// limit maps the interface's "n < 0: all" to SQL: LIMIT NULL is no limit.
func limit(n int) any {
	if n < 0 {
		return nil
	}
	return n
}

// Repositories implements meta.Store.
func (s *Store) Repositories(ctx context.Context, last string, n int) ([]string, error) {
	names, err := pgdb.Strings(s.pool.Query(ctx, `SELECT name FROM repositories r
		WHERE name > $1 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id)
		ORDER BY name LIMIT $2`, last, limit(n)))
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	return names, nil
}

// RepositoryNames implements meta.Store.
func (s *Store) RepositoryNames(ctx context.Context) ([]string, error) {
	names, err := pgdb.Strings(s.pool.Query(ctx, "SELECT name FROM repositories ORDER BY name"))
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	return names, nil
}

const upsertBlob = `INSERT INTO blobs (digest, size, last_used) VALUES ($1, $2, $3)
	ON CONFLICT (digest) DO UPDATE SET size = excluded.size, last_used = excluded.last_used`

const upsertLink = `INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, $3)
	ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = excluded.linked_at`

// claimBlob: a new record has no size yet (-1); an existing one keeps its
// verified size and only its last use moves. Moving it also makes a
// concurrent sweep that selected the blob skip it (its DELETE re-checks
// last_used on the row this update leaves). The blob's shared lock comes
// first, in the same statement (its transaction holds it to the commit):
// a batch sweep removing the content holds it exclusively.
const claimBlob = `WITH l AS (SELECT pg_advisory_xact_lock_shared($3, $4))
	INSERT INTO blobs (digest, size, last_used) SELECT $1, -1, $2 FROM l
	ON CONFLICT (digest) DO UPDATE SET last_used = excluded.last_used`

// TouchBlob implements meta.Store.
func (s *Store) TouchBlob(ctx context.Context, d digest.Digest) error {
	if _, err := s.pool.Exec(ctx, claimBlob, d.String(), now(), int32(lockBlob), lockKey(d.String())); err != nil {
		return fmt.Errorf("touch blob %s: %w", d, err)
	}
	return nil
}

// lockBlobShared waits while a sweep removes d's content (lockBlob).
func lockBlobShared(ctx context.Context, tx pgx.Tx, d digest.Digest) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock_shared($1, $2)", int32(lockBlob), lockKey(d.String())); err != nil {
		return fmt.Errorf("blob %s: lock: %w", d, err)
	}
	return nil
}

// SetBlobSize implements meta.Store.
func (s *Store) SetBlobSize(ctx context.Context, d digest.Digest, size int64) error {
	tag, err := s.pool.Exec(ctx, "UPDATE blobs SET size = $1 WHERE digest = $2", size, d.String())
	if err != nil {
		return fmt.Errorf("set size of blob %s: %w", d, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s", meta.ErrBlobUnknown, d)
	}
	return nil
}

func link(ctx context.Context, tx pgx.Tx, repoID int64, d digest.Digest, size int64) error {
	if err := lockBlobShared(ctx, tx, d); err != nil {
		return err
	}
	t := now()
	if _, err := tx.Exec(ctx, upsertBlob, d.String(), size, t); err != nil {
		return fmt.Errorf("record blob %s: %w", d, err)
	}
	if _, err := tx.Exec(ctx, upsertLink, repoID, d.String(), t); err != nil {
		return fmt.Errorf("link blob %s: %w", d, err)
	}
	// Pushed again: a manifest naming it is welcome again.
	if _, err := tx.Exec(ctx, "DELETE FROM pruned_blob_links WHERE repository_id = $1 AND digest = $2", repoID, d.String()); err != nil {
		return fmt.Errorf("link blob %s: %w", d, err)
	}
	return nil
}

// LinkBlob implements meta.Store.
func (s *Store) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	return s.inTx(ctx, "link blob", func(tx pgx.Tx) error {
		id, err := ensureRepository(ctx, tx, repo)
		if err != nil {
			return err
		}
		return link(ctx, tx, id, d, size)
	})
}

// LinkUploadedBlob implements meta.Store.
func (s *Store) LinkUploadedBlob(ctx context.Context, uploadID string, d digest.Digest, size int64) error {
	return s.inTx(ctx, "finish upload", func(tx pgx.Tx) error {
		var repoID int64
		// Deleting the session first makes two replicas finishing one
		// upload at once agree on which of them did.
		err := tx.QueryRow(ctx, "DELETE FROM uploads WHERE id = $1 RETURNING repository_id", uploadID).Scan(&repoID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %s", meta.ErrUploadUnknown, uploadID)
		}
		if err != nil {
			return fmt.Errorf("upload %s: %w", uploadID, err)
		}
		var locked int64
		if err := tx.QueryRow(ctx, "SELECT id FROM repositories WHERE id = $1 FOR KEY SHARE", repoID).Scan(&locked); err != nil {
			return fmt.Errorf("upload %s: repository: %w", uploadID, err)
		}
		return link(ctx, tx, repoID, d, size)
	})
}

// BlobSize implements meta.Store.
func (s *Store) BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	var size int64
	err := s.pool.QueryRow(ctx, `SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
		WHERE rb.repository_id = (SELECT id FROM repositories WHERE name = $1) AND rb.digest = $2`, repo, d.String()).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: %s in %s", meta.ErrBlobUnknown, d, repo)
	}
	if err != nil {
		return 0, fmt.Errorf("blob %s in %s: %w", d, repo, err)
	}
	return size, nil
}

// UnlinkBlob implements meta.Store.
func (s *Store) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM repository_blobs
		WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2`, repo, d.String())
	if err != nil {
		return fmt.Errorf("unlink blob %s from %s: %w", d, repo, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s in %s", meta.ErrBlobUnknown, d, repo)
	}
	return nil
}

// MountBlob implements meta.Store.
func (s *Store) MountBlob(ctx context.Context, from, repo string, d digest.Digest) (int64, error) {
	var size int64
	err := s.inTx(ctx, "mount blob", func(tx pgx.Tx) error {
		// Locking the source's link keeps a concurrent unlink or prune
		// from taking it between this read and the new link.
		err := tx.QueryRow(ctx, `SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
			WHERE rb.repository_id = (SELECT id FROM repositories WHERE name = $1) AND rb.digest = $2
			FOR SHARE OF rb`, from, d.String()).Scan(&size)
		if errors.Is(err, pgx.ErrNoRows) {
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
	names, err := pgdb.Strings(s.pool.Query(ctx, `SELECT r.name FROM repository_blobs rb
		JOIN repositories r ON r.id = rb.repository_id
		WHERE rb.digest = $1 ORDER BY r.name LIMIT $2`, d.String(), limit(n)))
	if err != nil {
		return nil, fmt.Errorf("repositories with blob %s: %w", d, err)
	}
	return names, nil
}

// PutManifest implements meta.Store.
func (s *Store) PutManifest(ctx context.Context, repo string, m *meta.Manifest, tags []string) error {
	var annotations *string
	if len(m.Annotations) > 0 {
		b, err := json.Marshal(m.Annotations)
		if err != nil {
			return fmt.Errorf("put manifest %s: annotations: %w", m.Digest, err)
		}
		a := string(b)
		annotations = &a
	}
	var subject *string
	if m.Subject != "" {
		sub := m.Subject.String()
		subject = &sub
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
	// Rows are written in a fixed order, so two pushes naming the same
	// tags or blobs lock them in the same order and cannot deadlock.
	refDigests := slices.Sorted(func(yield func(digest.Digest) bool) {
		for d := range refs {
			if !yield(d) {
				return
			}
		}
	})
	sortedTags := slices.Clone(tags)
	slices.Sort(sortedTags)
	sortedTags = slices.Compact(sortedTags)
	return s.inTx(ctx, "put manifest", func(tx pgx.Tx) error {
		if err := advisoryLock(ctx, tx, lockLinks, true); err != nil {
			return err
		}
		repoID, err := ensureRepository(ctx, tx, repo)
		if err != nil {
			return err
		}
		// Check every blob in the transaction that stores the manifest:
		// a pruning of links either ran before (its pruned links are
		// remembered) or waits for this one and sees the references.
		present := make(map[digest.Digest]bool, len(refs))
		missing := &meta.MissingBlobsError{}
		for _, r := range m.References {
			kind := refs[r.Digest]
			if _, checked := present[r.Digest]; checked || kind == meta.RefManifest {
				continue
			}
			linked, err := exists(ctx, tx, "SELECT 1 FROM repository_blobs WHERE repository_id = $1 AND digest = $2", repoID, r.Digest.String())
			if err != nil {
				return fmt.Errorf("put manifest %s: check blob %s: %w", m.Digest, r.Digest, err)
			}
			present[r.Digest] = linked
			switch {
			case linked || kind == meta.RefExternal:
			case kind == meta.RefBlob:
				missing.Digests = append(missing.Digests, r.Digest)
			default:
				pruned, err := exists(ctx, tx, "SELECT 1 FROM pruned_blob_links WHERE repository_id = $1 AND digest = $2", repoID, r.Digest.String())
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
		if _, err := tx.Exec(ctx, `INSERT INTO manifests
			(repository_id, digest, media_type, artifact_type, subject, annotations, size, content, pushed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (repository_id, digest) DO UPDATE SET pushed_at = excluded.pushed_at`,
			repoID, m.Digest.String(), m.MediaType, m.ArtifactType, subject, annotations,
			len(m.Content), m.Content, pushed); err != nil {
			return fmt.Errorf("put manifest %s: %w", m.Digest, err)
		}
		for _, d := range refDigests {
			if _, err := tx.Exec(ctx, `INSERT INTO manifest_references (repository_id, manifest, digest, kind, present)
				VALUES ($1, $2, $3, $4, $5) ON CONFLICT (repository_id, manifest, digest)
				DO UPDATE SET present = manifest_references.present OR excluded.present`,
				repoID, m.Digest.String(), d.String(), int16(refs[d]), present[d]); err != nil {
				return fmt.Errorf("put manifest %s: reference %s: %w", m.Digest, d, err)
			}
		}
		for _, key := range slices.Sorted(slices.Values(m.Signatures)) {
			if _, err := tx.Exec(ctx, `INSERT INTO signature_arrivals (key, first_seen) VALUES ($1, $2)
				ON CONFLICT (key) DO NOTHING`, key, pushed); err != nil {
				return fmt.Errorf("put manifest %s: signature arrival: %w", m.Digest, err)
			}
		}
		for _, tag := range sortedTags {
			if _, err := tx.Exec(ctx, `INSERT INTO tags (repository_id, name, digest, updated_at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
				repoID, tag, m.Digest.String(), pushed); err != nil {
				return fmt.Errorf("put manifest %s: tag %s: %w", m.Digest, tag, err)
			}
		}
		return recordEvents(ctx, tx, event.Event{Kind: event.ManifestPushed, Repository: repo, Digest: m.Digest,
			MediaType: m.MediaType, ArtifactType: m.ArtifactType, Subject: m.Subject, Tags: tags})
	})
}

// SignatureArrivals implements meta.Store.
func (s *Store) SignatureArrivals(ctx context.Context, keys []string) (map[string]time.Time, error) {
	out := make(map[string]time.Time, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, "SELECT key, first_seen FROM signature_arrivals WHERE key = ANY($1)", keys)
	if err != nil {
		return nil, fmt.Errorf("signature arrivals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var at int64
		if err := rows.Scan(&key, &at); err != nil {
			return nil, fmt.Errorf("signature arrivals: %w", err)
		}
		out[key] = fromNanos(at)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("signature arrivals: %w", err)
	}
	return out, nil
}

// Manifest implements meta.Store. Annotations are not loaded: serving a
// manifest does not need them and they are in its content.
func (s *Store) Manifest(ctx context.Context, repo string, d digest.Digest) (*meta.Manifest, error) {
	m := &meta.Manifest{Digest: d}
	var subject *string
	var pushed int64
	err := s.pool.QueryRow(ctx, `SELECT media_type, artifact_type, subject, content, pushed_at FROM manifests
		WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2`, repo, d.String()).
		Scan(&m.MediaType, &m.ArtifactType, &subject, &m.Content, &pushed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s in %s", meta.ErrManifestUnknown, d, repo)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest %s in %s: %w", d, repo, err)
	}
	if subject != nil {
		m.Subject = digest.Digest(*subject)
	}
	m.PushedAt = fromNanos(pushed)
	return m, nil
}

// ManifestRepositories implements meta.Store.
func (s *Store) ManifestRepositories(ctx context.Context, d digest.Digest, n int) ([]string, error) {
	names, err := pgdb.Strings(s.pool.Query(ctx, `SELECT r.name FROM manifests m
		JOIN repositories r ON r.id = m.repository_id WHERE m.digest = $1 ORDER BY r.name LIMIT $2`, d.String(), limit(n)))
	if err != nil {
		return nil, fmt.Errorf("repositories of manifest %s: %w", d, err)
	}
	return names, nil
}

// Artifacts implements meta.Store.
func (s *Store) Artifacts(ctx context.Context, repo string, offset, n int) ([]meta.Artifact, int, error) {
	const top = `FROM manifests m WHERE m.repository_id = (SELECT id FROM repositories WHERE name = $1)
		AND m.subject IS NULL
		AND NOT EXISTS (SELECT 1 FROM manifest_references r
			WHERE r.repository_id = m.repository_id AND r.digest = m.digest AND r.kind = $2)`
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) `+top, repo, int16(meta.RefManifest)).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("artifacts of %s: %w", repo, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT m.digest, m.media_type, m.artifact_type, m.size, m.pushed_at,
		(SELECT string_agg(t.name, E'\n' ORDER BY t.name) FROM tags t
			WHERE t.repository_id = m.repository_id AND t.digest = m.digest) `+top+`
		ORDER BY m.pushed_at DESC, m.digest LIMIT $3 OFFSET $4`, repo, int16(meta.RefManifest), limit(n), offset)
	if err != nil {
		return nil, 0, fmt.Errorf("artifacts of %s: %w", repo, err)
	}
	out := []meta.Artifact{}
	for rows.Next() {
		var a meta.Artifact
		var d string
		var pushed int64
		var tags *string
		if err := rows.Scan(&d, &a.MediaType, &a.ArtifactType, &a.Size, &pushed, &tags); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("artifacts of %s: %w", repo, err)
		}
		a.Digest, a.PushedAt = digest.Digest(d), fromNanos(pushed)
		if tags != nil && *tags != "" {
			a.Tags = strings.Split(*tags, "\n")
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
	tags, err := pgdb.Strings(s.pool.Query(ctx, `SELECT name FROM tags
		WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2 ORDER BY name`, repo, d.String()))
	if err != nil {
		return nil, fmt.Errorf("tags of %s@%s: %w", repo, d, err)
	}
	return tags, nil
}

// Tag implements meta.Store.
func (s *Store) Tag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	var d string
	err := s.pool.QueryRow(ctx, `SELECT digest FROM tags
		WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2`, repo, tag).Scan(&d)
	if errors.Is(err, pgx.ErrNoRows) {
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
	err := s.inTx(ctx, "delete manifest", func(tx pgx.Tx) error {
		repoID, err := repositoryID(ctx, tx, repo)
		if errors.Is(err, meta.ErrRepositoryUnknown) {
			return fmt.Errorf("%w: %s in %s", meta.ErrManifestUnknown, d, repo)
		}
		if err != nil {
			return err
		}
		// The tags go with the manifest (ON DELETE CASCADE); read them
		// as the delete sees them, locked.
		tags, err = pgdb.Strings(tx.Query(ctx,
			"SELECT name FROM tags WHERE repository_id = $1 AND digest = $2 ORDER BY name FOR UPDATE", repoID, d.String()))
		if err != nil {
			return fmt.Errorf("delete manifest %s: %w", d, err)
		}
		// The subject goes into the announcement: a signature deleted on
		// one replica changes the other replicas' policy verdicts on it.
		var subject *string
		err = tx.QueryRow(ctx, "DELETE FROM manifests WHERE repository_id = $1 AND digest = $2 RETURNING subject", repoID, d.String()).Scan(&subject)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %s in %s", meta.ErrManifestUnknown, d, repo)
		}
		if err != nil {
			return fmt.Errorf("delete manifest %s: %w", d, err)
		}
		e := event.Event{Kind: event.ManifestDeleted, Repository: repo, Digest: d, Tags: tags}
		if subject != nil {
			e.Subject = digest.Digest(*subject)
		}
		return recordEvents(ctx, tx, e)
	})
	return tags, err
}

// DeleteRepository implements meta.Store. The repository's row is locked
// for update first, as garbage collection locks it: pushes into it (which
// hold it key-shared) finish before, or wait and then push into a new
// repository of the same name.
func (s *Store) DeleteRepository(ctx context.Context, repo string) ([]event.Event, error) {
	var deleted []event.Event
	err := s.inTx(ctx, "delete repository", func(tx pgx.Tx) error {
		deleted = nil // a transaction run again starts over
		var repoID int64
		err := tx.QueryRow(ctx, "SELECT id FROM repositories WHERE name = $1 FOR UPDATE", repo).Scan(&repoID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %s", meta.ErrRepositoryUnknown, repo)
		}
		if err != nil {
			return fmt.Errorf("delete repository %s: %w", repo, err)
		}
		rows, err := tx.Query(ctx, `SELECT m.digest, m.media_type, t.name FROM manifests m
			LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.digest = m.digest
			WHERE m.repository_id = $1 ORDER BY m.digest, t.name`, repoID)
		if err != nil {
			return fmt.Errorf("delete repository %s: %w", repo, err)
		}
		var events []event.Event
		for rows.Next() {
			var d, mediaType string
			var tag *string
			if err := rows.Scan(&d, &mediaType, &tag); err != nil {
				rows.Close()
				return fmt.Errorf("delete repository %s: %w", repo, err)
			}
			if n := len(events); n == 0 || events[n-1].Digest.String() != d {
				events = append(events, event.Event{Kind: event.ManifestDeleted, Repository: repo, Digest: digest.Digest(d), MediaType: mediaType})
			}
			if tag != nil {
				events[len(events)-1].Tags = append(events[len(events)-1].Tags, *tag)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("delete repository %s: %w", repo, err)
		}
		for _, q := range []string{
			// Tags and references go with their manifests (ON DELETE CASCADE).
			"DELETE FROM manifests WHERE repository_id = $1",
			"DELETE FROM repository_blobs WHERE repository_id = $1",
			"DELETE FROM pruned_blob_links WHERE repository_id = $1",
			"DELETE FROM repositories r WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.repository_id = r.id)",
		} {
			if _, err := tx.Exec(ctx, q, repoID); err != nil {
				return fmt.Errorf("delete repository %s: %w", repo, err)
			}
		}
		if err := recordEvents(ctx, tx, events...); err != nil {
			return err
		}
		deleted = events
		return nil
	})
	return deleted, err
}

// DeleteTag implements meta.Store.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	var d string
	err := s.inTx(ctx, "delete tag", func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `DELETE FROM tags
			WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2 RETURNING digest`,
			repo, tag).Scan(&d)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %s:%s", meta.ErrTagUnknown, repo, tag)
		}
		if err != nil {
			return fmt.Errorf("delete tag %s:%s: %w", repo, tag, err)
		}
		return recordEvents(ctx, tx, event.Event{Kind: event.TagDeleted, Repository: repo, Digest: digest.Digest(d), Tags: []string{tag}})
	})
	return digest.Digest(d), err
}

// Tags implements meta.Store.
func (s *Store) Tags(ctx context.Context, repo, last string, n int) ([]string, error) {
	repoID, err := repositoryID(ctx, s.pool, repo)
	if err != nil {
		return nil, err
	}
	tags, err := pgdb.Strings(s.pool.Query(ctx,
		"SELECT name FROM tags WHERE repository_id = $1 AND name > $2 ORDER BY name LIMIT $3", repoID, last, limit(n)))
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", repo, err)
	}
	return tags, nil
}

// Referrers implements meta.Store.
func (s *Store) Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]meta.Descriptor, error) {
	q := `SELECT digest, media_type, size, artifact_type, annotations FROM manifests
		WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND subject = $2`
	args := []any{repo, d.String()}
	if artifactType != "" {
		q += " AND artifact_type = $3"
		args = append(args, artifactType)
	}
	rows, err := s.pool.Query(ctx, q+" ORDER BY digest", args...)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s in %s: %w", d, repo, err)
	}
	defer rows.Close()
	var out []meta.Descriptor
	for rows.Next() {
		var desc meta.Descriptor
		var dg string
		var annotations *string
		if err := rows.Scan(&dg, &desc.MediaType, &desc.Size, &desc.ArtifactType, &annotations); err != nil {
			return nil, fmt.Errorf("referrers of %s in %s: %w", d, repo, err)
		}
		desc.Digest = digest.Digest(dg)
		if annotations != nil {
			if err := json.Unmarshal([]byte(*annotations), &desc.Annotations); err != nil {
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
	return s.inTx(ctx, "create upload", func(tx pgx.Tx) error {
		repoID, err := ensureRepository(ctx, tx, u.Repository)
		if err != nil {
			return err
		}
		// Counted under locks on the account and the repository (taken in
		// that order by every caller): concurrent starts on any replica
		// cannot overshoot together.
		for _, c := range []struct {
			scope string
			limit int
			lock  int32
			key   string
			query string
			arg   any
		}{
			{"account", limit.PerAccount, lockUploadAccount, u.Account, "SELECT count(*) FROM uploads WHERE account = $1", u.Account},
			{"repository", limit.PerRepository, lockUploadRepository, fmt.Sprint(repoID), "SELECT count(*) FROM uploads WHERE repository_id = $1", repoID},
		} {
			if c.limit <= 0 {
				continue
			}
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", c.lock, lockKey(c.key)); err != nil {
				return fmt.Errorf("create upload %s: lock: %w", u.ID, err)
			}
			var n int
			if err := tx.QueryRow(ctx, c.query, c.arg).Scan(&n); err != nil {
				return fmt.Errorf("create upload %s: count sessions: %w", u.ID, err)
			}
			if n >= c.limit {
				return &meta.TooManyUploadsError{Scope: c.scope, Limit: c.limit}
			}
		}
		tag, err := tx.Exec(ctx, "INSERT INTO uploads (id, repository_id, account, started_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
			u.ID, repoID, u.Account, u.StartedAt.UnixNano())
		if err != nil {
			return fmt.Errorf("create upload %s: %w", u.ID, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: %s", meta.ErrUploadExists, u.ID)
		}
		return nil
	})
}

// Upload implements meta.Store.
func (s *Store) Upload(ctx context.Context, id string) (meta.Upload, error) {
	u := meta.Upload{ID: id}
	var started int64
	err := s.pool.QueryRow(ctx, `SELECT r.name, u.account, u.started_at FROM uploads u
		JOIN repositories r ON r.id = u.repository_id WHERE u.id = $1`, id).Scan(&u.Repository, &u.Account, &started)
	if errors.Is(err, pgx.ErrNoRows) {
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
	if _, err := s.pool.Exec(ctx, "DELETE FROM uploads WHERE id = $1", id); err != nil {
		return fmt.Errorf("delete upload %s: %w", id, err)
	}
	return nil
}

// Uploads implements meta.Store.
func (s *Store) Uploads(ctx context.Context) ([]meta.Upload, error) {
	rows, err := s.pool.Query(ctx, `SELECT u.id, r.name, u.account, u.started_at FROM uploads u
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
