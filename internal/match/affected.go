package match

import (
	"fmt"
	"slices"

	"berth.dev/berth/internal/match/version"
	"berth.dev/berth/internal/osv"
)

// verdict is the outcome of evaluating one affected entry for one version.
type verdict struct {
	affected bool
	// uncertain is set, with the reason, when a version string could not be
	// parsed and the entry might affect the package.
	uncertain string
	// fixed holds the smallest fixed version above the installed one in
	// each range that matched (or, when uncertain, every fixed event).
	fixed []string
}

// evaluator evaluates affected entries against one package's version with
// OSV's algorithm (schema "Evaluation"): a version is affected when it is
// in the entry's versions list or inside any of its ranges.
type evaluator struct {
	cache   *version.Cache
	scheme  version.Scheme // the ecosystem's scheme, for ECOSYSTEM ranges and versions lists
	version string
}

func (e *evaluator) evaluate(aff *osv.Affected) verdict {
	var out verdict
	inVersions := e.inVersions(aff.Versions)
	var reasons, unsureFixed []string
	for i := range aff.Ranges {
		r := &aff.Ranges[i]
		var scheme version.Scheme
		switch r.Type {
		case osv.RangeEcosystem:
			scheme = e.scheme
		case osv.RangeSemver:
			scheme = version.SemVer
		default:
			// GIT ranges need the repository's commit graph; records that
			// use them for packages also carry a versions list.
			continue
		}
		hit, fixed, why := e.inRange(r, scheme)
		switch {
		case why != "":
			reasons = append(reasons, why)
			unsureFixed = append(unsureFixed, fixedEvents(r)...)
		case hit || inVersions:
			// A version listed as affected although the ranges disagree
			// still gets the range's next fix as its upgrade.
			out.affected = out.affected || hit
			if fixed != "" {
				out.fixed = append(out.fixed, fixed)
			}
		}
	}
	if inVersions {
		out.affected = true
	}
	if !out.affected && len(reasons) > 0 {
		out.uncertain = reasons[0]
		out.fixed = unsureFixed
	}
	return out
}

// inVersions is IncludedInVersions: exact string equality, or equality
// under the ecosystem's ordering (PyPI's "1.0" is "1.0.0").
func (e *evaluator) inVersions(list []string) bool {
	if len(list) == 0 {
		return false
	}
	if slices.Contains(list, e.version) {
		return true
	}
	iv, err := e.cache.Parse(e.scheme, e.version)
	if err != nil {
		return false
	}
	for _, s := range list {
		if v, err := e.cache.Parse(e.scheme, s); err == nil && v.Compare(iv) == 0 {
			return true
		}
	}
	return false
}

type sortedEvent struct {
	ev  osv.Event
	ver version.Version // nil for introduced "0"
}

// inRange is IncludedInRanges for one range: whether the version is inside
// it, the smallest fixed event above the version (whether or not it is
// inside), and a reason when a version string could not be parsed.
func (e *evaluator) inRange(r *osv.Range, scheme version.Scheme) (hit bool, fixed, uncertain string) {
	onlyZero := true
	for _, ev := range r.Events {
		if ev.Introduced != "0" {
			onlyZero = false
		}
	}
	if onlyZero {
		// Every version is affected; nothing needs parsing.
		return len(r.Events) > 0, "", ""
	}
	v, err := e.cache.Parse(scheme, e.version)
	if err != nil {
		return false, "", fmt.Sprintf("installed version %q is not a %s version: %v", e.version, scheme.Name(), err)
	}
	var buf [8]sortedEvent
	events := buf[:0]
	hasLimit, beforeLimit := false, false
	for _, ev := range r.Events {
		s := eventVersion(ev)
		if ev.Introduced == "0" {
			events = append(events, sortedEvent{ev: ev})
			continue
		}
		if ev.Limit == "*" {
			hasLimit, beforeLimit = true, true
			continue
		}
		pv, err := e.cache.Parse(scheme, s)
		if err != nil {
			return false, "", fmt.Sprintf("record version %q is not a %s version: %v", s, scheme.Name(), err)
		}
		if ev.Limit != "" {
			hasLimit = true
			if v.Compare(pv) < 0 {
				beforeLimit = true
			}
			continue
		}
		events = append(events, sortedEvent{ev: ev, ver: pv})
	}
	if hasLimit && !beforeLimit {
		return false, "", ""
	}
	// Records need not list events in order; a stable sort keeps the
	// record's own order between events at the same version.
	slices.SortStableFunc(events, func(a, b sortedEvent) int {
		switch {
		case a.ver == nil && b.ver == nil:
			return 0
		case a.ver == nil:
			return -1
		case b.ver == nil:
			return 1
		}
		return a.ver.Compare(b.ver)
	})
	var fixedVer version.Version
	for _, se := range events {
		switch {
		case se.ev.Introduced != "":
			if se.ver == nil || v.Compare(se.ver) >= 0 {
				hit = true
			}
		case se.ev.Fixed != "":
			if v.Compare(se.ver) >= 0 {
				hit = false
			} else if fixedVer == nil {
				fixedVer, fixed = se.ver, se.ev.Fixed
			}
		case se.ev.LastAffected != "":
			if v.Compare(se.ver) > 0 {
				hit = false
			}
		}
	}
	return hit, fixed, ""
}

func eventVersion(ev osv.Event) string {
	switch {
	case ev.Introduced != "":
		return ev.Introduced
	case ev.Fixed != "":
		return ev.Fixed
	case ev.LastAffected != "":
		return ev.LastAffected
	}
	return ev.Limit
}

func fixedEvents(r *osv.Range) []string {
	var out []string
	for _, ev := range r.Events {
		if ev.Fixed != "" {
			out = append(out, ev.Fixed)
		}
	}
	return out
}
