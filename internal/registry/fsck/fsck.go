// Package fsck checks a registry's storage: every blob's content against its
// digest, every manifest's bytes against its digest, every reference the
// meta store holds against the blob store, and the database's own
// consistency. It changes nothing unless asked to repair, and then only
// what the content itself proves (a recorded size that disagrees with a
// blob whose content verifies).
package fsck

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/meta"
)

// Options configures a check.
type Options struct {
	// SkipContent checks blob sizes only, without reading and hashing
	// every blob.
	SkipContent bool
	// Repair corrects a recorded size that disagrees with the blob's
	// content, when that content hashes to its digest (so never with
	// SkipContent: a file of the wrong size may be a truncated one). The
	// meta store must not be in use by a server.
	Repair bool
}

// Problem is one inconsistency found.
type Problem struct {
	Kind       string        `json:"kind"`
	Repository string        `json:"repository,omitempty"`
	Digest     digest.Digest `json:"digest,omitempty"`
	Detail     string        `json:"detail"`
	// Repaired says Options.Repair fixed it.
	Repaired bool `json:"repaired,omitempty"`
}

func (p Problem) String() string {
	s := p.Kind
	if p.Repaired {
		s = "repaired " + s
	}
	if p.Repository != "" {
		s += " in " + p.Repository
	}
	if p.Digest != "" {
		s += " " + p.Digest.String()
	}
	return s + ": " + p.Detail
}

// The kinds of problem fsck reports.
const (
	KindCorruptBlob     = "corrupt-blob"
	KindMissingBlob     = "missing-blob"
	KindSizeMismatch    = "size-mismatch"
	KindCorruptManifest = "corrupt-manifest"
	KindDatabase        = "database"
)

// Report is the outcome of a check.
type Report struct {
	Blobs     int       `json:"blobs"`
	Bytes     int64     `json:"bytes"`
	Manifests int       `json:"manifests"`
	Problems  []Problem `json:"problems"`
	// Garbage is not a problem: content the garbage collector will
	// remove (files the meta store does not know, records of blobs whose
	// upload never finished).
	StrayFiles    int `json:"stray_files"`
	StaleRecords  int `json:"stale_records"`
	UnfinishedIDs int `json:"unfinished_uploads"`
	// SparseReferences counts blobs manifests name that were not in
	// their repository when the manifest was pushed and are absent now:
	// deliberately sparse images, not damage. (Manifests stored before
	// berth recorded this count a layer as sparse when the repository did
	// not link it at the upgrade.)
	SparseReferences int `json:"sparse_references"`
}

// Unrepaired counts the problems Repair did not fix.
func (r Report) Unrepaired() int {
	n := 0
	for _, p := range r.Problems {
		if !p.Repaired {
			n++
		}
	}
	return n
}

// Run checks the stores.
func Run(ctx context.Context, ms meta.Store, bs blob.Store, opts Options) (Report, error) {
	var rep Report
	problem := func(p Problem) { rep.Problems = append(rep.Problems, p) }

	dbProblems, err := ms.CheckIntegrity(ctx)
	if err != nil {
		return rep, err
	}
	for _, p := range dbProblems {
		problem(Problem{Kind: KindDatabase, Detail: p})
	}

	files := map[digest.Digest]int64{}
	verified := map[digest.Digest]bool{} // content hashed to its digest
	if err := bs.Walk(ctx, func(i blob.Info) error {
		files[i.Digest] = i.Size
		rep.Blobs++
		rep.Bytes += i.Size
		if opts.SkipContent {
			return nil
		}
		if detail, err := verifyContent(ctx, bs, i); err != nil {
			return err
		} else if detail != "" {
			problem(Problem{Kind: KindCorruptBlob, Digest: i.Digest, Detail: detail})
		} else {
			verified[i.Digest] = true
		}
		return nil
	}); err != nil {
		return rep, err
	}

	recorded := map[digest.Digest]bool{}
	if err := ms.WalkBlobs(ctx, func(r meta.BlobRecord) error {
		recorded[r.Digest] = true
		size, present := files[r.Digest]
		switch {
		case !present && r.Linked:
			problem(Problem{Kind: KindMissingBlob, Digest: r.Digest,
				Detail: "a repository links this blob but its content is missing"})
		case !present && r.Referenced:
			// Named by a manifest but linked nowhere: the manifest walk
			// below tells damage from a deliberately sparse reference.
		case !present:
			rep.StaleRecords++
		case r.Size >= 0 && size != r.Size && (r.Linked || r.Referenced):
			// Clients are told the recorded size (HEAD, Content-Length).
			p := Problem{Kind: KindSizeMismatch, Digest: r.Digest,
				Detail: fmt.Sprintf("recorded as %d bytes, content is %d bytes", r.Size, size)}
			if opts.Repair && verified[r.Digest] {
				if err := ms.SetBlobSize(ctx, r.Digest, size); err != nil {
					return fmt.Errorf("repair size of blob %s: %w", r.Digest, err)
				}
				p.Repaired = true
			}
			problem(p)
		}
		return nil
	}); err != nil {
		return rep, err
	}
	for d := range files {
		if !recorded[d] {
			rep.StrayFiles++
		}
	}

	if err := ms.WalkManifests(ctx, func(repo string, m *meta.Manifest) error {
		rep.Manifests++
		if got := m.Digest.Algorithm().FromBytes(m.Content); got != m.Digest {
			problem(Problem{Kind: KindCorruptManifest, Repository: repo, Digest: m.Digest,
				Detail: fmt.Sprintf("stored bytes hash to %s", got)})
		}
		for _, ref := range m.References {
			if ref.Kind == meta.RefManifest {
				continue
			}
			if _, ok := files[ref.Digest]; ok {
				continue
			}
			if !ref.Present {
				// Never in the repository: a sparse image, or a layer
				// kept elsewhere (urls, non-distributable, inline data).
				rep.SparseReferences++
				continue
			}
			what := "config"
			if ref.Kind != meta.RefBlob {
				what = "layer"
			}
			problem(Problem{Kind: KindMissingBlob, Repository: repo, Digest: ref.Digest,
				Detail: fmt.Sprintf("manifest %s names this %s, which was in the repository when the manifest was pushed, but its content is missing: the image cannot be pulled", m.Digest, what)})
		}
		return nil
	}); err != nil {
		return rep, err
	}

	if err := bs.WalkUploads(ctx, func(blob.UploadInfo) error { rep.UnfinishedIDs++; return nil }); err != nil {
		return rep, err
	}
	return rep, nil
}

// verifyContent rehashes one blob; it returns what is wrong, or "".
func verifyContent(ctx context.Context, bs blob.Store, i blob.Info) (string, error) {
	r, _, err := bs.Open(ctx, i.Digest)
	if errors.Is(err, blob.ErrNotFound) {
		return "", nil // removed while checking
	}
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := i.Digest.Algorithm().Hash()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", fmt.Errorf("read blob %s: %w", i.Digest, err)
	}
	if got := digest.NewDigest(i.Digest.Algorithm(), h); got != i.Digest {
		return fmt.Sprintf("%d bytes of content hash to %s", n, got), nil
	}
	return "", nil
}
