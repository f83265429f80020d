package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/pgdb"
	"berth.dev/berth/internal/registry/event"
)

// sweepBatch is how many candidates SweepBlobs selects at a time.
const sweepBatch = 256

// CollectManifests implements meta.Store. The repository's row is locked
// for update first, so pushes into it (which hold it key-shared) finish
// before the graph is read and wait until the collection commits: a tag
// pushed concurrently lands either before (and is seen) or after (and
// finds its manifest gone and pushes it again with its content).
func (s *Store) CollectManifests(ctx context.Context, repo string, policy meta.GCPolicy) (meta.Collected, error) {
	var out meta.Collected
	err := s.inTx(ctx, "collect manifests", func(tx pgx.Tx) error {
		out = meta.Collected{}
		var repoID int64
		err := tx.QueryRow(ctx, "SELECT id FROM repositories WHERE name = $1 FOR UPDATE", repo).Scan(&repoID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("collect manifests of %s: %w", repo, err)
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
		var events []event.Event
		for _, d := range dead {
			if _, err := tx.Exec(ctx, "DELETE FROM manifests WHERE repository_id = $1 AND digest = $2", repoID, d.String()); err != nil {
				return fmt.Errorf("collect manifest %s of %s: %w", d, repo, err)
			}
			out.Manifests = append(out.Manifests, meta.Manifest{Digest: d, MediaType: mediaTypes[d]})
			events = append(events, event.Event{Kind: event.ManifestDeleted, Repository: repo, Digest: d, MediaType: mediaTypes[d]})
		}
		for _, name := range stale {
			if _, err := tx.Exec(ctx, "DELETE FROM tags WHERE repository_id = $1 AND name = $2", repoID, name); err != nil {
				return fmt.Errorf("collect tag %s of %s: %w", name, repo, err)
			}
			out.Tags = append(out.Tags, name)
			events = append(events, event.Event{Kind: event.TagDeleted, Repository: repo, Tags: []string{name}})
		}
		return recordEvents(ctx, tx, events...)
	})
	return out, err
}

func loadGraph(ctx context.Context, tx pgx.Tx, repoID int64) ([]meta.GCManifest, map[digest.Digest]string, error) {
	rows, err := tx.Query(ctx, "SELECT digest, media_type, subject, pushed_at FROM manifests WHERE repository_id = $1", repoID)
	if err != nil {
		return nil, nil, err
	}
	var manifests []meta.GCManifest
	index := map[digest.Digest]int{}
	mediaTypes := map[digest.Digest]string{}
	for rows.Next() {
		var m meta.GCManifest
		var d, mediaType string
		var subject *string
		var pushed int64
		if err := rows.Scan(&d, &mediaType, &subject, &pushed); err != nil {
			rows.Close()
			return nil, nil, err
		}
		m.Digest = digest.Digest(d)
		if subject != nil {
			m.Subject = digest.Digest(*subject)
		}
		m.PushedAt = fromNanos(pushed)
		index[m.Digest] = len(manifests)
		mediaTypes[m.Digest] = mediaType
		manifests = append(manifests, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	rows, err = tx.Query(ctx, "SELECT manifest, digest FROM manifest_references WHERE repository_id = $1 AND kind = $2",
		repoID, int16(meta.RefManifest))
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var parent, child string
		if err := rows.Scan(&parent, &child); err != nil {
			return nil, nil, err
		}
		if i, ok := index[digest.Digest(parent)]; ok {
			manifests[i].Children = append(manifests[i].Children, digest.Digest(child))
		}
	}
	return manifests, mediaTypes, rows.Err()
}

func loadTags(ctx context.Context, tx pgx.Tx, repoID int64) ([]meta.GCTag, error) {
	rows, err := tx.Query(ctx, "SELECT name, digest, updated_at FROM tags WHERE repository_id = $1", repoID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var tags []meta.GCTag
	for rows.Next() {
		var t meta.GCTag
		var d string
		var updated int64
		if err := rows.Scan(&t.Name, &d, &updated); err != nil {
			return nil, err
		}
		t.Digest = digest.Digest(d)
		t.UpdatedAt = fromNanos(updated)
		tags = append(tags, t)
	}
	return tags, rows.Err()
}

// PruneBlobLinks implements meta.Store. It holds the links lock
// exclusively: manifests being stored (which hold it shared) commit their
// references first, or wait and then find the pruned links remembered.
func (s *Store) PruneBlobLinks(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.inTx(ctx, "prune blob links", func(tx pgx.Tx) error {
		if err := advisoryLock(ctx, tx, lockLinks, false); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `WITH pruned AS (
			DELETE FROM repository_blobs rb WHERE linked_at < $1 AND NOT EXISTS (
				SELECT 1 FROM manifest_references r
				WHERE r.repository_id = rb.repository_id AND r.digest = rb.digest)
			RETURNING repository_id, digest)
			INSERT INTO pruned_blob_links (repository_id, digest, pruned_at)
			SELECT repository_id, digest, $2 FROM pruned
			ON CONFLICT (repository_id, digest) DO UPDATE SET pruned_at = excluded.pruned_at`, before.UnixNano(), now())
		if err != nil {
			return fmt.Errorf("prune blob links: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return n, err
}

// ForgetPrunedLinks implements meta.Store.
func (s *Store) ForgetPrunedLinks(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM pruned_blob_links WHERE pruned_at < $1", before.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("forget pruned blob links: %w", err)
	}
	return tag.RowsAffected(), nil
}

// unusedBlob is the condition a blob must meet to be swept, on a row of
// blobs named b.
const unusedBlob = `b.last_used < $2
	AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
	AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.digest = b.digest)`

// SweepBlobs implements meta.Store. Each blob is forgotten in its own
// transaction whose DELETE holds the blob's row while remove runs: a
// TouchBlob of that digest (an upsert of the same row) waits for the
// removal and then records the blob anew, and one that came first moved
// last_used, which the DELETE re-checks on the row it finds.
func (s *Store) SweepBlobs(ctx context.Context, before time.Time, remove func(digest.Digest) error) ([]digest.Digest, error) {
	var removed []digest.Digest
	var firstErr error
	cursor := ""
	for {
		candidates, err := pgdb.Strings(s.pool.Query(ctx, `SELECT digest FROM blobs b WHERE digest > $1 AND `+unusedBlob+`
			ORDER BY digest LIMIT $3`, cursor, before.UnixNano(), sweepBatch))
		if err != nil {
			return removed, fmt.Errorf("sweep blobs: %w", err)
		}
		for _, c := range candidates {
			cursor = c
			d := digest.Digest(c)
			var removeErr error
			err := s.inTx(ctx, "sweep blob "+c, func(tx pgx.Tx) error {
				removeErr = nil
				var got string
				err := tx.QueryRow(ctx, `DELETE FROM blobs b WHERE digest = $1 AND `+unusedBlob+` RETURNING digest`,
					c, before.UnixNano()).Scan(&got)
				if errors.Is(err, pgx.ErrNoRows) {
					return nil // used again meanwhile
				}
				if err != nil {
					return err
				}
				if removeErr = remove(d); removeErr != nil {
					return removeErr
				}
				removed = append(removed, d)
				return nil
			})
			if removeErr != nil {
				if firstErr == nil {
					firstErr = removeErr
				}
				continue
			}
			if err != nil {
				return removed, err
			}
		}
		if len(candidates) < sweepBatch {
			return removed, firstErr
		}
	}
}

// RemoveUnrecordedBlob implements meta.Store. The digest's row is claimed
// (inserted, uncommitted) while remove runs, so a TouchBlob of it waits;
// the claim is then rolled back, leaving no record.
func (s *Store) RemoveUnrecordedBlob(ctx context.Context, d digest.Digest, remove func() error) (bool, error) {
	ran := false
	errRollback := errors.New("rollback")
	err := pgdb.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		ran = false
		tag, err := tx.Exec(ctx, "INSERT INTO blobs (digest, size, last_used) VALUES ($1, -1, 0) ON CONFLICT DO NOTHING", d.String())
		if err != nil {
			return fmt.Errorf("blob %s: %w", d, err)
		}
		if tag.RowsAffected() == 0 {
			return nil // recorded
		}
		ran = true
		if err := remove(); err != nil {
			return err
		}
		return errRollback
	})
	if errors.Is(err, errRollback) {
		err = nil
	}
	return ran, err
}

// PruneRepositories implements meta.Store. Candidates are locked first
// (skipping any a write holds), then checked again with a fresh view:
// a write that committed while the lock was awaited keeps its repository.
func (s *Store) PruneRepositories(ctx context.Context, before time.Time) ([]string, error) {
	const empty = `NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id)
		AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.repository_id = r.id)
		AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.repository_id = r.id)
		AND NOT EXISTS (SELECT 1 FROM pruned_blob_links p WHERE p.repository_id = r.id)`
	var names []string
	err := s.inTx(ctx, "prune repositories", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM repositories r WHERE created_at < $1 AND `+empty+`
			FOR UPDATE SKIP LOCKED`, before.UnixNano())
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		names, err = pgdb.Strings(tx.Query(ctx, `DELETE FROM repositories r WHERE id = ANY($1) AND `+empty+`
			RETURNING name`, ids))
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
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
	digests, err := pgdb.Strings(s.pool.Query(ctx, `SELECT digest FROM manifests
		WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) ORDER BY digest`, repo))
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
		rows, err := s.pool.Query(ctx, `SELECT digest, kind, present FROM manifest_references
			WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND manifest = $2 ORDER BY digest`, repo, d)
		if err != nil {
			return fmt.Errorf("references of %s in %s: %w", d, repo, err)
		}
		for rows.Next() {
			var r meta.Reference
			var rd string
			var kind int16
			if err := rows.Scan(&rd, &kind, &r.Present); err != nil {
				rows.Close()
				return fmt.Errorf("references of %s in %s: %w", d, repo, err)
			}
			r.Digest, r.Kind = digest.Digest(rd), meta.RefKind(kind)
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

// WalkBlobs implements meta.Store. Records are read in pages, so fn may be
// slow (fsck hashes content) without holding a query open.
func (s *Store) WalkBlobs(ctx context.Context, fn func(meta.BlobRecord) error) error {
	const page = 1000
	cursor := ""
	for {
		rows, err := s.pool.Query(ctx, `SELECT b.digest, b.size, b.last_used,
			EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest),
			EXISTS (SELECT 1 FROM manifest_references r WHERE r.digest = b.digest)
			FROM blobs b WHERE b.digest > $1 ORDER BY b.digest LIMIT $2`, cursor, page)
		if err != nil {
			return fmt.Errorf("walk blobs: %w", err)
		}
		var records []meta.BlobRecord
		for rows.Next() {
			var r meta.BlobRecord
			var d string
			var used int64
			if err := rows.Scan(&d, &r.Size, &used, &r.Linked, &r.Referenced); err != nil {
				rows.Close()
				return fmt.Errorf("walk blobs: %w", err)
			}
			r.Digest, r.LastUsed = digest.Digest(d), fromNanos(used)
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
		if len(records) < page {
			return nil
		}
		cursor = records[len(records)-1].Digest.String()
	}
}

// CheckIntegrity implements meta.Store. PostgreSQL enforces the foreign
// keys itself, so what is left to check is what no constraint states: a
// blob linked or referenced must have a record (it does, by key), and
// every reference must belong to a stored manifest. It reports rows that
// break those rules, which only a hand edit of the database can leave.
func (s *Store) CheckIntegrity(ctx context.Context) ([]string, error) {
	var problems []string
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM tags t WHERE NOT EXISTS (
		SELECT 1 FROM manifests m WHERE m.repository_id = t.repository_id AND m.digest = t.digest)`).Scan(&n); err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}
	if n > 0 {
		problems = append(problems, fmt.Sprintf("postgres: %d tags point at missing manifests", n))
	}
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM blobs WHERE size < -1`).Scan(&n); err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}
	if n > 0 {
		problems = append(problems, fmt.Sprintf("postgres: %d blobs with an impossible size", n))
	}
	return problems, nil
}

var _ meta.BatchSweeper = (*Store)(nil)

// blobLocks holds the exclusive lockBlob locks of a batch of digests on a
// connection of its own (session locks, outside any transaction), so that
// their claims and links wait while the batch's content is removed.
type blobLocks struct {
	conn *pgx.Conn
}

func (s *Store) openBlobLocks(ctx context.Context) (*blobLocks, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	return &blobLocks{conn: conn}, nil
}

// lock takes the digests' locks in key order (every taker of several uses
// this order, so none deadlocks), waiting for claims in flight to commit.
func (l *blobLocks) lock(ctx context.Context, ds []string) error {
	keys := make([]int32, 0, len(ds))
	for _, d := range ds {
		keys = append(keys, lockKey(d))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_lock($1, k) FROM (SELECT unnest($2::int4[]) AS k ORDER BY 1) AS keys`,
		int32(lockBlob), keys); err != nil {
		return fmt.Errorf("sweep: lock blobs: %w", err)
	}
	return nil
}

