package attestation

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/sign/keys"
)

const digest = "sha256:4a1e3a8d0cda5b17e5ab3b6b2d1c5f3c7c2b0e8f3a1d9c6b5e4f3a2b1c0d9e8f"

func TestNewStatement(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		kind, raw     string
		wantType      string
		wantPredicate string
		wantErr       error
	}{
		{"custom", "hello", PredicateCustom, `{"Data":"hello","Timestamp":"2025-03-04T05:06:07Z"}`, nil},
		{"cyclonedx", ` {"bomFormat": "CycloneDX"} `, PredicateCycloneDX, `{"bomFormat":"CycloneDX"}`, nil},
		{"spdx", "SPDXVersion: SPDX-2.3", PredicateSPDX, `"SPDXVersion: SPDX-2.3"`, nil},
		{"spdxjson", `{"spdxVersion":"SPDX-2.3"}`, PredicateSPDX, `{"spdxVersion":"SPDX-2.3"}`, nil},
		{"openvex", `{"@context":"https://openvex.dev/ns/v0.2.0"}`, PredicateOpenVEX, `{"@context":"https://openvex.dev/ns/v0.2.0"}`, nil},
		{"vuln", `{"scanner":{"uri":"berth"}}`, PredicateVuln, `{"scanner":{"uri":"berth"}}`, nil},
		{"slsaprovenance", `{"builder":{"id":"x"},"buildType":"y"}`, PredicateSLSA02, `{"builder":{"id":"x"},"buildType":"y"}`, nil},
		{"slsaprovenance1", `{"buildDefinition":{},"runDetails":{}}`, PredicateSLSA1, `{"buildDefinition":{},"runDetails":{}}`, nil},
		{"https://example.com/pred/v1", `{"a":1}`, "https://example.com/pred/v1", `{"a":1}`, nil},
		{"slsaprovenance", `{"builder":{}}`, "", "", ErrBadPredicate},
		{"cyclonedx", `{not json`, "", "", ErrBadPredicate},
		{"https://example.com/pred/v1", `[1,2]`, "", "", ErrBadPredicate},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			st, err := NewStatement(tc.kind, []byte(tc.raw), "registry.test/app", digest, now)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.PredicateType != tc.wantType || string(st.Predicate) != tc.wantPredicate {
				t.Fatalf("got %s %s", st.PredicateType, st.Predicate)
			}
			if !st.About(digest) || st.About("sha256:00") {
				t.Fatal("About does not match the subject digest")
			}
			raw, err := json.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseStatement(raw)
			if err != nil {
				t.Fatal(err)
			}
			if back.Subject[0].Name != "registry.test/app" || string(back.Predicate) != tc.wantPredicate {
				t.Fatalf("round trip: %s", raw)
			}
		})
	}
}

func TestPredicateTypeURIRejects(t *testing.T) {
	for _, kind := range []string{"", "sbom", "not a uri", "/relative"} {
		if _, err := PredicateTypeURI(kind); err == nil {
			t.Errorf("PredicateTypeURI(%q) accepted", kind)
		}
	}
}

func TestParseStatementRejects(t *testing.T) {
	tests := map[string]string{
		"not JSON":      `{`,
		"unknown _type": `{"_type":"x","predicateType":"p","subject":[{"digest":{"sha256":"a"}}]}`,
		"no subject":    `{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":[]}`,
		"no digest":     `{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":[{"name":"a"}]}`,
		"no type":       `{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"digest":{"sha256":"a"}}]}`,
	}
	for name, doc := range tests {
		if _, err := ParseStatement([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestEnvelopeSignVerify(t *testing.T) {
	ctx := context.Background()
	priv, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	sv, err := keys.SignerVerifier(priv)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := keys.Generate()
	otherV, err := keys.Verifier(other.Public())
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)
	env, err := Sign(ctx, sv, PayloadType, payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(ctx, parsed, sv)
	if err != nil || string(got) != string(payload) {
		t.Fatalf("Verify = %q, %v", got, err)
	}

	if _, err := Verify(ctx, parsed, otherV); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other key: err = %v", err)
	}
	tampered := *parsed
	tampered.Payload = base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(payload), "v1", "v2", 1)))
	if _, err := Verify(ctx, &tampered, sv); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered payload: err = %v", err)
	}
	retyped := *parsed
	retyped.PayloadType = "text/plain"
	if _, err := Verify(ctx, &retyped, sv); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("changed payload type: err = %v", err)
	}
}

func TestParseEnvelopeRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"not JSON":      `[`,
		"no payload":    `{"payloadType":"x","signatures":[{"sig":"AA=="}]}`,
		"no signatures": `{"payloadType":"x","payload":"AA==","signatures":[]}`,
	} {
		if _, err := ParseEnvelope([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseStatement(f *testing.F) {
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":[{"digest":{"sha256":"a"}}],"predicate":{}}`))
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v0.1","subject":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStatement(data)
		if err == nil && (len(st.Subject) == 0 || st.PredicateType == "") {
			t.Fatal("accepted a statement without subject or predicate type")
		}
	})
}

func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"","sig":"AA=="}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvelope(data)
		if err == nil && len(env.Signatures) == 0 {
			t.Fatal("accepted an envelope without signatures")
		}
	})
}

// TestStatementMarshalKeepsPredicateBytes: the signed statement carries the
// predicate as written, "&" and "<" included (json.Marshal would escape
// them), so a verifier can compare it with the tool's output file.
func TestStatementMarshalKeepsPredicateBytes(t *testing.T) {
	const pred = `{"purl":"pkg:oci/app@sha256:ab?arch=amd64&tag=v1","note":"<none>"}`
	st, err := NewStatement("cyclonedx", []byte(pred), "registry.test/app", digest, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	body, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), pred) || strings.HasSuffix(string(body), "\n") {
		t.Fatalf("statement %s does not hold the predicate byte for byte", body)
	}
	back, err := ParseStatement(body)
	if err != nil {
		t.Fatal(err)
	}
	if string(back.Predicate) != pred {
		t.Fatalf("round trip: %s", back.Predicate)
	}
}
