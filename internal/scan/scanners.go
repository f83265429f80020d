package scan

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/licensepolicy"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/misconfig"
	"berth.dev/berth/internal/secret"
)

// Scanner names, as `--scanners` takes them (Trivy's names).
const (
	ScannerVuln      = "vuln"
	ScannerSecret    = "secret"
	ScannerMisconfig = "misconfig"
	ScannerLicense   = "license"
)

// AllScanners lists the scanners in the order reports list them.
var AllScanners = []string{ScannerVuln, ScannerSecret, ScannerMisconfig, ScannerLicense}

// DefaultScanners is what `berth scan` runs without --scanners.
var DefaultScanners = []string{ScannerVuln, ScannerSecret}

// ParseScanners reads a comma-separated list of scanner names into
// AllScanners' order, without repeats.
func ParseScanners(spec string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(spec, ",") {
		s = strings.ToLower(strings.TrimSpace(s))
		if s == "" {
			continue
		}
		if !slices.Contains(AllScanners, s) {
			return nil, fmt.Errorf("unknown scanner %q: want a list of %s", s, strings.Join(AllScanners, ", "))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scanner named: want a list of %s", strings.Join(AllScanners, ", "))
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(AllScanners, a) - slices.Index(AllScanners, b) })
	return out, nil
}

// imageScan is the part of one scan that reads the image besides the
// inventory: the secret pass over every layer, then the config.
type imageScan struct {
	secrets   *secret.Pass
	misconfig *misconfig.Pass
}

// inventoryScanner returns the inventory scanner for one scan: the
// engine's, with this scan's passes added. The engine's own is shared by
// concurrent scans and never changed.
func (e *Engine) inventoryScanner() (*inventory.Scanner, *imageScan) {
	is := &imageScan{}
	if e.Secrets == nil && !e.Misconfig {
		return e.Inventory, is
	}
	s := *e.Inventory
	s.Passes = slices.Clip(s.Passes)
	if e.Secrets != nil {
		is.secrets = secret.NewPass(e.Secrets)
		s.Passes = append(s.Passes, is.secrets)
	}
	if e.Misconfig {
		is.misconfig = misconfig.NewPass()
		s.Passes = append(s.Passes, is.misconfig)
	}
	return &s, is
}

// finish adds to the report what the passes and the config hold.
func (e *Engine) finish(r *match.Report, img *image.Image, is *imageScan) {
	// A vulnerability scan alone is what a report without scanners has
	// always meant: its bytes stay as they were.
	if s := e.scanners(); !slices.Equal(s, []string{ScannerVuln}) {
		r.Scanners = s
	}
	if is.secrets != nil {
		r.Secrets = append(is.secrets.Findings(), e.configSecrets(img)...)
		if r.Secrets == nil {
			r.Secrets = []secret.Finding{}
		}
	}
	if e.Licenses != nil {
		r.Licenses = licensepolicy.Check(&r.Inventory, *e.Licenses)
	}
	if is.misconfig != nil {
		r.Misconfigurations = append(misconfig.CheckConfig(img.Config), is.misconfig.Findings()...)
		if r.Misconfigurations == nil {
			r.Misconfigurations = []misconfig.Finding{}
		}
	}
}

// scanners names what the engine looks for.
func (e *Engine) scanners() []string {
	var out []string
	if e.Matcher != nil {
		out = append(out, ScannerVuln)
	}
	if e.Secrets != nil {
		out = append(out, ScannerSecret)
	}
	if e.Misconfig {
		out = append(out, ScannerMisconfig)
	}
	if e.Licenses != nil {
		out = append(out, ScannerLicense)
	}
	return out
}

// inventoryOnly is the report of a scan that matches nothing (no
// vulnerability scanner, so no database).
func inventoryOnly(inv *inventory.Inventory) *match.Report {
	return &match.Report{SchemaVersion: match.ReportSchemaVersion, Inventory: *inv,
		MatchedAt: time.Now().UTC(), Findings: []match.Finding{}}
}

// othersSummary is one phrase per scanner other than vuln, for the
// summary line: "1 secret (CRITICAL 1), 2 allowed".
func othersSummary(r *match.Report) []string {
	var out []string
	if slices.Contains(r.Scanners, ScannerSecret) {
		counts := map[string]int{}
		n, allowed := 0, 0
		for _, f := range r.Secrets {
			if f.Allowed != "" {
				allowed++
				continue
			}
			n++
			counts[f.Severity]++
		}
		var b strings.Builder
		switch n {
		case 0:
			b.WriteString("no secrets")
		case 1:
			b.WriteString("1 secret")
		default:
			fmt.Fprintf(&b, "%d secrets", n)
		}
		var parts []string
		for _, sev := range []string{secret.SeverityCritical, secret.SeverityHigh, secret.SeverityMedium, secret.SeverityLow} {
			if c := counts[sev]; c > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", sev, c))
			}
		}
		if len(parts) > 0 {
			b.WriteString(" (" + strings.Join(parts, ", ") + ")")
		}
		if allowed > 0 {
			fmt.Fprintf(&b, ", %d allowed", allowed)
		}
		out = append(out, b.String())
	}
	if slices.Contains(r.Scanners, ScannerLicense) {
		n := licensepolicy.Violations(r.Licenses)
		switch n {
		case 0:
			out = append(out, fmt.Sprintf("%d licenses, no policy violation", len(r.Licenses)))
		case 1:
			out = append(out, "1 license policy violation")
		default:
			out = append(out, fmt.Sprintf("%d license policy violations", n))
		}
	}
	if slices.Contains(r.Scanners, ScannerMisconfig) {
		out = append(out, countBySeverity(len(r.Misconfigurations), "misconfiguration", "misconfigurations", func(yield func(string) bool) {
			for _, f := range r.Misconfigurations {
				if !yield(f.Severity) {
					return
				}
			}
		}))
	}
	return out
}

// countBySeverity is "no misconfigurations", "1 misconfiguration (HIGH 1)",
// "3 misconfigurations (HIGH 1, LOW 2)".
func countBySeverity(n int, one, many string, severities func(func(string) bool)) string {
	if n == 0 {
		return "no " + many
	}
	counts := map[string]int{}
	for s := range severities {
		counts[s]++
	}
	var parts []string
	for _, sev := range []string{secret.SeverityCritical, secret.SeverityHigh, secret.SeverityMedium, secret.SeverityLow} {
		if c := counts[sev]; c > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", sev, c))
		}
	}
	word := many
	if n == 1 {
		word = one
	}
	return fmt.Sprintf("%d %s (%s)", n, word, strings.Join(parts, ", "))
}

// configSecrets scans the image config for secrets, or reads what an
// earlier scan of the same config with the same rules found: a warm scan
// then parses no rule at all.
func (e *Engine) configSecrets(img *image.Image) []secret.Finding {
	cache := e.Inventory.Cache
	kind := "secret-config-" + e.Secrets.Version()
	if data, ok := cache.GetExtra(kind, img.ConfigDigest); ok {
		var fs []secret.Finding
		if json.Unmarshal(data, &fs) == nil {
			return fs
		}
	}
	fs := e.Secrets.ScanConfig(img.Config)
	if data, err := json.Marshal(fs); err == nil {
		if err := cache.PutExtra(kind, img.ConfigDigest, data); err != nil {
			e.logger().Warn("config cache", "err", err)
		}
	}
	return fs
}
