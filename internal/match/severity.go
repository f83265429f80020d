package match

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	cvss20 "github.com/pandatix/go-cvss/20"
	cvss30 "github.com/pandatix/go-cvss/30"
	cvss31 "github.com/pandatix/go-cvss/31"
	cvss40 "github.com/pandatix/go-cvss/40"

	"berth.dev/berth/internal/osv"
)

// Severity is a rating on Trivy's scale.
type Severity string

// Severities, lowest to highest.
const (
	SeverityUnknown  Severity = "UNKNOWN"
	SeverityNone     Severity = "NONE"
	SeverityLow      Severity = "LOW"
	SeverityMedium   Severity = "MEDIUM"
	SeverityHigh     Severity = "HIGH"
	SeverityCritical Severity = "CRITICAL"
)

// Rank orders severities: UNKNOWN 0, NONE 1 … CRITICAL 5.
func (s Severity) Rank() int {
	switch s {
	case SeverityNone:
		return 1
	case SeverityLow:
		return 2
	case SeverityMedium:
		return 3
	case SeverityHigh:
		return 4
	case SeverityCritical:
		return 5
	}
	return 0
}

// ParseSeverity reads a severity name in any case.
func ParseSeverity(s string) (Severity, error) {
	sev := Severity(strings.ToUpper(strings.TrimSpace(s)))
	if sev.Rank() == 0 && sev != SeverityUnknown {
		return "", fmt.Errorf("unknown severity %q (want UNKNOWN, NONE, LOW, MEDIUM, HIGH or CRITICAL)", s)
	}
	return sev, nil
}

// ParseSeverities reads a comma-separated list such as Trivy's --severity
// value, "HIGH,CRITICAL".
func ParseSeverities(list string) ([]Severity, error) {
	var out []Severity
	for _, f := range strings.Split(list, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		s, err := ParseSeverity(f)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty severity list %q", list)
	}
	return out, nil
}

// CVSS is one scored vector from a record.
type CVSS struct {
	Version string  `json:"version"` // "2.0", "3.0", "3.1", "4.0"
	Vector  string  `json:"vector"`
	Score   float64 `json:"score"`
	Source  string  `json:"source"` // the record ID that carried it
}

// cvssRank orders CVSS versions: the newest present decides severity.
func cvssRank(v string) int {
	switch v {
	case "4.0":
		return 4
	case "3.1":
		return 3
	case "3.0":
		return 2
	case "2.0":
		return 1
	}
	return 0
}

// scoreVector computes the base score of a CVSS vector of any version.
func scoreVector(vector string) (CVSS, error) {
	switch {
	case strings.HasPrefix(vector, "CVSS:4.0/"):
		c, err := cvss40.ParseVector(vector)
		if err != nil {
			return CVSS{}, err
		}
		return CVSS{Version: "4.0", Vector: vector, Score: c.Score()}, nil
	case strings.HasPrefix(vector, "CVSS:3.1/"):
		c, err := cvss31.ParseVector(vector)
		if err != nil {
			return CVSS{}, err
		}
		return CVSS{Version: "3.1", Vector: vector, Score: c.BaseScore()}, nil
	case strings.HasPrefix(vector, "CVSS:3.0/"):
		c, err := cvss30.ParseVector(vector)
		if err != nil {
			return CVSS{}, err
		}
		return CVSS{Version: "3.0", Vector: vector, Score: c.BaseScore()}, nil
	default:
		// CVSS v2 vectors have no prefix; some feeds add "(…)" around them.
		c, err := cvss20.ParseVector(strings.Trim(vector, "()"))
		if err != nil {
			return CVSS{}, err
		}
		return CVSS{Version: "2.0", Vector: vector, Score: c.BaseScore()}, nil
	}
}

// ratingForScore maps a base score to the qualitative rating of its CVSS
// version; v2 has no CRITICAL band.
func ratingForScore(version string, score float64) Severity {
	switch {
	case score <= 0:
		return SeverityNone
	case score < 4:
		return SeverityLow
	case score < 7:
		return SeverityMedium
	case score < 9 || version == "2.0":
		return SeverityHigh
	}
	return SeverityCritical
}

