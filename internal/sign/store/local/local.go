// Package local is a read-only store.Reader over berth's own meta and blob
// stores, so the registry verifies the signatures it holds without an
// HTTP round trip to itself.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/sign/store"
)

// Reader reads repositories of berth's stores.
type Reader struct {
	Meta  meta.Store
	Blobs blob.Store
}

var _ store.Reader = Reader{}

func (r Reader) manifest(ctx context.Context, repo, reference string) (*meta.Manifest, error) {
	d := digest.Digest(reference)
	if d.Validate() != nil {
		var err error
		if d, err = r.Meta.Tag(ctx, repo, reference); err != nil {
			if errors.Is(err, meta.ErrTagUnknown) {
				return nil, fmt.Errorf("%w: %s:%s", store.ErrNotFound, repo, reference)
			}
			return nil, err
		}
	}
	m, err := r.Meta.Manifest(ctx, repo, d)
	if errors.Is(err, meta.ErrManifestUnknown) {
		return nil, fmt.Errorf("%w: %s@%s", store.ErrNotFound, repo, d)
	}
	return m, err
}

func descriptor(m *meta.Manifest) (v1.Descriptor, error) {
	h, err := v1.NewHash(m.Digest.String())
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: types.MediaType(m.MediaType), Digest: h, Size: int64(len(m.Content)), ArtifactType: m.ArtifactType}, nil
}

// Resolve implements store.Reader.
func (r Reader) Resolve(ctx context.Context, repo, reference string) (v1.Descriptor, error) {
	m, err := r.manifest(ctx, repo, reference)
	if err != nil {
		return v1.Descriptor{}, err
	}
	return descriptor(m)
}

// Manifest implements store.Reader.
func (r Reader) Manifest(ctx context.Context, repo, reference string) (store.Manifest, error) {
	m, err := r.manifest(ctx, repo, reference)
	if err != nil {
		return store.Manifest{}, err
	}
	d, err := descriptor(m)
	return store.Manifest{Descriptor: d, Body: m.Content}, err
}

// Blob implements store.Reader: only blobs linked to the repository, as
// the registry serves them.
func (r Reader) Blob(ctx context.Context, repo string, h v1.Hash) ([]byte, error) {
	d := digest.Digest(h.String())
	size, err := r.Meta.BlobSize(ctx, repo, d)
	if errors.Is(err, meta.ErrBlobUnknown) {
		return nil, fmt.Errorf("%w: blob %s in %s", store.ErrNotFound, d, repo)
	}
	if err != nil {
		return nil, err
	}
	if size > store.MaxBlobSize {
		return nil, fmt.Errorf("blob %s is %d bytes, more than %d", d, size, store.MaxBlobSize)
	}
	rc, _, err := r.Blobs.Open(ctx, d)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, fmt.Errorf("%w: blob %s", store.ErrNotFound, d)
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, store.MaxBlobSize+1))
	if err != nil {
		return nil, err
	}
	if digest.Canonical.FromBytes(b) != d && d.Algorithm().FromBytes(b) != d {
		return nil, fmt.Errorf("blob %s does not hash to its digest", d)
	}
	return b, nil
}

// Referrers implements store.Reader through the registry's own index.
func (r Reader) Referrers(ctx context.Context, repo string, h v1.Hash) ([]v1.Descriptor, error) {
	ds, err := r.Meta.Referrers(ctx, repo, digest.Digest(h.String()), "")
	if err != nil {
		return nil, err
	}
	out := make([]v1.Descriptor, 0, len(ds))
	for _, d := range ds {
		dh, err := v1.NewHash(d.Digest.String())
		if err != nil {
			continue
		}
		out = append(out, v1.Descriptor{MediaType: types.MediaType(d.MediaType), Digest: dh, Size: d.Size,
			ArtifactType: d.ArtifactType, Annotations: d.Annotations})
	}
	return out, nil
}
