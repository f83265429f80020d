// Package bundle writes and reads sigstore bundles (v0.3) that carry a DSSE
// envelope verified by a public key, the form cosign v3 attaches to images
// as OCI 1.1 referrers. The protobuf-specs types define the JSON, so what we
// write is exactly what sigstore tooling parses.
package bundle

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"google.golang.org/protobuf/encoding/protojson"

	"berth.dev/berth/internal/sign/attestation"
)

// MediaType is the media type of a v0.3 bundle, used both for the bundle
// layer and as the artifactType of the referrer manifest that holds it.
const MediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// Annotations cosign puts on a bundle's referrer manifest.
const (
	AnnotationContent       = "dev.sigstore.bundle.content"
	AnnotationPredicateType = "dev.sigstore.bundle.predicateType"
	ContentDSSE             = "dsse-envelope"
)

var (
	// ErrMalformed means the data is not a sigstore bundle.
	ErrMalformed = errors.New("malformed sigstore bundle")
	// ErrUnsupported means a well-formed bundle that berth cannot verify
	// with a public key (a message signature over a blob, or a
	// certificate-based bundle).
	ErrUnsupported = errors.New("unsupported sigstore bundle")
)

// Bundle is what berth needs from a sigstore bundle: the DSSE envelope and
// the public-key hint.
type Bundle struct {
	Envelope *attestation.Envelope
	// KeyHint is sigstore's hint of the verifying key: base64 SHA-256 of
	// its PKIX DER. It is unauthenticated and only narrows the search.
	KeyHint string
}

// Encode returns the bundle JSON for an envelope signed by the key hinted at.
func Encode(env *attestation.Envelope, keyHint string) ([]byte, error) {
	payload, err := env.DecodeB64Payload()
	if err != nil {
		return nil, fmt.Errorf("bundle: envelope payload: %w", err)
	}
	sigs := make([]*protodsse.Signature, 0, len(env.Signatures))
	for _, s := range env.Signatures {
		raw, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			return nil, fmt.Errorf("bundle: envelope signature: %w", err)
		}
		sigs = append(sigs, &protodsse.Signature{Sig: raw, Keyid: s.KeyID})
	}
	b := &protobundle.Bundle{
		MediaType: MediaType,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{
				PublicKey: &protocommon.PublicKeyIdentifier{Hint: keyHint},
			},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload:     payload,
			PayloadType: env.PayloadType,
			Signatures:  sigs,
		}},
	}
	out, err := protojson.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("bundle: encode: %w", err)
	}
	return out, nil
}

// Decode reads a bundle and returns its DSSE envelope. Bundles that a public
// key alone cannot verify are refused with ErrUnsupported.
func Decode(data []byte) (*Bundle, error) {
	var pb protobundle.Bundle
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &pb); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !isBundleMediaType(pb.GetMediaType()) {
		return nil, fmt.Errorf("%w: media type %q", ErrMalformed, pb.GetMediaType())
	}
	vm := pb.GetVerificationMaterial()
	if vm == nil {
		return nil, fmt.Errorf("%w: no verification material", ErrMalformed)
	}
	if vm.GetPublicKey() == nil {
		return nil, fmt.Errorf("%w: verification material is a certificate, not a public key (keyless signatures are not supported)", ErrUnsupported)
	}
	env := pb.GetDsseEnvelope()
	if env == nil {
		if pb.GetMessageSignature() != nil {
			return nil, fmt.Errorf("%w: message signature over a blob, not a DSSE envelope", ErrUnsupported)
		}
		return nil, fmt.Errorf("%w: no content", ErrMalformed)
	}
	if len(env.GetSignatures()) == 0 {
		return nil, fmt.Errorf("%w: DSSE envelope without signatures", ErrMalformed)
	}
	out := &attestation.Envelope{
		PayloadType: env.GetPayloadType(),
		Payload:     base64.StdEncoding.EncodeToString(env.GetPayload()),
	}
	for _, s := range env.GetSignatures() {
		out.Signatures = append(out.Signatures, attestation.Signature{
			KeyID: s.GetKeyid(),
			Sig:   base64.StdEncoding.EncodeToString(s.GetSig()),
		})
	}
	return &Bundle{Envelope: out, KeyHint: vm.GetPublicKey().GetHint()}, nil
}

// isBundleMediaType accepts v0.1 to v0.3 in both spellings sigstore uses.
func isBundleMediaType(mt string) bool {
	switch mt {
	case MediaType,
		"application/vnd.dev.sigstore.bundle+json;version=0.1",
		"application/vnd.dev.sigstore.bundle+json;version=0.2",
		"application/vnd.dev.sigstore.bundle+json;version=0.3":
		return true
	}
	return strings.HasPrefix(mt, "application/vnd.dev.sigstore.bundle.v0.") && strings.HasSuffix(mt, "+json")
}
