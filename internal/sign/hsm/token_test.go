//go:build cgo

package hsm_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"berth.dev/berth/internal/sign/hsm"
	"berth.dev/berth/internal/sign/hsm/hsmtest"
	"berth.dev/berth/internal/sign/keys"
)

func open(t *testing.T, raw string) (*hsm.Token, hsm.URI) {
	t.Helper()
	u, err := hsm.ParseURI(raw)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := hsm.Open(u)
	if err != nil {
		t.Fatal(err)
	}
	return tok, u
}

// TestSoftHSMSignVerify generates a key pair inside SoftHSM2, signs as
// cosign would through it, and verifies with the public half alone; the
// token refuses to make a second key of the same label.
func TestSoftHSMSignVerify(t *testing.T) {
	tk := hsmtest.New(t, "berth-sign")
	for _, kind := range []string{"ecdsa-p256", "rsa-3072"} {
		t.Run(kind, func(t *testing.T) {
			tok, u := open(t, tk.URI("signer-"+kind))
			defer tok.Close()
			s, err := tok.GenerateKeyPair(u, kind)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tok.GenerateKeyPair(u, kind); err == nil || !strings.Contains(err.Error(), "does not replace") {
				t.Errorf("second key of the same label: %v", err)
			}
			found, err := tok.Signer(u)
			if err != nil {
				t.Fatal(err)
			}
			sv, err := keys.OpaqueSignerVerifier(found)
			if err != nil {
				t.Fatal(err)
			}
			msg := []byte("payload to sign")
			sig, err := sv.SignMessage(bytes.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			v, err := keys.Verifier(s.Public())
			if err != nil {
				t.Fatal(err)
			}
			if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg)); err != nil {
				t.Errorf("signature made in the token does not verify with its public key: %v", err)
			}
			if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader([]byte("other"))); err == nil {
				t.Error("signature verifies another message")
			}
		})
	}
}

// TestSoftHSMMasterKey wraps and unwraps with an AES key that stays in
// the token.
func TestSoftHSMMasterKey(t *testing.T) {
	tk := hsmtest.New(t, "berth-master")
	tok, u := open(t, tk.URI("master"))
	defer tok.Close()
	if _, err := tok.AEAD(u); !errors.Is(err, hsm.ErrNoKey) {
		t.Fatalf("AEAD before the key exists: %v, want ErrNoKey", err)
	}
	if err := tok.GenerateSecret(u); err != nil {
		t.Fatal(err)
	}
	aead, err := tok.AEAD(u)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	secret := []byte("a data key")
	sealed := aead.Seal(nil, nonce, secret, []byte("aad"))
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed text holds the secret")
	}
	opened, err := aead.Open(nil, nonce, sealed, []byte("aad"))
	if err != nil || !bytes.Equal(opened, secret) {
		t.Fatalf("open: %q, %v", opened, err)
	}
	if _, err := aead.Open(nil, nonce, sealed, []byte("other aad")); err == nil {
		t.Error("opened with other additional data")
	}
}

// TestSoftHSMBadInput: an absent token, a wrong or missing PIN, a slot
// without the key each get their own clear error.
func TestSoftHSMBadInput(t *testing.T) {
	tk := hsmtest.New(t, "berth-bad")
	tok, u := open(t, tk.URI("present"))
	if _, err := tok.GenerateKeyPair(u, ""); err != nil {
		t.Fatal(err)
	}
	tok.Close()
	cases := []struct {
		uri  string
		want error
		msg  string
	}{
		{strings.Replace(tk.URI("present"), "token=berth-bad", "token=absent", 1), hsm.ErrNoToken, "token=absent"},
		{strings.Replace(tk.URI("present"), "pin-value=1234", "pin-value=9999", 1), hsm.ErrLogin, "PIN was refused"},
		{strings.Replace(tk.URI("present"), "&pin-value=1234", "", 1), hsm.ErrLogin, "PIN"},
		{tk.URI("missing"), hsm.ErrNoKey, "object=missing"},
	}
	for _, tc := range cases {
		u, err := hsm.ParseURI(tc.uri)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := hsm.Open(u)
		if err == nil {
			_, err = tok.Signer(u)
			tok.Close()
		}
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v mentioning %q", u, err, tc.want, tc.msg)
		}
		if err != nil && strings.Contains(err.Error(), "9999") {
			t.Errorf("error shows the PIN: %v", err)
		}
	}
}
