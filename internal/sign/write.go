package sign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
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
	// Signature and Payload are what Sign signed with the tag scheme: the
	// raw signature and the simple signing payload (cosign sign's
	// --output-signature, base64, and --output-payload). Empty otherwise.
	Signature, Payload []byte
}

// layer is one blob to attach with its descriptor annotations.
type layer struct {
	mediaType   types.MediaType
	content     []byte
	annotations map[string]string
}

// The read-modify-write of a tag whose manifest lists what several writers
// add: the layers of a cosign signature manifest (.sig, .att), and the
// manifests listed in the index of the referrers tag schema (sha256-<hex>,
// on registries without the referrers API). Registries have no conditional
// manifest PUT, so a concurrent writer can replace the manifest between our
// read and our write, or (having read before our write) after it. So after
// pushing, a writer reads the tag back; whenever its entry is missing it
// merges again from the manifest now there and pushes again; and it
// reports success only once two reads a settle time apart return the same
// manifest holding its entry. From then on, only a writer that read the tag
// before that settle time began and wrote it after it ended (slower than
// the settle time between its read and its write) can drop the entry.
// Writers that do not read back (cosign, go-containerregistry) are not
// protected, and can be dropped by ours. docs/signing.md says the same to
// users.
const (
	// appendAttempts bounds how many times one append pushes a manifest.
	appendAttempts = 10
	// settleChecks bounds how many times it waits for the tag to settle.
	settleChecks = 20
	// settleMin and settleMax bound the settle time, which is otherwise
	// twice what our own read-to-write took (one manifest read, at most
	// one small blob upload, one manifest PUT), plus up to half again at
	// random.
	settleMin = 100 * time.Millisecond
	settleMax = 2 * time.Second
	// backoffBase is the first randomised wait after losing a race; it
	// doubles with each push, up to backoffBase<<5.
	backoffBase = 10 * time.Millisecond
)

// tagList is one append to a tag, for appendSettled: how to read what the
// tag holds now, and how to write it back with our entry added.
type tagList struct {
	// ref names the tag in errors: "name:tag".
	ref string
	// read reads the tag and keeps what it holds for push. It returns the
	// manifest's descriptor (zero if the tag does not exist) and whether
	// our entry is in it.
	read func(ctx context.Context) (cur v1.Descriptor, ours bool, err error)
	// push writes to the tag what read last found with our entry added,
	// every other entry kept.
	push func(ctx context.Context) error
}

// appendSettled adds our entry to the tag of l, keeping every entry already
// there, and returns the manifest at the tag once it has held it, with our
// entry, for a settle time.
func appendSettled(ctx context.Context, l tagList) (v1.Descriptor, error) {
	var (
		pushes, checks int
		settle         = settleMin
		// held is the manifest last seen at the tag holding our entry,
		// before a settle wait; seeing it again after the wait ends the
		// append.
		held v1.Hash
		// pushed says the previous step was our push, so the read is its
		// read-back.
		pushed bool
	)
	for {
		start := time.Now()
		cur, ours, err := l.read(ctx)
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("%s: %w", l.ref, err)
		}
		if ours {
			pushed = false
			if cur.Digest == held {
				return cur, nil
			}
			if checks == settleChecks {
				return v1.Descriptor{}, fmt.Errorf("%s: %w: ours is in it now, but it never stayed unchanged for a settle time in %d checks; verify the image", l.ref, ErrTagUnsettled, settleChecks)
			}
			checks++
			held = cur.Digest
			if err := sleep(ctx, jitter(settle, settle/2)); err != nil {
				return v1.Descriptor{}, fmt.Errorf("%s: %w", l.ref, err)
			}
			continue
		}
		held = v1.Hash{}
		if pushed {
			// Another writer pushed between our read and our write: back
			// off, then merge again from a fresh read.
			pushed = false
			d := backoffBase << min(pushes-1, 5)
			if err := sleep(ctx, jitter(d/2, d/2)); err != nil {
				return v1.Descriptor{}, fmt.Errorf("%s: %w", l.ref, err)
			}
			continue
		}
		if pushes == appendAttempts {
			return v1.Descriptor{}, fmt.Errorf("%s: %w: ours was still missing after %d pushes", l.ref, ErrTagUnsettled, appendAttempts)
		}
		pushes++
		if err := l.push(ctx); err != nil {
			return v1.Descriptor{}, err
		}
		settle = min(max(2*time.Since(start), settleMin), settleMax)
		pushed = true
	}
}

