package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func password(s string) PasswordFunc {
	return func() ([]byte, error) { return []byte(s), nil }
}

// Tests that run scrypt (about 0.2 s per key, many times that under the
// race detector) are kept few and run in parallel.

func TestEncryptedRoundTrip(t *testing.T) {
	t.Parallel()
	priv, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if priv.Curve != elliptic.P256() {
		t.Fatalf("curve = %v, want P-256", priv.Curve.Params().Name)
	}
	pemBytes, err := EncodeEncryptedPrivate(priv, []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(pemBytes), "-----BEGIN "+SigstorePrivateKeyPEMType+"-----") {
		t.Fatalf("PEM type: %s", strings.SplitN(string(pemBytes), "\n", 2)[0])
	}
	got, err := ParsePrivate(pemBytes, password("s3cret"), false)
	if err != nil {
		t.Fatal(err)
	}
	if !priv.Equal(got) {
		t.Fatal("decrypted key differs from the generated one")
	}
	if _, err := ParsePrivate(pemBytes, password("S3cret"), false); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: err = %v, want ErrWrongPassword", err)
	}

	pubPEM, err := EncodePublic(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublic(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !priv.PublicKey.Equal(pub) {
		t.Fatal("public key round trip differs")
	}
}

// TestCosignKeys reads a key pair written by `cosign generate-key-pair`
// (cosign v2.6.5, COSIGN_PASSWORD=berth-test) and checks that its two
// halves belong together.
func TestCosignKeys(t *testing.T) {
	t.Parallel()
	privPEM, err := os.ReadFile(filepath.Join("testdata", "cosign.key"))
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := os.ReadFile(filepath.Join("testdata", "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParsePrivate(privPEM, password("berth-test"), false)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublic(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.(*ecdsa.PublicKey).Equal(priv.Public()) {
		t.Fatal("cosign.pub is not the public half of cosign.key")
	}
}

func TestParsePrivateRejects(t *testing.T) {
	priv, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	encPEM, err := os.ReadFile(filepath.Join("testdata", "cosign.key"))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	plainPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	block, _ := pem.Decode(encPEM)

	tests := []struct {
		name  string
		data  []byte
		allow bool
		want  error
	}{
		{"not PEM", []byte("hello"), false, ErrMalformedKey},
		{"empty", nil, false, ErrMalformedKey},
		{"truncated envelope", pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: block.Bytes[:len(block.Bytes)/2]}), false, ErrMalformedKey},
		{"envelope not JSON", pem.EncodeToMemory(&pem.Block{Type: SigstorePrivateKeyPEMType, Bytes: []byte("garbage")}), false, ErrMalformedKey},
		{"unencrypted without permission", plainPEM, false, ErrUnencryptedKey},
		{"public key given as private", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), false, ErrMalformedKey},
		{"PKCS #8 encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), true, ErrMalformedKey},
		{"corrupt PKCS #8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der[:20]}), true, ErrMalformedKey},
		{"trailing garbage", append(append([]byte{}, plainPEM...), "junk"...), true, ErrMalformedKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePrivate(tc.data, password("other"), tc.allow)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParsePrivatePlainFormats(t *testing.T) {
	ec, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		block pem.Block
	}{
		{"SEC 1", pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}},
		{"PKCS #1", pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}},
		{"PKCS #8 Ed25519", pem.Block{Type: "PRIVATE KEY", Bytes: edDER}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := pem.EncodeToMemory(&tc.block)
			if _, err := ParsePrivate(data, nil, false); !errors.Is(err, ErrUnencryptedKey) {
				t.Fatalf("without permission: err = %v, want ErrUnencryptedKey", err)
			}
			k, err := ParsePrivate(data, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := SignerVerifier(k); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParsePublicRejects(t *testing.T) {
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakDER, err := x509.MarshalPKIXPublicKey(&weak.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"not PEM", []byte("ssh-ed25519 AAAA")},
		{"private key type", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})},
		{"bad DER", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}})},
		{"RSA 1024", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: weakDER})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParsePublic(tc.data); !errors.Is(err, ErrMalformedKey) {
				t.Fatalf("err = %v, want ErrMalformedKey", err)
			}
		})
	}
}

func TestID(t *testing.T) {
	a, _ := Generate()
	b, _ := Generate()
	idA, err := ID(a.Public())
	if err != nil {
		t.Fatal(err)
	}
	idB, _ := ID(b.Public())
	idA2, _ := ID(a.Public())
	if idA == idB || idA != idA2 || len(idA) != 44 {
		t.Fatalf("IDs: %q %q %q", idA, idA2, idB)
	}
}

func FuzzParsePrivate(f *testing.F) {
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJrZGYiOnt9fQ==\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePrivate(data, password("x"), true)
		if err == nil && k == nil {
			t.Fatal("nil key without error")
		}
	})
}

func FuzzParsePublic(f *testing.F) {
	a, _ := Generate()
	pub, _ := EncodePublic(a.Public())
	f.Add(pub)
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePublic(data)
		if err == nil && k == nil {
			t.Fatal("nil key without error")
		}
	})
}
