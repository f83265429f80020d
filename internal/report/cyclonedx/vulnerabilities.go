package cyclonedx

import (
	"cmp"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

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
	doc := buildDocument(b, meta)
	doc.Vulnerabilities = vulnerabilities(b, r)
	if err := indentjson.Encode(w, doc); err != nil {
		return fmt.Errorf("write CycloneDX: %w", err)
	}
	return nil
}

// vulnGroup is the findings that become one vulnerability: one id with one
// analysis.
type vulnGroup struct {
	id       string
	analysis *analysis
	findings []*match.Finding
}

// vulnerabilities builds the vulnerabilities section for the findings of
// r, whose inventory b was built from. Findings of one id share an entry
// unless their VEX analyses differ.
func vulnerabilities(b *bom.BOM, r *match.Report) []vulnerability {
	refs := map[string][]string{} // package key → component bom-refs
	for i := range b.Packages {
		k := packageKey(&b.Packages[i].Package)
		refs[k] = append(refs[k], b.Packages[i].Ref)
	}

	var groups []*vulnGroup
	index := map[string]*vulnGroup{}
	add := func(f *match.Finding, a *analysis) {
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
		var a *analysis
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

	if len(groups) == 0 {
		return nil
	}
	out := make([]vulnerability, 0, len(groups))
	for _, g := range groups {
		out = append(out, newVulnerability(g, refs))
	}
	return out
}

func newVulnerability(g *vulnGroup, refs map[string][]string) vulnerability {
	first := g.findings[0]
	v := vulnerability{
		ID:          first.ID,
		Source:      idSource(first.ID),
		Description: strings.TrimSpace(first.Summary),
		Analysis:    g.analysis,
	}
	if !first.Published.IsZero() {
		v.Published = first.Published.UTC().Format(time.RFC3339)
	}
	if !first.Modified.IsZero() {
		v.Updated = first.Modified.UTC().Format(time.RFC3339)
	}
	for _, a := range first.Aliases {
		if a != "" {
			v.References = append(v.References, vulnReference{ID: a, Source: idSource(a)})
		}
	}

	var recommendations []string
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
			v.Ratings = append(v.Ratings, rating{
				Source:   idSource(c.Source),
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
				v.Ratings = append(v.Ratings, rating{
					Source:   &source{Name: src},
					Severity: severity(f.Severity),
					Method:   methodOther,
				})
			}
		}
		for _, u := range f.References {
			// advisories[].url must be an IRI reference; a reference that
			// is not a web link is nothing to follow.
			if !webLink(u) {
				continue
			}
			if !seenAdvisory[u] {
				seenAdvisory[u] = true
				v.Advisories = append(v.Advisories, advisory{URL: u})
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
		// (an unversioned main module) is affected as a whole. Every
		// component of the package shares the one list.
		// A version longer than the schema allows is left out of the
		// list (schemaVersion).
		var versions []affectedVersion
		if schemaVersion(p.Version) != "" {
			versions = append(versions, affectedVersion{Version: p.Version, Status: statusAffected})
		}
		for _, fixed := range f.FixedVersions {
			if schemaVersion(fixed) != "" {
				versions = append(versions, affectedVersion{Version: fixed, Status: statusUnaffected})
			}
		}
		for _, ref := range refs[packageKey(p)] {
			if seenAffect[ref] {
				continue
			}
			seenAffect[ref] = true
			v.Affects = append(v.Affects, affects{Ref: ref, Versions: versions})
		}
	}
	v.Recommendation = strings.Join(recommendations, " ")
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
func vexAnalysis(st *vex.Statement) *analysis {
	a := &analysis{}
	switch st.Status {
	case vex.NotAffected:
		a.State = stateNotAffected
		a.Justification = justification(st.Justification)
	case vex.Fixed:
		a.State = stateResolved
	case vex.Affected:
		a.State = stateExploitable
	case vex.UnderInvestigation:
		a.State = stateInTriage
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

// justification maps an OpenVEX justification to CycloneDX's where one
// means the same; "vulnerable_code_cannot_be_controlled_by_adversary" has
// no counterpart and is carried in detail only.
func justification(openVEX string) string {
	switch openVEX {
	case "component_not_present", "vulnerable_code_not_present":
		return justCodeNotPresent
	case "vulnerable_code_not_in_execute_path":
		return justCodeNotReachable
	case "inline_mitigations_already_exist":
		return justMitigatingControl
	}
	return ""
}

func analysisKey(a *analysis) string {
	if a == nil {
		return ""
	}
	return a.State + "\x00" + a.Justification + "\x00" + a.Detail
}

func cvssMethod(version string) string {
	switch version {
	case "2.0":
		return methodCVSSv2
	case "3.0":
		return methodCVSSv3
	case "3.1":
		return methodCVSSv31
	case "4.0":
		return methodCVSSv4
	}
	return methodOther
}

// cvssSeverity is the qualitative rating of a base score in its CVSS
// version (v2 has no critical band).
func cvssSeverity(version string, score float64) string {
	switch {
	case score <= 0:
		return severityNone
	case score < 4:
		return severityLow
	case score < 7:
		return severityMedium
	case score < 9 || version == "2.0":
		return severityHigh
	}
	return severityCritical
}

func severity(s match.Severity) string {
	switch s {
	case match.SeverityCritical:
		return severityCritical
	case match.SeverityHigh:
		return severityHigh
	case match.SeverityMedium:
		return severityMedium
	case match.SeverityLow:
		return severityLow
	case match.SeverityNone:
		return severityNone
	}
	return severityUnknown
}

// idSource names the database that publishes an id, with the id's page
// there; osv.dev serves every id it aggregates.
func idSource(id string) *source {
	switch {
	case strings.HasPrefix(id, "CVE-"):
		return &source{Name: "NVD", URL: "https://nvd.nist.gov/vuln/detail/" + url.PathEscape(id)}
	case strings.HasPrefix(id, "GHSA-"):
		return &source{Name: "GitHub", URL: "https://github.com/advisories/" + url.PathEscape(id)}
	case strings.HasPrefix(id, "GO-"):
		return &source{Name: "Go", URL: "https://pkg.go.dev/vuln/" + url.PathEscape(id)}
	case strings.HasPrefix(id, "DSA-"), strings.HasPrefix(id, "DLA-"):
		return &source{Name: "Debian", URL: "https://security-tracker.debian.org/tracker/" + url.PathEscape(id)}
	case strings.HasPrefix(id, "PYSEC-"):
		return &source{Name: "PyPA", URL: "https://osv.dev/vulnerability/" + url.PathEscape(id)}
	}
	return &source{Name: "OSV", URL: "https://osv.dev/vulnerability/" + url.PathEscape(id)}
}

// webLink reports whether u is an absolute http(s) URL made only of
// characters an IRI may hold: the schema rejects a backslash, a space or
// a control character that url.Parse lets through.
func webLink(u string) bool {
	if strings.ContainsFunc(u, func(r rune) bool {
		return r <= 0x20 || r == 0x7f || strings.ContainsRune(`<>"{}|\^`+"`", r)
	}) {
		return false
	}
	parsed, err := url.Parse(u)
	return err == nil && (parsed.Scheme == "https" || parsed.Scheme == "http") && parsed.Host != ""
}
