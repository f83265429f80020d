// Package sign signs and verifies container images and attestations in the
// formats cosign writes and reads: simple signing payloads in
// "sha256-<hex>.sig" manifests (cosign v2), in-toto statements in DSSE
// envelopes in "sha256-<hex>.att" manifests, and sigstore bundles attached
// as OCI 1.1 referrers (cosign v3). All reading and writing goes through
// store, so the CLI (any registry) and berth's registry share this code.
package sign

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"berth.dev/berth/internal/sign/attestation"
	"berth.dev/berth/internal/sign/bundle"
	"berth.dev/berth/internal/sign/keys"
	"berth.dev/berth/internal/sign/store"
)

// SignOptions tune Sign.
type SignOptions struct {
	// Annotations go into the payload's "optional" section (cosign -a).
	Annotations map[string]string
	// Referrers stores a sigstore bundle as an OCI 1.1 referrer, as cosign
	// v3 does, instead of appending to the "sha256-<hex>.sig" tag.
	Referrers bool
	// Now stamps the referrer manifest; zero means time.Now.
	Now time.Time
}

// Sign signs the target's manifest digest with key and stores the
// signature next to the image.
func Sign(ctx context.Context, st store.Store, t Target, key *Key, opts SignOptions) (Written, error) {
	if opts.Referrers {
		return signBundle(ctx, st, t, key, opts)
	}
	p, err := SimpleSigningPayload(t, opts.Annotations)
	if err != nil {
		return Written{}, err
	}
	sig, err := key.sv.SignMessage(bytes.NewReader(p), options.WithContext(ctx))
	if err != nil {
		return Written{}, fmt.Errorf("sign %s: %w", t, err)
	}
	w, err := appendToTag(ctx, st, t, Tag(t.Manifest.Digest, SignatureSuffix), layer{
		mediaType:   SimpleSigningMediaType,
		content:     p,
		annotations: map[string]string{SignatureAnnotation: base64.StdEncoding.EncodeToString(sig)},
	})
	if err != nil {
		return Written{}, fmt.Errorf("store signature of %s: %w", t, err)
	}
	w.Signature, w.Payload = sig, p
	return w, nil
}

// SignBlob signs the bytes r reads as cosign sign-blob does with a key:
// the signature over their SHA-256 (Ed25519ph for Ed25519 keys), which
// cosign verify-blob and VerifyBlob check.
func SignBlob(ctx context.Context, key *Key, r io.Reader) ([]byte, error) {
	sig, err := key.sv.SignMessage(r, options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("sign blob: %w", err)
	}
	return sig, nil
}

// SignReference resolves ref and signs the digest it resolved to; if the
// tag moves afterwards, the signature still names that digest.
func SignReference(ctx context.Context, st store.Store, ref name.Reference, key *Key, opts SignOptions) (Written, error) {
	t, err := Resolve(ctx, st, ref)
	if err != nil {
		return Written{}, err
	}
	return Sign(ctx, st, t, key, opts)
}

// SimpleSigningPayload returns cosign's simple signing payload for t, built
// by sigstore's own payload type so the bytes match what cosign signs.
func SimpleSigningPayload(t Target, annotations map[string]string) ([]byte, error) {
	d, err := name.NewDigest(t.String())
	if err != nil {
		return nil, fmt.Errorf("payload for %s: %w", t, err)
	}
	var optional map[string]any
	if len(annotations) > 0 {
		optional = make(map[string]any, len(annotations))
		for k, v := range annotations {
			optional[k] = v
		}
	}
	p, err := payload.Cosign{Image: d, Annotations: optional}.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("payload for %s: %w", t, err)
	}
	return p, nil
}

// signBundle writes what `cosign sign` v3 writes: an in-toto statement of
// predicate type https://sigstore.dev/cosign/sign/v1 about the digest, with
// the annotations on the subject, in a DSSE envelope inside a bundle.
func signBundle(ctx context.Context, st store.Store, t Target, key *Key, opts SignOptions) (Written, error) {
	subject := attestation.Subject{Digest: map[string]string{t.Manifest.Digest.Algorithm: t.Manifest.Digest.Hex}}
	if len(opts.Annotations) > 0 {
		subject.Annotations = make(map[string]any, len(opts.Annotations))
		for k, v := range opts.Annotations {
			subject.Annotations[k] = v
		}
	}
	st1 := attestation.Statement{
		Type:          attestation.StatementV1,
		Subject:       []attestation.Subject{subject},
		PredicateType: attestation.PredicateCosignSign,
		Predicate:     json.RawMessage("{}"),
	}
	w, err := attachBundle(ctx, st, t, &st1, key, opts.Now)
	if err != nil {
		return Written{}, fmt.Errorf("sign %s: %w", t, err)
	}
	return w, nil
}

func attachBundle(ctx context.Context, st store.Store, t Target, statement *attestation.Statement, key *Key, now time.Time) (Written, error) {
	body, err := statement.Marshal()
	if err != nil {
		return Written{}, fmt.Errorf("encode statement: %w", err)
	}
	env, err := attestation.Sign(ctx, key.sv, attestation.PayloadType, body)
	if err != nil {
		return Written{}, err
	}
	b, err := bundle.Encode(env, key.id)
	if err != nil {
		return Written{}, err
	}
	if now.IsZero() {
		now = time.Now()
	}
	return writeBundleReferrer(ctx, st, t, b, statement.PredicateType, now)
}

// VerifyBlob checks a SignBlob (or cosign sign-blob) signature of the bytes
// r reads against a public key.
func VerifyBlob(pub crypto.PublicKey, sig []byte, r io.Reader) error {
	v, err := keys.Verifier(pub)
	if err != nil {
		return err
	}
	if err := v.VerifySignature(bytes.NewReader(sig), r); err != nil {
		return fmt.Errorf("%w: %v", ErrNoMatchingKey, err)
	}
	return nil
}
