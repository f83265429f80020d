package policy_test

import (
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/misconfig"
	"berth.dev/berth/internal/policy"
	"berth.dev/berth/internal/secret"
)

// scannedFor is a report of scanners with these secrets and
// misconfigurations.
func scannedFor(scanners []string, secrets []secret.Finding, mis []misconfig.Finding) *match.Report {
	r := report()
	r.Scanners, r.Secrets, r.Misconfigurations = scanners, secrets, mis
	return r
}

func TestSecretAndMisconfigurationRules(t *testing.T) {
	f := newFixture(t)
	tgt := f.push(t, "team/app", "v1", "findings")
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	// The masked secret and the masked match are in the finding as the
	// scanner stores them; no refusal may repeat either.
	key := secret.Finding{RuleID: "private-key", Severity: secret.SeverityHigh, Kind: secret.KindFile,
		Path: "etc/ssl/private/server.key", StartLine: 1, Match: "-----BEGIN PRIVATE KEY-----MIIEv****", Secret: "MIIEv****"}
	aws := secret.Finding{RuleID: "aws-access-token", Severity: secret.SeverityCritical, Kind: secret.KindEnv,
		Path: "AWS_ACCESS_KEY_ID", Match: "AKIA****", Secret: "AKIA****"}
	example := secret.Finding{RuleID: "generic-api-key", Severity: secret.SeverityMedium, Kind: secret.KindFile,
		Path: "usr/share/doc/app/README", StartLine: 9, Secret: "abcd****", Allowed: "documentation example"}
	root := misconfig.Finding{ID: "BI001", Severity: misconfig.SeverityHigh, Title: "Image runs as root", Target: misconfig.TargetImage}
	health := misconfig.Finding{ID: "BI003", Severity: misconfig.SeverityLow, Title: "No HEALTHCHECK", Target: misconfig.TargetImage}
	both := []string{"vuln", "secret", "misconfig"}
	cases := []struct {
		name, spec string
		rep        *match.Report
		allowed    bool
		message    string
		notes      int
	}{
		{"a secret is denied with its rule id and place", "  secrets: {deny: true}\n",
			scannedFor(both, []secret.Finding{key}, nil), false,
			"ImagePolicy/prod: secret: private-key (HIGH) in etc/ssl/private/server.key:1", 0},
		{"worst first, an ENV secret named by its variable", "  secrets: {deny: true}\n",
			scannedFor(both, []secret.Finding{key, aws}, nil), false,
			"secret: aws-access-token (CRITICAL) in ENV AWS_ACCESS_KEY_ID; private-key (HIGH) in etc/ssl/private/server.key:1", 0},
		{"a secret below the severity", "  secrets: {severity: CRITICAL}\n",
			scannedFor(both, []secret.Finding{key}, nil), true, "", 0},
		{"the scanner's allow rules are not secrets", "  secrets: {deny: true}\n",
			scannedFor(both, []secret.Finding{example}, nil), true, "", 0},
		{"a rule id on the allow list, one note for two files", "  secrets: {deny: true, allow: [private-key]}\n",
			scannedFor(both, []secret.Finding{key, func() secret.Finding { k := key; k.Path = "etc/ssl/private/other.key"; return k }()}, nil), true, "", 1},
		{"an allow entry for another path", "  secrets:\n    deny: true\n    allow: [{id: private-key, path: \"usr/share/**\"}]\n",
			scannedFor(both, []secret.Finding{key}, nil), false, "private-key (HIGH) in etc/ssl/private/server.key:1", 0},
		{"an allow entry for the path, in force", "  secrets:\n    deny: true\n    allow: [{id: private-key, path: \"etc/ssl/**\", expires: 2025-07-01, reason: test fixture}]\n",
			scannedFor(both, []secret.Finding{key}, nil), true, "", 1},
		{"an expired allow entry", "  secrets:\n    deny: true\n    allow: [{id: private-key, expires: 2025-05-01}]\n",
			scannedFor(both, []secret.Finding{key}, nil), false, "(allow-list entry expired at 2025-05-01T00:00:00Z)", 0},
		{"no secrets found", "  secrets: {deny: true}\n", scannedFor(both, []secret.Finding{}, nil), true, "", 0},
		{"a vulnerability scan alone does not say there are no secrets", "  secrets: {deny: true}\n",
			scannedFor(nil, nil, nil), false,
			"secret: not scanned for secrets: add secret to scan.scanners", 0},
		{"secrets of an image not scanned", "  secrets: {deny: true}\n", nil, false,
			"the image has not been scanned yet, so its secrets are unknown", 0},
		{"root is denied", "  misconfigurations: {deny: [BI001]}\n",
			scannedFor(both, nil, []misconfig.Finding{health, root}), false,
			"ImagePolicy/prod: misconfiguration: BI001 Image runs as root (HIGH)", 0},
		{"only the listed rules", "  misconfigurations: {deny: [bi001]}\n",
			scannedFor(both, nil, []misconfig.Finding{health}), true, "", 0},
		{"a severity threshold", "  misconfigurations: {severity: LOW}\n",
			scannedFor(both, nil, []misconfig.Finding{health, root}), false,
			"BI001 Image runs as root (HIGH); BI003 No HEALTHCHECK (LOW)", 0},
		{"an allowed misconfiguration", "  misconfigurations: {severity: LOW, allow: [BI003]}\n",
			scannedFor(both, nil, []misconfig.Finding{health}), true, "", 1},
		{"not scanned for misconfigurations", "  misconfigurations: {deny: [BI001]}\n",
			scannedFor([]string{"vuln", "secret"}, []secret.Finding{}, nil), false,
			"misconfiguration: not scanned for misconfigurations: add misconfig to scan.scanners", 0},
		{"an exception waives the secrets rule", "  secrets: {deny: true}\n  exceptions:\n  - name: rotate\n    rules: [secret]\n    expires: 2025-06-02\n",
			scannedFor(both, []secret.Finding{key}, nil), true, "", 1},
		{"a CEL condition on secrets", "  conditions:\n  - name: no-keys\n    expression: \"!secrets.exists(s, s.ruleId == 'private-key')\"\n",
			scannedFor(both, []secret.Finding{key, example}, nil), false, "condition: no-keys: is false", 0},
		{"a CEL condition on misconfigurations", "  conditions:\n  - name: not-root\n    expression: \"misconfigurations.all(m, m.id != 'BI001')\"\n",
			scannedFor(both, nil, []misconfig.Finding{health}), true, "", 0},
		{"a CEL condition on a report without misconfigurations", "  conditions:\n  - name: not-root\n    expression: \"misconfigurations.all(m, m.id != 'BI001')\"\n",
			scannedFor([]string{"vuln", "secret"}, []secret.Finding{}, nil), false,
			"condition: not-root: not scanned for misconfigurations: add misconfig to scan.scanners", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, berthPolicy(tc.spec))
			fs := facts(f, tgt, "v1", tc.rep)
			fs.Now = now
			v := evaluate(t, p, fs)
			if v.Allowed != tc.allowed || !strings.Contains(v.Message(), tc.message) || len(v.Notes) != tc.notes {
				t.Errorf("allowed=%v %q notes %v, want %v with %q and %d notes", v.Allowed, v.Message(), v.Notes, tc.allowed, tc.message, tc.notes)
			}
			for _, masked := range []string{"MIIEv", "AKIA", "BEGIN PRIVATE KEY"} {
				if strings.Contains(v.Message(), masked) || strings.Contains(strings.Join(v.Notes, " "), masked) {
					t.Errorf("the verdict repeats the secret's masked text %q: %q", masked, v.Message())
				}
			}
		})
	}
}

