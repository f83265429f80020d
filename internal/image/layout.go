package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// blobReader gives the blobs of an OCI layout, wherever it lives.
type blobReader interface {
	// openBlob opens a blob by digest; a missing blob is an error
	// wrapping ErrMissingBlob.
	openBlob(h v1.Hash) (io.ReadCloser, int64, error)
}

const (
	refNameAnnotation = "org.opencontainers.image.ref.name"
	// maxManifestBytes bounds the JSON documents we read whole; real ones
	// are a few KiB.
	maxManifestBytes = 8 << 20
)

func readBlob(b blobReader, h v1.Hash, what string) ([]byte, error) {
	rc, size, err := b.openBlob(h)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, h, err)
	}
	defer rc.Close()
	if size > maxManifestBytes {
		return nil, fmt.Errorf("%s %s: %d bytes, more than the %d a %s may have", what, h, size, maxManifestBytes, what)
	}
	data, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, h, err)
	}
	got, _, err := v1.SHA256(bytes.NewReader(data))
	if err == nil && h.Algorithm == "sha256" && got != h {
		return nil, fmt.Errorf("%s %s: content hashes to %s", what, h, got)
	}
	return data, nil
}

// imageFromLayout reads an OCI layout: its index.json, then down through
// nested indexes to the one image manifest that matches ref (the
// org.opencontainers.image.ref.name annotation) and the platform.
func imageFromLayout(indexJSON []byte, blobs blobReader, ref string, plat *v1.Platform) (*Image, error) {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(indexJSON))
	if err != nil {
		return nil, fmt.Errorf("%w: index.json: %v", ErrBadSource, err)
	}
	descs := idx.Manifests
	if ref != "" {
		descs = nil
		for _, d := range idx.Manifests {
			if d.Annotations[refNameAnnotation] == ref {
				descs = append(descs, d)
			}
		}
		if len(descs) == 0 {
			return nil, fmt.Errorf("%w: no manifest named %q in index.json", ErrBadSource, ref)
		}
	}
	desc, err := pickManifest(descs, blobs, plat, 0)
	if err != nil {
		return nil, err
	}
	raw, err := readBlob(blobs, desc.Digest, "manifest")
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %v", ErrBadSource, desc.Digest, err)
	}
	return imageFromManifest(desc.Digest.String(), m, blobs)
}

// pickManifest chooses one image manifest among descs, descending into
// nested indexes.
func pickManifest(descs []v1.Descriptor, blobs blobReader, plat *v1.Platform, depth int) (v1.Descriptor, error) {
	if depth > 4 {
		return v1.Descriptor{}, fmt.Errorf("%w: indexes nested more than 4 deep", ErrBadSource)
	}
	var images, indexes []v1.Descriptor
	for _, d := range descs {
		switch {
		case d.MediaType.IsImage():
			if d.Platform == nil || d.Platform.Satisfies(*plat) || platformUnknown(d.Platform) {
				images = append(images, d)
			}
		case d.MediaType.IsIndex():
			indexes = append(indexes, d)
		}
	}
	// Prefer an image that names the platform exactly over one that does
	// not say (attestation manifests say "unknown/unknown").
	for _, d := range images {
		if d.Platform != nil && d.Platform.Satisfies(*plat) {
			return d, nil
		}
	}
	if len(images) > 0 && len(indexes) == 0 {
		return images[0], nil
	}
	for _, d := range indexes {
		raw, err := readBlob(blobs, d.Digest, "index")
		if err != nil {
			return v1.Descriptor{}, err
		}
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("%w: index %s: %v", ErrBadSource, d.Digest, err)
		}
		got, err := pickManifest(idx.Manifests, blobs, plat, depth+1)
		if err == nil {
			return got, nil
		}
		if !errors.Is(err, ErrNoMatchingPlatform) {
			return v1.Descriptor{}, err
		}
	}
	if len(images) > 0 {
		return images[0], nil
	}
	return v1.Descriptor{}, fmt.Errorf("%w %s", ErrNoMatchingPlatform, plat)
}

// platformUnknown is a descriptor that names no real platform; only such
// images are taken when nothing matches.
func platformUnknown(p *v1.Platform) bool {
	return p.OS == "" || (p.OS == "unknown" && p.Architecture == "unknown")
}

// imageFromManifest reads the config and checks that every layer blob is
// there, so a broken image fails before any work, naming the missing blob.
func imageFromManifest(digest string, m *v1.Manifest, blobs blobReader) (*Image, error) {
	rawCfg, err := readBlob(blobs, m.Config.Digest, "config")
	if err != nil {
		return nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("%w: config %s: %v", ErrBadSource, m.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("%w: manifest %s has %d layers, its config %d diffIDs",
			ErrBadSource, digest, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	im := &Image{Digest: digest, ConfigDigest: m.Config.Digest.String(), Config: cfg}
	cb := createdBy(cfg, len(m.Layers))
	for i, ld := range m.Layers {
		if !isLayerMediaType(ld.MediaType) {
			return nil, fmt.Errorf("%w: layer %d (%s) has media type %q", ErrBadSource, i+1, ld.Digest, ld.MediaType)
		}
		rc, _, err := blobs.openBlob(ld.Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i+1, ld.Digest, err)
		}
		rc.Close()
		h := ld.Digest
		im.Layers = append(im.Layers, Layer{
			DiffID:    cfg.RootFS.DiffIDs[i].String(),
			Digest:    h.String(),
			MediaType: string(ld.MediaType),
			Size:      ld.Size,
			CreatedBy: cb[i],
			open:      blobOpener(blobs, h),
		})
	}
	return im, nil
}

// isLayerMediaType accepts the layer types go-containerregistry knows and
// any other OCI layer type (+zstd, future suffixes); an empty type is
// taken as a layer, as docker did before media types were written.
func isLayerMediaType(mt types.MediaType) bool {
	return mt.IsLayer() || mt == "" || strings.HasPrefix(string(mt), "application/vnd.oci.image.layer.")
}
