package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

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

// pushFiles pushes a one-layer image of files with config cfg to
// host/repo:tag and returns its digest.
func pushFiles(t *testing.T, host, repo, tag string, files map[string][]byte, cfg v1.Config) string {
	t.Helper()
	img := imageOf(t, files, cfg)
	ref, err := name.ParseReference(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// TestPolicyCheckSecretsAndMisconfigurations is the CI gate on an image
// with a private key planted in a layer and no USER (root): with no
// report given, berth policy check scans for secrets and
// misconfigurations itself (no vulnerability database: the policy has no
// rule that needs one), denies with the rule id and the file, never the
// key, and allows an image without either. A report made without the
// secret scanner is refused, not read as clean.
func TestPolicyCheckSecretsAndMisconfigurations(t *testing.T) {
	reg := policytest.NewRegistry(t, nil)
	_, keyPEM := plantedKey(t)
	leaky := pushFiles(t, reg.Host, "team/app", "leaky", map[string][]byte{"srv/deploy.key": keyPEM, "srv/app": []byte("#!/bin/sh\n")}, v1.Config{})
	pushFiles(t, reg.Host, "team/app", "clean", map[string][]byte{"srv/app": []byte("#!/bin/sh\n")}, v1.Config{User: "1000"})

	write := fileWriter(t)
	header := "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: hygiene}\nspec:\n"
	strict := write("strict.yaml", header+"  secrets: {deny: true}\n  misconfigurations: {deny: [BI001]}\n")
	allowKey := write("allow.yaml", header+"  secrets:\n    deny: true\n    allow: [{id: private-key, path: \"srv/*.key\", reason: test fixture}]\n")
	noKeyRule := write("secrets.toml", "disabledRules = [\"private-key\"]\n")
	bareReport := write("report.json", fmt.Sprintf(`{"schemaVersion": 1, "inventory": {"digest": %q}, "findings": []}`, leaky))
	body := strings.Split(string(keyPEM), "\n")[1] // a line of the key itself

	cases := []struct {
		name    string
		image   string
		args    []string
		code    int // 0 allowed, exitDenied
		want    []string
		wantErr string // on standard error
		absent  string // not in the output
	}{
		{"a planted key and root", "leaky", []string{"--policy", strict}, exitDenied, []string{
			": DENIED\n",
			"✗ ImagePolicy/hygiene: secret: private-key (",
			") in srv/deploy.key:1\n",
			"✗ ImagePolicy/hygiene: misconfiguration: BI001 Image runs as root (HIGH)",
		}, "for the policy's rules (secret, misconfig)", ""},
		{"neither", "clean", []string{"--policy", strict}, 0, []string{": allowed\n"}, "(secret, misconfig)", ""},
		{"the key allowed by rule id and path", "leaky", []string{"--policy", allowKey}, 0,
			[]string{": allowed\n", "• secret private-key allowed: test fixture"}, "(secret)", ""},
		{"the key rule disabled by --secret-config", "leaky", []string{"--policy", strict, "--secret-config", noKeyRule}, exitDenied,
			[]string{"✗ ImagePolicy/hygiene: misconfiguration: BI001"}, "(secret, misconfig)", "secret: private-key"},
		{"a report without the secret scanner", "leaky", []string{"--policy", allowKey, "--report", bareReport}, exitDenied,
			[]string{"✗ ImagePolicy/hygiene: secret: not scanned for secrets: add secret to scan.scanners"}, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"policy", "check", reg.Host + "/team/app:" + tc.image, "--cache-dir", t.TempDir()}, tc.args...)
			out, stderr, err := run(t, newRootCmd(), args...)
			var ee exitError
			switch {
			case tc.code == 0 && err != nil:
				t.Fatalf("err %v, want allowed\n%s%s", err, out, stderr)
			case tc.code != 0 && (!errors.As(err, &ee) || ee.code != tc.code):
				t.Fatalf("err %v, want exit %d\n%s%s", err, tc.code, out, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tc.absent != "" && strings.Contains(out, tc.absent) {
				t.Errorf("output has %q:\n%s", tc.absent, out)
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("standard error lacks %q:\n%s", tc.wantErr, stderr)
			}
			if strings.Contains(out+stderr, body) || strings.Contains(out+stderr, "BEGIN EC PRIVATE KEY") {
				t.Errorf("the verdict shows the key:\n%s%s", out, stderr)
			}
		})
	}
}

// TestPolicyCheckReportErrorsNameTheFlag: an unreadable --report denies,
// and the reason names the flag the user gave, not berth scan's
// --from-report.
func TestPolicyCheckReportErrorsNameTheFlag(t *testing.T) {
	reg := policytest.NewRegistry(t, nil)
	pushFiles(t, reg.Host, "team/app", "v1", map[string][]byte{"srv/app": []byte("#!/bin/sh\n")}, v1.Config{})
	dir := t.TempDir()
	pol := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(pol, []byte("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: s}\nspec:\n  secrets: {deny: true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	garbled := filepath.Join(dir, "report.json")
	if err := os.WriteFile(garbled, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "absent.json"), garbled} {
		out, _, err := run(t, newRootCmd(), "policy", "check", reg.Host+"/team/app:v1", "--policy", pol, "--report", path)
		// A report that cannot be read fails the rules that read it.
		var ee exitError
		if !errors.As(err, &ee) || ee.code != exitDenied {
			t.Errorf("--report %s: err %v, want exit %d", filepath.Base(path), err, exitDenied)
		}
		if !strings.Contains(out, "reading the scan report: --report") || strings.Contains(out, "--from-report") {
			t.Errorf("--report %s: the verdict does not name --report:\n%s", filepath.Base(path), out)
		}
	}
}

// plantedKey is a private key to plant in an image, and its PEM.
func plantedKey(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// fileWriter returns a function that writes a file into a new temporary
// folder and returns its path.
func fileWriter(t *testing.T) func(name, content string) string {
	dir := t.TempDir()
	return func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

// imageOf is a one-layer image of files with config cfg.
func imageOf(t *testing.T, files map[string][]byte, cfg v1.Config) v1.Image {
	t.Helper()
	layer, err := crane.Layer(files)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.Config(img, cfg); err != nil {
		t.Fatal(err)
	}
	return img
}

// archiveOf writes an image of files and cfg as a docker-archive tarball
// (what `docker save` and skopeo write) and returns its path.
func archiveOf(t *testing.T, files map[string][]byte, cfg v1.Config) string {
	t.Helper()
	img := imageOf(t, files, cfg)
	tag, err := name.NewTag("local/app:build")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPolicyCheckLocalImage is the CI gate before the push: an image in an
// archive is judged by a policy of report rules (its own scan), under the
// name --name gives it; a policy that requires signatures is refused with
// the reason, as is a policy naming images when no --name is given.
func TestPolicyCheckLocalImage(t *testing.T) {
	priv, keyPEM := plantedKey(t)
	leaky := archiveOf(t, map[string][]byte{"srv/deploy.key": keyPEM, "srv/app": []byte("#!/bin/sh\n")}, v1.Config{})
	clean := archiveOf(t, map[string][]byte{"srv/app": []byte("#!/bin/sh\n")}, v1.Config{User: "1000"})
	write := fileWriter(t)
	header := "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: hygiene}\nspec:\n"
	strict := write("strict.yaml", header+"  secrets: {deny: true}\n  misconfigurations: {deny: [BI001]}\n")
	named := write("named.yaml", "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: team}\nspec:\n  images: [registry.example/team/*]\n  secrets: {deny: true}\n")
	pubDER, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})))
	signers := write("signers.yaml", header+"  signers:\n    keys:\n    - name: ci\n      data: |\n        "+strings.ReplaceAll(pubPEM, "\n", "\n        ")+"\n")

	cases := []struct {
		name string
		args []string
		code int // 0 allowed, exitDenied, or 1: the check could not run
		want string
	}{
		{"a planted key and root, by path", []string{leaky, "--policy", strict}, exitDenied, "✗ ImagePolicy/hygiene: secret: private-key ("},
		{"root, by transport", []string{"docker-archive:" + leaky, "--policy", strict}, exitDenied, "misconfiguration: BI001 Image runs as root"},
		{"clean", []string{clean, "--policy", strict}, 0, ": allowed\n"},
		{"named, as pushed", []string{leaky, "--policy", named, "--name", "registry.example/team/app:v1"}, exitDenied, "registry.example/team/app:v1: DENIED"},
		{"named, elsewhere", []string{leaky, "--policy", named, "--name", "other.example/x/app:v1"}, 0, ": allowed\n"},
		{"named, no --name", []string{leaky, "--policy", named}, 1, "give --name"},
		{"a policy requiring signatures", []string{clean, "--policy", signers}, 1, "the policy reads signatures or attestations"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"policy", "check", "--cache-dir", t.TempDir()}, tc.args...)
			out, stderr, err := run(t, newRootCmd(), args...)
			var ee exitError
			switch {
			case tc.code == 0 && err != nil:
				t.Fatalf("err %v, want allowed\n%s%s", err, out, stderr)
			case tc.code == exitDenied && (!errors.As(err, &ee) || ee.code != exitDenied):
				t.Fatalf("err %v, want exit %d\n%s%s", err, exitDenied, out, stderr)
			case tc.code == 1 && (err == nil || errors.As(err, &ee)):
				t.Fatalf("err %v, want an error\n%s%s", err, out, stderr)
			}
			got := out
			if tc.code == 1 {
				got = err.Error()
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("%q lacks %q", got, tc.want)
			}
		})
	}
}
