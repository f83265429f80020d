package sign

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"berth.dev/berth/internal/sign/attestation"
)

var fixedNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestAttestVerify(t *testing.T) {
	ctx := context.Background()
	for _, lt := range layouts {
		t.Run(lt.name, func(t *testing.T) {
			reg := newTestRegistry(t, lt.referrersAPI)
			img := reg.image(t, "team/app", "v1", "attest")
			alice := newTestKey(t, "alice")
			sbom, err := NewStatement(img, "cyclonedx", []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6"}`), fixedNow)
			if err != nil {
				t.Fatal(err)
			}
			vex, err := NewStatement(img, "openvex", []byte(`{"@context":"https://openvex.dev/ns/v0.2.0","statements":[]}`), fixedNow)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range []*attestation.Statement{sbom, vex} {
				if _, err := Attest(ctx, reg.store, img, st, alice.key, AttestOptions{Referrers: lt.bundles, Now: fixedNow}); err != nil {
					t.Fatal(err)
				}
			}

			res, err := VerifyAttestations(ctx, reg.store, img, trustOf(1, alice), VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Verified) != 2 {
				t.Fatalf("verified %d attestations, want 2", len(res.Verified))
			}

			res, err = VerifyAttestations(ctx, reg.store, img, trustOf(1, alice), VerifyOptions{PredicateType: attestation.PredicateCycloneDX})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Verified) != 1 || res.Skipped != 1 {
				t.Fatalf("filtered: %d verified, %d skipped", len(res.Verified), res.Skipped)
			}
			got, err := attestation.ParseStatement(res.Verified[0].Payload)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Predicate) != `{"bomFormat":"CycloneDX","specVersion":"1.6"}` || got.Subject[0].Name != img.Name {
				t.Fatalf("statement %s", res.Verified[0].Payload)
			}

			_, err = VerifyAttestations(ctx, reg.store, img, trustOf(1, alice), VerifyOptions{PredicateType: attestation.PredicateSLSA1})
			if !errors.Is(err, ErrNoAttestations) {
				t.Fatalf("absent type: err = %v", err)
			}
			bob := newTestKey(t, "bob")
			if _, err := VerifyAttestations(ctx, reg.store, img, trustOf(1, bob), VerifyOptions{}); !errors.Is(err, ErrNoMatchingKey) {
				t.Fatalf("wrong key: err = %v", err)
			}
		})
	}
}

func TestAttestRefusesForeignSubject(t *testing.T) {
	reg := newTestRegistry(t, true)
	img := reg.image(t, "team/app", "v1", "subject")
	other := reg.image(t, "team/app", "v2", "other subject")
	st, err := NewStatement(other, "custom", []byte("hello"), fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Attest(context.Background(), reg.store, img, st, newTestKey(t, "a").key, AttestOptions{})
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("err = %v", err)
	}
}

func TestVerifyAttestationRejectsBadEnvelope(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t, true)
	img := reg.image(t, "team/app", "v1", "bad-envelope")
	alice := newTestKey(t, "alice")
	st, err := NewStatement(img, "custom", []byte("hello"), fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	env, err := attestation.Sign(ctx, alice.key.sv, attestation.PayloadType, body)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the signature, change one byte of what it signed.
	body[len(body)-2] ^= 1
	env.Payload = b64(body)

	tests := []struct {
		name    string
		content []byte
		want    error
	}{
		{"bad signature", mustJSON(t, env), ErrNoMatchingKey},
		{"not an envelope", []byte(`{"hello":1}`), ErrMalformedSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := reg.store.PutBlob(ctx, img.Repo, tc.content); err != nil {
				t.Fatal(err)
			}
			l := describe(DSSEMediaType, tc.content)
			l.Annotations = map[string]string{SignatureAnnotation: "", PredicateTypeAnnotation: attestation.PredicateCustom}
			cfg, m, err := signatureImage(append([]v1.Descriptor{}, l))
			if err != nil {
				t.Fatal(err)
			}
			if err := reg.store.PutBlob(ctx, img.Repo, cfg); err != nil {
				t.Fatal(err)
			}
			if _, err := reg.store.PutTag(ctx, img.Repo, Tag(img.Manifest.Digest, AttestationSuffix), "application/vnd.oci.image.manifest.v1+json", m); err != nil {
				t.Fatal(err)
			}
			_, err = VerifyAttestations(ctx, reg.store, img, trustOf(1, alice), VerifyOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
