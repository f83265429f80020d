// Package gc is berth's garbage collector: mark and sweep over the meta
// store's graph, safe to run while the registry serves pushes and pulls.
//
// One run, in order:
//
//  1. Manifests, one repository at a time, each in one transaction: keep
//     what tags reach, what was pushed within the grace period, what an
//     index lists and what is attached (by subject, or by a cosign or
//     referrers fallback tag) to a kept manifest; with Untagged off, also
//     every manifest that is not attached to another (see meta.Live).
//  2. Blob links no manifest of their repository references, made before
//     the grace period. Each pruned link is remembered (PrunedLinkMemory),
//     so a manifest pushed later naming that blob in that repository is
//     refused rather than acknowledged without its layer.
//  3. Upload sessions idle for longer than the upload TTL.
//  4. Blobs no repository links and no manifest references, last used
//     before the grace period: each file is removed inside the transaction
//     that forgets it, and every push claims its digest (meta.TouchBlob)
//     before its content lands and checks the content after linking it, so
//     a concurrent push of the same blob either keeps it alive or writes it
//     again.
//     Over a network blob store (S3) whose meta store sweeps in batches
//     (meta.BatchSweeper, blob.BatchDeleter), blobs go a thousand at a
//     time: their rows in one short transaction, their content in one
//     DeleteObjects request made outside any transaction, while claims
//     and links of those digests wait.
//  5. Blob files the meta store has no record of (left by a crash, or a
//     batch whose deletion failed), older than the grace period: the
//     reconciliation; and empty repositories.
//
// Nothing needs the registry read-only: every decision is re-checked inside
// the transaction that acts on it.
package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/registry/event"
)

// PrunedLinkMemory is how long the meta store remembers a blob link
// garbage collection pruned, refusing a manifest that names the blob in
// that repository (MANIFEST_BLOB_UNKNOWN: push it again) rather than
// storing an image that cannot be pulled. A client that uploads a layer
// and pushes the manifest naming it more than this after the link was
// pruned gets the manifest stored as sparse.
const PrunedLinkMemory = 30 * 24 * time.Hour

// Options configures a run.
type Options struct {
	// Untagged also deletes manifests no tag reaches.
	Untagged bool
	// Grace protects everything pushed, tagged or linked more recently:
	// a push in flight has uploaded blobs but not yet its manifest.
	Grace time.Duration
	// UploadTTL is how long an upload session may sit idle.
	UploadTTL time.Duration
	// Notifier hears of deleted manifests and tags (the registry's cache,
	// the scanner, the audit log).
	Notifier event.Notifier
	// LockUpload, if set, is held while an upload session is expired so
	// that a request writing to it finishes first.
	LockUpload func(id string) (unlock func())
	Logger     *slog.Logger
}

// Report says what a run removed.
type Report struct {
	Manifests      int   `json:"manifests"`
	Tags           int   `json:"tags"`
	BlobLinks      int64 `json:"blob_links"`
	Blobs          int   `json:"blobs"`
	BytesFreed     int64 `json:"bytes_freed"`
	Uploads        int   `json:"uploads"`
	StrayFiles     int   `json:"stray_files"`
	Repositories   int   `json:"repositories"`
	DurationMillis int64 `json:"duration_ms"`
}

