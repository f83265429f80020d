package cyclonedx

import "encoding/json"

// The types below are the part of CycloneDX 1.6 JSON that berth writes,
// and nothing more. They replace github.com/CycloneDX/cyclonedx-go, whose
// BOM reaches hundreds of types (services, formulation, declarations,
// crypto properties…): encoding/json built an encoder for every one of
// them on the first document, and the package's init (encoding/gob,
// encoding/xml, regexps) ran on every berth command. Field order and
// omitempty follow cyclonedx-go's, so the output is the same bytes: the
// tests validate every document against the official schema, decode it
// with cyclonedx-go and check that cyclonedx-go writes it back unchanged.

// CycloneDX constants berth writes.
const (
	bomFormat   = "CycloneDX"
	specVersion = "1.6"

	typeApplication = "application"
	typeContainer   = "container"
	typeLibrary     = "library"
	typeOS          = "operating-system"

	scopeExcluded = "excluded"
	hashSHA256    = "SHA-256"
	declared      = "declared" // license acknowledgement

	methodCVSSv2  = "CVSSv2"
	methodCVSSv3  = "CVSSv3"
	methodCVSSv31 = "CVSSv31"
	methodCVSSv4  = "CVSSv4"
	methodOther   = "other"

	severityUnknown  = "unknown"
	severityNone     = "none"
	severityLow      = "low"
	severityMedium   = "medium"
	severityHigh     = "high"
	severityCritical = "critical"

	statusAffected   = "affected"
	statusUnaffected = "unaffected"

	stateNotAffected = "not_affected"
	stateResolved    = "resolved"
	stateExploitable = "exploitable"
	stateInTriage    = "in_triage"

	justCodeNotPresent    = "code_not_present"
	justCodeNotReachable  = "code_not_reachable"
	justMitigatingControl = "protected_by_mitigating_control"
)

// document is a CycloneDX BOM. components is always written, as [] when
// empty.
type document struct {
	Schema          string          `json:"$schema"`
	BOMFormat       string          `json:"bomFormat"`
	SpecVersion     string          `json:"specVersion"`
	SerialNumber    string          `json:"serialNumber,omitempty"`
	Version         int             `json:"version"`
	Metadata        *metadata       `json:"metadata,omitempty"`
	Components      []component     `json:"components"`
	Dependencies    []dependency    `json:"dependencies,omitempty"`
	Vulnerabilities []vulnerability `json:"vulnerabilities,omitempty"`
}

type metadata struct {
	Timestamp string     `json:"timestamp,omitempty"`
	Tools     *tools     `json:"tools,omitempty"`
	Component *component `json:"component,omitempty"`
}

type tools struct {
	Components []tool `json:"components"`
}

// tool is the component that describes berth in metadata.tools.
// cyclonedx-go wrote tools with json.Marshal, which escapes <, > and &;
// htmlString keeps that.
type tool struct {
	Type    string     `json:"type"`
	Name    string     `json:"name"`
	Version htmlString `json:"version,omitempty"`
}

type component struct {
	BOMRef      string          `json:"bom-ref,omitempty"`
	Type        string          `json:"type"`
	Group       string          `json:"group,omitempty"`
	Name        string          `json:"name"`
	Version     string          `json:"version,omitempty"`
	Description string          `json:"description,omitempty"`
	Scope       string          `json:"scope,omitempty"`
	Hashes      []hash          `json:"hashes,omitempty"`
	Licenses    []licenseChoice `json:"licenses,omitempty"`
	PackageURL  string          `json:"purl,omitempty"`
	Properties  []property      `json:"properties,omitempty"`
}

type hash struct {
	Algorithm string `json:"alg"`
	Value     string `json:"content"`
}

// licenseChoice is either a license or an expression.
type licenseChoice struct {
	License         *licenseInfo `json:"license,omitempty"`
	Expression      string       `json:"expression,omitempty"`
	Acknowledgement string       `json:"acknowledgement,omitempty"`
}

// licenseInfo has an id or a name. cyclonedx-go wrote licenses with
// json.Marshal, which escapes <, > and & in names; htmlString keeps that.
type licenseInfo struct {
	ID              string     `json:"id,omitempty"`
	Name            htmlString `json:"name,omitempty"`
	Acknowledgement string     `json:"acknowledgement,omitempty"`
}

type property struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type dependency struct {
	Ref       string   `json:"ref"`
	DependsOn []string `json:"dependsOn,omitempty"`
}

type vulnerability struct {
	ID             string          `json:"id"`
	Source         *source         `json:"source,omitempty"`
	References     []vulnReference `json:"references,omitempty"`
	Ratings        []rating        `json:"ratings,omitempty"`
	Description    string          `json:"description,omitempty"`
	Recommendation string          `json:"recommendation,omitempty"`
	Advisories     []advisory      `json:"advisories,omitempty"`
	Published      string          `json:"published,omitempty"`
	Updated        string          `json:"updated,omitempty"`
	Analysis       *analysis       `json:"analysis,omitempty"`
	Affects        []affects       `json:"affects,omitempty"`
}

type source struct {
	Name string `json:"name,omitempty"`
	URL  string `json:"url,omitempty"`
}

type vulnReference struct {
	ID     string  `json:"id,omitempty"`
	Source *source `json:"source,omitempty"`
}

type rating struct {
	Source   *source  `json:"source,omitempty"`
	Score    *float64 `json:"score,omitempty"`
	Severity string   `json:"severity,omitempty"`
	Method   string   `json:"method,omitempty"`
	Vector   string   `json:"vector,omitempty"`
}

type advisory struct {
	URL string `json:"url"`
}

type affects struct {
	Ref      string            `json:"ref"`
	Versions []affectedVersion `json:"versions,omitempty"`
}

type affectedVersion struct {
	Version string `json:"version,omitempty"`
	Status  string `json:"status"`
}

// analysis is CycloneDX's impact analysis of a vulnerability.
type analysis struct {
	State         string `json:"state,omitempty"`
	Justification string `json:"justification,omitempty"`
	Detail        string `json:"detail,omitempty"`
	LastUpdated   string `json:"lastUpdated,omitempty"`
}

// htmlString is a string written with <, > and & escaped as \u003c,
// \u003e and \u0026 although the document is encoded without HTML
// escaping: the strings cyclonedx-go wrote through a MarshalJSON of its
// own, which used json.Marshal.
type htmlString string

func (s htmlString) MarshalJSON() ([]byte, error) {
	return json.Marshal(string(s)) // json.Marshal escapes HTML
}
