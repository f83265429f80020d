package match

import (
	"context"
	"errors"
	"fmt"

	"berth.dev/berth/internal/inventory"
)

// A report's findings are per package: a package's findings depend only
// on the package (with the inventory's distro) and on the records under
// its lookups (Lookups), and they are listed package by package in a
// fixed order, each package's sorted by id. So after a database update
// that changed the records of a few lookups, only the packages that look
// one of them up can have different findings; the others keep theirs.
// MatchDelta builds a report that way. The report's warnings are not per
// package in the stored form (they are computed again in full, from the
// memoised per-target results, which costs no lookups), nor is coverage
// (a release the database holds no records for): a package of such a
// release has no records under any of its keys, so if none of them
// changed it had and has no findings.

// ErrNoDelta is returned by MatchDelta when the previous findings do not
// line up with the inventory's packages as a full match lists them: the
// caller matches in full instead.
var ErrNoDelta = errors.New("the previous findings do not line up with the inventory")

// Piece is a run of findings in a report MatchDelta built: findings
// [Start, End) of the previous report, or, when New is set, of the
// report MatchDelta returned.
type Piece struct {
	New        bool
	Start, End int
}

// MatchDelta returns what Match(ctx, inv) returns, without building the
// findings of packages whose lookups did not change. prev lists, for
// every finding of the report Match returned for inv against the previous
// database, in its order, keyOf of the finding's package; changed reports
// whether the records under a lookup may differ between that database and
// the matcher's. The report's Findings are only those of the packages
// matched again; pieces say how they interleave with the previous
// findings (Splice puts them together). It returns ErrNoDelta when prev
// cannot be the findings of inv.
//
// keyOf must give packages that Match keeps apart the same key only if
// they are listed next to each other (reports.PackageKey does: such
// packages differ in their architecture alone); such packages are matched
// again together when any of them is.
func (m *Matcher) MatchDelta(ctx context.Context, inv inventory.Inventory, prev []string, keyOf func(*inventory.Package) string,
	changed func(Lookup) bool) (*Report, []Piece, error) {
	// Only the packages that had findings (for their warnings, which are
	// not stored per package, and to check that prev lines up) and those
	// that look up a changed key are looked up: any other had no match
	// and its records did not change, so it has none now.
	hadFindings := make(map[string]bool, len(prev))
	for _, k := range prev {
		hadFindings[k] = true
	}
	need := func(p *inventory.Package, t *target) bool {
		return hadFindings[keyOf(p)] || t.looksUp(changed)
	}
	r, pkgs, err := m.matchPackages(ctx, inv, need)
	if err != nil {
		return nil, nil, err
	}
	var pieces []Piece
	add := func(isNew bool, start, end int) {
		if start == end {
			return
		}
		if n := len(pieces); n > 0 && pieces[n-1].New == isNew && pieces[n-1].End == start {
			pieces[n-1].End = end
			return
		}
		pieces = append(pieces, Piece{New: isNew, Start: start, End: end})
	}
	var fresh []Finding
	cursor := 0
	for i := 0; i < len(pkgs); {
		// The packages sharing the key of pkgs[i], and whether any of
		// them looks up a changed key.
		key := keyOf(pkgs[i].pkg)
		j, again, groups := i, false, 0
		for ; j < len(pkgs) && (j == i || keyOf(pkgs[j].pkg) == key); j++ {
			again = again || pkgs[j].ok && pkgs[j].t.looksUp(changed)
			groups += len(pkgs[j].groups)
		}
		start := cursor
		for cursor < len(prev) && prev[cursor] == key {
			cursor++
		}
		if again {
			from := len(fresh)
			for k := i; k < j; k++ {
				fresh = pkgs[k].appendFindings(fresh, m.cache)
			}
			add(true, from, len(fresh))
		} else {
			// One finding per group of records: a count that differs
			// means prev was not matched from these packages.
			if cursor-start != groups {
				return nil, nil, fmt.Errorf("%w: %d findings stored for %s, %d matched", ErrNoDelta, cursor-start, key, groups)
			}
			add(false, start, cursor)
		}
		i = j
	}
	if cursor != len(prev) {
		return nil, nil, fmt.Errorf("%w: stored finding %d of %d belongs to no package in order", ErrNoDelta, cursor, len(prev))
	}
	if fresh == nil {
		fresh = []Finding{}
	}
	r.Findings = fresh
	return r, pieces, nil
}

// looksUp reports whether the target looks up a key changed reports.
func (t *target) looksUp(changed func(Lookup) bool) bool {
	for _, eco := range t.ecosystems {
		if changed(Lookup{eco, t.name}) {
			return true
		}
	}
	return false
}

// Splice puts together the findings of a report MatchDelta built: prev
// are the previous report's findings, cur the new report's, pieces what
// MatchDelta returned with it.
func Splice(prev, cur []Finding, pieces []Piece) []Finding {
	n := 0
	for _, p := range pieces {
		n += p.End - p.Start
	}
	out := make([]Finding, 0, n)
	for _, p := range pieces {
		if p.New {
			out = append(out, cur[p.Start:p.End]...)
		} else {
			out = append(out, prev[p.Start:p.End]...)
		}
	}
	return out
}
