package sign

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"berth.dev/berth/internal/sign/store"
)

// hostileRegistry answers with whatever the fuzzer made up: one manifest
// at every tag, one blob for every digest, one referrer.
type hostileRegistry struct {
	manifest []byte
	blob     []byte
}

func (h hostileRegistry) Resolve(context.Context, string, string) (v1.Descriptor, error) {
	return describe(types.OCIManifestSchema1, h.manifest), nil
}

func (h hostileRegistry) Manifest(_ context.Context, _, reference string) (store.Manifest, error) {
	if strings.HasSuffix(reference, ".sig") || strings.HasSuffix(reference, ".att") || strings.HasPrefix(reference, "sha256:") {
		return store.Manifest{Descriptor: describe(types.OCIManifestSchema1, h.manifest), Body: h.manifest}, nil
	}
	return store.Manifest{}, store.ErrNotFound
}

func (h hostileRegistry) Blob(context.Context, string, v1.Hash) ([]byte, error) { return h.blob, nil }

func (h hostileRegistry) Referrers(context.Context, string, v1.Hash) ([]v1.Descriptor, error) {
	return []v1.Descriptor{describe(types.OCIManifestSchema1, h.manifest)}, nil
}

// FuzzVerify feeds made-up signature manifests and blobs to Verify and
// VerifyAttestations: whatever a registry returns must end in a verdict,
// never a panic, and never in a verified signature.
func FuzzVerify(f *testing.F) {
	_, sigManifest, _ := signatureImage([]v1.Descriptor{{MediaType: SimpleSigningMediaType, Size: 2,
		Digest:      v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)},
		Annotations: map[string]string{SignatureAnnotation: "MEUCIQ=="}}})
	f.Add(sigManifest, []byte(`{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature"}}`))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","subject":{"digest":"sha256:`+strings.Repeat("b", 64)+`"},"layers":[{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","digest":"sha256:`+strings.Repeat("c", 64)+`","size":3}]}`),
		[]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"x"}},"dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AA=="}]}}`))
	k := newTestKey(f, "k")
	trust := trustOf(1, k)
	f.Fuzz(func(t *testing.T, manifest, blob []byte) {
		h := hostileRegistry{manifest: manifest, blob: blob}
		target := Target{Name: "registry.test/app", Repo: "app", Manifest: v1.Descriptor{
			MediaType: types.OCIManifestSchema1, Size: 1,
			Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)},
		}}
		for _, verify := range []func(context.Context, store.Reader, Target, Trust, VerifyOptions) (*Result, error){Verify, VerifyAttestations} {
			res, err := verify(context.Background(), h, target, trust, VerifyOptions{})
			if err == nil || res != nil && len(res.Verified) > 0 {
				t.Fatalf("made-up content verified: %v %+v", err, res)
			}
			if !errors.Is(err, ErrNotVerified) {
				t.Fatalf("error does not say verification failed: %v", err)
			}
		}
	})
}