// appendToTag adds l to the cosign-style image manifest at tag (creating it
// if absent), keeping every layer already there. A manifest at tag that is
// not cosign's kind is left alone and reported. It returns once the tag has
// held the same manifest, with l in it, for a settle time.
func appendToTag(ctx context.Context, st store.Store, t Target, tag string, l layer) (Written, error) {
	ld := describe(l.mediaType, l.content)
	ld.Annotations = l.annotations
	if err := st.PutBlob(ctx, t.Repo, l.content); err != nil {
		return Written{}, err
	}
	ref := t.Name + ":" + tag
	var existing []v1.Descriptor
	cur, err := appendSettled(ctx, tagList{
		ref: ref,
		read: func(ctx context.Context) (v1.Descriptor, bool, error) {
			cur, layers, err := readTag(ctx, st, t.Repo, tag, l.mediaType)
			existing = layers
			return cur, err == nil && indexOfLayer(layers, ld) >= 0, err
		},
		push: func(ctx context.Context) error {
			cfg, manifest, err := signatureImage(mergeLayer(existing, ld))
			if err != nil {
				return err
			}
			if err := st.PutBlob(ctx, t.Repo, cfg); err != nil {
				return err
			}
			_, err = st.PutTag(ctx, t.Repo, tag, types.OCIManifestSchema1, manifest)
			return err
		},
	})
	if err != nil {
		return Written{}, err
	}
	return Written{Target: t, Ref: ref, Manifest: cur}, nil
}

// mergeLayer returns existing with d appended, unless an identical layer
// (same content, signature and predicate type) is already there. existing
// is not modified.
func mergeLayer(existing []v1.Descriptor, d v1.Descriptor) []v1.Descriptor {
	if indexOfLayer(existing, d) >= 0 {
		return existing
	}
	return append(existing[:len(existing):len(existing)], d)
}

// jitter returns d plus a random duration in [0, spread).
func jitter(d, spread time.Duration) time.Duration {
	if spread <= 0 {
		return d
	}
	return d + rand.N(spread)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// readTagLayers returns the layers of the signature manifest at tag, none if
// the tag does not exist. It refuses manifests that are not cosign's.
func readTagLayers(ctx context.Context, r store.Reader, repo, tag string, want types.MediaType) ([]v1.Descriptor, error) {
	_, layers, err := readTag(ctx, r, repo, tag, want)
	return layers, err
}

// readTag is readTagLayers that also returns the manifest's descriptor
// (zero if the tag does not exist).
func readTag(ctx context.Context, r store.Reader, repo, tag string, want types.MediaType) (v1.Descriptor, []v1.Descriptor, error) {
	m, err := r.Manifest(ctx, repo, tag)
	if errors.Is(err, store.ErrNotFound) {
		return v1.Descriptor{}, nil, nil
	}
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	var mf v1.Manifest
	if err := json.Unmarshal(m.Body, &mf); err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("%w: %v", ErrForeignManifest, err)
	}
	if !m.Descriptor.MediaType.IsImage() || mf.SchemaVersion != 2 {
		return v1.Descriptor{}, nil, fmt.Errorf("%w: media type %s", ErrForeignManifest, m.Descriptor.MediaType)
	}
	for i, l := range mf.Layers {
		if l.MediaType != want {
			return v1.Descriptor{}, nil, fmt.Errorf("%w: layer %d has media type %s, want %s", ErrForeignManifest, i, l.MediaType, want)
		}
	}
	return m.Descriptor, mf.Layers, nil
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
// the target. On a registry without the referrers API it also lists it in
// the referrers tag schema's index, and returns once that index has kept
// it for a settle time (appendSettled); with the API it returns at once.
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
	d, listed, err := putReferrer(ctx, st, t.Repo, body)
	if err != nil {
		return Written{}, err
	}
	if !listed {
		// No referrers API: list it in the referrers tag schema's index.
		entry, err := referrerEntry(d, body)
		if err != nil {
			return Written{}, err
		}
		if _, err := appendToSchemaIndex(ctx, st, t, entry); err != nil {
			return Written{}, err
		}
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
