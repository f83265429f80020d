package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/policy/policytest"
)

// TestPolicyCheck runs the CI gate against a loopback registry: a signed
// image passes (exit 0), an unsigned one is denied (exit 2) with the
// failed rule, in every format; a policy with an unknown field is refused
// before anything is read, naming the line.
func TestPolicyCheck(t *testing.T) {
	reg := policytest.NewRegistry(t, nil)
	ci := policytest.NewKey(t, "ci")
	signed := reg.Push(t, "team/app", "signed", "signed")
	policytest.SignTarget(t, reg.Store, signed, ci, false, nil)
	reg.Push(t, "team/app", "unsigned", "unsigned")
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.yaml")
	doc := fmt.Sprintf(`apiVersion: berth.dev/v1
kind: ImagePolicy
metadata: {name: release}
spec:
  signers:
    keys:
    - name: ci
      data: |
%s
  tags: {deny: [latest]}
`, ci.Indented(8))
	if err := os.WriteFile(pol, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}

	out, _, err := run(t, newRootCmd(), "policy", "check", reg.Host+"/team/app:signed", "--policy", pol)
	if err != nil || !strings.Contains(out, "@"+signed.Manifest.Digest.String()+": allowed") {
		t.Errorf("signed: %v\n%s", err, out)
	}

	out, _, err = run(t, newRootCmd(), "policy", "check", reg.Host+"/team/app:unsigned", "--policy", pol)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != exitDenied {
		t.Fatalf("unsigned: err %v, want exit %d", err, exitDenied)
	}
	if !strings.Contains(out, ": DENIED\n  ✗ ImagePolicy/release: signature: not signed by 1 of [ci]") {
		t.Errorf("unsigned output:\n%s", out)
	}

	out, _, _ = run(t, newRootCmd(), "policy", "check", reg.Host+"/team/app:unsigned", "--policy", pol, "--format", "json")
	var v struct {
		Allowed    bool
		Violations []struct{ Policy, Rule, Message string }
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Allowed || len(v.Violations) != 1 || v.Violations[0].Rule != "signature" {
		t.Errorf("json: %v %+v\n%s", err, v, out)
	}

	out, _, _ = run(t, newRootCmd(), "policy", "check", reg.Host+"/team/app:unsigned", "--policy", pol, "--format", "sarif")
	if !strings.Contains(out, `"ruleId": "ImagePolicy/release/signature"`) {
		t.Errorf("sarif:\n%s", out)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(doc, "  tags:", "  tagz:", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = run(t, newRootCmd(), "policy", "check", reg.Host+"/team/app:signed", "--policy", bad)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:13: field tagz not found") {
		t.Errorf("bad policy: %v", err)
	}
}
