package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Remote is a Store over the OCI distribution API of one registry. It keeps
// one puller and one pusher so that each repository's token handshake
// happens once, not once per request. It is also a ReferrerWriter.
type Remote struct {
	registry name.Registry
	opts     []remote.Option
	puller   *remote.Puller
	// pusher never maintains the referrers tag schema: it writes blobs,
	// tags and PutReferrer's manifests.
	pusher *remote.Pusher
	// schemaPusher is go-containerregistry's pusher as opts make it, which
	// maintains the referrers tag schema (a read-modify-write of the
	// index, without reading back); only PutManifest uses it, so its
	// handshake happens only then.
	schemaPusher *remote.Pusher
}

// NewRemote returns a Store for registry. opts carry authentication,
// transport and user agent (go-containerregistry's remote options).
func NewRemote(registry name.Registry, opts ...remote.Option) (*Remote, error) {
	puller, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, fmt.Errorf("registry client: %w", err)
	}
	pusher, err := remote.NewPusher(append(opts[:len(opts):len(opts)], remote.WithReferrersTagFallback(false))...)
	if err != nil {
		return nil, fmt.Errorf("registry client: %w", err)
	}
	schemaPusher, err := remote.NewPusher(opts...)
	if err != nil {
		return nil, fmt.Errorf("registry client: %w", err)
	}
	return &Remote{registry: registry, opts: opts, puller: puller, pusher: pusher, schemaPusher: schemaPusher}, nil
}

// Registry returns the registry this store talks to.
func (r *Remote) Registry() name.Registry { return r.registry }

// repository validates repo and binds it to this store's registry, keeping
// the registry's scheme (plain HTTP or TLS).
func (r *Remote) repository(repo string) (name.Repository, error) {
	rp, err := name.NewRepository(r.registry.Name() + "/" + repo)
	if err != nil {
		return name.Repository{}, fmt.Errorf("repository %q: %w", repo, err)
	}
	rp.Registry = r.registry
	return rp, nil
}

func (r *Remote) reference(repo, reference string) (name.Reference, error) {
	rp, err := r.repository(repo)
	if err != nil {
		return nil, err
	}
	if h, err := v1.NewHash(reference); err == nil {
		return rp.Digest(h.String()), nil
	}
	t, err := name.NewTag(rp.Name() + ":" + reference)
	if err != nil {
		return nil, fmt.Errorf("reference %q: %w", reference, err)
	}
	t.Repository = rp
	return t, nil
}

// Resolve implements Reader. It asks with HEAD and falls back to GET for
// registries that answer HEAD badly.
func (r *Remote) Resolve(ctx context.Context, repo, reference string) (v1.Descriptor, error) {
	ref, err := r.reference(repo, reference)
	if err != nil {
		return v1.Descriptor{}, err
	}
	d, err := r.puller.Head(ctx, ref)
	if err == nil {
		return *d, nil
	}
	if isNotFound(err) {
		return v1.Descriptor{}, fmt.Errorf("resolve %s: %w", ref, ErrNotFound)
	}
	got, gerr := r.puller.Get(ctx, ref)
	if gerr != nil {
		return v1.Descriptor{}, wrap("resolve", ref, gerr)
	}
	return got.Descriptor, nil
}

// Manifest implements Reader.
func (r *Remote) Manifest(ctx context.Context, repo, reference string) (Manifest, error) {
	ref, err := r.reference(repo, reference)
	if err != nil {
		return Manifest{}, err
	}
	d, err := r.puller.Get(ctx, ref)
	if err != nil {
		return Manifest{}, wrap("get manifest", ref, err)
	}
	return Manifest{Descriptor: d.Descriptor, Body: d.Manifest}, nil
}

