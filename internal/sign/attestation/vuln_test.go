package attestation

import (
	"encoding/json"
	"testing"
	"time"
)

// TestVulnPredicateShape pins the JSON keys to cosign's: a renamed field
// would still round-trip through berth but not through cosign.
func TestVulnPredicateShape(t *testing.T) {
	p := VulnPredicate{
		Invocation: VulnInvocation{Parameters: []string{"--severity=HIGH+"}},
		Scanner: VulnScanner{
			URI:     "pkg:golang/berth.dev/berth@v1.0.0",
			Version: "v1.0.0",
			DB:      VulnDB{URI: "osv https://osv.example", Version: "2025-06-01T12:00:00Z"},
			Result:  json.RawMessage(`{"createdBy":"RUN a && b <c>"}`),
		},
		Metadata: VulnMetadata{
			ScanStartedOn:  time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
			ScanFinishedOn: time.Date(2025, 6, 1, 12, 0, 1, 500_000_000, time.UTC),
		},
	}
	got, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"invocation":{"parameters":["--severity=HIGH+"],"uri":"","event_id":"","builder.id":""},` +
		`"scanner":{"uri":"pkg:golang/berth.dev/berth@v1.0.0","version":"v1.0.0","db":{"uri":"osv https://osv.example","version":"2025-06-01T12:00:00Z"},"result":{"createdBy":"RUN a && b <c>"}},` +
		`"metadata":{"scanStartedOn":"2025-06-01T12:00:00Z","scanFinishedOn":"2025-06-01T12:00:01.5Z"}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	st, err := NewStatement("vuln", got, "registry.test/app", digest, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if st.PredicateType != PredicateVuln || string(st.Predicate) != want {
		t.Fatalf("statement %s %s", st.PredicateType, st.Predicate)
	}
}
