package sign

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"berth.dev/berth/internal/sign/attestation"
	"berth.dev/berth/internal/sign/keys"
	"berth.dev/berth/internal/sign/store"
)

// layouts are the three ways signatures get stored: cosign v2's tag scheme,
// and bundles found through the referrers API or the referrers tag schema.
var layouts = []struct {
	name         string
	referrersAPI bool
	bundles      bool
}{
	{"tag scheme", true, false},
	{"bundle via referrers API", true, true},
	{"bundle via referrers tag schema", false, true},
}

func TestSignVerify(t *testing.T) {
	ctx := context.Background()
	for _, lt := range layouts {
		t.Run(lt.name, func(t *testing.T) {
			reg := newTestRegistry(t, lt.referrersAPI)
			img := reg.image(t, "team/app", "v1", "sign-verify")
			alice := newTestKey(t, "alice.pub")

			w, err := Sign(ctx, reg.store, img, alice.key, SignOptions{
				Annotations: map[string]string{"env": "prod"},
				Referrers:   lt.bundles,
			})
			if err != nil {
				t.Fatal(err)
			}
			wantRef := img.Name + ":" + Tag(img.Manifest.Digest, SignatureSuffix)
			if lt.bundles {
				wantRef = img.Name + "@" + w.Manifest.Digest.String()
			}
			if w.Ref != wantRef || w.Target.Manifest.Digest != img.Manifest.Digest {
				t.Fatalf("written %+v, want ref %s", w, wantRef)
			}
			if lt.bundles && !lt.referrersAPI {
				// Without a referrers API the referrer is listed in the
				// index tagged sha256-<hex>.
				schemaTag := img.Manifest.Digest.Algorithm + "-" + img.Manifest.Digest.Hex
				if _, err := reg.store.Resolve(ctx, img.Repo, schemaTag); err != nil {
					t.Fatalf("referrers tag schema index: %v", err)
				}
			}

			res, err := Verify(ctx, reg.store, img, trustOf(1, alice), VerifyOptions{Annotations: map[string]string{"env": "prod"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Verified) != 1 || res.Verified[0].Key != "alice.pub" || res.Verified[0].KeyID != alice.key.ID() {
				t.Fatalf("verified %+v", res.Verified)
			}
			var p payload.SimpleContainerImage
			if err := json.Unmarshal(res.Verified[0].Payload, &p); err != nil {
				t.Fatal(err)
			}
			if p.Critical.Image.DockerManifestDigest != img.Manifest.Digest.String() ||
				p.Critical.Identity.DockerReference != img.Name || p.Optional["env"] != "prod" {
				t.Fatalf("payload %s", res.Verified[0].Payload)
			}

			_, err = Verify(ctx, reg.store, img, trustOf(1, alice), VerifyOptions{Annotations: map[string]string{"env": "dev"}})
			if !errors.Is(err, ErrNotVerified) || !errors.Is(err, ErrAnnotationMismatch) {
				t.Fatalf("annotation mismatch: err = %v", err)
			}

			bob := newTestKey(t, "bob.pub")
			_, err = Verify(ctx, reg.store, img, trustOf(1, bob), VerifyOptions{})
			if !errors.Is(err, ErrNoMatchingKey) {
				t.Fatalf("wrong key: err = %v", err)
			}
		})
	}
}

func TestSimpleSigningPayloadShape(t *testing.T) {
	img := Target{Name: "registry.test/team/app", Repo: "team/app", Manifest: v1.Descriptor{
		Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)},
	}}
	p, err := SimpleSigningPayload(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"critical":{"identity":{"docker-reference":"registry.test/team/app"},"image":{"docker-manifest-digest":"sha256:` +
		strings.Repeat("ab", 32) + `"},"type":"cosign container image signature"},"optional":null}`
	if string(p) != want {
		t.Fatalf("payload\n got %s\nwant %s", p, want)
	}
}

func TestSignaturesFromSeveralKeysCoexist(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t, true)
	img := reg.image(t, "team/app", "v1", "coexist")
	alice, bob, carol := newTestKey(t, "alice"), newTestKey(t, "bob"), newTestKey(t, "carol")
	for _, k := range []testKey{alice, bob} {
		if _, err := Sign(ctx, reg.store, img, k.key, SignOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Signing twice with the same key adds a second signature (ECDSA
	// signatures differ each time) without dropping the others.
	if _, err := Sign(ctx, reg.store, img, alice.key, SignOptions{}); err != nil {
		t.Fatal(err)
	}
	m, err := reg.store.Manifest(ctx, img.Repo, Tag(img.Manifest.Digest, SignatureSuffix))
	if err != nil {
		t.Fatal(err)
	}
	var mf v1.Manifest
	if err := json.Unmarshal(m.Body, &mf); err != nil {
		t.Fatal(err)
	}
	if len(mf.Layers) != 3 {
		t.Fatalf("signature manifest has %d layers, want 3", len(mf.Layers))
	}
	cfg, err := reg.store.Blob(ctx, img.Repo, mf.Config.Digest)
	if err != nil {
		t.Fatal(err)
	}
	var cf v1.ConfigFile
	if err := json.Unmarshal(cfg, &cf); err != nil {
		t.Fatal(err)
	}
	if len(cf.RootFS.DiffIDs) != 3 || cf.RootFS.DiffIDs[2] != mf.Layers[2].Digest {
		t.Fatalf("config diff IDs %v do not follow the layers", cf.RootFS.DiffIDs)
	}

	res, err := Verify(ctx, reg.store, img, trustOf(2, alice, bob), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Keys(); len(got) != 2 {
		t.Fatalf("keys %v", got)
	}
	_, err = Verify(ctx, reg.store, img, trustOf(3, alice, bob, carol), VerifyOptions{})
	if !errors.Is(err, ErrNotVerified) || !strings.Contains(err.Error(), "2 of the 3 required") {
		t.Fatalf("require 3: err = %v", err)
	}
	if _, err := Verify(ctx, reg.store, img, trustOf(1, carol, bob), VerifyOptions{}); err != nil {
		t.Fatalf("any one of carol, bob: %v", err)
	}
}

// Each bundle is a manifest of its own, so concurrent signers cannot lose
// each other's signatures (the tag scheme's read-modify-write can).
func TestConcurrentBundleSignersKeepEverySignature(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t, true)
	img := reg.image(t, "team/app", "v1", "concurrent")
	ks := []testKey{newTestKey(t, "a"), newTestKey(t, "b"), newTestKey(t, "c")}
	var wg sync.WaitGroup
	errs := make([]error, len(ks))
	for i, k := range ks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Sign(ctx, reg.store, img, k.key, SignOptions{Referrers: true})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, reg.store, img, trustOf(3, ks...), VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRejects(t *testing.T) {
	ctx := context.Background()
	alice := newTestKey(t, "alice")

	t.Run("no signature", func(t *testing.T) {
		reg := newTestRegistry(t, true)
		img := reg.image(t, "team/app", "v1", "unsigned")
		_, err := Verify(ctx, reg.store, img, trustOf(1, alice), VerifyOptions{})
		if !errors.Is(err, ErrNoSignatures) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("signature over a different digest", func(t *testing.T) {
		reg := newTestRegistry(t, true)
		signed := reg.image(t, "team/app", "signed", "one")
		other := reg.image(t, "team/app", "other", "two")
		if _, err := Sign(ctx, reg.store, signed, alice.key, SignOptions{}); err != nil {
			t.Fatal(err)
		}
		// Copy the valid signature manifest of one image to the other's tag.
		m, err := reg.store.Manifest(ctx, signed.Repo, Tag(signed.Manifest.Digest, SignatureSuffix))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.store.PutTag(ctx, other.Repo, Tag(other.Manifest.Digest, SignatureSuffix), m.Descriptor.MediaType, m.Body); err != nil {
			t.Fatal(err)
		}
		_, err = Verify(ctx, reg.store, other, trustOf(1, alice), VerifyOptions{})
		if !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("layer missing", func(t *testing.T) {
		reg := newTestRegistry(t, true)
		img := reg.image(t, "team/app", "v1", "missing-layer")
		absent := describe(SimpleSigningMediaType, []byte("never uploaded"))
		absent.Annotations = map[string]string{SignatureAnnotation: "MEUCIQ=="}
		putSignatureManifest(t, reg, img, absent)
		_, err := Verify(ctx, reg.store, img, trustOf(1, alice), VerifyOptions{})
		if !errors.Is(err, ErrLayerMissing) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("payload names another digest", func(t *testing.T) {
		reg := newTestRegistry(t, true)
		img := reg.image(t, "team/app", "v1", "payload-digest")
		elsewhere := img
		elsewhere.Manifest.Digest = describe("", []byte("some other manifest")).Digest
		p, err := SimpleSigningPayload(elsewhere, nil)
		if err != nil {
			t.Fatal(err)
		}
		putSignatureManifest(t, reg, img, signedLayer(t, reg, img, alice, p))
		_, err = Verify(ctx, reg.store, img, trustOf(1, alice), VerifyOptions{})
		if !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("tampered payload", func(t *testing.T) {
		reg := newTestRegistry(t, true)
		img := reg.image(t, "team/app", "v1", "tampered")
		p, err := SimpleSigningPayload(img, nil)
		if err != nil {
			t.Fatal(err)
		}
		l := signedLayer(t, reg, img, alice, p)
		forged, err := SimpleSigningPayload(img, map[string]string{"approved": "true"})
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.store.PutBlob(ctx, img.Repo, forged); err != nil {
			t.Fatal(err)
		}
		swapped := describe(SimpleSigningMediaType, forged)
		swapped.Annotations = l.Annotations
		putSignatureManifest(t, reg, img, swapped)
		_, err = Verify(ctx, reg.store, img, trustOf(1, alice), VerifyOptions{})
		if !errors.Is(err, ErrNoMatchingKey) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("signature annotation not base64", func(t *testing.T) {
		reg := newTestRegistry(t, true)
		img := reg.image(t, "team/app", "v1", "bad-b64")
		p, err := SimpleSigningPayload(img, nil)
		if err != nil {
			t.Fatal(err)
		}
		l := signedLayer(t, reg, img, alice, p)
		l.Annotations = map[string]string{SignatureAnnotation: "%%%"}
		putSignatureManifest(t, reg, img, l)
		_, err = Verify(ctx, reg.store, img, trustOf(1, alice), VerifyOptions{})
		if !errors.Is(err, ErrMalformedSignature) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("foreign manifest at the signature tag", func(t *testing.T) {
		reg := newTestRegistry(t, true)
		img := reg.image(t, "team/app", "v1", "foreign")
		foreign := reg.image(t, "team/app", Tag(img.Manifest.Digest, SignatureSuffix), "an ordinary image")
		_, err := Sign(ctx, reg.store, img, alice.key, SignOptions{})
		if !errors.Is(err, ErrForeignManifest) {
			t.Fatalf("sign: err = %v", err)
		}
		// Nothing was lost: the tag still holds the image that was there.
		got, err := reg.store.Resolve(ctx, img.Repo, Tag(img.Manifest.Digest, SignatureSuffix))
		if err != nil || got.Digest != foreign.Manifest.Digest {
			t.Fatalf("tag now %v, %v; want %s", got.Digest, err, foreign.Manifest.Digest)
		}
		_, err = Verify(ctx, reg.store, img, trustOf(1, alice), VerifyOptions{})
		if !errors.Is(err, ErrForeignManifest) {
			t.Fatalf("verify: err = %v", err)
		}
	})
}

// signedLayer uploads p and returns its layer descriptor signed by k.
func signedLayer(t *testing.T, reg *testRegistry, img Target, k testKey, p []byte) v1.Descriptor {
	t.Helper()
	sig, err := k.key.sv.SignMessage(strings.NewReader(string(p)))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.store.PutBlob(context.Background(), img.Repo, p); err != nil {
		t.Fatal(err)
	}
	d := describe(SimpleSigningMediaType, p)
	d.Annotations = map[string]string{SignatureAnnotation: b64(sig)}
	return d
}

// putSignatureManifest writes a signature manifest with exactly these
// layers at the image's signature tag.
func putSignatureManifest(t *testing.T, reg *testRegistry, img Target, layers ...v1.Descriptor) {
	t.Helper()
	cfg, body, err := signatureImage(layers)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := reg.store.PutBlob(ctx, img.Repo, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.store.PutTag(ctx, img.Repo, Tag(img.Manifest.Digest, SignatureSuffix), types.OCIManifestSchema1, body); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyIgnoresAttestationsAndViceVersa(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t, true)
	img := reg.image(t, "team/app", "v1", "mixed")
	alice := newTestKey(t, "alice")
	st, err := NewStatement(img, "cyclonedx", []byte(`{"bomFormat":"CycloneDX"}`), fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Attest(ctx, reg.store, img, st, alice.key, AttestOptions{Referrers: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, reg.store, img, trustOf(1, alice), VerifyOptions{}); !errors.Is(err, ErrNoSignatures) {
		t.Fatalf("an attestation counted as a signature: err = %v", err)
	}
	if _, err := Sign(ctx, reg.store, img, alice.key, SignOptions{Referrers: true}); err != nil {
		t.Fatal(err)
	}
	res, err := VerifyAttestations(ctx, reg.store, img, trustOf(1, alice), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Verified) != 1 || res.Verified[0].PredicateType != attestation.PredicateCycloneDX {
		t.Fatalf("attestations %+v", res.Verified)
	}
}

// brokenReferrers fails every referrers listing, as a registry that answers
// that endpoint with an error would.
type brokenReferrers struct{ store.Store }

func (brokenReferrers) Referrers(context.Context, string, v1.Hash) ([]v1.Descriptor, error) {
	return nil, errors.New("401 unauthorized")
}

func TestVerifyReportsUnreadablePlacesButUsesTheOthers(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t, true)
	img := reg.image(t, "team/app", "v1", "unreadable referrers")
	alice := newTestKey(t, "alice")
	broken := brokenReferrers{reg.store}
	_, err := Verify(ctx, broken, img, trustOf(1, alice), VerifyOptions{})
	if !errors.Is(err, ErrNotVerified) || !strings.Contains(err.Error(), "401 unauthorized") {
		t.Fatalf("unsigned image: err = %v, want the referrers failure reported", err)
	}
	if _, err := Sign(ctx, reg.store, img, alice.key, SignOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := Verify(ctx, broken, img, trustOf(1, alice), VerifyOptions{})
	if err != nil {
		t.Fatalf("the .sig signature alone must do: %v", err)
	}
	if len(res.Rejected) != 1 || !strings.Contains(res.Rejected[0].Source, "referrers") {
		t.Fatalf("rejected %+v", res.Rejected)
	}
}

// TestSignBlob: a blob signature verifies against its key and its bytes,
// and not against other bytes or another key; Sign reports what it signed.
func TestSignBlob(t *testing.T) {
	priv, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	key, err := NewKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := SignBlob(context.Background(), key, strings.NewReader("release checksums\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyBlob(priv.Public(), sig, strings.NewReader("release checksums\n")); err != nil {
		t.Errorf("own signature: %v", err)
	}
	if err := VerifyBlob(priv.Public(), sig, strings.NewReader("release checksums!\n")); !errors.Is(err, ErrNoMatchingKey) {
		t.Errorf("other bytes: %v", err)
	}
	other, _ := keys.Generate()
	if err := VerifyBlob(other.Public(), sig, strings.NewReader("release checksums\n")); !errors.Is(err, ErrNoMatchingKey) {
		t.Errorf("other key: %v", err)
	}
}
