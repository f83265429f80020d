//go:build !cgo

package hsm

import (
	"crypto"
	"crypto/cipher"
)

// Token is an open PKCS #11 session; without cgo none can be opened.
type Token struct{}

// Open fails: loading a PKCS #11 module needs cgo.
func Open(URI) (*Token, error) { return nil, ErrNoCgo }

// Close does nothing.
func (*Token) Close() error { return nil }

// Signer is unreachable without cgo.
func (*Token) Signer(URI) (crypto.Signer, error) { return nil, ErrNoCgo }

// GenerateKeyPair is unreachable without cgo.
func (*Token) GenerateKeyPair(URI, string) (crypto.Signer, error) { return nil, ErrNoCgo }

// AEAD is unreachable without cgo.
func (*Token) AEAD(URI) (cipher.AEAD, error) { return nil, ErrNoCgo }

// GenerateSecret is unreachable without cgo.
func (*Token) GenerateSecret(URI) error { return ErrNoCgo }
