package sign

import (
	"crypto"

	"github.com/sigstore/sigstore/pkg/signature"

	"berth.dev/berth/internal/sign/keys"
)

// Key is a private key ready to sign.
type Key struct {
	sv  signature.SignerVerifier
	pub crypto.PublicKey
	id  string
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