func TestScannersThePolicyNeeds(t *testing.T) {
	cases := []struct {
		spec string
		want string
	}{
		{"  tags: {deny: [latest]}\n", ""},
		{"  vulnerabilities: {severity: HIGH}\n", "vuln"},
		{"  secrets: {deny: true}\n", "secret"},
		{"  misconfigurations: {deny: [BI001]}\n  licenses: {deny: [GPL-*]}\n", "vuln,misconfig"},
		{"  conditions:\n  - expression: \"secrets.size() == 0 && misconfigurations.size() == 0\"\n", "secret,misconfig"},
	}
	for _, tc := range cases {
		if got := strings.Join(mustParse(t, berthPolicy(tc.spec)).Scanners(), ","); got != tc.want {
			t.Errorf("%q needs %q, want %q", tc.spec, got, tc.want)
		}
	}
}

func TestLoadRefusesBadFindingRules(t *testing.T) {
	cases := []struct {
		name, spec, want string
	}{
		{"secrets without a rule", "  secrets: {allow: [private-key]}\n", "policy.yaml:1: secrets needs deny: true or severity"},
		{"secrets with both", "  secrets:\n    deny: true\n    severity: HIGH\n", "policy.yaml:7: secrets: give deny: true (every secret) or severity, not both"},
		{"an unknown field in secrets", "  secrets:\n    deny: true\n    alow: [x]\n", "policy.yaml:7: field alow not found"},
		{"an unknown field in an allow entry", "  secrets:\n    deny: true\n    allow:\n    - id: private-key\n      paths: [x]\n", "policy.yaml:9: field paths not found"},
		{"an allow entry without id", "  secrets:\n    deny: true\n    allow:\n    - path: etc/**\n", "policy.yaml:8: secrets.allow: an entry needs an id"},
		{"a bad expiry", "  secrets:\n    deny: true\n    allow: [{id: x, expires: soon}]\n", `policy.yaml:7: "soon" is not a date`},
		{"a bad severity", "  misconfigurations:\n    severity: SEVERE\n", "policy.yaml:6: misconfigurations.severity"},
		{"an unknown misconfiguration rule", "  misconfigurations:\n    deny: [BI001, BI999]\n", `policy.yaml:6: misconfigurations.deny: "BI999" is not a misconfiguration rule`},
		{"misconfigurations without a rule", "  misconfigurations: {allow: [BI003]}\n", "misconfigurations needs deny (rule ids) or severity"},
		{"an exception for secrets spelled wrong", "  secrets: {deny: true}\n  exceptions:\n  - name: x\n    rules: [secrets]\n    expires: 2030-01-01\n", `rule "secrets": want one of signature, attestation, vulnerability, secret, misconfiguration`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policy.Parse("policy.yaml", []byte(berthPolicy(tc.spec)), policy.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}
