package cyclonedx

import (
	"cmp"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report/bom"
	"berth.dev/berth/internal/report/internal/indentjson"
	"berth.dev/berth/internal/vex"
)

// EncodeReport writes a vulnerability report as a CycloneDX 1.6 BOM: the
// same document Encode writes for the report's inventory, plus a
// vulnerabilities section.
//
// Each vulnerability names its id and the database that published it,
// the other ids as references, every CVSS vector as a rating (method
// CVSSv2/CVSSv3/CVSSv31/CVSSv4) and, when berth's rating came from a
// distro or GHSA instead, that rating (method "other"); affects lists the
// bom-ref of every component it was found in, with the installed version
// as affected and the fixed versions as unaffected.
//
// VEX statements travel as analysis: findings a not_affected or fixed
// statement suppressed are kept, with state not_affected or resolved, the
// justification and the impact statement, because a CycloneDX document is
// where a consumer expects to read them; an affected or under_investigation
// statement becomes state exploitable or in_triage. Findings an ignore file
// suppressed are left out: an ignore file is the user's local decision to
// stop hearing about something, not a statement about the image.
func EncodeReport(w io.Writer, r *match.Report, meta bom.Meta) error {
	b := bom.Build(&r.Inventory)
	doc := Document(b, meta)
	if vulns := Vulnerabilities(b, r); len(vulns) > 0 {
		doc.Vulnerabilities = &vulns
	}
	if err := indentjson.Encode(w, doc); err != nil {
		return fmt.Errorf("write CycloneDX: %w", err)
	}
	return nil
}

// vulnGroup is the findings that become one vulnerability: one id with one
// analysis.
type vulnGroup struct {
	id       string
	analysis *cdx.VulnerabilityAnalysis
	findings []*match.Finding
}

// Vulnerabilities builds the vulnerabilities section for the findings of
// r, whose inventory b was built from. Findings of one id share an entry
// unless their VEX analyses differ.
func Vulnerabilities(b *bom.BOM, r *match.Report) []cdx.Vulnerability {
	refs := map[string][]string{} // package key → component bom-refs
	for i := range b.Packages {
		k := packageKey(&b.Packages[i].Package)
		refs[k] = append(refs[k], b.Packages[i].Ref)
	}

	var groups []*vulnGroup
	index := map[string]*vulnGroup{}
	add := func(f *match.Finding, a *cdx.VulnerabilityAnalysis) {
		key := f.ID + "\x00" + analysisKey(a)
		g, ok := index[key]
		if !ok {
			g = &vulnGroup{id: f.ID, analysis: a}
			index[key] = g
			groups = append(groups, g)
		}
		g.findings = append(g.findings, f)
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		var a *cdx.VulnerabilityAnalysis
		if f.VEX != nil {
			a = vexAnalysis(f.VEX)
		}
		add(f, a)
	}
	for i := range r.Suppressed {
		s := &r.Suppressed[i]
		if s.Statement == nil {
			continue
		}
		add(&s.Finding, vexAnalysis(s.Statement))
	}
	slices.SortStableFunc(groups, func(a, b *vulnGroup) int {
		return cmp.Or(cmp.Compare(a.id, b.id), cmp.Compare(analysisKey(a.analysis), analysisKey(b.analysis)))
	})

	out := make([]cdx.Vulnerability, 0, len(groups))
	for _, g := range groups {
		out = append(out, vulnerability(g, refs))
	}
	return out
}

