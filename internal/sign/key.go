package sign

import (
	"crypto"
	"fmt"

	"github.com/sigstore/sigstore/pkg/signature"

	"berth.dev/berth/internal/sign/keys"
)

// Key is a private key ready to sign.
type Key struct {
	sv  signature.SignerVerifier
	pub crypto.PublicKey
	id  string
	// release ends what holds the key open (a token's session).
	release func() error
}

// Close releases a key held in a token; for other keys it does nothing.
func (k *Key) Close() error {
	if k == nil || k.release == nil {
		return nil
	}
	return k.release()
}

// WithRelease has Close call release.
func (k *Key) WithRelease(release func() error) *Key {
	k.release = release
	return k
}

// NewKey wraps a private key (see keys.ParsePrivate) for signing.
func NewKey(priv crypto.Signer) (*Key, error) {
	sv, err := keys.SignerVerifier(priv)
	if err != nil {
		return nil, err
	}
	id, err := keys.ID(priv.Public())
	if err != nil {
		return nil, err
	}
	return &Key{sv: sv, pub: priv.Public(), id: id}, nil
}

// ID is the key's sigstore hint: base64 SHA-256 of the public key.
func (k *Key) ID() string { return k.id }

// Public returns the public half.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// NewSignerVerifierKey wraps a signer berth does not hold the private
// half of: a key in a PKCS #11 token (see keys.OpaqueSignerVerifier) or a
// KMS key.
func NewSignerVerifierKey(sv signature.SignerVerifier) (*Key, error) {
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("public key of the signer: %w", err)
	}
	id, err := keys.ID(pub)
	if err != nil {
		return nil, err
	}
	return &Key{sv: sv, pub: pub, id: id}, nil
}