func (l *blobLocks) unlock(ctx context.Context) error {
	if _, err := l.conn.Exec(ctx, "SELECT pg_advisory_unlock_all()"); err != nil {
		return fmt.Errorf("sweep: unlock blobs: %w", err)
	}
	return nil
}

// close ends the session, which releases whatever it still holds.
func (l *blobLocks) close() { l.conn.Close(context.Background()) }

// SweepBlobBatches implements meta.BatchSweeper: per batch, the digests'
// locks are taken, the rows still unused are deleted in one short
// transaction, remove runs with no transaction open, and the locks go.
func (s *Store) SweepBlobBatches(ctx context.Context, before time.Time, max int, remove func([]meta.BlobRecord) error) ([]meta.BlobRecord, error) {
	locks, err := s.openBlobLocks(ctx)
	if err != nil {
		return nil, err
	}
	defer locks.close()
	var swept []meta.BlobRecord
	var firstErr error
	cursor := ""
	for {
		candidates, err := pgdb.Strings(s.pool.Query(ctx, `SELECT digest FROM blobs b WHERE digest > $1 AND `+unusedBlob+`
			ORDER BY digest LIMIT $3`, cursor, before.UnixNano(), max))
		if err != nil {
			return swept, fmt.Errorf("sweep blobs: %w", err)
		}
		if len(candidates) == 0 {
			return swept, firstErr
		}
		cursor = candidates[len(candidates)-1]
		if err := locks.lock(ctx, candidates); err != nil {
			return swept, err
		}
		var batch []meta.BlobRecord
		err = s.inTx(ctx, "sweep blobs", func(tx pgx.Tx) error {
			batch = batch[:0]
			rows, err := tx.Query(ctx, `DELETE FROM blobs b WHERE digest = ANY($1) AND `+unusedBlob+` RETURNING digest, size, last_used`,
				candidates, before.UnixNano())
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var d string
				var size, used int64
				if err := rows.Scan(&d, &size, &used); err != nil {
					return err
				}
				batch = append(batch, meta.BlobRecord{Digest: digest.Digest(d), Size: size, LastUsed: fromNanos(used)})
			}
			return rows.Err()
		})
		if err != nil {
			return swept, err
		}
		if len(batch) > 0 {
			if err := remove(batch); err != nil && firstErr == nil {
				firstErr = err
			}
			swept = append(swept, batch...)
		}
		if err := locks.unlock(ctx); err != nil {
			return swept, err
		}
		if len(candidates) < max {
			return swept, firstErr
		}
	}
}

// RemoveUnrecordedBlobs implements meta.BatchSweeper.
func (s *Store) RemoveUnrecordedBlobs(ctx context.Context, ds []digest.Digest, remove func([]digest.Digest) error) ([]digest.Digest, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	locks, err := s.openBlobLocks(ctx)
	if err != nil {
		return nil, err
	}
	defer locks.close()
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.String()
	}
	if err := locks.lock(ctx, names); err != nil {
		return nil, err
	}
	// Checked under the locks: a claim that committed before is seen, one
	// that comes after waits for the removal and writes the content anew.
	recorded, err := pgdb.Strings(s.pool.Query(ctx, "SELECT digest FROM blobs WHERE digest = ANY($1)", names))
	if err != nil {
		return nil, fmt.Errorf("unrecorded blobs: %w", err)
	}
	known := make(map[string]bool, len(recorded))
	for _, d := range recorded {
		known[d] = true
	}
	var unrecorded []digest.Digest
	for _, d := range ds {
		if !known[d.String()] {
			unrecorded = append(unrecorded, d)
		}
	}
	if len(unrecorded) > 0 {
		if err := remove(unrecorded); err != nil {
			return nil, err
		}
	}
	return unrecorded, locks.unlock(ctx)
}
