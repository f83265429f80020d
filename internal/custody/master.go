package custody

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"berth.dev/berth/internal/sign/hsm"
)

// ErrMasterKey means the master key setting is unusable or is not the key
// the stored keys were sealed under.
var ErrMasterKey = errors.New("master key")

// Master seals and opens the data keys of stored private keys (envelope
// encryption): each private key is encrypted under a data key of its
// own, and only the data key is sealed by the master key, which may live
// in a token and never leave it.
type Master interface {
	Seal(plain, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
	// Close releases a token's session.
	Close() error
	// Describe names where the key is, never the key.
	Describe() string
}

// OpenMaster reads the keys.master_key setting: "file:PATH" (32 bytes,
// base64 or hex, in a file only its owner may read), "env:VAR" (the same
// in an environment variable) or a pkcs11: URI naming an AES key in a
// token (`berth key generate --master --key pkcs11:…` makes one).
func OpenMaster(spec string) (Master, error) {
	switch {
	case hsm.IsURI(spec):
		u, err := hsm.ParseURI(spec)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMasterKey, err)
		}
		tok, err := hsm.Open(u)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMasterKey, err)
		}
		aead, err := tok.AEAD(u)
		if err != nil {
			tok.Close()
			return nil, fmt.Errorf("%w: %w", ErrMasterKey, err)
		}
		return &aeadMaster{aead: aead, close: tok.Close, where: u.String()}, nil
	case strings.HasPrefix(spec, "file:"):
		path := strings.TrimPrefix(spec, "file:")
		st, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMasterKey, err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%w: %s may be read by other users (mode %04o); chmod 600 it", ErrMasterKey, path, st.Mode().Perm())
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMasterKey, err)
		}
		return aesMaster(raw, "file "+path)
	case strings.HasPrefix(spec, "env:"):
		name := strings.TrimPrefix(spec, "env:")
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return nil, fmt.Errorf("%w: environment variable %s is not set", ErrMasterKey, name)
		}
		return aesMaster([]byte(v), "environment variable "+name)
	}
	return nil, fmt.Errorf("%w: %q: want file:PATH, env:VARIABLE or a pkcs11: URI", ErrMasterKey, redactSpec(spec))
}

// NewAESMaster is a master key held in memory (32 bytes), for tests and
// for the file and environment forms.
func NewAESMaster(key []byte, where string) (Master, error) {
	block, err := aes.NewCipher(key)
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("%w: %s: want 32 bytes (AES-256)", ErrMasterKey, where)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &aeadMaster{aead: aead, close: func() error { return nil }, where: where}, nil
}

func aesMaster(text []byte, where string) (Master, error) {
	s := strings.TrimSpace(string(text))
	var key []byte
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		key = b
	} else if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == 32 {
		key = b
	} else {
		return nil, fmt.Errorf("%w: %s does not hold 32 bytes in base64 or hex (make one with `berth key generate --master`)", ErrMasterKey, where)
	}
	return NewAESMaster(key, where)
}

type aeadMaster struct {
	aead  cipher.AEAD
	close func() error
	where string
}

func (m *aeadMaster) Seal(plain, aad []byte) ([]byte, error) {
	nonce := make([]byte, m.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return m.aead.Seal(nonce, nonce, plain, aad), nil
}

func (m *aeadMaster) Open(sealed, aad []byte) ([]byte, error) {
	n := m.aead.NonceSize()
	if len(sealed) < n+m.aead.Overhead() {
		return nil, errors.New("sealed data is too short")
	}
	return m.aead.Open(nil, sealed[:n], sealed[n:], aad)
}

func (m *aeadMaster) Close() error     { return m.close() }
func (m *aeadMaster) Describe() string { return m.where }

// redactSpec keeps a mistyped setting's value (which may be the key
// itself) out of messages.
func redactSpec(spec string) string {
	if len(spec) > 12 {
		return spec[:6] + "…"
	}
	return "…"
}

// seal encrypts plain under a fresh data key, and the data key under the
// master key; aad binds both to the key's identity, so a sealed key
// copied onto another row does not open.
func seal(m Master, plain, aad []byte) (wrappedDEK, ciphertext []byte, err error) {
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		return nil, nil, err
	}
	defer clear(dek)
	inner, err := NewAESMaster(dek, "data key")
	if err != nil {
		return nil, nil, err
	}
	if ciphertext, err = inner.Seal(plain, aad); err != nil {
		return nil, nil, err
	}
	if wrappedDEK, err = m.Seal(dek, aad); err != nil {
		return nil, nil, fmt.Errorf("%w: seal data key: %v", ErrMasterKey, err)
	}
	return wrappedDEK, ciphertext, nil
}

func unseal(m Master, wrappedDEK, ciphertext, aad []byte) ([]byte, error) {
	dek, err := m.Open(wrappedDEK, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: %s does not open the stored key's data key (is it the master key the keys were stored under?)", ErrMasterKey, m.Describe())
	}
	defer clear(dek)
	inner, err := NewAESMaster(dek, "data key")
	if err != nil {
		return nil, err
	}
	plain, err := inner.Open(ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("stored private key is damaged: %w", err)
	}
	return plain, nil
}
