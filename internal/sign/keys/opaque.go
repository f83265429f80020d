package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"

	"github.com/sigstore/sigstore/pkg/signature"
)

// OpaqueSignerVerifier wraps a signer whose private half berth cannot see
// (a key inside a PKCS #11 token) so that it signs as cosign's software
// signer for the same public key would: the message hashed with the
// curve's hash (SHA-256 for P-256 and RSA), ECDSA as ASN.1 DER, RSA as
// PKCS #1 v1.5. The private key's Sign sees only the digest.
func OpaqueSignerVerifier(s crypto.Signer) (signature.SignerVerifier, error) {
	pub := s.Public()
	if err := validatePublic(pub); err != nil {
		return nil, err
	}
	var h crypto.Hash
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			h = crypto.SHA256
		case elliptic.P384():
			h = crypto.SHA384
		case elliptic.P521():
			h = crypto.SHA512
		default:
			return nil, fmt.Errorf("%w: unsupported curve %s", ErrMalformedKey, p.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		h = crypto.SHA256
	default:
		return nil, fmt.Errorf("%w: %T keys are signed with in software only", ErrMalformedKey, pub)
	}
	v, err := Verifier(pub)
	if err != nil {
		return nil, err
	}
	return &opaque{s: s, h: h, Verifier: v}, nil
}

type opaque struct {
	s crypto.Signer
	h crypto.Hash
	signature.Verifier
}

func (o *opaque) SignMessage(message io.Reader, _ ...signature.SignOption) ([]byte, error) {
	hasher := o.h.New()
	if _, err := io.Copy(hasher, message); err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	sig, err := o.s.Sign(rand.Reader, hasher.Sum(nil), o.h)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return sig, nil
}
