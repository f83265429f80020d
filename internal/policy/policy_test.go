package policy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/policy"
	"berth.dev/berth/internal/policy/policytest"
	"berth.dev/berth/internal/sign"
)

// fixture is a registry with keys and an image in team/app.
type fixture struct {
	reg      *policytest.Registry
	ci, scan policytest.Key
	other    policytest.Key
}

func newFixture(t *testing.T) *fixture {
	return &fixture{reg: policytest.NewRegistry(t, nil), ci: policytest.NewKey(t, "ci"),
		scan: policytest.NewKey(t, "scan"), other: policytest.NewKey(t, "other")}
}

func (f *fixture) push(t *testing.T, repo, tag, seed string) sign.Target {
	return f.reg.Push(t, repo, tag, seed)
}

func facts(f *fixture, tgt sign.Target, tag string, report *match.Report) policy.Facts {
	return policy.Facts{
		Image:  policy.Image{Registry: f.reg.Host, Repository: tgt.Repo, Tag: tag, Digest: tgt.Manifest.Digest.String()},
		Store:  f.reg.Store,
		Target: tgt,
		Report: func(context.Context) (*match.Report, error) {
			if report == nil {
				return nil, policy.ErrNotScanned
			}
			return report, nil
		},
	}
}

func mustParse(t *testing.T, doc string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("policy.yaml", []byte(doc), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func evaluate(t *testing.T, p *policy.Policy, fs policy.Facts) *policy.Verdict {
	t.Helper()
	v, err := p.Evaluate(context.Background(), fs)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// cip is a ClusterImagePolicy in policy-controller's documented shape.
func cip(mode string, keys ...policytest.Key) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: image-policy
spec:
  mode: %s
  images:
  - glob: "**"
  authorities:
`, mode)
	for _, k := range keys {
		fmt.Fprintf(&b, "  - name: %s\n    key:\n      data: |\n%s\n", k.Name, k.Indented(8))
	}
	return b.String()
}

// The example of policy-controller's documentation, verbatim but for the
// key: a key authority with an attestation checked by a CUE policy.
const seedExample = `apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: image-policy
spec:
  images:
  - glob: "**"
  authorities:
  - key:
      data: |
%s
    attestations:
    - name: must-have-spdx
      predicateType: spdxjson
      policy:
        type: cue
        data: |
          predicateType: "https://spdx.dev/Document"
`

func TestSeedExampleVerbatim(t *testing.T) {
	f := newFixture(t)
	p := mustParse(t, fmt.Sprintf(seedExample, f.ci.Indented(8)))
	with := f.push(t, "team/app", "with", "with-spdx")
	policytest.AttestTarget(t, f.reg.Store, with, f.ci, "spdxjson", `{"spdxVersion":"SPDX-2.3"}`, false, nil)
	without := f.push(t, "team/app", "without", "without-spdx")
	policytest.AttestTarget(t, f.reg.Store, without, f.ci, "cyclonedx", `{"bomFormat":"CycloneDX"}`, false, nil)

	if v := evaluate(t, p, facts(f, with, "with", nil)); !v.Allowed {
		t.Errorf("image with a signed SPDX attestation refused: %s", v.Message())
	}
	v := evaluate(t, p, facts(f, without, "without", nil))
	if v.Allowed {
		t.Fatal("image without an SPDX attestation allowed")
	}
	want := "ClusterImagePolicy/image-policy: authority: no authority passed: authority authority-0: attestation must-have-spdx: no https://spdx.dev/Document attestation signed by [authority-0]"
	if got := v.Message(); got != want {
		t.Errorf("message\n got %s\nwant %s", got, want)
	}
}

func TestSignatures(t *testing.T) {
	f := newFixture(t)
	p := mustParse(t, cip("enforce", f.ci))
	ctx := context.Background()
	cases := []struct {
		name    string
		prepare func(t *testing.T) (sign.Target, string)
		allowed bool
		message string
	}{
		{"signed in the .sig tag (cosign v2, berth sign)", func(t *testing.T) (sign.Target, string) {
			tgt := f.push(t, "team/app", "v2", "sig-tag")
			policytest.SignTarget(t, f.reg.Store, tgt, f.ci, false, nil)
			return tgt, "v2"
		}, true, ""},
		{"signed as a sigstore bundle (cosign v3, berth sign --referrers)", func(t *testing.T) (sign.Target, string) {
			tgt := f.push(t, "team/app", "v3", "bundle")
			policytest.SignTarget(t, f.reg.Store, tgt, f.ci, true, nil)
			return tgt, "v3"
		}, true, ""},
		{"unsigned", func(t *testing.T) (sign.Target, string) {
			return f.push(t, "team/app", "unsigned", "unsigned"), "unsigned"
		}, false, "authority ci: not signed by [ci]"},
		{"signed by a key that is not trusted", func(t *testing.T) (sign.Target, string) {
			tgt := f.push(t, "team/app", "untrusted", "untrusted")
			policytest.SignTarget(t, f.reg.Store, tgt, f.other, false, nil)
			return tgt, "untrusted"
		}, false, "signature does not verify with any given key"},
		{"tampered: a valid signature whose payload names another digest", func(t *testing.T) (sign.Target, string) {
			good := f.push(t, "team/app", "good", "good")
			policytest.SignTarget(t, f.reg.Store, good, f.ci, false, nil)
			bad := f.push(t, "team/app", "bad", "bad")
			policytest.CopyTag(t, f.reg.Store, "team/app", sign.Tag(good.Manifest.Digest, "sig"), "team/app", sign.Tag(bad.Manifest.Digest, "sig"))
			return bad, "bad"
		}, false, "signed payload names a different manifest digest"},
		{"a signature for a different repository", func(t *testing.T) (sign.Target, string) {
			elsewhere := f.push(t, "team/other", "v1", "moved")
			policytest.SignTarget(t, f.reg.Store, elsewhere, f.ci, false, nil)
			here := f.push(t, "team/app", "moved", "moved")
			if here.Manifest.Digest != elsewhere.Manifest.Digest {
				t.Fatal("the same image should have the same digest")
			}
			policytest.CopyTag(t, f.reg.Store, "team/other", sign.Tag(elsewhere.Manifest.Digest, "sig"), "team/app", sign.Tag(here.Manifest.Digest, "sig"))
			return here, "moved"
		}, false, "the signature by ci is for team/other, not team/app"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tgt, tag := tc.prepare(t)
			v := evaluate(t, p, facts(f, tgt, tag, nil))
			if v.Allowed != tc.allowed {
				t.Fatalf("allowed=%v, want %v: %s", v.Allowed, tc.allowed, v.Message())
			}
			if !strings.Contains(v.Message(), tc.message) {
				t.Errorf("message %q does not say %q", v.Message(), tc.message)
			}
			if !tc.allowed && (len(v.Violations) != 1 || v.Violations[0].Rule != policy.RuleAuthority) {
				t.Errorf("violations %+v", v.Violations)
			}
		})
	}
	_ = ctx
}

func TestKOfNSigners(t *testing.T) {
	f := newFixture(t)
	doc := fmt.Sprintf(`apiVersion: berth.dev/v1
kind: ImagePolicy
metadata: {name: release}
spec:
  signers:
    require: 2
    keys:
    - name: ci
      data: |
%s
    - name: scan
      data: |
%s
`, f.ci.Indented(8), f.scan.Indented(8))
	p := mustParse(t, doc)
	one := f.push(t, "team/app", "one", "one")
	policytest.SignTarget(t, f.reg.Store, one, f.ci, false, nil)
	v := evaluate(t, p, facts(f, one, "one", nil))
	want := "ImagePolicy/release: signature: not signed by 2 of [ci, scan] (signed by ci)"
	if v.Allowed || v.Message() != want {
		t.Errorf("one of two signers: allowed=%v %q, want %q", v.Allowed, v.Message(), want)
	}
	// The second signer in the other format: both count.
	policytest.SignTarget(t, f.reg.Store, one, f.scan, true, nil)
	if v := evaluate(t, p, facts(f, one, "one", nil)); !v.Allowed || strings.Join(v.Signers, ",") != "ci,scan" {
		t.Errorf("both signers: allowed=%v signers=%v %s", v.Allowed, v.Signers, v.Message())
	}
}

func berthPolicy(spec string) string {
	return "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: prod}\nspec:\n" + spec
}

func report(findings ...match.Finding) *match.Report {
	return &match.Report{Findings: findings, Inventory: inventory.Inventory{Packages: []inventory.Package{
		{Name: "openssl", Version: "3.0.1", Licenses: []string{"Apache-2.0"}},
		{Name: "readline", Version: "8.2", Licenses: []string{"GPL-3.0-only OR MIT"}},
		{Name: "bash", Version: "5.2", Licenses: []string{"GPL-3.0-or-later"}},
	}}}
}

func finding(id string, sev match.Severity, fixed ...string) match.Finding {
	f := match.Finding{ID: id, Severity: sev, Package: inventory.Package{Name: "openssl", Version: "3.0.1"}, Status: match.StatusAffected}
	if len(fixed) > 0 {
		f.Status, f.FixedVersions = match.StatusFixed, fixed
	}
	return f
}

func TestVulnerabilityRules(t *testing.T) {
	f := newFixture(t)
	tgt := f.push(t, "team/app", "v1", "vulns")
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name, spec string
		rep        *match.Report
		allowed    bool
		message    string
	}{
		{"a critical finding with a fix", "  vulnerabilities: {severity: CRITICAL}\n",
			report(finding("CVE-2024-1234", match.SeverityCritical, "1.2.3"), finding("CVE-2024-9", match.SeverityHigh)), false,
			"ImagePolicy/prod: vulnerability: CVE-2024-1234 CRITICAL in openssl 3.0.1, fixed in 1.2.3"},
		{"below the severity", "  vulnerabilities: {severity: CRITICAL}\n",
			report(finding("CVE-2024-9", match.SeverityHigh)), true, ""},
		{"fixable only skips findings without a fix", "  vulnerabilities: {severity: HIGH, fixableOnly: true}\n",
			report(finding("CVE-2024-9", match.SeverityHigh)), true, ""},
		{"max CVSS", "  vulnerabilities: {maxCVSS: 7.0}\n",
			report(func() match.Finding {
				x := finding("CVE-2024-7", match.SeverityMedium)
				x.CVSS = []match.CVSS{{Version: "3.1", Score: 7.5}}
				return x
			}()), false, "CVE-2024-7 MEDIUM in openssl 3.0.1 (CVSS 7.5), no fix yet"},
		{"allow-listed until a later date", "  vulnerabilities:\n    severity: HIGH\n    allow: [{id: CVE-2024-1234, expires: 2025-07-01, reason: vendor fix pending}]\n",
			report(finding("CVE-2024-1234", match.SeverityCritical, "1.2.3")), true, ""},
		{"an expired allow-list entry", "  vulnerabilities:\n    severity: HIGH\n    allow: [{id: CVE-2024-1234, expires: 2025-05-01}]\n",
			report(finding("CVE-2024-1234", match.SeverityCritical, "1.2.3")), false, "(allow-list entry expired at 2025-05-01T00:00:00Z)"},
		{"not scanned yet", "  vulnerabilities: {severity: CRITICAL}\n", nil, false,
			"the image has not been scanned yet, so its vulnerabilities are unknown"},
		{"license deny list, OR with an acceptable side passes", "  licenses: {deny: [GPL-3.0-*]}\n", report(), false,
			"ImagePolicy/prod: license: denied license: bash 5.2 is licensed GPL-3.0-or-later"},
		{"an exception in force waives the rule", `  vulnerabilities: {severity: CRITICAL}
  exceptions:
  - name: hotfix
    rules: [vulnerability]
    expires: 2025-06-02
    reason: rollout of 1.2.3 tomorrow
`, report(finding("CVE-2024-1234", match.SeverityCritical, "1.2.3")), true, ""},
		{"an expired exception waives nothing", `  vulnerabilities: {severity: CRITICAL}
  exceptions:
  - name: hotfix
    rules: ["*"]
    expires: 2025-05-31T23:59:59Z
`, report(finding("CVE-2024-1234", match.SeverityCritical, "1.2.3")), false, "(exception hotfix expired at 2025-05-31T23:59:59Z)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, berthPolicy(tc.spec))
			fs := facts(f, tgt, "v1", tc.rep)
			fs.Now = now
			v := evaluate(t, p, fs)
			if v.Allowed != tc.allowed || !strings.Contains(v.Message(), tc.message) {
				t.Errorf("allowed=%v %q, want %v with %q", v.Allowed, v.Message(), tc.allowed, tc.message)
			}
		})
	}
	// The exception's end bounds how long the verdict may be cached.
	p := mustParse(t, berthPolicy(strings.Replace(cases[8].spec, "2025-06-02", "2025-06-01T00:05:00Z", 1)))
	fs := facts(f, tgt, "v1", cases[8].rep)
	fs.Now = now
	if v := evaluate(t, p, fs); !v.ValidUntil.Equal(now.Add(5*time.Minute)) || len(v.Notes) != 1 {
		t.Errorf("valid until %s, notes %v", v.ValidUntil, v.Notes)
	}
}

func TestRegistriesTagsConditionsAndWarn(t *testing.T) {
	f := newFixture(t)
	tgt := f.push(t, "team/app", "latest", "latest")
	policytest.SignTarget(t, f.reg.Store, tgt, f.ci, false, map[string]string{policy.SignedAtAnnotation: "2025-05-01T00:00:00Z"})
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name, spec string
		allowed    bool
		message    string
		warnings   int
	}{
		{"registry not allowed", "  registries: {allow: [registry.example]}\n", false,
			"registry " + f.reg.Host + " is not allowed (allowed: registry.example)", 0},
		{"registry allowed by glob", "  registries: {allow: [\"127.0.0.1:*\", registry.example]}\n", true, "", 0},
		{"latest refused", "  tags: {deny: [latest]}\n", false, `tag: tag "latest" is refused`, 0},
		{"digest required", "  tags: {requireDigest: true}\n", false, `is referenced by tag "latest", not by digest`, 0},
		{"warn mode serves with a warning", "  mode: warn\n  tags: {deny: [latest]}\n", true, "", 1},
		{"CEL condition", "  conditions:\n  - name: team-only\n    expression: image.repository.startsWith('infra/')\n    message: only infra images run here\n",
			false, "condition: team-only: only infra images run here", 0},
		{"CEL sees signers", fmt.Sprintf("  signers:\n    keys:\n    - name: ci\n      data: |\n%s\n  conditions:\n  - expression: \"'ci' in signers\"\n", f.ci.Indented(8)), true, "", 0},
		{"fresh signature", fmt.Sprintf("  signers:\n    maxAge: 60d\n    keys:\n    - name: ci\n      data: |\n%s\n", f.ci.Indented(8)), true, "", 0},
		{"stale signature", fmt.Sprintf("  signers:\n    maxAge: 7d\n    keys:\n    - name: ci\n      data: |\n%s\n", f.ci.Indented(8)), false,
			"the signature by ci is from 2025-05-01T00:00:00Z, older than 168h0m0s", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, berthPolicy(tc.spec))
			fs := facts(f, tgt, "latest", nil)
			fs.Now = now
			v := evaluate(t, p, fs)
			if v.Allowed != tc.allowed || !strings.Contains(v.Message(), tc.message) || len(v.Warnings) != tc.warnings {
				t.Errorf("allowed=%v %q warnings %v, want %v with %q and %d warnings", v.Allowed, v.Message(), v.Warnings, tc.allowed, tc.message, tc.warnings)
			}
		})
	}
}

func TestAttestationPolicies(t *testing.T) {
	f := newFixture(t)
	tgt := f.push(t, "team/app", "v1", "attested")
	policytest.AttestTarget(t, f.reg.Store, tgt, f.ci, "slsaprovenance", `{"builder":{"id":"https://ci.example/builder"},"buildType":"make"}`, true, nil)
	rego := func(builder string) string {
		// policy-controller's examples are Rego v0; both syntaxes load.
		return fmt.Sprintf(`package sigstore
          default isCompliant = false
          isCompliant {
            input.predicate.builder.id == %q
          }`, builder)
	}
	cue := func(builder string) string { return fmt.Sprintf(`predicate: builder: id: %q`, builder) }
	for _, tc := range []struct {
		name, kind, body string
		allowed          bool
		message          string
	}{
		{"cue passes", "cue", cue("https://ci.example/builder"), true, ""},
		{"cue fails", "cue", cue("https://evil.example"), false, "attestation build: cue: predicate.builder.id: conflicting values"},
		{"rego passes", "rego", rego("https://ci.example/builder"), true, ""},
		{"rego fails", "rego", rego("https://evil.example"), false, "attestation build: rego: isCompliant is false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := fmt.Sprintf(`apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: provenance}
spec:
  images: [{glob: "**"}]
  authorities:
  - name: ci
    key:
      data: |
%s
    attestations:
    - name: build
      predicateType: slsaprovenance
      policy:
        type: %s
        data: |
          %s
`, f.ci.Indented(8), tc.kind, tc.body)
			v := evaluate(t, mustParse(t, doc), facts(f, tgt, "v1", nil))
			if v.Allowed != tc.allowed || !strings.Contains(v.Message(), tc.message) {
				t.Errorf("allowed=%v %q, want %v with %q", v.Allowed, v.Message(), tc.allowed, tc.message)
			}
		})
	}
}

func TestSpecPolicyOverAuthorities(t *testing.T) {
	f := newFixture(t)
	tgt := f.push(t, "team/app", "v1", "two")
	policytest.SignTarget(t, f.reg.Store, tgt, f.ci, false, nil)
	doc := cip("enforce", f.ci, f.scan) + `  policy:
    type: rego
    data: |
      package sigstore
      import rego.v1
      default isCompliant := false
      isCompliant if {
        count(input.authorityMatches.ci.signatures) > 0
        count(input.authorityMatches.scan.signatures) > 0
      }
`
	p := mustParse(t, doc)
	v := evaluate(t, p, facts(f, tgt, "v1", nil))
	if v.Allowed || !strings.Contains(v.Message(), "policy: rego: isCompliant is false (authority scan: not signed by [scan])") {
		t.Errorf("one of two: %v %s", v.Allowed, v.Message())
	}
	policytest.SignTarget(t, f.reg.Store, tgt, f.scan, false, nil)
	if v := evaluate(t, p, facts(f, tgt, "v1", nil)); !v.Allowed {
		t.Errorf("both: %s", v.Message())
	}
	// Without spec.policy any one authority suffices.
	if v := evaluate(t, mustParse(t, cip("enforce", f.other, f.ci)), facts(f, tgt, "v1", nil)); !v.Allowed {
		t.Errorf("any authority: %s", v.Message())
	}
}

func TestLoadRefusesBadPolicies(t *testing.T) {
	k := policytest.NewKey(t, "k")
	good := cip("enforce", k)
	cases := []struct {
		name, doc, want string
	}{
		{"unknown field", strings.Replace(good, "  mode: enforce\n", "  mode: enforce\n  imagez: []\n", 1),
			"policy.yaml:7: field imagez not found"},
		{"unknown field in an authority", strings.Replace(good, "    key:\n", "    kee: {}\n    key:\n", 1),
			"policy.yaml:11: field kee not found"},
		{"a key that is not a PEM public key", strings.Replace(good, "BEGIN PUBLIC KEY", "BEGIN PUBLIK KEY", 1),
			"policy.yaml:12: key k:"},
		{"keyless", strings.Replace(good, "    key:\n", "    keyless:\n      url: https://fulcio.sigstore.dev\n    kex:\n", 1),
			"field kex not found"},
		{"keyless alone", `apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: kl}
spec:
  images: [{glob: "**"}]
  authorities:
  - keyless:
      url: https://fulcio.sigstore.dev
      identities: [{issuer: https://accounts.google.com, subject: me@example.com}]
`, "policy.yaml:8: authority authority-0: keyless verification (Fulcio certificates, Rekor) is not supported offline"},
		{"wrong mode", strings.Replace(good, "mode: enforce", "mode: audit", 1), `policy.yaml:6: mode "audit": want enforce or warn`},
		{"wrong kind", strings.Replace(good, "kind: ClusterImagePolicy", "kind: ClusterImagePolicies", 1), `kind "ClusterImagePolicies"`},
		{"cue that does not compile", seedBroken(k, "cue", "predicateType: ["), "cue policy does not compile"},
		{"rego that does not compile", seedBroken(k, "rego", "package sigstore\nisCompliant {"), "rego policy does not compile"},
		{"CEL that does not compile", berthPolicy("  conditions:\n  - expression: image.nope(\n"), "policy.yaml:6: condition condition-0"},
		{"CEL that is not boolean", berthPolicy("  conditions:\n  - expression: image.tag\n"), "the expression is string, want bool"},
		{"an exception without expiry", berthPolicy("  tags: {deny: [latest]}\n  exceptions:\n  - name: x\n    rules: [tag]\n"), "exception x needs expires"},
		{"an exception for an unknown rule", berthPolicy("  tags: {deny: [latest]}\n  exceptions:\n  - name: x\n    rules: [tags]\n    expires: 2030-01-01\n"), `rule "tags"`},
		{"a policy without rules", berthPolicy("  mode: warn\n"), "has no rules"},
		{"duplicate names", good + "---\n" + good, "is defined again"},
		{"a key reference with no key store", berthPolicy("  signers:\n    keys:\n    - ref: release\n"), `key reference "release": no key store`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policy.Parse("policy.yaml", []byte(tc.doc), policy.Options{})
			if err == nil || !errors.Is(err, policy.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func seedBroken(k policytest.Key, kind, body string) string {
	doc := fmt.Sprintf(seedExample, k.Indented(8))
	doc = strings.Replace(doc, "type: cue", "type: "+kind, 1)
	return strings.Replace(doc, `          predicateType: "https://spdx.dev/Document"`, "          "+strings.ReplaceAll(body, "\n", "\n          "), 1)
}

func TestKeyReferencesFromTrustFiles(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	trust := dir + "/release.yaml"
	writeFile(t, trust, fmt.Sprintf("keys:\n- name: ci\n  key: |\n%s\n", f.ci.Indented(4)))
	resolve, err := policy.TrustResolver(trust)
	if err != nil {
		t.Fatal(err)
	}
	doc := `apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: by-ref}
spec:
  images: [{glob: "**"}]
  authorities:
  - key:
      secretRef: {name: release}
`
	p, err := policy.Parse("p.yaml", []byte(doc), policy.Options{Keys: resolve})
	if err != nil {
		t.Fatal(err)
	}
	tgt := f.push(t, "team/app", "v1", "ref")
	policytest.SignTarget(t, f.reg.Store, tgt, f.ci, false, nil)
	if v := evaluate(t, p, facts(f, tgt, "v1", nil)); !v.Allowed {
		t.Errorf("signed by the referenced key: %s", v.Message())
	}
	if _, err := policy.Parse("p.yaml", []byte(strings.Replace(doc, "release", "missing", 1)), policy.Options{Keys: resolve}); err == nil ||
		!strings.Contains(err.Error(), `p.yaml:8: key reference "missing": not in the trust files (known: ci, release)`) {
		t.Errorf("missing reference: %v", err)
	}
}

func TestGlobs(t *testing.T) {
	for _, tc := range []struct {
		glob, repo string
		want       bool
	}{
		{"**", "index.docker.io/library/nginx", true},
		{"nginx", "index.docker.io/library/nginx", true},
		{"team/*", "index.docker.io/team/app", true},
		{"registry.example/team/*", "registry.example/team/app", true},
		{"registry.example/team/*", "registry.example/team/app/web", false},
		{"registry.example/team/**", "registry.example/team/app/web", true},
		{"registry.example/te?m/app", "registry.example/team/app", true},
		{"localhost:5000/*", "localhost:5000/app", true},
		{"registry.example/*a*a*a*a*a*a*a*a*a*a*b", "registry.example/" + strings.Repeat("a", 200), false},
	} {
		if got := policy.NewGlob(tc.glob).Match(tc.repo, ""); got != tc.want {
			t.Errorf("%s ~ %s = %v, want %v", tc.glob, tc.repo, got, tc.want)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStageRevoked: a stage's signature (annotated dev.berth.stage)
// counts while the approval it stands for does; revoked, it is refused
// with the revocation's reason, in either signature format and in either
// policy kind. Signatures without the annotation are not the hook's to
// judge, and a revocation that cannot be read refuses for now.
func TestStageRevoked(t *testing.T) {
	f := newFixture(t)
	signers := mustParse(t, berthPolicy(fmt.Sprintf("  signers:\n    keys:\n    - name: scan\n      data: |\n%s\n", f.scan.Indented(8))))
	authority := mustParse(t, cip("enforce", f.scan))
	stage := map[string]string{policy.StageAnnotation: "scan"}
	cases := []struct {
		name        string
		annotations map[string]string
		bundle      bool
		revoked     bool
		err         error
		allowed     bool
		message     string
		transient   bool
	}{
		{"approval stands", stage, false, false, nil, true, "", false},
		{"approval revoked", stage, false, true, nil, false, "scan stage approval revoked: 1 finding(s) rated HIGH or higher", false},
		{"approval revoked, bundle signature", stage, true, true, nil, false, "scan stage approval revoked: 1 finding(s) rated HIGH or higher", false},
		{"no stage annotation", nil, false, true, nil, true, "", false},
		{"approval unreadable", stage, false, false, errors.New("database down"), false, "database down", true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tag := fmt.Sprintf("stage%d", i)
			tgt := f.push(t, "team/app", tag, tag)
			policytest.SignTarget(t, f.reg.Store, tgt, f.scan, tc.bundle, tc.annotations)
			var asked []string
			fs := facts(f, tgt, tag, nil)
			fs.StageRevoked = func(_ context.Context, stage, keyID string) (string, bool, error) {
				asked = append(asked, stage+"/"+keyID)
				return "1 finding(s) rated HIGH or higher", tc.revoked, tc.err
			}
			for _, p := range []*policy.Policy{signers, authority} {
				asked = nil
				v := evaluate(t, p, fs)
				if v.Allowed != tc.allowed || v.Transient != tc.transient {
					t.Fatalf("%s: allowed=%v transient=%v, want %v %v: %s", p.Docs[0].Kind, v.Allowed, v.Transient, tc.allowed, tc.transient, v.Message())
				}
				if !strings.Contains(v.Message(), tc.message) {
					t.Errorf("%s: message %q does not say %q", p.Docs[0].Kind, v.Message(), tc.message)
				}
				wantAsked := "scan/" + f.scan.Sign.ID()
				if tc.annotations == nil {
					wantAsked = ""
				}
				if got := strings.Join(asked, ","); got != wantAsked {
					t.Errorf("%s: asked about %q, want %q (once per stage and key)", p.Docs[0].Kind, got, wantAsked)
				}
				if wantSigners := tc.allowed; (len(v.Signers) == 1) != wantSigners {
					t.Errorf("%s: signers %v", p.Docs[0].Kind, v.Signers)
				}
			}
		})
	}
}

// TestStageRevokedAttestations: a stage's attestation (its subject
// annotated dev.berth.stage, inside what is signed) counts while the
// approval does, as the stage's signature does: revoked, an attestation
// rule is refused with the revocation's reason, in either format and
// either policy kind; attestations without the annotation are not the
// hook's to judge.
func TestStageRevokedAttestations(t *testing.T) {
	f := newFixture(t)
	// The berth kind verifies attestations with its signers' keys, so
	// the image is signed too, without the annotation: only the
	// attestation rule can fail.
	berthDoc := mustParse(t, berthPolicy(fmt.Sprintf("  signers:\n    keys:\n    - name: scan\n      data: |\n%s\n"+
		"  attestations:\n  - name: scanned\n    predicateType: vuln\n", f.scan.Indented(8))))
	cipDoc := mustParse(t, fmt.Sprintf(`apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: scanned}
spec:
  images: [{glob: "**"}]
  authorities:
  - name: scan
    key:
      data: |
%s
    attestations:
    - name: scanned
      predicateType: vuln
`, f.scan.Indented(8)))
	stage := map[string]string{policy.StageAnnotation: "scan"}
	cases := []struct {
		name        string
		annotations map[string]string
		bundle      bool
		revoked     bool
		allowed     bool
		message     string
	}{
		{"approval stands", stage, false, false, true, ""},
		{"approval revoked", stage, false, true, false, "scan stage approval revoked: GHSA-1 HIGH"},
		{"approval revoked, bundle", stage, true, true, false, "scan stage approval revoked: GHSA-1 HIGH"},
		{"no stage annotation", nil, false, true, true, ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tag := fmt.Sprintf("attested%d", i)
			tgt := f.push(t, "team/app", tag, tag)
			policytest.SignTarget(t, f.reg.Store, tgt, f.scan, tc.bundle, nil)
			policytest.AttestTarget(t, f.reg.Store, tgt, f.scan, "vuln", `{"scanner":{"uri":"berth"}}`, tc.bundle, tc.annotations)
			fs := facts(f, tgt, tag, nil)
			asked := 0
			fs.StageRevoked = func(_ context.Context, stage, keyID string) (string, bool, error) {
				asked++
				if stage != "scan" || keyID != f.scan.Sign.ID() {
					t.Errorf("asked about %s/%s", stage, keyID)
				}
				return "GHSA-1 HIGH", tc.revoked, nil
			}
			for _, p := range []*policy.Policy{berthDoc, cipDoc} {
				asked = 0
				v := evaluate(t, p, fs)
				if v.Allowed != tc.allowed || !strings.Contains(v.Message(), tc.message) {
					t.Errorf("%s: allowed=%v %q, want %v with %q", p.Docs[0].Kind, v.Allowed, v.Message(), tc.allowed, tc.message)
				}
				if !tc.allowed && !strings.Contains(v.Message(), "attestation") {
					t.Errorf("%s: %q, want the attestation refused", p.Docs[0].Kind, v.Message())
				}
				if want := tc.annotations != nil; (asked > 0) != want {
					t.Errorf("%s: asked %d times about the approval", p.Docs[0].Kind, asked)
				}
			}
		})
	}
}

// A report-only policy (a scan stage's rule) refuses every rule that
// reads signatures, before any key is read, and keeps every rule that
// reads the report.
func TestReportOnly(t *testing.T) {
	k := policytest.NewKey(t, "k")
	static := `apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: open}
