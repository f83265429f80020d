package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BlobFunc opens a blob, or a manifest an index lists, by digest; a
// missing one is an error wrapping ErrMissingBlob. It is how OpenManifest
// reads an image out of a store that is not a transport (the registry's
// own blob and meta stores).
type BlobFunc func(digest string) (rc io.ReadCloser, size int64, err error)

func (f BlobFunc) openBlob(h v1.Hash) (io.ReadCloser, int64, error) { return f(h.String()) }

// OpenManifest opens the image that manifest describes: an image manifest
// (digest is its digest), or an index, from which the image for
// opts.Platform is picked as from any other source. The server scans what
// it stores this way, without a round trip through its own HTTP API.
func OpenManifest(digest string, manifest []byte, blobs BlobFunc, opts Options) (*Image, error) {
	plat, err := parsePlatform(opts.Platform)
	if err != nil {
		return nil, err
	}
	var probe struct {
		Manifests json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(manifest, &probe); err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %v", ErrBadSource, digest, err)
	}
	if probe.Manifests != nil {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(manifest))
		if err != nil {
			return nil, fmt.Errorf("%w: index %s: %v", ErrBadSource, digest, err)
		}
		desc, err := pickManifest(idx.Manifests, blobs, plat, 0)
		if err != nil {
			return nil, err
		}
		if manifest, err = readBlob(blobs, desc.Digest, "manifest"); err != nil {
			return nil, err
		}
		digest = desc.Digest.String()
	}
	m, err := v1.ParseManifest(bytes.NewReader(manifest))
	if err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %v", ErrBadSource, digest, err)
	}
	im, err := imageFromManifest(digest, m, blobs)
	if err != nil {
		return nil, err
	}
	im.Source = digest
	return im, nil
}

// IsLayerMediaType reports whether a manifest's layer of media type mt is
// a filesystem layer (a tar, compressed or not) rather than a payload such
// as a signature or an SBOM.
func IsLayerMediaType(mt string) bool { return isLayerMediaType(types.MediaType(mt)) }