// Run collects garbage once.
func Run(ctx context.Context, ms meta.Store, bs blob.Store, opts Options) (Report, error) {
	start := time.Now()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	before := start.Add(-opts.Grace)
	var rep Report
	// The meta store records the collector as the actor of its deletions.
	ctx = event.WithActor(ctx, event.GarbageCollector)

	repos, err := ms.RepositoryNames(ctx)
	if err != nil {
		return rep, err
	}
	for _, repo := range repos {
		got, err := ms.CollectManifests(ctx, repo, meta.GCPolicy{Untagged: opts.Untagged, Before: before})
		if err != nil {
			return rep, err
		}
		for _, m := range got.Manifests {
			rep.Manifests++
			log.InfoContext(ctx, "gc: deleted manifest", "repository", repo, "digest", m.Digest)
			notify(ctx, opts.Notifier, event.Event{Kind: event.ManifestDeleted, Repository: repo,
				Digest: m.Digest, MediaType: m.MediaType, Actor: event.GarbageCollector, At: time.Now()})
		}
		for _, t := range got.Tags {
			rep.Tags++
			log.InfoContext(ctx, "gc: deleted tag of a vanished subject", "repository", repo, "tag", t)
			notify(ctx, opts.Notifier, event.Event{Kind: event.TagDeleted, Repository: repo, Tags: []string{t}, Actor: event.GarbageCollector, At: time.Now()})
		}
	}

	if rep.BlobLinks, err = ms.PruneBlobLinks(ctx, before); err != nil {
		return rep, err
	}
	if _, err = ms.ForgetPrunedLinks(ctx, start.Add(-PrunedLinkMemory)); err != nil {
		return rep, err
	}

	if rep.Uploads, err = ExpireUploads(ctx, ms, bs, start.Add(-opts.UploadTTL), opts.LockUpload); err != nil {
		return rep, err
	}
	// Commits a crash interrupted (S3 multipart uploads of blob keys).
	if iu, ok := bs.(blob.IncompleteUploads); ok {
		n, err := iu.AbortIncompleteUploads(ctx, start.Add(-opts.UploadTTL))
		if err != nil {
			return rep, err
		}
		rep.Uploads += n
	}

	sweeper, batched := ms.(meta.BatchSweeper)
	deleter, deletesMany := bs.(blob.BatchDeleter)
	if batched && deletesMany {
		if err := sweepBatches(ctx, sweeper, deleter, before, &rep, log); err != nil {
			return rep, err
		}
		if rep.StrayFiles, err = removeStrayBatches(ctx, ms, sweeper, bs, deleter, before, &rep.BytesFreed); err != nil {
			return rep, err
		}
	} else {
		removed, err := ms.SweepBlobs(ctx, before, func(d digest.Digest) error {
			info, err := bs.Stat(ctx, d)
			if errors.Is(err, blob.ErrNotFound) {
				return nil // claimed but never written: only the record goes
			}
			if err != nil {
				return err
			}
			if err := bs.Delete(ctx, d); err != nil && !errors.Is(err, blob.ErrNotFound) {
				return err
			}
			rep.BytesFreed += info.Size
			return nil
		})
		rep.Blobs = len(removed)
		if err != nil {
			return rep, fmt.Errorf("sweep blobs: %w", err)
		}
		if rep.StrayFiles, err = removeStrayFiles(ctx, ms, bs, before, &rep.BytesFreed); err != nil {
			return rep, err
		}
	}

	pruned, err := ms.PruneRepositories(ctx, before)
	if err != nil {
		return rep, err
	}
	rep.Repositories = len(pruned)
	rep.DurationMillis = time.Since(start).Milliseconds()
	log.InfoContext(ctx, "gc: done", "manifests", rep.Manifests, "tags", rep.Tags, "blob_links", rep.BlobLinks,
		"blobs", rep.Blobs, "bytes_freed", rep.BytesFreed, "uploads", rep.Uploads, "stray_files", rep.StrayFiles,
		"repositories", rep.Repositories, "duration", time.Since(start))
	return rep, nil
}

func notify(ctx context.Context, n event.Notifier, e event.Event) {
	if n != nil {
		n.Notify(ctx, e)
	}
}

