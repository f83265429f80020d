package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"berth.dev/berth/internal/testpeers"
)

// TestScanSecretsOnly scans kitchen-sink for secrets alone: no database
// is needed (the database dir does not exist), the planted key is found
// and the documentation example is listed as allowed, no output shows a
// secret, and --exit-code fails on the secret.
func TestScanSecretsOnly(t *testing.T) {
	img := testpeers.Shared(t, "images", "kitchen-sink.oci.tar")
	noDB := filepath.Join(t.TempDir(), "no-db")
	base := []string{"--db-dir", noDB, "--cache-dir", t.TempDir(), "--scanners", "secret"}
	dir := t.TempDir()
	// A run of 16 base64 characters would be a piece of the key.
	keyPiece := regexp.MustCompile(`[A-Za-z0-9+/]{16,}`)
	for _, f := range []string{"json", "table", "sarif"} {
		out := filepath.Join(dir, "out."+f)
		r := runScan(t, slices.Concat(base, []string{"-f", f, "-o", out, "--exit-code", "5", "oci-archive:" + img})...)
		if r.code != 5 {
			t.Fatalf("%s: exit %d (%v), want 5 for a secret\n%s", f, r.code, r.err, r.stderr)
		}
		if want := "kitchen-sink: 1 secret (CRITICAL 1), 2 allowed\n"; !strings.Contains(r.stderr, want) {
			t.Errorf("%s: stderr %q, want it to end with %q", f, r.stderr, want)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		for _, want := range []string{"private-key", "root/.ssh/id_rsa", "aws-access-token", "documentation example"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s output does not say %q", f, want)
			}
		}
		for _, leak := range []string{"wJalrXUtnFEMI", "K7MDENG", "IOSFODNN7"} {
			if strings.Contains(text, leak) {
				t.Errorf("%s output shows the secret (%q)", f, leak)
			}
		}
		if f == "table" {
			if m := keyPiece.FindString(text); m != "" {
				t.Errorf("table shows %q", m)
			}
		}
	}
	// Vulnerabilities asked for without a database: exit 3, as before.
	r := runScan(t, "--db-dir", noDB, "--cache-dir", t.TempDir(), "--scanners", "vuln,secret", "oci-archive:"+img)
	if r.code != exitDB {
		t.Errorf("vuln without a database: exit %d", r.code)
	}
}

// runCommand runs a command as runScan does.
func runCommand(t *testing.T, cmd interface {
	SetOut(io.Writer)
	SetErr(io.Writer)
	SetArgs([]string)
	ExecuteContext(context.Context) error
}, args ...string) scanRun {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	r := scanRun{stdout: out.String(), stderr: errOut.String(), err: err}
	var ee exitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.code
	case err != nil:
		r.code = 1
	}
	return r
}

// TestScanLicensesAndMisconfig: --scanners license with a deny list
// fails the gate on a denied license; --scanners misconfig on the root
// user; the flags refuse what they cannot read.
func TestScanLicensesAndMisconfig(t *testing.T) {
	img := testpeers.Shared(t, "images", "kitchen-sink.oci.tar")
	base := []string{"--db-dir", filepath.Join(t.TempDir(), "no-db"), "--cache-dir", t.TempDir()}
	out := filepath.Join(t.TempDir(), "r.json")
	r := runScan(t, slices.Concat(base, []string{"--scanners", "license", "--license-deny", "MIT", "--exit-code", "6", "-f", "json", "-o", out, "oci-archive:" + img})...)
	if r.code != 6 || !strings.Contains(r.stderr, "license policy violation") {
		t.Errorf("deny MIT: exit %d (%v) %s", r.code, r.err, r.stderr)
	}
	rep := readReport(t, out)
	if len(rep.Licenses) == 0 || len(rep.Findings) != 0 || rep.Secrets != nil {
		t.Errorf("report: %d licenses, %d findings, secrets %v", len(rep.Licenses), len(rep.Findings), rep.Secrets)
	}
	r = runScan(t, slices.Concat(base, []string{"--scanners", "misconfig", "--severity", "HIGH+", "--exit-code", "6", "-f", "json", "-o", out, "oci-archive:" + img})...)
	if r.code != 6 || !strings.Contains(r.stderr, "1 misconfiguration (HIGH 1)") {
		t.Errorf("misconfig: exit %d (%v) %s", r.code, r.err, r.stderr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--scanners", "license", "--license-deny", "Frobnicate-1.0", "x"}, "Frobnicate-1.0"},
		{[]string{"--license-deny", "MIT", "x"}, "need --scanners license"},
		{[]string{"--scanners", "", "x"}, "no scanner named"},
	} {
		r := runScan(t, slices.Concat(base, tc.args)...)
		if r.code != 1 || r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%q: exit %d %v, want an error with %q", tc.args, r.code, r.err, tc.want)
		}
	}
}
