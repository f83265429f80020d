package attestation

import (
	"encoding/json"
	"time"
)

// VulnPredicate is cosign's vulnerability scan record, the predicate of
// type PredicateVuln (`cosign attest --type vuln`, Trivy's cosign-vuln
// format). The field names are cosign's: `cosign verify-attestation --type
// vuln` decodes the predicate into its own struct of this shape, so the
// timestamps must be RFC 3339 and the objects must be objects.
type VulnPredicate struct {
	Invocation VulnInvocation `json:"invocation"`
	Scanner    VulnScanner    `json:"scanner"`
	Metadata   VulnMetadata   `json:"metadata"`
}

// Marshal encodes the predicate with the result byte for byte (json.Marshal
// would escape every "&" and "<" in it).
func (p *VulnPredicate) Marshal() ([]byte, error) { return marshalVerbatim(p) }

// VulnInvocation says how the scan was run. cosign leaves everything but
// Parameters free-form; CI systems fill URI, EventID and BuilderID.
type VulnInvocation struct {
	Parameters any    `json:"parameters"`
	URI        string `json:"uri"`
	EventID    string `json:"event_id"`
	BuilderID  string `json:"builder.id"`
}

// VulnScanner names the scanner and its database, and carries the result
// in the scanner's own report format.
type VulnScanner struct {
	URI     string          `json:"uri"`
	Version string          `json:"version"`
	DB      VulnDB          `json:"db"`
	Result  json.RawMessage `json:"result"`
}

// VulnDB identifies the vulnerability data the result was matched against.
type VulnDB struct {
	URI     string `json:"uri"`
	Version string `json:"version"`
}

// VulnMetadata bounds the scan in time.
type VulnMetadata struct {
	ScanStartedOn  time.Time `json:"scanStartedOn"`
	ScanFinishedOn time.Time `json:"scanFinishedOn"`
}
