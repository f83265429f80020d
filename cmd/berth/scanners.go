package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/licensepolicy"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/scan"
	"berth.dev/berth/internal/secret"
)

// scannerFlags are `berth scan`'s --scanners and the flags of the
// scanners other than vuln. Kept apart from scan.go, which holds the
// vulnerability flags.
type scannerFlags struct {
	spec                      string
	secretConfig              string
	licenseAllow, licenseDeny []string
	list                      []string // parsed spec
	policy                    licensepolicy.Policy
}

func (sf *scannerFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&sf.spec, "scanners", strings.Join(scan.DefaultScanners, ","),
		"what to look for, a list of: "+strings.Join(scan.AllScanners, ", ")+" (a scan without vuln needs no database)")
	f.StringVar(&sf.secretConfig, "secret-config", "", "secret rules file: more rules, allow rules, disabled rules (gitleaks' TOML format, see docs/secrets.md)")
	f.StringSliceVar(&sf.licenseAllow, "license-allow", nil, "with --scanners license: only these SPDX ids or classes (permissive, weak-copyleft, ...) pass")
	f.StringSliceVar(&sf.licenseDeny, "license-deny", nil, "with --scanners license: these SPDX ids or classes fail")
}

// parse checks the flags; call it before anything is read.
func (sf *scannerFlags) parse() error {
	list, err := scan.ParseScanners(sf.spec)
	if err != nil {
		return fmt.Errorf("--scanners: %w", err)
	}
	sf.list = list
	if sf.policy, err = licensepolicy.ParsePolicy(sf.licenseAllow, sf.licenseDeny); err != nil {
		return fmt.Errorf("--license-allow/--license-deny: %w", err)
	}
	if (len(sf.licenseAllow) > 0 || len(sf.licenseDeny) > 0) && !sf.wants(scan.ScannerLicense) {
		return fmt.Errorf("--license-allow and --license-deny need --scanners license")
	}
	return nil
}

func (sf *scannerFlags) wants(name string) bool { return slices.Contains(sf.list, name) }

// configure sets up the engine for the scanners other than vuln.
func (sf *scannerFlags) configure(e *scan.Engine) error {
	if sf.wants(scan.ScannerSecret) {
		rs, err := secret.Default()
		if sf.secretConfig != "" {
			rs, err = secret.LoadFile(sf.secretConfig)
		}
		if err != nil {
			return fmt.Errorf("--secret-config: %w", err)
		}
		e.Secrets = rs
	}
	e.Misconfig = sf.wants(scan.ScannerMisconfig)
	if sf.wants(scan.ScannerLicense) {
		p := sf.policy
		e.Licenses = &p
	}
	return nil
}

// failing reports whether anything other than vulnerabilities remains
// after filtering that --exit-code should fail on.
func failing(r *match.Report) bool {
	for _, s := range r.Secrets {
		if s.Allowed == "" {
			return true
		}
	}
	return len(r.Misconfigurations) > 0 || licensepolicy.Violations(r.Licenses) > 0
}