// ratingWord maps the words distros and GHSA use to the scale; "" when the
// word is not a rating.
func ratingWord(w string) Severity {
	switch strings.ToLower(strings.TrimSpace(w)) {
	case "critical":
		return SeverityCritical
	case "high", "important":
		return SeverityHigh
	case "medium", "moderate":
		return SeverityMedium
	case "low", "negligible", "unimportant":
		return SeverityLow
	case "none":
		return SeverityNone
	}
	return ""
}

// severityEvidence is what one record says about severity for one package.
type severityEvidence struct {
	cvss         []CVSS
	distroRating Severity // from a distro's own rating of the record
	distroSource string
	dbRating     Severity // database_specific.severity (GHSA)
	warnings     []string
}

// collectSeverity reads the scores of a record and of its affected entry.
func collectSeverity(v *osv.Vulnerability, aff *osv.Affected, distro bool) severityEvidence {
	var ev severityEvidence
	sevs := append(append([]osv.Severity(nil), v.Severity...), aff.Severity...)
	for _, s := range sevs {
		switch s.Type {
		case "CVSS_V2", "CVSS_V3", "CVSS_V4":
			c, err := scoreVector(s.Score)
			if err != nil {
				ev.warnings = append(ev.warnings, fmt.Sprintf("%s: CVSS vector %q: %v", v.ID, s.Score, err))
				continue
			}
			c.Source = v.ID
			ev.cvss = append(ev.cvss, c)
		case "Ubuntu":
			if r := ratingWord(s.Score); r != "" {
				ev.distroRating, ev.distroSource = r, "ubuntu"
			}
		}
	}
	if distro {
		for _, raw := range []json.RawMessage{aff.EcosystemSpecific, aff.DatabaseSpecific, v.DatabaseSpecific} {
			if r := ratingField(raw, true); r != "" && ev.distroRating == "" {
				ev.distroRating = r
				ev.distroSource = strings.ToLower(strings.SplitN(aff.Package.Ecosystem, ":", 2)[0])
			}
		}
	} else if r := ratingField(v.DatabaseSpecific, false); r != "" {
		ev.dbRating = r
	}
	return ev
}

// ratingField reads the rating word of a "severity" or (with urgency) an
// "urgency" field of a JSON object; "" when absent or not a rating.
func ratingField(raw json.RawMessage, urgency bool) Severity {
	// Most records carry neither field; skip decoding them.
	if len(raw) == 0 || !bytes.Contains(raw, []byte(`"severity"`)) && !(urgency && bytes.Contains(raw, []byte(`"urgency"`))) {
		return ""
	}
	var f struct {
		Severity json.RawMessage `json:"severity"`
		Urgency  string          `json:"urgency"`
	}
	if json.Unmarshal(raw, &f) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(f.Severity, &s) == nil {
		if r := ratingWord(s); r != "" {
			return r
		}
	}
	if urgency {
		return ratingWord(f.Urgency)
	}
	return ""
}

// decideSeverity picks a finding's severity from the evidence of all its
// records, as Trivy does: a distro's own rating first (it knows how the
// package is built and used there), then the base score of the newest
// CVSS version present (the highest score among vectors of that version),
// then a database's rating word (GHSA), else UNKNOWN.
func decideSeverity(evs []severityEvidence) (Severity, string) {
	for _, ev := range evs {
		if ev.distroRating != "" {
			return ev.distroRating, ev.distroSource
		}
	}
	var best *CVSS
	for _, ev := range evs {
		for i := range ev.cvss {
			c := &ev.cvss[i]
			if best == nil || cvssRank(c.Version) > cvssRank(best.Version) ||
				cvssRank(c.Version) == cvssRank(best.Version) && c.Score > best.Score {
				best = c
			}
		}
	}
	if best != nil {
		return ratingForScore(best.Version, best.Score), "cvss_v" + best.Version
	}
	for _, ev := range evs {
		if ev.dbRating != "" {
			return ev.dbRating, "database"
		}
	}
	return SeverityUnknown, ""
}
