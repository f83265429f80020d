package sarif

import (
	"fmt"

	"berth.dev/berth/internal/match"
)

// addLicenses adds the license policy's violations: one rule per class
// of the refused licenses, one result per package, at the file that
// declares the package. Licenses that pass are not results.
func addLicenses(r *match.Report, rules []rule, results []result, image string) ([]rule, []result) {
	index := map[string]int{}
	for i := range r.Licenses {
		l := &r.Licenses[i]
		if l.Violation == "" {
			continue
		}
		id := "license/" + string(l.Class)
		idx, ok := index[id]
		sev := match.Severity(l.Severity)
		if !ok {
			idx = len(rules)
			index[id] = idx
			desc := fmt.Sprintf("A package's license (%s) is refused by the scan's license policy (--license-allow, --license-deny).", l.Class)
			rules = append(rules, rule{
				ID:                   id,
				Name:                 pascal("License", string(l.Class)),
				ShortDescription:     text{Text: "License policy: " + string(l.Class)},
				FullDescription:      text{Text: desc},
				Help:                 help{Text: desc + "\n\nReplace the package, get another license for it, or change the policy.", Markdown: escapeMarkdown(desc) + "\n\nReplace the package, get another license for it, or change the policy."},
				DefaultConfiguration: configuration{Level: level(sev)},
				Properties:           ruleProps{SecuritySeverity: bandScore(sev), Precision: "high", Tags: []string{"license", string(l.Class)}},
			})
		}
		loc := fileLocation(image, "", nil)
		for _, p := range r.Inventory.Packages {
			if p.PURL == l.PURL && len(p.Locations) > 0 {
				loc = fileLocation(trimSlash(p.Locations[0]), rootBase, nil)
				break
			}
		}
		props := map[string]any{}
		addProp(props, "purl", l.PURL)
		addProp(props, "license", l.License)
		addProp(props, "class", string(l.Class))
		results = append(results, result{
			RuleID:              id,
			RuleIndex:           idx,
			Level:               level(sev),
			Message:             text{Text: printable(fmt.Sprintf("%s %s (%s): license %q: %s.", l.Name, l.Version, l.Ecosystem, l.License, l.Violation))},
			Locations:           []location{loc},
			PartialFingerprints: map[string]string{"berthLicense/v1": fingerprintOf(id, l.PURL, l.Name, l.Version)},
			Properties:          props,
		})
	}
	return rules, results
}

func trimSlash(s string) string {
	for len(s) > 0 && s[0] == '/' {
		s = s[1:]
	}
	return s
}
