package sarif

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/secret"
)

// secretRulePrefix keeps secret rule ids apart from vulnerability ids.
const secretRulePrefix = "secret/"

// addSecrets adds one rule per secret rule that found something and one
// result per secret, located at the file and line (or, for the config,
// at the image), the masked match in the message. Allowed ones carry an
// accepted suppression with the allow rule's reason.
func addSecrets(r *match.Report, rules []rule, results []result, image string) ([]rule, []result) {
	index := map[string]int{}
	for i := range r.Secrets {
		f := &r.Secrets[i]
		id := secretRulePrefix + f.RuleID
		idx, ok := index[id]
		if !ok {
			idx = len(rules)
			index[id] = idx
			rules = append(rules, secretRule(f))
		}
		results = append(results, secretResult(f, id, idx, image))
	}
	return rules, results
}

func secretRule(f *secret.Finding) rule {
	desc := strings.TrimSpace(f.Description)
	title := "Secret: " + f.RuleID
	md := fmt.Sprintf("**%s**: %s\n\nSeverity: %s\n\nA credential in an image can be read by anyone who can pull the image, "+
		"from any layer, even when a later layer deletes the file. Revoke it, then rebuild the image without it: pass "+
		"credentials at run time (secrets, environment of the container) or with build secrets (`RUN --mount=type=secret`), "+
		"never with COPY, ENV or ARG.", escapeMarkdown(f.RuleID), escapeMarkdown(desc), f.Severity)
	plain := fmt.Sprintf("%s: %s\n\nSeverity: %s\n\nA credential in an image can be read by anyone who can pull the image, "+
		"from any layer, even when a later layer deletes the file. Revoke it, then rebuild the image without it: pass "+
		"credentials at run time or with build secrets (RUN --mount=type=secret), never with COPY, ENV or ARG.",
		printable(f.RuleID), printable(desc), f.Severity)
	sev := match.Severity(f.Severity)
	return rule{
		ID:                   secretRulePrefix + f.RuleID,
		Name:                 secretRuleName(f.RuleID),
		ShortDescription:     text{Text: title},
		FullDescription:      text{Text: printable(desc)},
		Help:                 help{Text: plain, Markdown: md},
		DefaultConfiguration: configuration{Level: level(sev)},
		Properties: ruleProps{
			SecuritySeverity: bandScore(sev),
			Precision:        "high",
			Tags:             []string{"secret", "security", f.Severity},
		},
	}
}

func secretResult(f *secret.Finding, id string, idx int, image string) result {
	var msg strings.Builder
	fmt.Fprintf(&msg, "%s (%s) in %s: %s.", f.RuleID, f.Severity, secretPlace(f), f.Match)
	if f.Layer != "" {
		fmt.Fprintf(&msg, " Added by layer %s", shortDigest(f.Layer))
		if f.CreatedBy != "" {
			fmt.Fprintf(&msg, " (%s)", f.CreatedBy)
		}
		msg.WriteString(".")
	}
	if f.RemovedBy != "" {
		fmt.Fprintf(&msg, " Deleted by layer %s, but still in the image.", shortDigest(f.RemovedBy))
	}
	var loc location
	if f.Kind == secret.KindFile || f.Kind == secret.KindName {
		line := max(f.StartLine, 1)
		loc = location{PhysicalLocation: physicalLocation{
			ArtifactLocation: artifactLoc{URI: (&url.URL{Path: f.Path}).String(), URIBaseID: rootBase},
			Region:           region{StartLine: line, StartColumn: 1, EndLine: max(f.EndLine, line), EndColumn: 1},
		}}
	} else {
		loc = location{PhysicalLocation: physicalLocation{
			ArtifactLocation: artifactLoc{URI: (&url.URL{Path: image}).String()},
			Region:           region{StartLine: 1, StartColumn: 1, EndLine: 1, EndColumn: 1},
		}, Message: &text{Text: printable(secretPlace(f))}}
	}
	props := map[string]any{}
	addProp(props, "kind", f.Kind)
	addProp(props, "severity", f.Severity)
	addProp(props, "layerDiffID", f.Layer)
	addProp(props, "layerCreatedBy", f.CreatedBy)
	addProp(props, "removedBy", f.RemovedBy)
	res := result{
		RuleID:              id,
		RuleIndex:           idx,
		Level:               level(match.Severity(f.Severity)),
		Message:             text{Text: printable(msg.String())},
		Locations:           []location{loc},
		PartialFingerprints: map[string]string{"berthSecret/v1": f.Fingerprint},
		Properties:          props,
	}
	if f.Allowed != "" {
		res.Suppressions = []suppression{{Kind: "external", Status: "accepted", Justification: printable(f.Allowed)}}
	}
	return res
}

func secretPlace(f *secret.Finding) string {
	switch f.Kind {
	case secret.KindFile:
		if f.StartLine > 0 {
			return fmt.Sprintf("/%s line %d", f.Path, f.StartLine)
		}
		return "/" + f.Path
	case secret.KindName:
		return "the name /" + f.Path
	case secret.KindEnv:
		return "Env " + f.Path
	case secret.KindLabel:
		return "label " + f.Path
	case secret.KindHistory:
		if f.History != nil {
			return fmt.Sprintf("history entry %d", *f.History)
		}
		return "the history"
	}
	return f.Path
}

// bandScore is a score inside a rating's band, for GitHub's ranking.
func bandScore(s match.Severity) string {
	switch s {
	case match.SeverityCritical:
		return "9.5"
	case match.SeverityHigh:
		return "8.0"
	case match.SeverityMedium:
		return "5.5"
	case match.SeverityLow:
		return "2.0"
	}
	return "0.0"
}

// secretRuleName is a rule id in SARIF's PascalCase name form:
// "github-pat" is "SecretGithubPat".
func secretRuleName(id string) string { return pascal("Secret", id) }

// pascal joins prefix and the words of s, each capitalised.
func pascal(prefix, s string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		b.WriteString(strings.ToUpper(part[:1]) + strings.ToLower(part[1:]))
	}
	return b.String()
}
