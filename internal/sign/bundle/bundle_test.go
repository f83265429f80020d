package bundle

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"berth.dev/berth/internal/sign/attestation"
	"berth.dev/berth/internal/sign/keys"
)

func signedEnvelope(t *testing.T) (*attestation.Envelope, string) {
	t.Helper()
	priv, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	sv, err := keys.SignerVerifier(priv)
	if err != nil {
		t.Fatal(err)
	}
	env, err := attestation.Sign(context.Background(), sv, attestation.PayloadType, []byte(`{"_type":"https://in-toto.io/Statement/v1"}`))
	if err != nil {
		t.Fatal(err)
	}
	hint, err := keys.ID(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return env, hint
}

func TestEncodeDecode(t *testing.T) {
	env, hint := signedEnvelope(t)
	data, err := Encode(env, hint)
	if err != nil {
		t.Fatal(err)
	}
	// The JSON field names are protobuf-specs' camelCase ones.
	var doc struct {
		MediaType            string `json:"mediaType"`
		VerificationMaterial struct {
			PublicKey struct {
				Hint string `json:"hint"`
			} `json:"publicKey"`
		} `json:"verificationMaterial"`
		DsseEnvelope struct {
			Payload     string `json:"payload"`
			PayloadType string `json:"payloadType"`
			Signatures  []struct {
				Sig string `json:"sig"`
			} `json:"signatures"`
		} `json:"dsseEnvelope"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.MediaType != MediaType || doc.VerificationMaterial.PublicKey.Hint != hint ||
		doc.DsseEnvelope.Payload != env.Payload || doc.DsseEnvelope.PayloadType != attestation.PayloadType ||
		len(doc.DsseEnvelope.Signatures) != 1 || doc.DsseEnvelope.Signatures[0].Sig != env.Signatures[0].Sig {
		t.Fatalf("bundle JSON: %s", data)
	}
	b, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if b.KeyHint != hint || b.Envelope.Payload != env.Payload || b.Envelope.Signatures[0].Sig != env.Signatures[0].Sig {
		t.Fatalf("decoded %+v", b)
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name, doc string
		want      error
	}{
		{"not JSON", `{`, ErrMalformed},
		{"wrong media type", `{"mediaType":"application/json","verificationMaterial":{"publicKey":{"hint":"x"}},"dsseEnvelope":{"payload":"e30=","payloadType":"t","signatures":[{"sig":"AA=="}]}}`, ErrMalformed},
		{"no material", `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payload":"e30=","payloadType":"t","signatures":[{"sig":"AA=="}]}}`, ErrMalformed},
		{"no content", `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"x"}}}`, ErrMalformed},
		{"no signatures", `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"x"}},"dsseEnvelope":{"payload":"e30=","payloadType":"t"}}`, ErrMalformed},
		{"certificate", `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"certificate":{"rawBytes":"AA=="}},"dsseEnvelope":{"payload":"e30=","payloadType":"t","signatures":[{"sig":"AA=="}]}}`, ErrUnsupported},
		{"message signature", `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"x"}},"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AA=="},"signature":"AA=="}}`, ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode([]byte(tc.doc)); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"x"}},"dsseEnvelope":{"payload":"e30=","payloadType":"t","signatures":[{"sig":"AA=="}]}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=0.1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Decode(data)
		if err == nil && (b.Envelope == nil || len(b.Envelope.Signatures) == 0) {
			t.Fatal("accepted a bundle without a signed envelope")
		}
	})
}
