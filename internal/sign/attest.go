package sign

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"berth.dev/berth/internal/sign/attestation"
	"berth.dev/berth/internal/sign/store"
)

// AttestOptions tune Attest.
type AttestOptions struct {
	// Referrers stores a sigstore bundle as an OCI 1.1 referrer instead of
	// appending to the "sha256-<hex>.att" tag.
	Referrers bool
	// Now stamps the referrer manifest; zero means time.Now.
	Now time.Time
}

// Attest signs statement, which must be about the target's digest, and
// attaches it to the image: `berth attest`, `berth sbom --attest` and
// `berth scan --attest` all come through here.
func Attest(ctx context.Context, st store.Store, t Target, statement *attestation.Statement, key *Key, opts AttestOptions) (Written, error) {
	if !statement.About(t.Manifest.Digest.String()) {
		return Written{}, fmt.Errorf("attest %s: %w: statement subjects do not include %s", t, ErrDigestMismatch, t.Manifest.Digest)
	}
	if opts.Referrers {
		w, err := attachBundle(ctx, st, t, statement, key, opts.Now)
		if err != nil {
			return Written{}, fmt.Errorf("attest %s: %w", t, err)
		}
		return w, nil
	}
	body, err := statement.Marshal()
	if err != nil {
		return Written{}, fmt.Errorf("attest %s: encode statement: %w", t, err)
	}
	env, err := attestation.Sign(ctx, key.sv, attestation.PayloadType, body)
	if err != nil {
		return Written{}, fmt.Errorf("attest %s: %w", t, err)
	}
	envJSON, err := json.Marshal(env)
	if err != nil {
		return Written{}, fmt.Errorf("attest %s: encode envelope: %w", t, err)
	}
	w, err := appendToTag(ctx, st, t, Tag(t.Manifest.Digest, AttestationSuffix), layer{
		mediaType: DSSEMediaType,
		content:   envJSON,
		// cosign marks attestation layers with an empty signature
		// annotation: the signature lives inside the envelope.
		annotations: map[string]string{SignatureAnnotation: "", PredicateTypeAnnotation: statement.PredicateType},
	})
	if err != nil {
		return Written{}, fmt.Errorf("store attestation of %s: %w", t, err)
	}
	return w, nil
}

// NewStatement builds the statement `berth attest --type kind` signs for t
// from the predicate file's bytes.
func NewStatement(t Target, kind string, predicate []byte, now time.Time) (*attestation.Statement, error) {
	return attestation.NewStatement(kind, predicate, t.Name, t.Manifest.Digest.String(), now)
}
