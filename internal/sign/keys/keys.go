// Package keys reads and writes signing keys in the formats cosign uses: an
// ECDSA P-256 key pair whose private half is PKCS #8, encrypted with scrypt and
// NaCl secretbox and wrapped in an "ENCRYPTED SIGSTORE PRIVATE KEY" PEM block,
// and a PKIX "PUBLIC KEY" PEM block. Plain PKCS #8, SEC 1 and PKCS #1 private
// keys load too, but only when the caller says that an unencrypted key is fine.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// PEM block types, as cosign names them.
const (
	SigstorePrivateKeyPEMType = "ENCRYPTED SIGSTORE PRIVATE KEY"
	CosignPrivateKeyPEMType   = "ENCRYPTED COSIGN PRIVATE KEY"
	PublicKeyPEMType          = "PUBLIC KEY"
	pkcs8PEMType              = "PRIVATE KEY"
	ecPEMType                 = "EC PRIVATE KEY"
	rsaPEMType                = "RSA PRIVATE KEY"
	encryptedPKCS8PEMType     = "ENCRYPTED PRIVATE KEY"
)

var (
	// ErrWrongPassword means the password does not open the encrypted key.
	// Authenticated encryption cannot tell a wrong password from a damaged
	// ciphertext, so the message says both.
	ErrWrongPassword = errors.New("wrong password for the private key (or its ciphertext is damaged)")
	// ErrUnencryptedKey means a private key is stored in the clear and the
	// caller did not allow that.
	ErrUnencryptedKey = errors.New("private key is not encrypted")
	// ErrMalformedKey means the data is not a key berth can read.
	ErrMalformedKey = errors.New("malformed key")
)

// PasswordFunc returns the password of an encrypted private key. It is called
// only when the key turns out to be encrypted.
type PasswordFunc func() ([]byte, error)

// Generate returns a new ECDSA P-256 private key, cosign's default.
func Generate() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ECDSA P-256 key: %w", err)
	}
	return k, nil
}

// EncodeEncryptedPrivate returns priv as the encrypted PEM document cosign
// writes: PKCS #8 DER sealed by go-securesystemslib's encrypted format.
func EncodeEncryptedPrivate(priv crypto.PrivateKey, password []byte) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode private key as PKCS #8: %w", err)
	}
	sealed, err := encrypted.Encrypt(der, password)
	if err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: SigstorePrivateKeyPEMType, Bytes: sealed}), nil
}

// EncodePublic returns pub as a PKIX "PUBLIC KEY" PEM document.
func EncodePublic(pub crypto.PublicKey) ([]byte, error) {
	b, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return b, nil
}

// ParsePrivate reads a private key from PEM. Encrypted cosign and sigstore
// keys are opened with the password from password; plain keys are refused
// with ErrUnencryptedKey unless allowUnencrypted is set.
func ParsePrivate(data []byte, password PasswordFunc, allowUnencrypted bool) (crypto.Signer, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found", ErrMalformedKey)
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("%w: unexpected data after the %q PEM block", ErrMalformedKey, block.Type)
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case SigstorePrivateKeyPEMType, CosignPrivateKeyPEMType:
		key, err = openEncrypted(block.Bytes, password)
	case pkcs8PEMType, ecPEMType, rsaPEMType:
		if !allowUnencrypted {
			return nil, fmt.Errorf("%w (PEM %q)", ErrUnencryptedKey, block.Type)
		}
		key, err = parsePlainPrivate(block)
	case encryptedPKCS8PEMType:
		return nil, fmt.Errorf("%w: PEM %q (PKCS #8 password encryption) is not supported; re-encrypt the key in cosign's format", ErrMalformedKey, block.Type)
	default:
		return nil, fmt.Errorf("%w: PEM block %q is not a private key", ErrMalformedKey, block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: unsupported private key type %T", ErrMalformedKey, key)
	}
	if err := validatePublic(signer.Public()); err != nil {
		return nil, err
	}
	return signer, nil
}

