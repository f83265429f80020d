package attestation

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// Envelope is a DSSE envelope (go-securesystemslib's type, which is the
// JSON cosign writes).
type Envelope = dsse.Envelope

// Signature is one signature in a DSSE envelope.
type Signature = dsse.Signature

// ErrBadSignature means no given key verifies the envelope.
var ErrBadSignature = errors.New("DSSE envelope signature does not verify")

// Sign wraps payload in a DSSE envelope signed by sv, as cosign does: one
// signature with an empty key ID over the pre-authentication encoding.
func Sign(ctx context.Context, sv signature.Signer, payloadType string, payload []byte) (*Envelope, error) {
	sig, err := sv.SignMessage(bytes.NewReader(dsse.PAE(payloadType, payload)), options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("sign DSSE envelope: %w", err)
	}
	return &Envelope{
		PayloadType: payloadType,
		Payload:     base64.StdEncoding.EncodeToString(payload),
		Signatures:  []dsse.Signature{{Sig: base64.StdEncoding.EncodeToString(sig)}},
	}, nil
}

// ParseEnvelope reads a DSSE envelope from JSON.
func ParseEnvelope(data []byte) (*Envelope, error) {
	var env Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("DSSE envelope: %w", err)
	}
	if env.PayloadType == "" || env.Payload == "" {
		return nil, errors.New("DSSE envelope: payloadType or payload missing")
	}
	if len(env.Signatures) == 0 {
		return nil, errors.New("DSSE envelope: no signatures")
	}
	return &env, nil
}

// Verify checks that one of the envelope's signatures verifies with v and
// returns the decoded payload. Key IDs in the envelope are hints only; every
// signature is tried.
func Verify(ctx context.Context, env *Envelope, v signature.Verifier) ([]byte, error) {
	payload, err := env.DecodeB64Payload()
	if err != nil {
		return nil, fmt.Errorf("DSSE payload: %w", err)
	}
	pae := dsse.PAE(env.PayloadType, payload)
	for _, s := range env.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			if sig, err = base64.URLEncoding.DecodeString(s.Sig); err != nil {
				continue
			}
		}
		if v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(pae), options.WithContext(ctx)) == nil {
			return payload, nil
		}
	}
	return nil, ErrBadSignature
}
