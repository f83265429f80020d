package sarif

import (
	"fmt"
	"io"
	"net/url"
	"strings"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/misconfig"
	"berth.dev/berth/internal/report/internal/indentjson"
)

// misconfigRulePrefix keeps misconfiguration rule ids apart.
const misconfigRulePrefix = "misconfig/"

// addMisconfig adds one rule per failed check and one result per
// finding: located at the Dockerfile line, the image file, or the image.
func addMisconfig(r *match.Report, rules []rule, results []result, image string) ([]rule, []result) {
	return AddMisconfig(r.Misconfigurations, rules, results, image)
}

// AddMisconfig is addMisconfig for findings outside a report (berth lint).
func AddMisconfig(fs []misconfig.Finding, rules []rule, results []result, image string) ([]rule, []result) {
	index := map[string]int{}
	for i := range fs {
		f := &fs[i]
		id := misconfigRulePrefix + f.ID
		idx, ok := index[id]
		if !ok {
			idx = len(rules)
			index[id] = idx
			rules = append(rules, misconfigRule(f))
		}
		results = append(results, misconfigResult(f, id, idx, image))
	}
	return rules, results
}

func misconfigRule(f *misconfig.Finding) rule {
	mr, _ := misconfig.Lookup(f.ID)
	sev := match.Severity(f.Severity)
	return rule{
		ID:               misconfigRulePrefix + f.ID,
		Name:             pascal("Misconfig", mr.Title),
		ShortDescription: text{Text: f.ID + ": " + mr.Title},
		FullDescription:  text{Text: mr.Description},
		Help: help{
			Text:     fmt.Sprintf("%s: %s\n\n%s\n\nFix: %s", f.ID, mr.Title, mr.Description, mr.Fix),
			Markdown: fmt.Sprintf("**%s**: %s\n\n%s\n\n**Fix:** %s", f.ID, escapeMarkdown(mr.Title), escapeMarkdown(mr.Description), escapeMarkdown(mr.Fix)),
		},
		DefaultConfiguration: configuration{Level: level(sev)},
		Properties: ruleProps{
			SecuritySeverity: bandScore(sev),
			Precision:        "high",
			Tags:             []string{"misconfiguration", "security", f.Severity},
		},
	}
}

func misconfigResult(f *misconfig.Finding, id string, idx int, image string) result {
	msg := fmt.Sprintf("%s (%s): %s. %s", f.ID, f.Severity, f.Title, f.Evidence)
	var loc location
	switch {
	case f.Line > 0:
		u := &url.URL{Path: f.Target}
		if strings.HasPrefix(f.Target, "/") {
			u.Scheme = "file" // absolute: a file URI; relative paths stay relative to the repository
		}
		loc = location{PhysicalLocation: physicalLocation{
			ArtifactLocation: artifactLoc{URI: u.String()},
			Region:           region{StartLine: f.Line, StartColumn: 1, EndLine: max(f.EndLine, f.Line), EndColumn: 1},
		}}
	case f.Path != "":
		loc = location{PhysicalLocation: physicalLocation{
			ArtifactLocation: artifactLoc{URI: (&url.URL{Path: f.Path}).String(), URIBaseID: rootBase},
			Region:           region{StartLine: 1, StartColumn: 1, EndLine: 1, EndColumn: 1},
		}}
	default:
		loc = location{PhysicalLocation: physicalLocation{
			ArtifactLocation: artifactLoc{URI: (&url.URL{Path: image}).String()},
			Region:           region{StartLine: 1, StartColumn: 1, EndLine: 1, EndColumn: 1},
		}, Message: &text{Text: "the image config"}}
	}
	props := map[string]any{}
	addProp(props, "severity", f.Severity)
	addProp(props, "layerDiffID", f.Layer)
	addProp(props, "layerCreatedBy", f.CreatedBy)
	return result{
		RuleID:              id,
		RuleIndex:           idx,
		Level:               level(match.Severity(f.Severity)),
		Message:             text{Text: printable(msg)},
		Locations:           []location{loc},
		PartialFingerprints: map[string]string{"berthMisconfig/v1": fingerprintOf(f.ID, f.Target, f.Path, fmt.Sprint(f.Line), f.Evidence)},
		Properties:          props,
	}
}

func fingerprintOf(parts ...string) string {
	f := &match.Finding{ID: strings.Join(parts, "\x00")}
	return fingerprint(f)
}

// EncodeLint writes Dockerfile lint findings (`berth lint`) as a SARIF
// log: one rule per failed check, results at the Dockerfile's lines.
func EncodeLint(w io.Writer, fs []misconfig.Finding, meta Meta) error {
	rules, results := AddMisconfig(fs, nil, nil, "")
	if rules == nil {
		rules, results = []rule{}, []result{}
	}
	l := &log{
		Schema:  SchemaURI,
		Version: "2.1.0",
		Runs: []run{{
			Tool:               tool{Driver: driver{Name: "berth", Version: meta.ToolVersion, InformationURI: meta.InformationURI, Rules: rules}},
			OriginalURIBaseIDs: map[string]artifactLoc{},
			Results:            results,
			ColumnKind:         "utf16CodeUnits",
		}},
	}
	if err := indentjson.Encode(w, l); err != nil {
		return fmt.Errorf("write SARIF: %w", err)
	}
	return nil
}