func openEncrypted(sealed []byte, password PasswordFunc) (any, error) {
	if password == nil {
		return nil, fmt.Errorf("private key is encrypted and no password source was given")
	}
	pw, err := password()
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	der, err := encrypted.Decrypt(sealed, pw)
	if err != nil {
		// The library reports both a bad password and a mangled envelope as
		// failures; only a well-formed envelope that fails to open is a wrong
		// password, anything earlier is damage to the file.
		if strings.Contains(err.Error(), "decryption failed") {
			return nil, ErrWrongPassword
		}
		return nil, fmt.Errorf("%w: encrypted key envelope: %v", ErrMalformedKey, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: decrypted key is not PKCS #8: %v", ErrMalformedKey, err)
	}
	return key, nil
}

func parsePlainPrivate(block *pem.Block) (any, error) {
	var (
		key any
		err error
	)
	switch block.Type {
	case pkcs8PEMType:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case ecPEMType:
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case rsaPEMType:
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformedKey, block.Type, err)
	}
	return key, nil
}

// ParsePublic reads a PKIX "PUBLIC KEY" PEM document.
func ParsePublic(data []byte) (crypto.PublicKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found", ErrMalformedKey)
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("%w: unexpected data after the %q PEM block", ErrMalformedKey, block.Type)
	}
	if block.Type != PublicKeyPEMType {
		return nil, fmt.Errorf("%w: PEM block %q is not a public key (want %q)", ErrMalformedKey, block.Type, PublicKeyPEMType)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedKey, err)
	}
	if err := validatePublic(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

func validatePublic(pub crypto.PublicKey) error {
	switch pub.(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey:
	default:
		return fmt.Errorf("%w: unsupported key type %T", ErrMalformedKey, pub)
	}
	if err := cryptoutils.ValidatePubKey(pub); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedKey, err)
	}
	return nil
}

// ID names a public key the way sigstore bundles hint at it: the standard
// base64 of the SHA-256 of its PKIX DER encoding.
func ID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}

// SignerVerifier wraps priv in the sigstore signer cosign uses for it, so
// signatures come out byte-compatible: SHA-256 for ECDSA P-256 and RSA,
// Ed25519ph for Ed25519.
func SignerVerifier(priv crypto.Signer) (signature.SignerVerifier, error) {
	sv, err := signature.LoadDefaultSignerVerifier(priv, options.WithED25519ph())
	if err != nil {
		return nil, fmt.Errorf("load signer: %w", err)
	}
	return sv, nil
}

// Verifier returns the sigstore verifier cosign uses for pub.
func Verifier(pub crypto.PublicKey) (signature.Verifier, error) {
	v, err := signature.LoadDefaultVerifier(pub, options.WithED25519ph())
	if err != nil {
		return nil, fmt.Errorf("load verifier: %w", err)
	}
	return v, nil
}

// Kinds are the key types berth generates, the default first.
var Kinds = []string{"ecdsa-p256", "ed25519", "rsa-3072"}

// GenerateKind returns a new private key of kind (one of Kinds; "" is
// ecdsa-p256). Ed25519 keys sign with Ed25519ph and RSA keys with PKCS #1
// v1.5 over SHA-256, as cosign does.
func GenerateKind(kind string) (crypto.Signer, error) {
	switch kind {
	case "", "ecdsa-p256":
		return Generate()
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate Ed25519 key: %w", err)
		}
		return k, nil
	case "rsa-3072":
		k, err := rsa.GenerateKey(rand.Reader, 3072)
		if err != nil {
			return nil, fmt.Errorf("generate RSA-3072 key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("unknown key type %q (want one of %s)", kind, strings.Join(Kinds, ", "))
}

// Kind names the type of a public key as GenerateKind takes it.
func Kind(pub crypto.PublicKey) string {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		return "ecdsa-" + strings.ToLower(strings.ReplaceAll(p.Curve.Params().Name, "-", ""))
	case ed25519.PublicKey:
		return "ed25519"
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa-%d", p.N.BitLen())
	}
	return fmt.Sprintf("%T", pub)
}