func vulnerability(g *vulnGroup, refs map[string][]string) cdx.Vulnerability {
	first := g.findings[0]
	v := cdx.Vulnerability{
		ID:          first.ID,
		Source:      source(first.ID),
		Description: strings.TrimSpace(first.Summary),
		Analysis:    g.analysis,
	}
	if !first.Published.IsZero() {
		v.Published = first.Published.UTC().Format(time.RFC3339)
	}
	if !first.Modified.IsZero() {
		v.Updated = first.Modified.UTC().Format(time.RFC3339)
	}
	if len(first.Aliases) > 0 {
		var aliases []cdx.VulnerabilityReference
		for _, a := range first.Aliases {
			if a != "" {
				aliases = append(aliases, cdx.VulnerabilityReference{ID: a, Source: source(a)})
			}
		}
		if len(aliases) > 0 {
			v.References = &aliases
		}
	}

	var ratings []cdx.VulnerabilityRating
	var advisories []cdx.Advisory
	var recommendations []string
	var affects []cdx.Affects
	seenRating := map[string]bool{}
	seenAdvisory := map[string]bool{}
	seenAffect := map[string]bool{}
	for _, f := range g.findings {
		for _, c := range f.CVSS {
			k := "cvss\x00" + c.Vector + "\x00" + c.Source
			if seenRating[k] {
				continue
			}
			seenRating[k] = true
			score := c.Score
			ratings = append(ratings, cdx.VulnerabilityRating{
				Source:   source(c.Source),
				Score:    &score,
				Severity: cvssSeverity(c.Version, c.Score),
				Method:   cvssMethod(c.Version),
				Vector:   c.Vector,
			})
		}
		if src := f.SeveritySource; src != "" && !strings.HasPrefix(src, "cvss_") {
			k := "other\x00" + src + "\x00" + string(f.Severity)
			if !seenRating[k] {
				seenRating[k] = true
				ratings = append(ratings, cdx.VulnerabilityRating{
					Source:   &cdx.Source{Name: src},
					Severity: severity(f.Severity),
					Method:   cdx.ScoringMethodOther,
				})
			}
		}
		for _, u := range f.References {
			// advisories[].url must be a URL; a reference that is not one
			// is no link to follow.
			if _, err := url.Parse(u); err != nil || u == "" {
				continue
			}
			if !seenAdvisory[u] {
				seenAdvisory[u] = true
				advisories = append(advisories, cdx.Advisory{URL: u})
			}
		}
		p := &f.Package
		if len(f.FixedVersions) > 0 {
			rec := fmt.Sprintf("Upgrade %s to %s.", p.Name, f.FixedVersions[0])
			if !slices.Contains(recommendations, rec) {
				recommendations = append(recommendations, rec)
			}
		}
		// CycloneDX wants a version in every entry: a package without one
		// (an unversioned main module) is affected as a whole.
		var versions []cdx.AffectedVersions
		if p.Version != "" {
			versions = append(versions, cdx.AffectedVersions{Version: p.Version, Status: cdx.VulnerabilityStatusAffected})
		}
		for _, fixed := range f.FixedVersions {
			if fixed != "" {
				versions = append(versions, cdx.AffectedVersions{Version: fixed, Status: cdx.VulnerabilityStatusNotAffected})
			}
		}
		for _, ref := range refs[packageKey(p)] {
			if seenAffect[ref] {
				continue
			}
			seenAffect[ref] = true
			a := cdx.Affects{Ref: ref}
			if len(versions) > 0 {
				vs := slices.Clone(versions)
				a.Range = &vs
			}
			affects = append(affects, a)
		}
	}
	if len(ratings) > 0 {
		v.Ratings = &ratings
	}
	if len(advisories) > 0 {
		v.Advisories = &advisories
	}
	v.Recommendation = strings.Join(recommendations, " ")
	if len(affects) > 0 {
		v.Affects = &affects
	}
	return v
}

// packageKey matches a finding's package to the components made from the
// same package: the matcher merges packages that share a purl (a lockfile
// entry and the installed copy), the BOM keeps them apart.
func packageKey(p *inventory.Package) string {
	if p.PURL != "" {
		return p.PURL
	}
	return string(p.Ecosystem) + "\x00" + p.Name + "\x00" + p.Version
}