// ExpireUploads removes sessions whose content was last written before
// cutoff, and session records whose content is gone and that started before
// cutoff, returning how many. lock, if set, is held while a session is
// removed (Registry.LockUpload). A server runs it on a timer of its own as
// well as within Run: sessions must expire whether or not collection is
// scheduled.
func ExpireUploads(ctx context.Context, ms meta.Store, bs blob.Store, cutoff time.Time, lock func(string) func()) (int, error) {
	seen := map[string]bool{}
	var stale []string
	if err := bs.WalkUploads(ctx, func(u blob.UploadInfo) error {
		seen[u.ID] = true
		if u.ModTime.Before(cutoff) {
			stale = append(stale, u.ID)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	sessions, err := ms.Uploads(ctx)
	if err != nil {
		return 0, err
	}
	for _, s := range sessions {
		if !seen[s.ID] && s.StartedAt.Before(cutoff) {
			stale = append(stale, s.ID)
		}
	}
	expired := 0
	for _, id := range stale {
		unlock := func() {}
		if lock != nil {
			unlock = lock(id)
		}
		// Looked at again under the session's lock: a chunk may have
		// arrived since the walk, and an active session must stay.
		info, err := bs.StatUpload(ctx, id)
		switch {
		case err == nil && !info.ModTime.Before(cutoff):
		case err != nil && !errors.Is(err, blob.ErrUploadNotFound):
		default:
			if err = expire(ctx, ms, bs, id); err == nil {
				expired++
			}
		}
		unlock()
		if err != nil {
			return expired, err
		}
	}
	return expired, nil
}

func expire(ctx context.Context, ms meta.Store, bs blob.Store, id string) error {
	// Forget the session first: a request that finds no session does not
	// touch its content.
	if err := ms.DeleteUpload(ctx, id); err != nil {
		return err
	}
	return bs.RemoveUpload(ctx, id)
}

// deleteBatch is how many blobs one batch of a batched sweep removes: one
// S3 DeleteObjects request's worth.
const deleteBatch = 1000

// sweepBatches is step 4 over a network blob store (S3): blobs are
// forgotten a batch at a time and their content deleted with one request
// per batch, outside any transaction (meta.BatchSweeper says how pushes
// stay safe meanwhile). Content whose deletion failed is left to the
// reconciliation that follows, which finds objects no row names.
func sweepBatches(ctx context.Context, ms meta.BatchSweeper, bs blob.BatchDeleter, before time.Time, rep *Report, log *slog.Logger) error {
	var failedTotal int
	swept, err := ms.SweepBlobBatches(ctx, before, deleteBatch, func(batch []meta.BlobRecord) error {
		ds := make([]digest.Digest, len(batch))
		for i, r := range batch {
			ds[i] = r.Digest
		}
		failed, err := bs.DeleteMany(ctx, ds)
		failedTotal += len(failed)
		gone := make(map[digest.Digest]bool, len(failed))
		for _, d := range failed {
			gone[d] = true
		}
		for _, r := range batch {
			if !gone[r.Digest] && r.Size > 0 {
				rep.BytesFreed += r.Size
			}
		}
		return err
	})
	rep.Blobs = len(swept) - failedTotal
	if err != nil {
		log.WarnContext(ctx, "gc: some blob content could not be deleted; the next collection removes it", "failed", failedTotal, "error", err)
		return fmt.Errorf("sweep blobs: %w", err)
	}
	return nil
}

// removeStrayBatches is removeStrayFiles over a network blob store: the
// objects no row names, older than before, deleted a batch at a time.
func removeStrayBatches(ctx context.Context, ms meta.Store, sweeper meta.BatchSweeper, bs blob.Store, deleter blob.BatchDeleter,
	before time.Time, freed *int64) (int, error) {
	recorded := map[digest.Digest]bool{}
	if err := ms.WalkBlobs(ctx, func(r meta.BlobRecord) error { recorded[r.Digest] = true; return nil }); err != nil {
		return 0, err
	}
	sizes := map[digest.Digest]int64{}
	var candidates []digest.Digest
	if err := bs.Walk(ctx, func(i blob.Info) error {
		if !recorded[i.Digest] && i.ModTime.Before(before) {
			candidates = append(candidates, i.Digest)
			sizes[i.Digest] = i.Size
		}
		return nil
	}); err != nil {
		return 0, err
	}
	n := 0
	for start := 0; start < len(candidates); start += deleteBatch {
		part := candidates[start:min(start+deleteBatch, len(candidates))]
		var failed []digest.Digest
		removed, err := sweeper.RemoveUnrecordedBlobs(ctx, part, func(ds []digest.Digest) error {
			var err error
			failed, err = deleter.DeleteMany(ctx, ds)
			return err
		})
		if err != nil {
			return n, err
		}
		n += len(removed) - len(failed)
		for _, d := range removed {
			if !slices.Contains(failed, d) {
				*freed += sizes[d]
			}
		}
	}
	return n, nil
}

// removeStrayFiles deletes blob files the meta store does not know, older
// than before.
func removeStrayFiles(ctx context.Context, ms meta.Store, bs blob.Store, before time.Time, freed *int64) (int, error) {
	recorded := map[digest.Digest]bool{}
	if err := ms.WalkBlobs(ctx, func(r meta.BlobRecord) error { recorded[r.Digest] = true; return nil }); err != nil {
		return 0, err
	}
	var candidates []blob.Info
	if err := bs.Walk(ctx, func(i blob.Info) error {
		if !recorded[i.Digest] && i.ModTime.Before(before) {
			candidates = append(candidates, i)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	n := 0
	for _, c := range candidates {
		// Re-checked inside a transaction: a push may have claimed the
		// digest since the walk.
		ran, err := ms.RemoveUnrecordedBlob(ctx, c.Digest, func() error {
			if err := bs.Delete(ctx, c.Digest); err != nil && !errors.Is(err, blob.ErrNotFound) {
				return err
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		if ran {
			n++
			*freed += c.Size
		}
	}
	return n, nil
}
