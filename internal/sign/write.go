package sign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"berth.dev/berth/internal/sign/bundle"
	"berth.dev/berth/internal/sign/store"
)

// Written says where a signature or attestation was stored.
type Written struct {
	Target Target
	// Ref names what was written: "name:sha256-<hex>.sig" for cosign's tag
	// scheme, "name@sha256:<digest>" for a referrer manifest.
	Ref string
	// Manifest describes the manifest that now holds it.
	Manifest v1.Descriptor
}

// layer is one blob to attach with its descriptor annotations.
type layer struct {
	mediaType   types.MediaType
	content     []byte
	annotations map[string]string
}

// appendRetries bounds the read-modify-write of a signature tag. Registries
// have no conditional PUT, so a concurrent signer can replace the manifest
// between our read and our write; re-reading after the write catches that
// and the append is redone. A writer that read before our write and writes
// after our re-read can still drop our layer: cosign's tag scheme cannot
// close that window, sigstore bundles as referrers (one manifest each) can.
const appendRetries = 8

// appendToTag adds l to the cosign-style image manifest at tag (creating it
// if absent), keeping every layer already there. A manifest at tag that is
// not cosign's kind is left alone and reported.
func appendToTag(ctx context.Context, st store.Store, t Target, tag string, l layer) (Written, error) {
	ld := describe(l.mediaType, l.content)
	ld.Annotations = l.annotations
	if err := st.PutBlob(ctx, t.Repo, l.content); err != nil {
		return Written{}, err
	}
	ref := t.Name + ":" + tag
	for range appendRetries {
		existing, err := readTagLayers(ctx, st, t.Repo, tag, l.mediaType)
		if err != nil {
			return Written{}, fmt.Errorf("%s: %w", ref, err)
		}
		if i := indexOfLayer(existing, ld); i >= 0 {
			m, err := st.Resolve(ctx, t.Repo, tag)
			if err != nil {
				return Written{}, fmt.Errorf("%s: %w", ref, err)
			}
			return Written{Target: t, Ref: ref, Manifest: m}, nil
		}
		layers := append(existing, ld)
		cfg, manifest, err := signatureImage(layers)
		if err != nil {
			return Written{}, err
		}
		if err := st.PutBlob(ctx, t.Repo, cfg); err != nil {
			return Written{}, err
		}
		m, err := st.PutTag(ctx, t.Repo, tag, types.OCIManifestSchema1, manifest)
		if err != nil {
			return Written{}, err
		}
		now, err := readTagLayers(ctx, st, t.Repo, tag, l.mediaType)
		if err != nil {
			return Written{}, fmt.Errorf("%s: re-read after write: %w", ref, err)
		}
		if indexOfLayer(now, ld) >= 0 {
			return Written{Target: t, Ref: ref, Manifest: m}, nil
		}
	}
	return Written{}, fmt.Errorf("%s: another writer kept replacing the manifest; gave up after %d attempts", ref, appendRetries)
}

// readTagLayers returns the layers of the signature manifest at tag, none if
// the tag does not exist. It refuses manifests that are not cosign's.
func readTagLayers(ctx context.Context, r store.Reader, repo, tag string, want types.MediaType) ([]v1.Descriptor, error) {
	m, err := r.Manifest(ctx, repo, tag)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var mf v1.Manifest
	if err := json.Unmarshal(m.Body, &mf); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrForeignManifest, err)
	}
	if !m.Descriptor.MediaType.IsImage() || mf.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w: media type %s", ErrForeignManifest, m.Descriptor.MediaType)
	}
	for i, l := range mf.Layers {
		if l.MediaType != want {
			return nil, fmt.Errorf("%w: layer %d has media type %s, want %s", ErrForeignManifest, i, l.MediaType, want)
		}
	}
	return mf.Layers, nil
}

func indexOfLayer(layers []v1.Descriptor, d v1.Descriptor) int {
	for i, l := range layers {
		if l.Digest == d.Digest && l.Annotations[SignatureAnnotation] == d.Annotations[SignatureAnnotation] &&
			l.Annotations[PredicateTypeAnnotation] == d.Annotations[PredicateTypeAnnotation] {
			return i
		}
	}
	return -1
}

// signatureImage returns the config and manifest of a cosign signature
// image with the given layers: an OCI image whose config lists each layer
// as a diff ID, as go-containerregistry's mutate.Append (what cosign uses)
// builds it.
func signatureImage(layers []v1.Descriptor) (config, manifest []byte, err error) {
	cf := v1.ConfigFile{RootFS: v1.RootFS{Type: "layers"}}
	for _, l := range layers {
		cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, l.Digest)
		cf.History = append(cf.History, v1.History{})
	}
	config, err = json.Marshal(cf)
	if err != nil {
		return nil, nil, fmt.Errorf("signature config: %w", err)
	}
	mf := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        describe(types.OCIConfigJSON, config),
		Layers:        layers,
	}
	manifest, err = json.Marshal(mf)
	if err != nil {
		return nil, nil, fmt.Errorf("signature manifest: %w", err)
	}
	return config, manifest, nil
}

// writeBundleReferrer stores a sigstore bundle as an OCI 1.1 referrer of
// the target.
func writeBundleReferrer(ctx context.Context, st store.Store, t Target, bundleJSON []byte, predicateType string, now time.Time) (Written, error) {
	for _, b := range [][]byte{emptyJSON, bundleJSON} {
		if err := st.PutBlob(ctx, t.Repo, b); err != nil {
			return Written{}, err
		}
	}
	body, err := bundleReferrerManifest(t, bundleJSON, predicateType, now)
	if err != nil {
		return Written{}, err
	}
	d, err := st.PutManifest(ctx, t.Repo, types.OCIManifestSchema1, body)
	if err != nil {
		return Written{}, err
	}
	return Written{Target: t, Ref: t.Name + "@" + d.Digest.String(), Manifest: d}, nil
}

// emptyJSON is the content of the OCI empty descriptor.
var emptyJSON = []byte("{}")

// bundleReferrerManifest returns the manifest cosign v3 writes for a
// bundle: artifactType the bundle media type, the empty config, one bundle
// layer, the image as subject, and annotations naming the content and the
// predicate type.
func bundleReferrerManifest(t Target, bundleJSON []byte, predicateType string, now time.Time) ([]byte, error) {
	mf := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  bundle.MediaType,
		Config:        describe(EmptyMediaType, emptyJSON),
		Layers:        []v1.Descriptor{describe(bundle.MediaType, bundleJSON)},
		Subject:       &v1.Descriptor{MediaType: t.Manifest.MediaType, Digest: t.Manifest.Digest, Size: t.Manifest.Size},
		Annotations: map[string]string{
			CreatedAnnotation:              now.UTC().Format(time.RFC3339),
			bundle.AnnotationContent:       bundle.ContentDSSE,
			bundle.AnnotationPredicateType: predicateType,
		},
	}
	body, err := json.Marshal(mf)
	if err != nil {
		return nil, fmt.Errorf("referrer manifest: %w", err)
	}
	return body, nil
}

func describe(mt types.MediaType, b []byte) v1.Descriptor {
	h, size, _ := v1.SHA256(bytes.NewReader(b)) // hashing a byte slice cannot fail
	return v1.Descriptor{MediaType: mt, Digest: h, Size: size}
}
