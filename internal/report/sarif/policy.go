package sarif

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"

	"berth.dev/berth/internal/report/internal/indentjson"
)

// PolicyResult is one failed policy rule for an image, as `berth policy
// check --format sarif` reports it.
type PolicyResult struct {
	// Policy is the document ("ImagePolicy/prod"), Rule the rule that
	// failed ("signature").
	Policy, Rule string
	Image        string
	Message      string
	// Warning marks a rule of a document in warn mode.
	Warning bool
	// PolicyFile is the file the policy came from: the result's location.
	PolicyFile string
}

// EncodePolicy writes policy results as a SARIF 2.1.0 log: one rule per
// (document, rule), one result per failure, located at the policy file
// (the image itself has no file to point at).
func EncodePolicy(w io.Writer, results []PolicyResult, meta Meta) error {
	ids := map[string]int{}
	var rules []rule
	var res []result
	sort.SliceStable(results, func(i, j int) bool { return results[i].Policy+results[i].Rule < results[j].Policy+results[j].Rule })
	for _, r := range results {
		id := r.Policy + "/" + r.Rule
		idx, ok := ids[id]
		if !ok {
			idx = len(rules)
			ids[id] = idx
			desc := fmt.Sprintf("The %s rule of %s", r.Rule, r.Policy)
			rules = append(rules, rule{ID: id, Name: r.Rule, ShortDescription: text{desc}, FullDescription: text{desc},
				Help:                 help{Text: desc + " must pass for the image to be pulled and run.", Markdown: desc + " must pass for the image to be pulled and run."},
				DefaultConfiguration: configuration{Level: "error"},
				Properties:           ruleProps{SecuritySeverity: "8.0", Precision: "very-high", Tags: []string{"security", "policy"}}})
		}
		level := "error"
		if r.Warning {
			level = "warning"
		}
		res = append(res, result{RuleID: id, RuleIndex: idx, Level: level, Message: text{r.Image + ": " + r.Message},
			Locations: []location{{PhysicalLocation: physicalLocation{ArtifactLocation: artifactLoc{URI: r.PolicyFile},
				Region: region{StartLine: 1, StartColumn: 1, EndLine: 1, EndColumn: 1}}}},
			PartialFingerprints: map[string]string{"policyRule/v1": policyFingerprint(id, r.Image)},
			Properties:          map[string]any{"image": r.Image}})
	}
	if rules == nil {
		rules = []rule{}
	}
	if res == nil {
		res = []result{}
	}
	doc := log{Schema: SchemaURI, Version: "2.1.0", Runs: []run{{
		Tool:               tool{Driver: driver{Name: "berth", Version: meta.ToolVersion, InformationURI: meta.InformationURI, Rules: rules}},
		OriginalURIBaseIDs: map[string]artifactLoc{},
		Results:            res,
		ColumnKind:         "utf16CodeUnits",
	}}}
	if err := indentjson.Encode(w, doc); err != nil {
		return fmt.Errorf("write SARIF: %w", err)
	}
	return nil
}

// policyFingerprint identifies a failure across runs: the same rule
// failing for the same image is the same alert.
func policyFingerprint(id, image string) string {
	sum := sha256.Sum256([]byte(id + "\x00" + image))
	return hex.EncodeToString(sum[:16])
}
