package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/policy"
	"berth.dev/berth/internal/report/sarif"
	"berth.dev/berth/internal/scan"
	"berth.dev/berth/internal/secret"
	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/vulndb"
)

// exitDenied is `berth policy check`'s answer for an image the policy
// refuses: apart from 1 (the check could not run) so CI can tell them.
const exitDenied = 2

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check images against a policy (the CI gate of what the registry and admission enforce)",
	}
	cmd.AddCommand(newPolicyCheckCmd())
	return cmd
}

// policyLoadFlags load a policy the same way for every command that takes
// one.
type policyLoadFlags struct {
	path  string
	trust []string
}

func (f *policyLoadFlags) add(cmd *cobra.Command, what string) {
	cmd.Flags().StringVar(&f.path, "policy", "", what)
	cmd.Flags().StringArrayVar(&f.trust, "trust", nil, "berth trust file whose keys the policy may name (key.secretRef, keys[].ref) (repeatable)")
}

// loadReportOnly loads the policy as one that judges a scan report
// alone: it fails when a rule reads signatures or attestations.
func (f *policyLoadFlags) loadReportOnly() (*policy.Policy, error) {
	return policy.Load(f.path, policy.Options{ReportOnly: true})
}

func (f *policyLoadFlags) load() (*policy.Policy, error) {
	if f.path == "" {
		return nil, errors.New("--policy is required")
	}
	var opts policy.Options
	if len(f.trust) > 0 {
		r, err := policy.TrustResolver(f.trust...)
		if err != nil {
			return nil, err
		}
		opts.Keys = r
	}
	return policy.Load(f.path, opts)
}