// vexAnalysis maps an OpenVEX statement to CycloneDX's impact analysis.
// OpenVEX's justification for a not_affected statement is kept in detail
// too: CycloneDX has no exact equivalent of every one.
func vexAnalysis(st *vex.Statement) *cdx.VulnerabilityAnalysis {
	a := &cdx.VulnerabilityAnalysis{}
	switch st.Status {
	case vex.NotAffected:
		a.State = cdx.IASNotAffected
		a.Justification = justifications[st.Justification]
	case vex.Fixed:
		a.State = cdx.IASResolved
	case vex.Affected:
		a.State = cdx.IASExploitable
	case vex.UnderInvestigation:
		a.State = cdx.IASInTriage
	}
	var detail []string
	if st.Justification != "" {
		detail = append(detail, "OpenVEX justification: "+st.Justification+".")
	}
	if st.ImpactStatement != "" {
		detail = append(detail, st.ImpactStatement)
	}
	if st.ActionStatement != "" {
		detail = append(detail, "Action: "+st.ActionStatement)
	}
	if st.Document != "" {
		detail = append(detail, "(VEX document "+st.Document+")")
	}
	a.Detail = strings.Join(detail, " ")
	if !st.Timestamp.IsZero() {
		a.LastUpdated = st.Timestamp.UTC().Format(time.RFC3339)
	}
	return a
}

// justifications maps OpenVEX justifications to CycloneDX's where one
// means the same; "vulnerable_code_cannot_be_controlled_by_adversary" has
// no counterpart and is carried in detail only.
var justifications = map[string]cdx.ImpactAnalysisJustification{
	"component_not_present":               cdx.IAJCodeNotPresent,
	"vulnerable_code_not_present":         cdx.IAJCodeNotPresent,
	"vulnerable_code_not_in_execute_path": cdx.IAJCodeNotReachable,
	"inline_mitigations_already_exist":    cdx.IAJProtectedByMitigatingControl,
}

func analysisKey(a *cdx.VulnerabilityAnalysis) string {
	if a == nil {
		return ""
	}
	return string(a.State) + "\x00" + string(a.Justification) + "\x00" + a.Detail
}

func cvssMethod(version string) cdx.ScoringMethod {
	switch version {
	case "2.0":
		return cdx.ScoringMethodCVSSv2
	case "3.0":
		return cdx.ScoringMethodCVSSv3
	case "3.1":
		return cdx.ScoringMethodCVSSv31
	case "4.0":
		return cdx.ScoringMethodCVSSv4
	}
	return cdx.ScoringMethodOther
}

// cvssSeverity is the qualitative rating of a base score in its CVSS
// version (v2 has no critical band).
func cvssSeverity(version string, score float64) cdx.Severity {
	switch {
	case score <= 0:
		return cdx.SeverityNone
	case score < 4:
		return cdx.SeverityLow
	case score < 7:
		return cdx.SeverityMedium
	case score < 9 || version == "2.0":
		return cdx.SeverityHigh
	}
	return cdx.SeverityCritical
}

func severity(s match.Severity) cdx.Severity {
	switch s {
	case match.SeverityCritical:
		return cdx.SeverityCritical
	case match.SeverityHigh:
		return cdx.SeverityHigh
	case match.SeverityMedium:
		return cdx.SeverityMedium
	case match.SeverityLow:
		return cdx.SeverityLow
	case match.SeverityNone:
		return cdx.SeverityNone
	}
	return cdx.SeverityUnknown
}

// source names the database that publishes an id, with the id's page
// there; osv.dev serves every id it aggregates.
func source(id string) *cdx.Source {
	switch {
	case strings.HasPrefix(id, "CVE-"):
		return &cdx.Source{Name: "NVD", URL: "https://nvd.nist.gov/vuln/detail/" + url.PathEscape(id)}
	case strings.HasPrefix(id, "GHSA-"):
		return &cdx.Source{Name: "GitHub", URL: "https://github.com/advisories/" + url.PathEscape(id)}
	case strings.HasPrefix(id, "GO-"):
		return &cdx.Source{Name: "Go", URL: "https://pkg.go.dev/vuln/" + url.PathEscape(id)}
	case strings.HasPrefix(id, "DSA-"), strings.HasPrefix(id, "DLA-"):
		return &cdx.Source{Name: "Debian", URL: "https://security-tracker.debian.org/tracker/" + url.PathEscape(id)}
	case strings.HasPrefix(id, "PYSEC-"):
		return &cdx.Source{Name: "PyPA", URL: "https://osv.dev/vulnerability/" + url.PathEscape(id)}
	}
	return &cdx.Source{Name: "OSV", URL: "https://osv.dev/vulnerability/" + url.PathEscape(id)}
}