// Blob implements Reader. go-containerregistry checks the content against
// the digest while it reads.
func (r *Remote) Blob(ctx context.Context, repo string, digest v1.Hash) ([]byte, error) {
	rp, err := r.repository(repo)
	if err != nil {
		return nil, err
	}
	ref := rp.Digest(digest.String())
	layer, err := r.puller.Layer(ctx, ref)
	if err != nil {
		return nil, wrap("get blob", ref, err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, wrap("get blob", ref, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxBlobSize+1))
	if err != nil {
		return nil, wrap("read blob", ref, err)
	}
	if len(b) > MaxBlobSize {
		return nil, fmt.Errorf("blob %s is larger than %d bytes", ref, MaxBlobSize)
	}
	return b, nil
}

// Referrers implements Reader.
func (r *Remote) Referrers(ctx context.Context, repo string, digest v1.Hash) ([]v1.Descriptor, error) {
	rp, err := r.repository(repo)
	if err != nil {
		return nil, err
	}
	ref := rp.Digest(digest.String())
	idx, err := remote.Referrers(ref, append(r.opts, remote.Reuse(r.puller), remote.WithContext(ctx))...)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, wrap("list referrers", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, wrap("list referrers", ref, err)
	}
	return im.Manifests, nil
}

// PutBlob implements Writer.
func (r *Remote) PutBlob(ctx context.Context, repo string, content []byte) error {
	rp, err := r.repository(repo)
	if err != nil {
		return err
	}
	if err := r.pusher.Upload(ctx, rp, static.NewLayer(content, types.OCILayer)); err != nil {
		return fmt.Errorf("upload blob to %s: %w", rp, err)
	}
	return nil
}

// PutManifest implements Writer. go-containerregistry maintains the
// referrers tag schema itself when the registry has no referrers API, by a
// read-modify-write of the index that concurrent writers can undo; signing
// uses PutReferrer and maintains the index itself.
func (r *Remote) PutManifest(ctx context.Context, repo string, mediaType types.MediaType, body []byte) (v1.Descriptor, error) {
	desc, ref, err := r.byDigest(repo, mediaType, body)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if err := r.schemaPusher.Put(ctx, ref, rawManifest{body, mediaType}); err != nil {
		return v1.Descriptor{}, fmt.Errorf("put manifest %s: %w", ref, err)
	}
	return desc, nil
}

// PutReferrer implements ReferrerWriter. go-containerregistry, with its
// referrers tag fallback off, PUTs the manifest, then asks the referrers
// API about the subject and fails when the registry does not answer it
// (the same two requests as with the fallback on, where the API exists).
func (r *Remote) PutReferrer(ctx context.Context, repo string, mediaType types.MediaType, body []byte) (v1.Descriptor, bool, error) {
	desc, ref, err := r.byDigest(repo, mediaType, body)
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	err = r.pusher.Put(ctx, ref, rawManifest{body, mediaType})
	switch {
	case err == nil:
		return desc, true, nil
	case isNoReferrersAPI(err):
		return desc, false, nil
	default:
		return v1.Descriptor{}, false, fmt.Errorf("put manifest %s: %w", ref, err)
	}
}

// noReferrersAPI is how go-containerregistry (v0.22) says, with the
// referrers tag fallback off, that the registry has no referrers API; the
// error has no type of its own. remote_test.go pins it.
const noReferrersAPI = "does not support the Referrers API and the referrers tag fallback is disabled"

// isNoReferrersAPI reports whether err is that error: the manifest was
// stored, the registry has no referrers API.
func isNoReferrersAPI(err error) bool {
	var terr *transport.Error
	return !errors.As(err, &terr) && strings.Contains(err.Error(), noReferrersAPI)
}

// byDigest returns the descriptor of a manifest and the reference to store
// it under: its digest in repo.
func (r *Remote) byDigest(repo string, mediaType types.MediaType, body []byte) (v1.Descriptor, name.Digest, error) {
	desc, err := describe(mediaType, body)
	if err != nil {
		return v1.Descriptor{}, name.Digest{}, err
	}
	rp, err := r.repository(repo)
	if err != nil {
		return v1.Descriptor{}, name.Digest{}, err
	}
	return desc, rp.Digest(desc.Digest.String()), nil
}

// PutTag implements Writer.
func (r *Remote) PutTag(ctx context.Context, repo, tag string, mediaType types.MediaType, body []byte) (v1.Descriptor, error) {
	desc, err := describe(mediaType, body)
	if err != nil {
		return v1.Descriptor{}, err
	}
	ref, err := r.reference(repo, tag)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if _, ok := ref.(name.Tag); !ok {
		return v1.Descriptor{}, fmt.Errorf("tag %q is a digest", tag)
	}
	if err := r.pusher.Put(ctx, ref, rawManifest{body, mediaType}); err != nil {
		return v1.Descriptor{}, fmt.Errorf("put manifest %s: %w", ref, err)
	}
	return desc, nil
}

func describe(mediaType types.MediaType, body []byte) (v1.Descriptor, error) {
	h, size, err := v1.SHA256(bytes.NewReader(body))
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mediaType, Digest: h, Size: size}, nil
}

// rawManifest hands go-containerregistry manifest bytes as they are.
type rawManifest struct {
	body      []byte
	mediaType types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.body, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }

func isNotFound(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	if terr.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range terr.Errors {
		switch d.Code {
		case transport.ManifestUnknownErrorCode, transport.BlobUnknownErrorCode, transport.NameUnknownErrorCode:
			return true
		}
	}
	return false
}

func wrap(op string, ref name.Reference, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("%s %s: %w", op, ref, ErrNotFound)
	}
	return fmt.Errorf("%s %s: %w", op, ref, err)
}

var _ ReferrerWriter = (*Remote)(nil)
