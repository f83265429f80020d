// Package store is the narrow view of an OCI registry that signing needs:
// resolve a reference, read manifests and blobs, list referrers, and write
// blobs, manifests and tags. Remote speaks the distribution API to any
// registry through go-containerregistry; berth's own registry can satisfy
// the same interfaces from its internals. storetest holds the suite every
// implementation runs.
package store

import (
	"context"
	"errors"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ErrNotFound means the repository, manifest or blob does not exist.
var ErrNotFound = errors.New("not found")

// MaxBlobSize bounds the blobs signing reads: signature payloads are tiny,
// attestations with an SBOM predicate can be tens of megabytes.
const MaxBlobSize = 128 << 20

// Manifest is a manifest's bytes and its descriptor.
type Manifest struct {
	Descriptor v1.Descriptor
	Body       []byte
}

// Reader reads from repositories of one registry. repo is the repository
// path without the registry host ("team/app"); reference is a tag or a
// "sha256:…" digest.
type Reader interface {
	// Resolve returns the descriptor of the manifest reference names.
	Resolve(ctx context.Context, repo, reference string) (v1.Descriptor, error)
	// Manifest returns the manifest reference names.
	Manifest(ctx context.Context, repo, reference string) (Manifest, error)
	// Blob returns a blob whose content matches digest.
	Blob(ctx context.Context, repo string, digest v1.Hash) ([]byte, error)
	// Referrers lists the manifests whose subject is digest, through the
	// referrers API or, where the registry has none, the referrers tag
	// schema. No referrers is an empty list, not an error.
	Referrers(ctx context.Context, repo string, digest v1.Hash) ([]v1.Descriptor, error)
}

// Writer writes to repositories of one registry.
type Writer interface {
	// PutBlob stores content under its SHA-256 digest.
	PutBlob(ctx context.Context, repo string, content []byte) error
	// PutManifest stores a manifest under its digest and returns its
	// descriptor. A manifest with a subject is made findable through
	// Referrers.
	PutManifest(ctx context.Context, repo string, mediaType types.MediaType, body []byte) (v1.Descriptor, error)
	// PutTag stores a manifest and points tag at it.
	PutTag(ctx context.Context, repo, tag string, mediaType types.MediaType, body []byte) (v1.Descriptor, error)
}

// ReferrerWriter is implemented by stores over registries that may lack
// the referrers API, to leave the referrers tag schema to their caller.
// A Writer without it lists referrers itself in PutManifest.
type ReferrerWriter interface {
	// PutReferrer stores a manifest that has a subject under its digest,
	// as PutManifest does, but never touches the referrers tag schema.
	// listed reports whether the registry answers the referrers API for
	// the subject (which then lists the manifest). When it does not, the
	// manifest is stored but listed nowhere: the caller must add it to the
	// index tagged "sha256-<hex of the subject's digest>".
	PutReferrer(ctx context.Context, repo string, mediaType types.MediaType, body []byte) (d v1.Descriptor, listed bool, err error)
}

// Store reads and writes.
type Store interface {
	Reader
	Writer
}
