package ui

import (
	"cmp"
	"slices"
	"strings"

	"berth.dev/berth/internal/api"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/match/version"
)

// Upgrade is one piece of fix advice: move a package to To, which removes
// Removes findings (the worst of them Worst).
type Upgrade struct {
	Ecosystem string
	// Name and From are what was compared: for a distribution's package,
	// its source package and version.
	Name, From, To string
	// Packages are the installed packages built from it.
	Packages []string
	Removes  int
	Worst    match.Severity
	IDs      []string
}

// severityRank orders severities, worst first.
var severityRank = map[match.Severity]int{match.SeverityCritical: 0, match.SeverityHigh: 1, match.SeverityMedium: 2,
	match.SeverityLow: 3, match.SeverityNone: 4, match.SeverityUnknown: 5}

// sevRank is a severity's place, worst first; an unknown word last.
func sevRank(s match.Severity) int {
	if r, ok := severityRank[s]; ok {
		return r
	}
	return len(severityRank)
}

func worse(a, b match.Severity) match.Severity {
	if sevRank(a) <= sevRank(b) {
		return a
	}
	return b
}

// upgrades computes fix advice: for each package version with fixable
// findings, the smallest version that fixes all of them (the largest of
// each finding's smallest fix, in the ecosystem's own ordering), most
// findings removed first, then the worst severity.
func upgrades(findings []match.Finding) []Upgrade {
	type key struct{ eco, name, from string }
	groups := map[key]*Upgrade{}
	var order []key
	for i := range findings {
		f := &findings[i]
		if f.Status != match.StatusFixed || len(f.FixedVersions) == 0 {
			continue
		}
		k := key{f.Ecosystem, f.Name, f.Version}
		g := groups[k]
		if g == nil {
			g = &Upgrade{Ecosystem: f.Ecosystem, Name: f.Name, From: f.Version, To: f.FixedVersions[0], Worst: f.Severity}
			groups[k] = g
			order = append(order, k)
		} else if later(f.Ecosystem, f.FixedVersions[0], g.To) {
			g.To = f.FixedVersions[0]
		}
		g.Removes++
		g.Worst = worse(g.Worst, f.Severity)
		g.IDs = append(g.IDs, f.ID)
		if p := f.Package.Name; !slices.Contains(g.Packages, p) {
			g.Packages = append(g.Packages, p)
		}
	}
	out := make([]Upgrade, 0, len(order))
	for _, k := range order {
		out = append(out, *groups[k])
	}
	slices.SortStableFunc(out, func(a, b Upgrade) int {
		if c := cmp.Compare(b.Removes, a.Removes); c != 0 {
			return c
		}
		if c := cmp.Compare(sevRank(a.Worst), sevRank(b.Worst)); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// later reports whether version a sorts after b in the ecosystem's
// ordering (falling back to text when either does not parse).
func later(ecosystem, a, b string) bool {
	if s, ok := version.ForEcosystem(ecosystem); ok {
		va, errA := s.Parse(a)
		vb, errB := s.Parse(b)
		if errA == nil && errB == nil {
			return va.Compare(vb) > 0
		}
	}
	return a > b
}

// BaseAdvice says how many findings the image's base layers brought.
type BaseAdvice struct {
	// BaseLayers counts the layers taken to be the base image's.
	BaseLayers int
	FromBase   int
	Total      int
	Fixable    int // of FromBase, those with a fix
	Distro     string
}

// baseLayerCount finds where the base image ends in the history: the
// base's own history ends with its CMD or ENTRYPOINT (a step without a
// layer), so the layers made before the last such step that is not the
// image's own final one are the base's. Zero when nothing tells.
func baseLayerCount(history []api.HistoryEntry) int {
	last := -1
	for i, h := range history {
		if i == len(history)-1 {
			break
		}
		cmd := strings.ToUpper(h.CreatedBy)
		if h.EmptyLayer && (strings.Contains(cmd, "CMD") || strings.Contains(cmd, "ENTRYPOINT")) {
			last = i
		}
	}
	if last < 0 {
		return 0
	}
	n := 0
	for _, h := range history[:last] {
		if !h.EmptyLayer {
			n++
		}
	}
	return n
}

// baseAdvice counts the findings whose package came from the base layers
// (by the layer diff ids of the inventory, in order).
func baseAdvice(r *match.Report, history []api.HistoryEntry) *BaseAdvice {
	n := baseLayerCount(history)
	if n == 0 || len(r.Findings) == 0 || n > len(r.Inventory.Layers) {
		return nil
	}
	base := map[string]bool{}
	for _, l := range r.Inventory.Layers[:n] {
		base[l.DiffID] = true
	}
	a := &BaseAdvice{BaseLayers: n, Total: len(r.Findings)}
	if d := r.Inventory.Distro; d != nil {
		a.Distro = strings.TrimSpace(d.ID + " " + d.VersionID)
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		if base[f.Package.Layer] {
			a.FromBase++
			if f.Status == match.StatusFixed {
				a.Fixable++
			}
		}
	}
	return a
}

// MostFromBase reports whether most findings came with the base image.
func (a *BaseAdvice) MostFromBase() bool { return a != nil && a.FromBase*2 > a.Total }
