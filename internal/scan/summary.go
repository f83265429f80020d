package scan

import (
	"fmt"
	"slices"
	"strings"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report/bom"
)

// SummaryOrder is the order severities are listed in summaries, worst
// first.
var SummaryOrder = []match.Severity{
	match.SeverityCritical, match.SeverityHigh, match.SeverityMedium,
	match.SeverityLow, match.SeverityNone, match.SeverityUnknown,
}

// Summary counts what a filtered report shows and what it left out.
type Summary struct {
	// Image names the image as people read it ("kitchen-sink:latest").
	Image string
	// Findings counts the findings shown, by severity.
	Findings map[match.Severity]int
	Total    int
	// Suppressed counts findings an ignore file or VEX statement removed.
	Suppressed int
	// Hidden counts findings the severity filter or --ignore-unfixed left
	// out.
	Hidden int
	// Unjudged is what the database could not judge (set by the caller
	// from Engine.Unjudged).
	Unjudged Unjudged
	// Others summarizes the scanners other than vuln (scanners.go); Vuln
	// says whether vulnerabilities were looked for.
	Vuln   bool
	Others []string
}

// Summarize compares the report as matched (all) with the report the
// filter kept (shown, from match.Filter.Apply on all).
func Summarize(all, shown *match.Report) Summary {
	s := Summary{Image: ImageName(&shown.Inventory), Findings: map[match.Severity]int{}}
	for _, f := range shown.Findings {
		s.Findings[f.Severity]++
	}
	s.Total = len(shown.Findings)
	s.Suppressed = len(shown.Suppressed) - len(all.Suppressed)
	s.Hidden = len(all.Findings) - s.Total - s.Suppressed
	s.Vuln = len(shown.Scanners) == 0 || slices.Contains(shown.Scanners, ScannerVuln)
	s.Others = othersSummary(shown)
	return s
}

// String is the one line `berth scan` prints on standard error:
//
//	kitchen-sink:latest: 25 vulnerabilities (CRITICAL 2, HIGH 10, MEDIUM 13), 1 suppressed, 4 hidden by filters
//	debian:12: no vulnerabilities; 96 packages not judged (the database holds no debian 12 records)
func (s Summary) String() string {
	var b strings.Builder
	b.WriteString(s.Image)
	b.WriteString(": ")
	if !s.Vuln {
		b.WriteString(strings.Join(s.Others, "; "))
		return b.String()
	}
	switch s.Total {
	case 0:
		b.WriteString("no vulnerabilities")
	case 1:
		b.WriteString("1 vulnerability")
	default:
		fmt.Fprintf(&b, "%d vulnerabilities", s.Total)
	}
	if s.Total > 0 {
		var parts []string
		for _, sev := range SummaryOrder {
			if n := s.Findings[sev]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", sev, n))
			}
		}
		b.WriteString(" (" + strings.Join(parts, ", ") + ")")
	}
	if s.Suppressed > 0 {
		fmt.Fprintf(&b, ", %d suppressed", s.Suppressed)
	}
	if s.Hidden > 0 {
		fmt.Fprintf(&b, ", %d hidden by filters", s.Hidden)
	}
	if u := s.Unjudged; u.Packages > 0 {
		fmt.Fprintf(&b, "; %d %s not judged", u.Packages, plural(u.Packages, "package", "packages"))
		if u.Release != "" {
			fmt.Fprintf(&b, " (the database holds no %s records)", u.Release)
		} else {
			b.WriteString(" (their OS release is unknown)")
		}
	}
	for _, o := range s.Others {
		b.WriteString("; ")
		b.WriteString(o)
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ImageName names the image of an inventory the way reports title it: the
// repository or archive name, with its tag when it has one.
func ImageName(inv *inventory.Inventory) string {
	// Only the image's identity matters here; the packages would only be
	// sorted for nothing.
	img := bom.Build(&inventory.Inventory{Source: inv.Source, Digest: inv.Digest}).Image
	name := img.Name
	if img.Version != "" && img.Version != img.Digest {
		name += ":" + img.Version
	}
	if name == "" {
		return "image"
	}
	return name
}
