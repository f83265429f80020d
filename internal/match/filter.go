package match

import (
	"fmt"
	"slices"
	"time"

	"berth.dev/berth/internal/licensepolicy"
	"berth.dev/berth/internal/match/ignore"
	"berth.dev/berth/internal/misconfig"
	"berth.dev/berth/internal/secret"
	"berth.dev/berth/internal/vex"
)

// Filter is what `berth scan` lets a user leave out of a report.
type Filter struct {
	// MinSeverity drops findings rated below it. UNKNOWN findings are kept:
	// a missing score must not hide a finding. Empty keeps everything.
	MinSeverity Severity
	// Severities, when not empty, keeps only findings of these ratings
	// (Trivy's --severity list); it overrides MinSeverity.
	Severities []Severity
	// IgnoreUnfixed drops findings without a fixed version.
	IgnoreUnfixed bool
	Ignore        *ignore.List
	VEX           *vex.Set
	// Now decides whether ignore entries have expired; zero is time.Now.
	Now time.Time
}

// Suppressed is a finding an ignore entry or VEX statement removed.
type Suppressed struct {
	Finding Finding `json:"finding"`
	// By is "ignore" or "vex".
	By          string         `json:"by"`
	IgnoreEntry *ignore.Entry  `json:"ignoreEntry,omitempty"`
	Statement   *vex.Statement `json:"statement,omitempty"`
}

// VEXNote records an affected or under_investigation statement on a
// finding that stays in the report.
type VEXNote = vex.Statement

// Apply returns a copy of r holding the findings the filter keeps. Ignore
// and VEX suppressions move to Suppressed with their reason; expired ignore
// entries no longer suppress and are named in Warnings. Findings below the
// severity threshold or without a fix (with IgnoreUnfixed) are left out of
// the copy only: r itself keeps everything.
func (f Filter) Apply(r *Report) *Report {
	now := f.Now
	if now.IsZero() {
		now = time.Now()
	}
	out := *r
	out.Findings = make([]Finding, 0, len(r.Findings))
	out.Suppressed = append([]Suppressed(nil), r.Suppressed...)
	out.Warnings = append([]string(nil), r.Warnings...)
	image := imageIDs(r)
	warned := make(map[string]bool)
	for _, fd := range r.Findings {
		ids := fd.IDs()
		if active, expired := f.Ignore.Lookup(ids, fd.Package.PURL, now); active != nil {
			e := *active
			out.Suppressed = append(out.Suppressed, Suppressed{Finding: fd, By: "ignore", IgnoreEntry: &e})
			continue
		} else if expired != nil && !warned[expired.Where+expired.ID] {
			warned[expired.Where+expired.ID] = true
			out.Warnings = append(out.Warnings, fmt.Sprintf("ignore entry %s (%s) expired on %s and no longer suppresses it",
				expired.ID, expired.Where, expired.Expires.Format(time.DateOnly)))
		}
		if st, ok := f.VEX.Lookup(ids, fd.Package.PURL, image); ok {
			if st.Suppresses() {
				s := st
				out.Suppressed = append(out.Suppressed, Suppressed{Finding: fd, By: "vex", Statement: &s})
				continue
			}
			note := st
			fd.VEX = &note
		}
		if !f.keepsSeverity(fd.Severity) || f.IgnoreUnfixed && fd.Status != StatusFixed {
			continue
		}
		out.Findings = append(out.Findings, fd)
	}
	if r.Secrets != nil {
		// The severity filter applies to secrets too, as in Trivy.
		out.Secrets = slices.DeleteFunc(slices.Clone(r.Secrets), func(s secret.Finding) bool {
			return !f.keepsSeverity(Severity(s.Severity))
		})
	}
	if r.Licenses != nil {
		out.Licenses = slices.DeleteFunc(slices.Clone(r.Licenses), func(l licensepolicy.Finding) bool {
			return !f.keepsSeverity(Severity(l.Severity))
		})
	}
	if r.Misconfigurations != nil {
		out.Misconfigurations = slices.DeleteFunc(slices.Clone(r.Misconfigurations), func(m misconfig.Finding) bool {
			return !f.keepsSeverity(Severity(m.Severity))
		})
	}
	return &out
}

func (f Filter) keepsSeverity(s Severity) bool {
	if len(f.Severities) > 0 {
		for _, want := range f.Severities {
			if s == want {
				return true
			}
		}
		return false
	}
	if f.MinSeverity == "" || s == SeverityUnknown {
		return true
	}
	return s.Rank() >= f.MinSeverity.Rank()
}

// imageIDs are the identifiers a VEX product may use for the image itself.
func imageIDs(r *Report) []string {
	var ids []string
	inv := r.Inventory
	if inv.Source != "" {
		ids = append(ids, inv.Source)
	}
	if inv.Digest != "" {
		ids = append(ids, inv.Digest)
	}
	return ids
}
