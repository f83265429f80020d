// Package match finds the vulnerabilities of an inventory: it maps each
// package to its OSV ecosystem, asks a Source for the records that name it,
// evaluates their ranges with the ecosystem's version ordering
// (internal/match/version), merges the records that describe one flaw into
// one Finding, and rates it. Filter then applies the user's severity
// threshold, ignore file and VEX statements.
package match

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match/version"
	"berth.dev/berth/internal/osv"
)

// Source is a vulnerability database.
type Source interface {
	// Vulnerabilities returns every record that names (ecosystem, name) in
	// its affected list; ecosystem is an OSV ecosystem string ("npm", "Go",
	// "PyPI", "Debian:12", "Alpine:v3.19", "crates.io", "RubyGems",
	// "Packagist", "NuGet", "Maven", "Red Hat", "Ubuntu:22.04").
	Vulnerabilities(ctx context.Context, ecosystem, name string) ([]*osv.Vulnerability, error)
}

// ReportSchemaVersion is bumped when Report's JSON changes incompatibly.
const ReportSchemaVersion = 1

// Report is an image's inventory with the vulnerabilities found in it. It
// is the one stored result: the server keeps exactly this, the report
// encoders read it, and Rematch recomputes its findings from the stored
// inventory when the database changes, without reading the image again.
type Report struct {
	SchemaVersion int                 `json:"schemaVersion"`
	Inventory     inventory.Inventory `json:"inventory"`
	MatchedAt     time.Time           `json:"matchedAt"`
	Findings      []Finding           `json:"findings"`
	// Suppressed are findings an ignore file or VEX statement removed from
	// Findings, with the reason; set by Filter.
	Suppressed []Suppressed `json:"suppressed,omitempty"`
	// Warnings name packages that could not be matched and other problems
	// that make the result less than complete.
	Warnings []string `json:"warnings,omitempty"`
}

// Status says whether a fix exists.
type Status string

const (
	StatusFixed    Status = "fixed"    // a fixed version exists: upgrade
	StatusAffected Status = "affected" // no fixed version is known
)

// Finding is one vulnerability of one package. Records that describe the
// same flaw (linked by id, aliases or upstream, transitively) are merged.
type Finding struct {
	// ID is the primary identifier: the lowest CVE if any, else the lowest
	// GHSA, else the lowest other id.
	ID string `json:"id"`
	// Aliases are all the other identifiers of the merged records.
	Aliases []string `json:"aliases,omitempty"`
	// Records are the IDs of the database records that matched.
	Records []string          `json:"records"`
	Package inventory.Package `json:"package"`
	// Ecosystem, Name and Version are what was looked up and compared: for
	// distro packages the source package and its version.
	Ecosystem      string   `json:"ecosystem"`
	Name           string   `json:"name"`
	Version        string   `json:"version"`
	Summary        string   `json:"summary,omitempty"`
	Severity       Severity `json:"severity"`
	SeveritySource string   `json:"severitySource,omitempty"`
	CVSS           []CVSS   `json:"cvss,omitempty"`
	Status         Status   `json:"status"`
	// FixedVersions are the versions to upgrade to, smallest first: per
	// matched range, the smallest fixed version above the installed one.
	FixedVersions []string  `json:"fixedVersions,omitempty"`
	References    []string  `json:"references,omitempty"`
	Published     time.Time `json:"published,omitzero"`
	Modified      time.Time `json:"modified,omitzero"`
	// Uncertain is set when a version string could not be parsed, so the
	// package may or may not be affected; UncertainReason says which.
	Uncertain       bool   `json:"uncertain,omitempty"`
	UncertainReason string `json:"uncertainReason,omitempty"`
	// VEX is set when a VEX statement says "affected" or
	// "under_investigation" about this finding.
	VEX *VEXNote `json:"vex,omitempty"`
}

// IDs returns the primary ID followed by the aliases.
func (f *Finding) IDs() []string {
	return append([]string{f.ID}, f.Aliases...)
}

// Matcher matches inventories against a Source. It is safe for concurrent
// use.
type Matcher struct {
	src Source
	now func() time.Time
}

// New returns a Matcher reading from src.
func New(src Source) *Matcher {
	return &Matcher{src: src, now: time.Now}
}

// Match finds the vulnerabilities of every package of inv.
func (m *Matcher) Match(ctx context.Context, inv inventory.Inventory) (*Report, error) {
	r := &Report{SchemaVersion: ReportSchemaVersion, Inventory: inv, MatchedAt: m.now().UTC(), Findings: []Finding{}}
	cache := version.NewCache()
	seen := make(map[string]int) // package key → index in pkgs
	var pkgs []inventory.Package
	for _, p := range inv.Packages {
		k := packageKey(p)
		if i, ok := seen[k]; ok {
			// The same package found twice (node_modules and a lockfile):
			// one finding set, all the places it was found.
			pkgs[i].Locations = mergeSorted(pkgs[i].Locations, p.Locations)
			continue
		}
		seen[k] = len(pkgs)
		p.Locations = slices.Clone(p.Locations)
		pkgs = append(pkgs, p)
	}
	// One lookup per (ecosystem, name): distro source packages are shared
	// by many binary packages.
	type lookupKey struct{ eco, name string }
	lookups := make(map[lookupKey][]*osv.Vulnerability)
	for _, p := range pkgs {
		t, err := targetFor(p, inv.Distro)
		if err != nil {
			r.Warnings = append(r.Warnings, err.Error())
			continue
		}
		var recs []*osv.Vulnerability
		seenRec := make(map[string]bool)
		for _, eco := range t.ecosystems {
			k := lookupKey{eco, t.name}
			got, ok := lookups[k]
			if !ok {
				if got, err = m.src.Vulnerabilities(ctx, eco, t.name); err != nil {
					return nil, fmt.Errorf("looking up %s %s: %w", eco, t.name, err)
				}
				lookups[k] = got
			}
			for _, v := range got {
				if !seenRec[v.ID] {
					seenRec[v.ID] = true
					recs = append(recs, v)
				}
			}
		}
		fs, warns := matchPackage(p, t, recs, cache)
		r.Findings = append(r.Findings, fs...)
		r.Warnings = append(r.Warnings, warns...)
	}
	sortFindings(r.Findings)
	return r, nil
}

