// Package keyref turns a key reference as the CLI takes it into a signing
// key or a public key: a file (cosign's or berth's PEM), a PKCS #11 URI
// (RFC 7512, the key stays in the token), or a KMS reference
// (hashivault://, awskms://, gcpkms://, azurekms://) handed to
// sigstore/sigstore's KMS signers.
package keyref

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature/kms"

	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/hsm"
	"berth.dev/berth/internal/sign/keys"
)

// KMSSchemes are the KMS references sigstore/sigstore knows.
var KMSSchemes = []string{"hashivault://", "awskms://", "gcpkms://", "azurekms://"}

// ErrKMSUnavailable means the KMS provider of a reference is not compiled
// into this berth (and no sigstore KMS plugin for it is on PATH).
var ErrKMSUnavailable = errors.New("KMS provider not available")

// IsKMS reports whether ref names a KMS key.
func IsKMS(ref string) bool {
	for _, s := range KMSSchemes {
		if strings.HasPrefix(ref, s) {
			return true
		}
	}
	return false
}

// Options say how to open a file key.
type Options struct {
	Password         keys.PasswordFunc
	AllowUnencrypted bool
}

// Signing returns the signing key ref names; Close it to end a token's
// session.
func Signing(ctx context.Context, ref string, opts Options) (*sign.Key, error) {
	switch {
	case hsm.IsURI(ref):
		u, err := hsm.ParseURI(ref)
		if err != nil {
			return nil, err
		}
		tok, err := hsm.Open(u)
		if err != nil {
			return nil, err
		}
		s, err := tok.Signer(u)
		if err != nil {
			tok.Close()
			return nil, err
		}
		sv, err := keys.OpaqueSignerVerifier(s)
		if err != nil {
			tok.Close()
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		k, err := sign.NewSignerVerifierKey(sv)
		if err != nil {
			tok.Close()
			return nil, err
		}
		return k.WithRelease(tok.Close), nil
	case IsKMS(ref):
		sv, err := kmsSigner(ctx, ref)
		if err != nil {
			return nil, err
		}
		k, err := sign.NewSignerVerifierKey(sv)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		return k, nil
	}
	data, err := os.ReadFile(ref)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	priv, err := keys.ParsePrivate(data, opts.Password, opts.AllowUnencrypted)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	k, err := sign.NewKey(priv)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// Public returns the public key of any reference: a public key file, a
// private key file (its password is asked for only if it is encrypted),
// a key pair in a token, a KMS key.
func Public(ctx context.Context, ref string, opts Options) (crypto.PublicKey, error) {
	if hsm.IsURI(ref) || IsKMS(ref) {
		k, err := Signing(ctx, ref, opts)
		if err != nil {
			return nil, err
		}
		defer k.Close()
		return k.Public(), nil
	}
	data, err := os.ReadFile(ref)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	if pub, err := keys.ParsePublic(data); err == nil {
		return pub, nil
	}
	// A private key is read to learn its public half, so an unencrypted
	// one is fine here: nothing is signed with it.
	priv, err := keys.ParsePrivate(data, opts.Password, true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return priv.Public(), nil
}

func kmsSigner(ctx context.Context, ref string) (kms.SignerVerifier, error) {
	sv, err := kms.Get(ctx, ref, crypto.SHA256)
	var notFound *kms.ProviderNotFoundError
	switch {
	case errors.As(err, &notFound):
		scheme, _, _ := strings.Cut(ref, "://")
		return nil, fmt.Errorf("%w: %s:// keys need a berth built with sigstore's %s provider, or a sigstore-kms-%s plugin on PATH; this berth has neither",
			ErrKMSUnavailable, scheme, scheme, scheme)
	case err != nil:
		return nil, fmt.Errorf("KMS key %s: %w", ref, err)
	}
	return sv, nil
}