func newPolicyCheckCmd() *cobra.Command {
	var (
		pf             policyLoadFlags
		reg            registryFlags
		format, output string
		ps             policyScan
		localName      string
	)
	cmd := &cobra.Command{
		Use:   "check IMAGE --policy FILE",
		Short: "Decide whether an image passes a policy",
		Long: `Decide whether an image passes a policy: the same evaluation the registry runs
at pull time and the admission webhook runs before a pod starts.

--policy is a file or a directory of ClusterImagePolicy
(policy.sigstore.dev/v1beta1) and ImagePolicy (berth.dev/v1) documents. Every
document whose images match applies; all must pass. Signatures and
attestations are verified cryptographically (cosign's tag scheme and sigstore
bundles). Vulnerability, secret, misconfiguration and license rules read
--report (berth scan --format json) or, without it, a scan made now with the
scanners the policy needs (vuln with the database in --db-dir, secret,
misconfig). A report made without a scanner a rule reads fails that rule.

An image not yet in a registry (oci-archive:, docker-archive:, oci:, a tar
file) is checked against a policy whose rules read the scan alone
(vulnerabilities, secrets, misconfigurations, licenses, tags, conditions on
them): the CI gate before the push. --name gives the reference it will be
pushed as, for the documents' images globs and tag rules. A policy that
requires signatures or attestations cannot be checked there: they are
attached to an image in a registry.

Each failed rule is printed with its reason. Exit codes: 0 allowed (warn-mode
failures are printed as warnings), 2 denied, 1 when the check could not run
(bad policy, unreadable image).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "text", "json", "sarif":
			default:
				return fmt.Errorf("--format %q: want text, json or sarif", format)
			}
			p, err := pf.load()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var facts policy.Facts
			if isLocalImage(args[0]) {
				if facts, err = localFacts(cmd, &pf, p, &ps, args[0], localName); err != nil {
					return err
				}
			} else {
				if localName != "" {
					return errors.New("--name names an image that is not in a registry yet; this one is")
				}
				ref, st, err := reg.open(args[0])
				if err != nil {
					return err
				}
				t, err := sign.Resolve(ctx, st, ref)
				if err != nil {
					return err
				}
				reportResolved(cmd, ref, t)
				img := policyImage(ref, t)
				facts = policy.Facts{Image: img, Store: st, Target: t,
					Report: func(ctx context.Context) (*match.Report, error) {
						ps.insecure, ps.scanners = reg.insecure, p.Scanners()
						return ps.report(ctx, cmd, img, "registry:"+img.Name()+"@"+img.Digest)
					}}
			}
			v, err := p.Evaluate(ctx, facts)
			if err != nil {
				return err
			}
			write := func(w io.Writer) error { return writeVerdict(w, format, v, p.Source) }
			if output == "" {
				err = write(cmd.OutOrStdout())
			} else {
				err = writeSBOMOutput(output, write)
			}
			if err != nil {
				return err
			}
			if !v.Allowed {
				return exitError{exitDenied}
			}
			return nil
		},
	}
	pf.add(cmd, "policy file or directory (required)")
	cmd.Flags().StringVarP(&format, "format", "f", "text", "output format: text, json or sarif")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the verdict to this file instead of standard output")
	cmd.Flags().StringVar(&ps.reportPath, "report", "", "scan report of the image (berth scan --format json) for vulnerability, secret, misconfiguration and license rules")
	cmd.Flags().StringVar(&ps.dbDir, "db-dir", "", "vulnerability database directory, for a scan when --report is not given (default: berth db update's)")
	cmd.Flags().StringVar(&ps.cacheDir, "cache-dir", "", "layer cache directory for that scan")
	cmd.Flags().StringVar(&localName, "name", "", "for an image not in a registry yet: the reference it will be pushed as (registry/repository[:tag])")
	cmd.Flags().StringVar(&ps.secretConfig, "secret-config", "", "secret rules file for that scan, as berth scan --secret-config (gitleaks' TOML format, see docs/secrets.md)")
	reg.add(cmd)
	return cmd
}

// policyImage names the resolved image for the policy.
func policyImage(ref name.Reference, t sign.Target) policy.Image {
	img := policy.Image{Registry: ref.Context().RegistryStr(), Repository: ref.Context().RepositoryStr(), Digest: t.Manifest.Digest.String()}
	switch r := ref.(type) {
	case name.Tag:
		img.Tag = r.TagStr()
	case name.Digest:
		img.Pinned = true
	}
	return img
}

// policyScan is where `berth policy check` gets its report from.
type policyScan struct {
	reportPath      string // --report: a report made before
	dbDir, cacheDir string
	secretConfig    string
	insecure        bool
	scanners        []string // what the policy's rules read
}

// report reads the given report, or scans the image (by its digest) with
// the scanners the policy's rules read: the vulnerability database only
// when a rule reads vulnerabilities or licenses.
func (ps *policyScan) report(ctx context.Context, cmd *cobra.Command, img policy.Image, src string) (*match.Report, error) {
	path, dbDir, cacheDir, scanners := ps.reportPath, ps.dbDir, ps.cacheDir, ps.scanners
	if path != "" {
		r, err := readStoredReport("--report", path)
		if err != nil {
			return nil, err
		}
		if d := r.Inventory.Digest; d != "" && img.Digest != "" && d != img.Digest {
			return nil, fmt.Errorf("--report %s is about %s, the image is %s", path, d, img.Digest)
		}
		return r, nil
	}
	s := &inventory.Scanner{Analyzers: analyzers.All()}
	engine := &scan.Engine{Inventory: s, Misconfig: slices.Contains(scanners, scan.ScannerMisconfig)}
	var err error
	if slices.Contains(scanners, scan.ScannerVuln) {
		if dbDir == "" {
			if dbDir, err = vulndb.DefaultDir(); err != nil {
				return nil, err
			}
		}
		db, err := vulndb.Open(dbDir)
		if err != nil {
			return nil, fmt.Errorf("the policy has vulnerability or license rules: give --report, or a database (%w)", err)
		}
		defer db.Close()
		engine.Matcher = match.New(db)
	}
	if slices.Contains(scanners, scan.ScannerSecret) {
		engine.Secrets, err = secret.Default()
		if ps.secretConfig != "" {
			engine.Secrets, err = secret.LoadFile(ps.secretConfig)
		}
		if err != nil {
			return nil, fmt.Errorf("--secret-config: %w", err)
		}
	}
	if cacheDir == "" {
		if cacheDir, err = inventory.DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	if s.Cache, err = inventory.OpenCache(cacheDir); err != nil {
		return nil, err
	}
	what := src
	if img.Digest != "" {
		what = img.Name() + "@" + img.Digest
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "scanning %s for the policy's rules (%s)\n", what, strings.Join(scanners, ", "))
	return engine.Scan(ctx, src, image.Options{Insecure: ps.insecure})
}

// localFacts are what a policy check of an image not yet in a registry
// knows: the scan of the archive or layout, under the name it will be
// pushed as. There are no signatures to read, so a policy that requires
// them is refused before anything is scanned.
func localFacts(cmd *cobra.Command, pf *policyLoadFlags, p *policy.Policy, ps *policyScan, src, pushedAs string) (policy.Facts, error) {
	if _, err := pf.loadReportOnly(); err != nil {
		return policy.Facts{}, fmt.Errorf("%s is not in a registry, and the policy reads signatures or attestations, which are attached to an image in a registry: push it and check its registry reference (%w)", src, err)
	}
	var img policy.Image
	if pushedAs != "" {
		ref, err := name.ParseReference(pushedAs)
		if err != nil {
			return policy.Facts{}, fmt.Errorf("--name: %w", err)
		}
		// Not pushed yet: no digest it could be pinned by.
		img = policyImage(ref, sign.Target{})
		img.Pinned, img.Digest = false, ""
	} else {
		img = policy.Image{Repository: src}
		for _, d := range p.Docs {
			if len(d.Images) > 0 {
				return policy.Facts{}, fmt.Errorf("%s is not in a registry and the policy's documents apply to images by name (%s/%s): give --name, the reference it will be pushed as", src, d.Kind, d.Name)
			}
		}
	}
	ps.scanners = p.Scanners()
	return policy.Facts{Image: img, Report: func(ctx context.Context) (*match.Report, error) {
		return ps.report(ctx, cmd, img, src)
	}}, nil
}

func writeVerdict(w io.Writer, format string, v *policy.Verdict, source string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "sarif":
		var rs []sarif.PolicyResult
		for _, x := range v.Violations {
			rs = append(rs, sarif.PolicyResult{Policy: x.Policy, Rule: x.Rule, Image: v.Image, Message: x.Message, PolicyFile: source})
		}
		for _, x := range v.Warnings {
			rs = append(rs, sarif.PolicyResult{Policy: x.Policy, Rule: x.Rule, Image: v.Image, Message: x.Message, Warning: true, PolicyFile: source})
		}
		return sarif.EncodePolicy(w, rs, sarif.Meta{ToolVersion: version})
	}
	verdict := "allowed"
	if !v.Allowed {
		verdict = "DENIED"
	}
	fmt.Fprintf(w, "%s: %s\n", v.Image, verdict)
	if len(v.Policies) == 0 {
		fmt.Fprintln(w, "  no policy document applies to this image")
	}
	for _, x := range v.Violations {
		fmt.Fprintf(w, "  ✗ %s\n", x)
	}
	for _, x := range v.Warnings {
		fmt.Fprintf(w, "  ! warning: %s\n", x)
	}
	for _, n := range v.Notes {
		fmt.Fprintf(w, "  • %s\n", n)
	}
	return nil
}
