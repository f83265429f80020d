package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/registry/event"
)

// sweepBatch bounds how many blobs one SweepBlobs transaction handles, so
// pushes wait at most that many file removals for the writer.
const sweepBatch = 256

// CollectManifests implements meta.Store. The whole mark and sweep of one
// repository is one write transaction: a tag pushed concurrently lands
// either before (and is seen) or after (and finds its manifest gone and
// pushes it again with its content).
func (s *Store) CollectManifests(ctx context.Context, repo string, policy meta.GCPolicy) (meta.Collected, error) {
	var out meta.Collected
	err := s.inTx(ctx, "collect manifests", func(tx *sql.Tx) error {
		out = meta.Collected{}
		repoID, err := repositoryID(ctx, tx, repo)
		if errors.Is(err, meta.ErrRepositoryUnknown) {
			return nil
		}
		if err != nil {
			return err
		}
		manifests, mediaTypes, err := loadGraph(ctx, tx, repoID)
		if err != nil {
			return fmt.Errorf("collect manifests of %s: %w", repo, err)
		}
		tags, err := loadTags(ctx, tx, repoID)
		if err != nil {
			return fmt.Errorf("collect manifests of %s: %w", repo, err)
		}
		dead, stale := meta.Live(manifests, tags, policy)
		for _, d := range dead {
			if _, err := tx.ExecContext(ctx, "DELETE FROM manifests WHERE repository_id = ? AND digest = ?", repoID, d.String()); err != nil {
				return fmt.Errorf("collect manifest %s of %s: %w", d, repo, err)
			}
			out.Manifests = append(out.Manifests, meta.Manifest{Digest: d, MediaType: mediaTypes[d]})
			if err := recordEvent(ctx, tx, event.Event{Kind: event.ManifestDeleted, Repository: repo, Digest: d,
				MediaType: mediaTypes[d]}); err != nil {
				return err
			}
		}
		for _, name := range stale {
			if _, err := tx.ExecContext(ctx, "DELETE FROM tags WHERE repository_id = ? AND name = ?", repoID, name); err != nil {
				return fmt.Errorf("collect tag %s of %s: %w", name, repo, err)
			}
			out.Tags = append(out.Tags, name)
			if err := recordEvent(ctx, tx, event.Event{Kind: event.TagDeleted, Repository: repo, Tags: []string{name}}); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

func loadGraph(ctx context.Context, tx *sql.Tx, repoID int64) ([]meta.GCManifest, map[digest.Digest]string, error) {
	rows, err := tx.QueryContext(ctx, "SELECT digest, media_type, subject, pushed_at FROM manifests WHERE repository_id = ?", repoID)
	if err != nil {
		return nil, nil, err
	}
	var manifests []meta.GCManifest
	index := map[digest.Digest]int{}
	mediaTypes := map[digest.Digest]string{}
	for rows.Next() {
		var m meta.GCManifest
		var mediaType string
		var subject sql.NullString
		var pushed int64
		if err := rows.Scan(&m.Digest, &mediaType, &subject, &pushed); err != nil {
			rows.Close()
			return nil, nil, err
		}
		m.Subject = digest.Digest(subject.String)
		m.PushedAt = fromNanos(pushed)
		index[m.Digest] = len(manifests)
		mediaTypes[m.Digest] = mediaType
		manifests = append(manifests, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	rows, err = tx.QueryContext(ctx, "SELECT manifest, digest FROM manifest_references WHERE repository_id = ? AND kind = ?",
		repoID, int(meta.RefManifest))
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var parent, child digest.Digest
		if err := rows.Scan(&parent, &child); err != nil {
			return nil, nil, err
		}
		if i, ok := index[parent]; ok {
			manifests[i].Children = append(manifests[i].Children, child)
		}
	}
	return manifests, mediaTypes, rows.Err()
}

func loadTags(ctx context.Context, tx *sql.Tx, repoID int64) ([]meta.GCTag, error) {
	rows, err := tx.QueryContext(ctx, "SELECT name, digest, updated_at FROM tags WHERE repository_id = ?", repoID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var tags []meta.GCTag
	for rows.Next() {
		var t meta.GCTag
		var updated int64
		if err := rows.Scan(&t.Name, &t.Digest, &updated); err != nil {
			return nil, err
		}
		t.UpdatedAt = fromNanos(updated)
		tags = append(tags, t)
	}
	return tags, rows.Err()
}

// PruneBlobLinks implements meta.Store.
func (s *Store) PruneBlobLinks(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.inTx(ctx, "prune blob links", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM repository_blobs WHERE linked_at < ? AND NOT EXISTS (
			SELECT 1 FROM manifest_references r
			WHERE r.repository_id = repository_blobs.repository_id AND r.digest = repository_blobs.digest)
			RETURNING repository_id, digest`, before.UnixNano())
		if err != nil {
			return fmt.Errorf("prune blob links: %w", err)
		}
		type link struct {
			repo   int64
			digest string
		}
		var pruned []link
		for rows.Next() {
			var l link
			if err := rows.Scan(&l.repo, &l.digest); err != nil {
				rows.Close()
				return fmt.Errorf("prune blob links: %w", err)
			}
			pruned = append(pruned, l)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("prune blob links: %w", err)
		}
		t := now()
		for _, l := range pruned {
			if _, err := tx.ExecContext(ctx, `INSERT INTO pruned_blob_links (repository_id, digest, pruned_at) VALUES (?, ?, ?)
				ON CONFLICT (repository_id, digest) DO UPDATE SET pruned_at = excluded.pruned_at`, l.repo, l.digest, t); err != nil {
				return fmt.Errorf("prune blob links: remember %s: %w", l.digest, err)
			}
		}
		n = int64(len(pruned))
		return nil
	})
	return n, err
}

// ForgetPrunedLinks implements meta.Store.
func (s *Store) ForgetPrunedLinks(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, "DELETE FROM pruned_blob_links WHERE pruned_at < ?", before.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("forget pruned blob links: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("forget pruned blob links: %w", err)
	}
	return n, nil
}

// SweepBlobs implements meta.Store.
func (s *Store) SweepBlobs(ctx context.Context, before time.Time, remove func(digest.Digest) error) ([]digest.Digest, error) {
	var removed []digest.Digest
	var firstErr error
	cursor := ""
	for {
		var batch int
		err := s.inTx(ctx, "sweep blobs", func(tx *sql.Tx) error {
			candidates, err := collectStrings(tx.QueryContext(ctx, `SELECT digest FROM blobs b
				WHERE digest > ? AND last_used < ?
				AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
				AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.digest = b.digest)
				ORDER BY digest LIMIT ?`, cursor, before.UnixNano(), sweepBatch))
			if err != nil {
				return fmt.Errorf("sweep blobs: %w", err)
			}
			batch = len(candidates)
			for _, c := range candidates {
				cursor = c
				d := digest.Digest(c)
				if err := remove(d); err != nil {
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				if _, err := tx.ExecContext(ctx, "DELETE FROM blobs WHERE digest = ?", c); err != nil {
					return fmt.Errorf("sweep blob %s: %w", c, err)
				}
				removed = append(removed, d)
			}
			return nil
		})
		if err != nil {
			return removed, err
		}
		if batch < sweepBatch {
			return removed, firstErr
		}
	}
}

// RemoveUnrecordedBlob implements meta.Store.
func (s *Store) RemoveUnrecordedBlob(ctx context.Context, d digest.Digest, remove func() error) (bool, error) {
	ran := false
	err := s.inTx(ctx, "remove unrecorded blob", func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, "SELECT 1 FROM blobs WHERE digest = ?", d.String()).Scan(&one)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("blob %s: %w", d, err)
		}
		ran = true
		return remove()
	})
	return ran, err
}

// PruneRepositories implements meta.Store.
func (s *Store) PruneRepositories(ctx context.Context, before time.Time) ([]string, error) {
	names, err := collectStrings(s.w.QueryContext(ctx, `DELETE FROM repositories WHERE created_at < ?
		AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = repositories.id)
		AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.repository_id = repositories.id)
		AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.repository_id = repositories.id)
		AND NOT EXISTS (SELECT 1 FROM pruned_blob_links p WHERE p.repository_id = repositories.id)
		RETURNING name`, before.UnixNano()))
	if err != nil {
		return nil, fmt.Errorf("prune repositories: %w", err)
	}
	return names, nil
}

// WalkManifests implements meta.Store.
func (s *Store) WalkManifests(ctx context.Context, fn func(repo string, m *meta.Manifest) error) error {
	repos, err := s.RepositoryNames(ctx)
	if err != nil {
		return err
	}
	for _, repo := range repos {
		if err := s.walkRepository(ctx, repo, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) walkRepository(ctx context.Context, repo string, fn func(repo string, m *meta.Manifest) error) error {
	digests, err := collectStrings(s.r.QueryContext(ctx, `SELECT digest FROM manifests
		WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) ORDER BY digest`, repo))
	if err != nil {
		return fmt.Errorf("walk manifests of %s: %w", repo, err)
	}
	for _, d := range digests {
		m, err := s.Manifest(ctx, repo, digest.Digest(d))
		if errors.Is(err, meta.ErrManifestUnknown) {
			continue // deleted while walking
		}
		if err != nil {
			return err
		}
		rows, err := s.r.QueryContext(ctx, `SELECT digest, kind, present FROM manifest_references
			WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND manifest = ? ORDER BY digest`, repo, d)
		if err != nil {
			return fmt.Errorf("references of %s in %s: %w", d, repo, err)
		}
		for rows.Next() {
			var r meta.Reference
			var kind int
			if err := rows.Scan(&r.Digest, &kind, &r.Present); err != nil {
				rows.Close()
				return fmt.Errorf("references of %s in %s: %w", d, repo, err)
			}
			r.Kind = meta.RefKind(kind)
			m.References = append(m.References, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("references of %s in %s: %w", d, repo, err)
		}
		if err := fn(repo, m); err != nil {
			return err
		}
	}
	return nil
}

// WalkBlobs implements meta.Store.
func (s *Store) WalkBlobs(ctx context.Context, fn func(meta.BlobRecord) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT b.digest, b.size, b.last_used,
		EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest),
		EXISTS (SELECT 1 FROM manifest_references r WHERE r.digest = b.digest)
		FROM blobs b ORDER BY b.digest`)
	if err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	// Read everything first: fn may be slow (fsck hashes content) and a
	// long-open read would hold back WAL checkpoints.
	var records []meta.BlobRecord
	for rows.Next() {
		var r meta.BlobRecord
		var used int64
		if err := rows.Scan(&r.Digest, &r.Size, &used, &r.Linked, &r.Referenced); err != nil {
			rows.Close()
			return fmt.Errorf("walk blobs: %w", err)
		}
		r.LastUsed = fromNanos(used)
		records = append(records, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	for _, r := range records {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// CheckIntegrity implements meta.Store with SQLite's integrity and foreign
// key checks.
func (s *Store) CheckIntegrity(ctx context.Context) ([]string, error) {
	var problems []string
	lines, err := collectStrings(s.r.QueryContext(ctx, "PRAGMA integrity_check"))
	if err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}
	for _, l := range lines {
		if l != "ok" {
			problems = append(problems, "sqlite integrity: "+l)
		}
	}
	rows, err := s.r.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return nil, fmt.Errorf("foreign key check: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fkid int
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			return nil, fmt.Errorf("foreign key check: %w", err)
		}
		problems = append(problems, fmt.Sprintf("sqlite foreign key: a row of %s points at a missing row of %s", table, parent))
	}
	return problems, rows.Err()
}