// Rematch recomputes the findings of a stored report from its inventory,
// e.g. after a database update. Filters are not carried over: apply them
// again to the result.
func (m *Matcher) Rematch(ctx context.Context, r *Report) (*Report, error) {
	return m.Match(ctx, r.Inventory)
}

// packageKey identifies a package across the places it was found.
func packageKey(p inventory.Package) string {
	if p.PURL != "" {
		return p.PURL
	}
	return strings.Join([]string{string(p.Ecosystem), p.Name, p.Version, p.Arch}, "\x00")
}

// matched is one record that affects a package.
type matched struct {
	rec     *osv.Vulnerability
	verdict verdict
	sev     severityEvidence
	eco     string
}

// matchPackage evaluates every record against one package and merges the
// ones that describe the same flaw.
func matchPackage(p inventory.Package, t target, recs []*osv.Vulnerability, cache *version.Cache) ([]Finding, []string) {
	ev := &evaluator{cache: cache, scheme: t.scheme, version: t.version}
	var hits []matched
	var warns []string
	for _, rec := range recs {
		if !rec.Withdrawn.IsZero() {
			continue
		}
		var best *matched
		for i := range rec.Affected {
			aff := &rec.Affected[i]
			if !t.hasEcosystem(aff.Package.Ecosystem) || !t.sameName(aff.Package.Name) {
				continue
			}
			vd := ev.evaluate(aff)
			if !vd.affected && vd.uncertain == "" {
				continue
			}
			if best == nil || best.verdict.uncertain != "" && vd.affected {
				mt := matched{rec: rec, verdict: vd, sev: collectSeverity(rec, aff, t.distro), eco: aff.Package.Ecosystem}
				best = &mt
			} else if vd.affected {
				best.verdict.fixed = append(best.verdict.fixed, vd.fixed...)
			}
		}
		if best != nil {
			hits = append(hits, *best)
			warns = append(warns, best.sev.warnings...)
		}
	}
	groups := groupByAlias(hits)
	out := make([]Finding, 0, len(groups))
	for _, g := range groups {
		out = append(out, buildFinding(p, t, g, cache))
	}
	return out, warns
}

func buildFinding(p inventory.Package, t target, g []matched, cache *version.Cache) Finding {
	f := Finding{Package: p, Name: t.name, Version: t.version, Ecosystem: g[0].eco}
	ids := make(map[string]bool)
	refs := make(map[string]bool)
	var evs []severityEvidence
	var fixed []string
	certain := false
	var reasons []string
	for _, m := range g {
		f.Records = append(f.Records, m.rec.ID)
		for _, id := range recordIDs(m.rec) {
			ids[id] = true
		}
		for _, ref := range m.rec.References {
			refs[ref.URL] = true
		}
		if f.Summary == "" {
			f.Summary = m.rec.Summary
		}
		if f.Published.IsZero() || !m.rec.Published.IsZero() && m.rec.Published.Before(f.Published) {
			f.Published = m.rec.Published
		}
		if m.rec.Modified.After(f.Modified) {
			f.Modified = m.rec.Modified
		}
		evs = append(evs, m.sev)
		f.CVSS = append(f.CVSS, m.sev.cvss...)
		fixed = append(fixed, m.verdict.fixed...)
		if m.verdict.affected {
			certain = true
		} else {
			reasons = append(reasons, m.rec.ID+": "+m.verdict.uncertain)
		}
	}
	if !certain {
		f.Uncertain = true
		f.UncertainReason = strings.Join(reasons, "; ")
	}
	f.ID = primaryID(ids)
	for id := range ids {
		if id != f.ID {
			f.Aliases = append(f.Aliases, id)
		}
	}
	slices.Sort(f.Aliases)
	slices.Sort(f.Records)
	for u := range refs {
		f.References = append(f.References, u)
	}
	slices.Sort(f.References)
	f.Severity, f.SeveritySource = decideSeverity(evs)
	f.FixedVersions = sortVersions(fixed, t.scheme, cache)
	f.Status = StatusAffected
	if len(f.FixedVersions) > 0 {
		f.Status = StatusFixed
	}
	return f
}

// sortVersions dedupes versions and sorts them by the scheme, unparsable
// ones last in string order.
func sortVersions(vs []string, scheme version.Scheme, cache *version.Cache) []string {
	slices.Sort(vs)
	vs = slices.Compact(vs)
	slices.SortStableFunc(vs, func(a, b string) int {
		va, ea := cache.Parse(scheme, a)
		vb, eb := cache.Parse(scheme, b)
		switch {
		case ea != nil && eb != nil:
			return strings.Compare(a, b)
		case ea != nil:
			return 1
		case eb != nil:
			return -1
		}
		return va.Compare(vb)
	})
	return vs
}

func sortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		if c := strings.Compare(string(a.Package.Ecosystem), string(b.Package.Ecosystem)); c != 0 {
			return c
		}
		if c := strings.Compare(a.Package.Name, b.Package.Name); c != 0 {
			return c
		}
		if c := strings.Compare(a.Package.Version, b.Package.Version); c != 0 {
			return c
		}
		if c := strings.Compare(a.Package.PURL, b.Package.PURL); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

func mergeSorted(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}
