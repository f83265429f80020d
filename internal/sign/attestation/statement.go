// Package attestation builds and checks in-toto statements and the DSSE
// envelopes that carry them, in the shapes cosign writes and reads.
package attestation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Statement type URIs. berth writes v1; statements cosign writes with
// `cosign attest` still say v0.1, which has the same JSON shape.
const (
	StatementV1  = "https://in-toto.io/Statement/v1"
	StatementV01 = "https://in-toto.io/Statement/v0.1"
)

// PayloadType is the DSSE payload type of an in-toto statement.
const PayloadType = "application/vnd.in-toto+json"

// Predicate type URIs, as cosign maps its --type names.
const (
	PredicateCustom     = "https://cosign.sigstore.dev/attestation/v1"
	PredicateVuln       = "https://cosign.sigstore.dev/attestation/vuln/v1"
	PredicateSLSA02     = "https://slsa.dev/provenance/v0.2"
	PredicateSLSA1      = "https://slsa.dev/provenance/v1"
	PredicateSPDX       = "https://spdx.dev/Document"
	PredicateCycloneDX  = "https://cyclonedx.org/bom"
	PredicateLink       = "https://in-toto.io/Link/v1"
	PredicateOpenVEX    = "https://openvex.dev/ns"
	PredicateCosignSign = "https://sigstore.dev/cosign/sign/v1"
)

// ErrBadPredicate means a predicate does not fit the type it is declared as.
var ErrBadPredicate = errors.New("bad predicate")

// kinds maps cosign's --type short names to how the predicate is built.
var kinds = map[string]struct {
	uri string
	// build turns the raw predicate file into the predicate JSON.
	build func(raw []byte, now time.Time) (json.RawMessage, error)
}{
	"custom":           {PredicateCustom, customPredicate},
	"slsaprovenance":   {PredicateSLSA02, requireFields("builder", "buildType")},
	"slsaprovenance02": {PredicateSLSA02, requireFields("builder", "buildType")},
	"slsaprovenance1":  {PredicateSLSA1, requireFields("buildDefinition", "runDetails")},
	"spdx":             {PredicateSPDX, stringPredicate},
	"spdxjson":         {PredicateSPDX, jsonPredicate},
	"cyclonedx":        {PredicateCycloneDX, jsonPredicate},
	"link":             {PredicateLink, requireFields("_type", "name", "materials", "products", "byproducts", "command", "environment")},
	"vuln":             {PredicateVuln, jsonObjectPredicate},
	"openvex":          {PredicateOpenVEX, jsonPredicate},
}

// Kinds lists the short predicate type names berth and cosign accept.
func Kinds() []string {
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// PredicateTypeURI resolves a short name (e.g. "cyclonedx") or an absolute
// URI to the predicate type URI.
func PredicateTypeURI(kind string) (string, error) {
	if k, ok := kinds[kind]; ok {
		return k.uri, nil
	}
	u, err := url.Parse(kind)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "", fmt.Errorf("predicate type %q: want one of %s, or an absolute URI", kind, strings.Join(Kinds(), ", "))
	}
	return kind, nil
}

// Subject is an in-toto resource descriptor: what a statement is about.
type Subject struct {
	Name        string            `json:"name,omitempty"`
	Digest      map[string]string `json:"digest"`
	Annotations map[string]any    `json:"annotations,omitempty"`
}

// Statement is an in-toto statement. The predicate stays as raw JSON so that
// a document signed by someone else is checked and printed byte for byte.
type Statement struct {
	Type          string          `json:"_type"`
	Subject       []Subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate,omitempty"`
}

// NewStatement wraps the predicate file raw, of the given kind (a short name
// or a URI), in a statement about one image: repo is the repository name
// (e.g. "registry.example/app"), digest its "sha256:<hex>" manifest digest.
// now stamps cosign's custom predicate.
func NewStatement(kind string, raw []byte, repo, digest string, now time.Time) (*Statement, error) {
	algo, hex, ok := strings.Cut(digest, ":")
	if !ok || algo == "" || hex == "" {
		return nil, fmt.Errorf("subject digest %q: want algorithm:hex", digest)
	}
	uri, err := PredicateTypeURI(kind)
	if err != nil {
		return nil, err
	}
	build := jsonObjectPredicate
	if k, ok := kinds[kind]; ok {
		build = k.build
	}
	pred, err := build(raw, now)
	if err != nil {
		return nil, fmt.Errorf("predicate of type %s: %w", uri, err)
	}
	return &Statement{
		Type:          StatementV1,
		Subject:       []Subject{{Name: repo, Digest: map[string]string{algo: hex}}},
		PredicateType: uri,
		Predicate:     pred,
	}, nil
}

// Marshal encodes the statement as it is signed. Unlike json.Marshal it
// leaves <, > and & alone, so the predicate keeps its bytes (a purl's
// "&" stays "&"): what is signed is exactly the document the tool wrote.
func (s *Statement) Marshal() ([]byte, error) { return marshalVerbatim(s) }

// marshalVerbatim is json.Marshal without HTML escaping, so embedded raw
// documents keep their bytes.
func marshalVerbatim(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ParseStatement reads a statement and checks the fields every consumer
// relies on.
func ParseStatement(data []byte) (*Statement, error) {
	var st Statement
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("in-toto statement: %w", err)
	}
	if st.Type != StatementV1 && st.Type != StatementV01 {
		return nil, fmt.Errorf("in-toto statement: unknown _type %q", st.Type)
	}
	if st.PredicateType == "" {
		return nil, errors.New("in-toto statement: no predicateType")
	}
	if len(st.Subject) == 0 {
		return nil, errors.New("in-toto statement: no subject")
	}
	for i, s := range st.Subject {
		if len(s.Digest) == 0 {
			return nil, fmt.Errorf("in-toto statement: subject %d has no digest", i)
		}
	}
	return &st, nil
}

// About reports whether one of the statement's subjects has the digest
// "algorithm:hex".
func (s *Statement) About(digest string) bool {
	algo, hex, ok := strings.Cut(digest, ":")
	if !ok {
		return false
	}
	for _, sub := range s.Subject {
		if v, ok := sub.Digest[algo]; ok && strings.EqualFold(v, hex) {
			return true
		}
	}
	return false
}

func customPredicate(raw []byte, now time.Time) (json.RawMessage, error) {
	// cosign's custom predicate: the file as a string, capitalised keys.
	return json.Marshal(struct {
		Data      string
		Timestamp string
	}{string(raw), now.UTC().Format(time.RFC3339)})
}

func stringPredicate(raw []byte, _ time.Time) (json.RawMessage, error) {
	return json.Marshal(string(raw))
}

func jsonPredicate(raw []byte, _ time.Time) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%w: not valid JSON", ErrBadPredicate)
	}
	return compact(raw)
}

func jsonObjectPredicate(raw []byte, _ time.Time) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%w: want a JSON object: %v", ErrBadPredicate, err)
	}
	return compact(raw)
}

// requireFields returns a builder that insists on top-level keys, as cosign
// does for the typed predicates it knows.
func requireFields(fields ...string) func([]byte, time.Time) (json.RawMessage, error) {
	return func(raw []byte, _ time.Time) (json.RawMessage, error) {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("%w: want a JSON object: %v", ErrBadPredicate, err)
		}
		for _, f := range fields {
			if _, ok := obj[f]; !ok {
				return nil, fmt.Errorf("%w: required field %q missing", ErrBadPredicate, f)
			}
		}
		return compact(raw)
	}
}

func compact(raw []byte) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPredicate, err)
	}
	return buf.Bytes(), nil
}
