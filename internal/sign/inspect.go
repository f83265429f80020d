package sign

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"berth.dev/berth/internal/sign/attestation"
	"berth.dev/berth/internal/sign/store"
)

// Found is a signature or attestation stored beside an image, read but
// not verified: what can be shown about it when no key is trusted.
type Found struct {
	// Kind is "signature" or "attestation".
	Kind string
	// Format is "cosign-v2" (the .sig/.att tag) or "sigstore-bundle" (an
	// OCI 1.1 referrer).
	Format string
	Source string
	// PredicateType is an attestation's (as its manifest or envelope
	// claims it).
	PredicateType string
	// Annotations are a signature's signed-in annotations (cosign -a), as
	// the unverified payload states them.
	Annotations map[string]string
	// KeyHint is the key id a sigstore bundle names, if any.
	KeyHint string
	// Err says why it could not be read, or that it is not about the
	// image.
	Err error
}

// Inspect lists the signatures and attestations stored for t in every
// place Verify looks, without verifying any: nothing it returns is
// vouched for by anyone.
func Inspect(ctx context.Context, r store.Reader, t Target) ([]Found, error) {
	var out []Found
	sigTag := Tag(t.Manifest.Digest, SignatureSuffix)
	layers, err := readTagLayers(ctx, r, t.Repo, sigTag, SimpleSigningMediaType)
	if err != nil {
		out = append(out, Found{Kind: "signature", Format: "cosign-v2", Source: t.Name + ":" + sigTag, Err: err})
	}
	for i, l := range layers {
		f := Found{Kind: "signature", Format: "cosign-v2", Source: fmt.Sprintf("%s:%s layer %d", t.Name, sigTag, i)}
		if b64 := l.Annotations[SignatureAnnotation]; b64 == "" {
			f.Err = fmt.Errorf("%w: no %s annotation", ErrMalformedSignature, SignatureAnnotation)
		} else if _, err := base64.StdEncoding.DecodeString(b64); err != nil {
			f.Err = fmt.Errorf("%w: signature annotation is not base64", ErrMalformedSignature)
		}
		if f.Err == nil {
			f.Annotations, f.Err = simpleSigningAnnotations(ctx, r, t, l)
		}
		out = append(out, f)
	}
	attTag := Tag(t.Manifest.Digest, AttestationSuffix)
	layers, err = readTagLayers(ctx, r, t.Repo, attTag, DSSEMediaType)
	if err != nil {
		out = append(out, Found{Kind: "attestation", Format: "cosign-v2", Source: t.Name + ":" + attTag, Err: err})
	}
	for i, l := range layers {
		out = append(out, Found{Kind: "attestation", Format: "cosign-v2", Source: fmt.Sprintf("%s:%s layer %d", t.Name, attTag, i),
			PredicateType: l.Annotations[PredicateTypeAnnotation]})
	}
	for _, signatures := range []bool{true, false} {
		cands, err := bundleCandidates(ctx, r, t, signatures)
		kind := "attestation"
		if signatures {
			kind = "signature"
		}
		if err != nil {
			out = append(out, Found{Kind: kind, Format: "sigstore-bundle", Source: "referrers of " + t.String(), Err: err})
			continue
		}
		for _, c := range cands {
			f := Found{Kind: kind, Format: "sigstore-bundle", Source: c.source, KeyHint: c.hint, Err: c.err}
			if c.err == nil {
				// The statement is read unverified, only to say what it
				// claims to be.
				if st, err := unverifiedStatement(c.env); err == nil {
					f.PredicateType = st.PredicateType
				}
			}
			if signatures && f.PredicateType == "" {
				f.PredicateType = attestation.PredicateCosignSign
			}
			if !signatures && f.PredicateType == attestation.PredicateCosignSign {
				f.Kind = "signature"
			}
			out = append(out, f)
		}
	}
	return out, nil
}

func simpleSigningAnnotations(ctx context.Context, r store.Reader, t Target, l v1.Descriptor) (map[string]string, error) {
	p, err := fetchBlob(ctx, r, t.Repo, l)
	if err != nil {
		return nil, err
	}
	var sp payload.SimpleContainerImage
	if err := json.Unmarshal(p, &sp); err != nil {
		return nil, fmt.Errorf("%w: payload is not simple signing JSON: %v", ErrMalformedSignature, err)
	}
	if got := sp.Critical.Image.DockerManifestDigest; got != t.Manifest.Digest.String() {
		return nil, fmt.Errorf("%w: payload is about %s, the image is %s", ErrDigestMismatch, got, t.Manifest.Digest)
	}
	out := make(map[string]string, len(sp.Optional))
	for k, v := range sp.Optional {
		out[k] = fmt.Sprint(v)
	}
	return out, nil
}

func unverifiedStatement(env *attestation.Envelope) (*attestation.Statement, error) {
	body, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, err
	}
	return attestation.ParseStatement(body)
}