spec:
  images: [{glob: "**"}]
  authorities:
  - static: {action: pass}
`
	cases := []struct {
		name, doc, want string // want "": accepted
	}{
		{"vulnerabilities", berthPolicy("  vulnerabilities: {severity: HIGH}\n"), ""},
		{"secrets, misconfigurations, licenses", berthPolicy("  secrets: {deny: true}\n  misconfigurations: {severity: HIGH}\n  licenses: {deny: [AGPL-*]}\n"), ""},
		{"a condition on the report", berthPolicy("  conditions:\n  - expression: vulnerabilities.all(v, v.severity != 'CRITICAL')\n"), ""},
		{"a static authority", static, ""},
		{"signers", berthPolicy("  signers:\n    keys:\n    - ref: ci\n"), "policy.yaml:1: ImagePolicy prod: signers: a policy that judges a scan report alone"},
		{"a key file is not read", berthPolicy("  signers:\n    keys:\n    - path: /nonexistent/key.pub\n"), "signers: a policy that judges a scan report alone"},
		{"attestations", berthPolicy("  attestations:\n  - name: sbom\n    predicateType: spdxjson\n"), "policy.yaml:6: ImagePolicy prod: attestations: a policy that judges"},
		{"a condition on signers", berthPolicy("  conditions:\n  - expression: \"'ci' in signers\"\n"), "policy.yaml:6: condition condition-0 reads signers or attestations"},
		{"a condition on attestations", berthPolicy("  conditions:\n  - expression: size(attestations) > 0\n"), "reads signers or attestations"},
		{"a key authority", cip("enforce", k), "policy.yaml:10: authority k: a policy that judges a scan report alone"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policy.Parse("policy.yaml", []byte(tc.doc), policy.Options{ReportOnly: true})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (!errors.Is(err, policy.ErrInvalid) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
			// Without ReportOnly the same documents load (the refusal is
			// the option's, not a broken document's), or fail for their
			// own reasons: the reference needs a key store, the missing
			// file is missing, attestations need signers.
			if _, err := policy.Parse("policy.yaml", []byte(tc.doc), policy.Options{}); err != nil &&
				!strings.Contains(err.Error(), "no key store") && !strings.Contains(err.Error(), "nonexistent") &&
				!strings.Contains(err.Error(), "give signers") {
				t.Errorf("without ReportOnly: %v", err)
			}
		})
	}
}
