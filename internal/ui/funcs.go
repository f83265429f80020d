package ui

import (
	"fmt"
	"html/template"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"berth.dev/berth/internal/api"
	"berth.dev/berth/internal/reports"
)

var funcs = template.FuncMap{
	"size":     func(n int64) string { return humanize.IBytes(uint64(max(n, 0))) },
	"when":     when,
	"ago":      ago,
	"short":    shortDigest,
	"bar":      severityBar,
	"join":     strings.Join,
	"lower":    strings.ToLower,
	"repoURL":  repoURL,
	"artURL":   artifactURL,
	"vulnURL":  func(id string) string { return Prefix + "/vulnerabilities?id=" + url.QueryEscape(id) },
	"projURL":  func(p string) string { return Prefix + "/projects/" + url.PathEscape(p) },
	"esc":      url.PathEscape,
	"qesc":     url.QueryEscape,
	"advisory": advisoryURL,
	"sevclass": func(s string) string { return "sev-" + strings.ToLower(s) },
	"plural":   plural,
	"add":      func(a, b int) int { return a + b },
	"sub":      func(a, b int) int { return a - b },
	"list":     func(s ...string) []string { return s },
	"has":      func(list []string, s string) bool { return slices.Contains(list, s) },
	"layersSize": func(ls []api.Layer) int64 {
		var n int64
		for _, l := range ls {
			n += l.Size
		}
		return n
	},
}

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return humanize.Time(t)
}

func shortDigest(d fmt.Stringer) string {
	s := d.String()
	if _, hex, ok := strings.Cut(s, ":"); ok && len(hex) > 12 {
		return hex[:12]
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// repoURL is a repository's page; the repository's own slashes are
// escaped so that it stays one path segment (as in the API).
func repoURL(project, repository string) string {
	return Prefix + "/projects/" + url.PathEscape(project) + "/repositories/" + url.PathEscape(repository)
}

func artifactURL(project, repository string, d fmt.Stringer) string {
	return repoURL(project, repository) + "/artifacts/" + url.PathEscape(d.String())
}

// advisoryURL links an advisory id to its public record, or "" for ids
// with no known home.
func advisoryURL(id string) string {
	switch {
	case strings.HasPrefix(id, "CVE-"):
		return "https://nvd.nist.gov/vuln/detail/" + url.PathEscape(id)
	case strings.HasPrefix(id, "GHSA-"):
		return "https://github.com/advisories/" + url.PathEscape(id)
	case strings.HasPrefix(id, "DSA-"), strings.HasPrefix(id, "DLA-"), strings.HasPrefix(id, "GO-"),
		strings.HasPrefix(id, "PYSEC-"), strings.HasPrefix(id, "RUSTSEC-"), strings.HasPrefix(id, "OSV-"):
		return "https://osv.dev/vulnerability/" + url.PathEscape(id)
	}
	return ""
}

// severityBar draws a summary as a horizontal bar in SVG, one rectangle
// per severity, with the counts as its accessible name. Only numbers are
// written into the markup; colours come from the stylesheet (the policy
// forbids inline style).
func severityBar(s *reports.Summary) template.HTML {
	if s == nil {
		return template.HTML(`<span class="muted">not scanned</span>`)
	}
	if s.Total == 0 {
		return template.HTML(`<span class="clean">no vulnerabilities</span>`)
	}
	parts := []struct {
		n     int
		class string
		word  string
	}{{s.Critical, "critical", "critical"}, {s.High, "high", "high"}, {s.Medium, "medium", "medium"}, {s.Low, "low", "low"}, {s.Unknown, "unknown", "unknown"}}
	var label []string
	var b strings.Builder
	x := 0.0
	for _, p := range parts {
		if p.n == 0 {
			continue
		}
		label = append(label, fmt.Sprintf("%d %s", p.n, p.word))
		w := 120 * float64(p.n) / float64(s.Total)
		fmt.Fprintf(&b, `<rect class="%s" x="%.2f" y="0" width="%.2f" height="10"></rect>`, p.class, x, w)
		x += w
	}
	var counts strings.Builder
	for _, p := range parts {
		if p.n > 0 {
			fmt.Fprintf(&counts, `<span class="count %s" title="%s">%d<span class="sr"> %s</span></span>`, p.class, p.word, p.n, p.word)
		}
	}
	return template.HTML(fmt.Sprintf(`<span class="sevbar"><svg role="img" aria-label="%s" width="120" height="10" viewBox="0 0 120 10">%s</svg>%s</span>`,
		strings.Join(label, ", "), b.String(), counts.String()))
}
