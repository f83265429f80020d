//go:build cgo

package hsm

import (
	"crypto"
	"crypto/cipher"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// Token is a logged-in session with one PKCS #11 token.
type Token struct {
	ctx *crypto11.Context
	uri URI
}

// Open loads the URI's module, finds its token and logs in.
func Open(u URI) (*Token, error) {
	pin, err := u.pin()
	if err != nil {
		return nil, err
	}
	cfg := &crypto11.Config{Path: u.Module, Pin: pin}
	// crypto11 takes exactly one way of selecting the token.
	switch {
	case u.Token != "":
		cfg.TokenLabel = u.Token
	case u.Serial != "":
		cfg.TokenSerial = u.Serial
	default:
		cfg.SlotNumber = u.Slot
	}
	ctx, err := crypto11.Configure(cfg)
	if err != nil {
		return nil, classify(u, err)
	}
	return &Token{ctx: ctx, uri: u}, nil
}

// classify turns crypto11's errors into berth's, with the token named.
func classify(u URI, err error) error {
	var p11 pkcs11.Error
	switch {
	case strings.Contains(err.Error(), "was not found or is empty"):
		return fmt.Errorf("%w: %s", ErrNoKey, u)
	case err.Error() == "could not find PKCS#11 token":
		return fmt.Errorf("%w: %s (is it plugged in and initialised?)", ErrNoToken, u)
	case errors.As(err, &p11) && (p11 == pkcs11.CKR_PIN_INCORRECT || p11 == pkcs11.CKR_PIN_LOCKED ||
		p11 == pkcs11.CKR_PIN_LEN_RANGE || p11 == pkcs11.CKR_USER_PIN_NOT_INITIALIZED || p11 == pkcs11.CKR_ARGUMENTS_BAD):
		why := "the PIN was refused"
		switch p11 {
		case pkcs11.CKR_PIN_LOCKED:
			why = "the token's PIN is locked"
		case pkcs11.CKR_PIN_LEN_RANGE, pkcs11.CKR_ARGUMENTS_BAD:
			why = "no PIN or a PIN of the wrong length (give pin-value= or pin-source=)"
		}
		return fmt.Errorf("%w: %s: %s", ErrLogin, u, why)
	}
	return fmt.Errorf("pkcs11 %s: %w", u, err)
}

// Close ends the session.
func (t *Token) Close() error { return t.ctx.Close() }

func (u URI) selectors() (id, label []byte) {
	if len(u.ID) > 0 {
		id = u.ID
	}
	if u.Object != "" {
		label = []byte(u.Object)
	}
	return id, label
}

// Signer returns the key pair the URI names; the private half stays in
// the token.
func (t *Token) Signer(u URI) (crypto.Signer, error) {
	if !u.HasKey() {
		return nil, fmt.Errorf("%w: name the key with object= or id=", ErrBadURI)
	}
	id, label := u.selectors()
	s, err := t.ctx.FindKeyPair(id, label)
	if err != nil {
		return nil, classify(u, err)
	}
	if s == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoKey, u)
	}
	return s, nil
}

// GenerateKeyPair creates a key pair inside the token with the URI's
// label and id: kind is "ecdsa-p256" (default), "ecdsa-p384" or
// "rsa-3072". An existing key of that label or id is never replaced.
func (t *Token) GenerateKeyPair(u URI, kind string) (crypto.Signer, error) {
	if !u.HasKey() {
		return nil, fmt.Errorf("%w: name the new key with object= (and optionally id=)", ErrBadURI)
	}
	id, label := u.selectors()
	if existing, err := t.ctx.FindKeyPair(id, label); err == nil && existing != nil {
		return nil, fmt.Errorf("%s already holds a key pair with that label or id; berth does not replace keys", u)
	}
	if id == nil {
		id = make([]byte, 16)
		rand.Read(id)
	}
	var (
		s   crypto.Signer
		err error
	)
	switch kind {
	case "", "ecdsa-p256":
		s, err = t.ctx.GenerateECDSAKeyPairWithLabel(id, label, elliptic.P256())
	case "ecdsa-p384":
		s, err = t.ctx.GenerateECDSAKeyPairWithLabel(id, label, elliptic.P384())
	case "rsa-3072":
		s, err = t.ctx.GenerateRSAKeyPairWithLabel(id, label, 3072)
	default:
		return nil, fmt.Errorf("key type %q cannot be generated in a token (ecdsa-p256, ecdsa-p384, rsa-3072)", kind)
	}
	if err != nil {
		return nil, classify(u, err)
	}
	return s, nil
}

// AEAD returns AES-GCM under the secret key the URI names: the server's
// master key, which never leaves the token.
func (t *Token) AEAD(u URI) (cipher.AEAD, error) {
	if !u.HasKey() {
		return nil, fmt.Errorf("%w: name the master key with object= or id=", ErrBadURI)
	}
	id, label := u.selectors()
	k, err := t.ctx.FindKey(id, label)
	if err == nil && k == nil {
		err = errors.New("was not found or is empty")
	}
	if err != nil {
		err = classify(u, err)
		if errors.Is(err, ErrNoKey) {
			return nil, fmt.Errorf("%w (create it with `berth key generate --master --key 'pkcs11:…;object=…'`)", err)
		}
		return nil, err
	}
	aead, err := k.NewGCM()
	if err != nil {
		return nil, classify(u, err)
	}
	return aead, nil
}

// GenerateSecret creates an AES-256 key in the token for use as a master
// key. An existing key of that label or id is never replaced.
func (t *Token) GenerateSecret(u URI) error {
	if !u.HasKey() {
		return fmt.Errorf("%w: name the new key with object= (and optionally id=)", ErrBadURI)
	}
	id, label := u.selectors()
	if existing, err := t.ctx.FindKey(id, label); err == nil && existing != nil {
		return fmt.Errorf("%s already holds a secret key with that label or id; berth does not replace keys", u)
	}
	if id == nil {
		id = make([]byte, 16)
		rand.Read(id)
	}
	if _, err := t.ctx.GenerateSecretKeyWithLabel(id, label, 256, crypto11.CipherAES); err != nil {
		return classify(u, err)
	}
	return nil
}
