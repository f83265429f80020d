// Package match finds the vulnerabilities of an inventory: it maps each
// package to its OSV ecosystem, asks a Source for the records that name it,
// evaluates their ranges with the ecosystem's version ordering
// (internal/match/version), merges the records that describe one flaw into
// one Finding, and rates it. Filter then applies the user's severity
// threshold, ignore file and VEX statements.
package match

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/licensepolicy"
	"berth.dev/berth/internal/match/version"
	"berth.dev/berth/internal/misconfig"
	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/secret"
)

// Source is a vulnerability database.
type Source interface {
	// Vulnerabilities returns every record that names (ecosystem, name) in
	// its affected list; ecosystem is an OSV ecosystem string ("npm", "Go",
	// "PyPI", "Debian:12", "Alpine:v3.19", "crates.io", "RubyGems",
	// "Packagist", "NuGet", "Maven", "Red Hat", "Ubuntu:22.04").
	Vulnerabilities(ctx context.Context, ecosystem, name string) ([]*osv.Vulnerability, error)
}

// Coverage is implemented by a Source that knows which ecosystems it holds
// records for (vulndb.DB does). The matcher then reports the packages of a
// distro release the database has no feed for as not matched, instead of
// letting them pass as free of vulnerabilities. A Source without it is
// taken to cover every release.
type Coverage interface {
	HasEcosystem(ecosystem string) bool
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
	// Scanners lists what the scan looked for ("vuln", "secret", ...),
	// when it was not only vulnerabilities: an empty Secrets then means
	// none were found, not that none were looked for.
	Scanners []string `json:"scanners,omitempty"`
	// Secrets are the credentials found in the image's layers and
	// config, masked (internal/secret).
	Secrets []secret.Finding `json:"secrets,omitempty"`
	// Misconfigurations are failed checks of the image's config and
	// layers (internal/misconfig).
	Misconfigurations []misconfig.Finding `json:"misconfigurations,omitempty"`
	// Licenses are the packages' licenses, classified and judged by the
	// scan's license policy (internal/licensepolicy).
	Licenses []licensepolicy.Finding `json:"licenses,omitempty"`
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
	src   Source
	now   func() time.Time
	cache *version.Cache // parsed version strings, shared by all matches

	// memo remembers each target's result (matchTarget); a Matcher reads
	// one unchanging Source.
	memo  sync.Map
	memoN atomic.Int64
}

// New returns a Matcher reading from src.
func New(src Source) *Matcher {
	return &Matcher{src: src, now: time.Now, cache: version.NewCache()}
}

// Match finds the vulnerabilities of every package of inv.
func (m *Matcher) Match(ctx context.Context, inv inventory.Inventory) (*Report, error) {
	r, pkgs, err := m.matchPackages(ctx, inv, nil)
	if err != nil {
		return nil, err
	}
	total := 0
	for i := range pkgs {
		total += len(pkgs[i].groups)
	}
	r.Findings = make([]Finding, 0, total)
	for i := range pkgs {
		r.Findings = pkgs[i].appendFindings(r.Findings, m.cache)
	}
	return r, nil
}

// matchedPackage is one package of an inventory, in the order findings
// are listed, with what matching it found.
type matchedPackage struct {
	pkg *inventory.Package
	t   target
	// ok says t is set: the package has a target (its lookups), whether
	// or not the database covers it.
	ok     bool
	groups [][]*matched // nil when nothing matched or it was not matched
}

// appendFindings appends the package's findings to fs, sorted by id.
func (p *matchedPackage) appendFindings(fs []Finding, cache *version.Cache) []Finding {
	start := len(fs)
	for _, g := range p.groups {
		fs = append(fs, buildFinding(*p.pkg, p.t, g, cache))
	}
	slices.SortFunc(fs[start:], func(a, b Finding) int { return strings.Compare(a.ID, b.ID) })
	return fs
}

// matchPackages matches every package of inv and returns the report
// without its findings (its warnings are complete) and the packages in
// finding order with their matched records, for the caller to build the
// findings of. When need is not nil, only the packages it accepts are
// looked up; the others are left unmatched, which is right only for
// packages that had no matches and whose records did not change.
func (m *Matcher) matchPackages(ctx context.Context, inv inventory.Inventory, need func(*inventory.Package, *target) bool) (*Report, []matchedPackage, error) {
	r := &Report{SchemaVersion: ReportSchemaVersion, Inventory: inv, MatchedAt: m.now().UTC()}
	pkgs := uniquePackages(inv.Packages)
	// One lookup per (ecosystem, name): distro source packages are shared
	// by many binary packages.
	lookups := make(map[lookupKey][]*osv.Vulnerability)
	out := make([]matchedPackage, len(pkgs))
	var skipped []unmatchable
	skippedNames := make(map[unmatchable][]string)
	tf := targeter{distro: inv.Distro}
	for i, p := range pkgs {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		out[i].pkg = p
		t, err := tf.target(p)
		if err == nil {
			out[i].t, out[i].ok = t, true
			if !m.covers(t) {
				err = unmatchable{p.Ecosystem, fmt.Sprintf("the database holds no %s records", strings.TrimSuffix(t.ecosystems[0], ":LTS"))}
			}
		}
		if err != nil {
			var u unmatchable
			if !errors.As(err, &u) {
				u = unmatchable{p.Ecosystem, err.Error()}
			}
			if _, ok := skippedNames[u]; !ok {
				skipped = append(skipped, u)
			}
			skippedNames[u] = append(skippedNames[u], p.Name)
			continue
		}
		// out[i].t, not t: the address of t would move every target to
		// the heap.
		if need != nil && !need(p, &out[i].t) {
			continue
		}
		res, err := m.matchTarget(ctx, t, lookups)
		if err != nil {
			return nil, nil, err
		}
		r.Warnings = append(r.Warnings, res.warns...)
		out[i].groups = res.groups
	}
	for _, u := range skipped {
		names := skippedNames[u]
		list := strings.Join(names[:min(len(names), 5)], ", ")
		if len(names) > 5 {
			list += ", …"
		}
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d %s packages not matched (%s): %s", len(names), u.eco, list, u.reason))
	}
	return r, out, nil
}

type lookupKey struct{ eco, name string }

// targetResult is what matching one target found: the matched records
// grouped by flaw, and the warnings they raised.
type targetResult struct {
	groups [][]*matched
	warns  []string
}

// maxMemo bounds the targets a Matcher remembers.
const maxMemo = 1 << 16

// matchTarget matches one target, remembering the result: the same
// package at the same version (a base image's packages, shared by most
// images) has the same records, so its result is computed once per
// Matcher, and a server re-matching thousands of stored inventories
// against one database pays for each distinct package once. Results are
// never modified after they are stored.
func (m *Matcher) matchTarget(ctx context.Context, t target, lookups map[lookupKey][]*osv.Vulnerability) (*targetResult, error) {
	key := t.memoKey()
	if v, ok := m.memo.Load(key); ok {
		return v.(*targetResult), nil
	}
	var recs []*osv.Vulnerability
	for _, eco := range t.ecosystems {
		k := lookupKey{eco, t.name}
		got, ok := lookups[k]
		if !ok {
			var err error
			if got, err = m.src.Vulnerabilities(ctx, eco, t.name); err != nil {
				return nil, fmt.Errorf("looking up %s %s: %w", eco, t.name, err)
			}
			lookups[k] = got
		}
		recs = appendNewRecords(recs, got)
	}
	hits, warns := matchRecords(t, recs, m.cache)
	res := &targetResult{warns: warns}
	if len(hits) > 0 {
		res.groups = groupByAlias(hits)
	}
	if m.memoN.Load() < maxMemo {
		if _, loaded := m.memo.LoadOrStore(key, res); !loaded {
			m.memoN.Add(1)
		}
	}
	return res, nil
}

// covers reports whether the source holds records for t's ecosystems;
// only distro targets are checked, since a language ecosystem's feed has
// no releases to be missing.
func (m *Matcher) covers(t target) bool {
	c, ok := m.src.(Coverage)
	if !ok || !t.distro {
		return true
	}
	return slices.ContainsFunc(t.ecosystems, c.HasEcosystem)
}

// DistroCovered reports whether the packages of OS ecosystem eco (deb, apk,
// rpm) on distro d can be matched: the release is known and the source
// holds records for it.
func (m *Matcher) DistroCovered(d *inventory.Distro, eco inventory.Ecosystem) bool {
	t, err := targetFor(&inventory.Package{Ecosystem: eco}, d)
	return err == nil && m.covers(t)
}

// uniquePackages returns the packages in a stable order (ecosystem, name,
// version, purl), each once: the same package found twice (node_modules
// and a lockfile) is one package with all the places it was found.
// Packages found once are returned as they are in in (not copied: a
// Package is a few hundred bytes, and a re-match orders the packages of
// thousands of inventories); one found more than once is a copy with
// the merged locations. in is not modified.
func uniquePackages(in []inventory.Package) []*inventory.Package {
	seen := make(map[string]int, len(in))
	order := make([]*inventory.Package, 0, len(in))
	merged := map[int]bool{}
	for i := range in {
		p := &in[i]
		k := packageKey(p)
		j, ok := seen[k]
		if !ok {
			seen[k] = len(order)
			order = append(order, p)
			continue
		}
		if !merged[j] {
			cp := *order[j]
			order[j], merged[j] = &cp, true
		}
		order[j].Locations = mergeSorted(order[j].Locations, p.Locations)
	}
	slices.SortStableFunc(order, func(a, b *inventory.Package) int {
		if c := strings.Compare(string(a.Ecosystem), string(b.Ecosystem)); c != 0 {
			return c
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := strings.Compare(a.Version, b.Version); c != 0 {
			return c
		}
		return strings.Compare(a.PURL, b.PURL)
	})
	return order
}

// appendNewRecords appends the records of more that are not in recs yet
// (a package looked up under two ecosystem spellings).
func appendNewRecords(recs, more []*osv.Vulnerability) []*osv.Vulnerability {
	if len(recs) == 0 {
		return more
	}
	out := slices.Clip(recs)
	for _, v := range more {
		if !slices.ContainsFunc(recs, func(o *osv.Vulnerability) bool { return o.ID == v.ID }) {
			out = append(out, v)
		}
	}
	return out
}

// Lookup is one (ecosystem, name) a match asks its Source about.
type Lookup struct{ Ecosystem, Name string }

// Lookups returns every (ecosystem, name) that matching inv asks a Source
// about, each once, whether or not the Source covers it: records under any
// other key cannot change inv's findings. The server indexes stored
// inventories by these, so that a database update re-matches only the
// inventories whose keys it changed (rematching a stored report goes
// through scan.Engine.Rematch, which the CLI uses too).
func Lookups(inv inventory.Inventory) []Lookup {
	seen := map[Lookup]bool{}
	var out []Lookup
	tf := targeter{distro: inv.Distro}
	for i := range inv.Packages {
		t, err := tf.target(&inv.Packages[i])
		if err != nil {
			continue
		}
		for _, eco := range t.ecosystems {
			l := Lookup{eco, t.name}
			if !seen[l] {
				seen[l] = true
				out = append(out, l)
			}
		}
	}
	return out
}

// packageKey identifies a package across the places it was found.
func packageKey(p *inventory.Package) string {
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

// matchRecords evaluates every record against one package.
func matchRecords(t target, recs []*osv.Vulnerability, cache *version.Cache) ([]*matched, []string) {
	ev := &evaluator{cache: cache, scheme: t.scheme, version: t.version}
	var hits []*matched
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
				best = &matched{rec: rec, verdict: vd, sev: collectSeverity(rec, aff, t.distro), eco: aff.Package.Ecosystem}
			} else if vd.affected {
				best.verdict.fixed = append(best.verdict.fixed, vd.fixed...)
			}
		}
		if best != nil {
			hits = append(hits, best)
			warns = append(warns, best.sev.warnings...)
		}
	}
	return hits, warns
}

func buildFinding(p inventory.Package, t target, g []*matched, cache *version.Cache) Finding {
	f := Finding{Package: p, Name: t.name, Version: t.version, Ecosystem: g[0].eco, Records: make([]string, 0, len(g))}
	nIDs, nRefs := 0, 0
	for _, m := range g {
		nIDs += 1 + len(m.rec.Aliases) + len(m.rec.Upstream)
		nRefs += len(m.rec.References)
	}
	ids := make([]string, 0, nIDs)
	refs := make([]string, 0, nRefs)
	evs := make([]severityEvidence, 0, len(g))
	var fixed []string
	certain := false
	var reasons []string
	for _, m := range g {
		f.Records = append(f.Records, m.rec.ID)
		ids = append(append(append(ids, m.rec.ID), m.rec.Aliases...), m.rec.Upstream...)
		for _, ref := range m.rec.References {
			refs = append(refs, ref.URL)
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
	slices.Sort(ids)
	ids = slices.Compact(ids)
	f.ID = primaryID(ids)
	f.Aliases = slices.DeleteFunc(ids, func(id string) bool { return id == f.ID })
	slices.Sort(f.Records)
	slices.Sort(refs)
	f.References = slices.Compact(refs)
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

func mergeSorted(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}
