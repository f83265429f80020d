package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/misconfig"
)

func runLint(t *testing.T, args ...string) scanRun {
	t.Helper()
	cmd := newLintCmd()
	return runCommand(t, cmd, args...)
}

func TestLintCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("svc/Dockerfile", "FROM debian:latest\nENV DB_PASSWORD=hunter2hunter2\nCMD run\n")
	write("svc/worker.Dockerfile", "FROM debian:12@sha256:"+strings.Repeat("0", 64)+"\nUSER 1000\nHEALTHCHECK NONE\nCMD [\"w\"]\n")
	write(".git/Dockerfile", "FROM x\nNOPE\n") // hidden directories are skipped
	write("k8s/pod.yaml", "kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - name: c\n      image: nginx\n      securityContext: {privileged: true}\n")
	write("chart/templates/deploy.yaml", "kind: Deployment\nspec: {{ .Values.spec }\n") // a Helm template: named and skipped
	out := filepath.Join(dir, "lint.json")
	r := runLint(t, "-f", "json", "-o", out, "--exit-code", "4", dir)
	if r.code != 4 {
		t.Fatalf("exit %d (%v) %s", r.code, r.err, r.stderr)
	}
	var doc struct {
		Files    []string
		Findings []misconfig.Finding
	}
	data, _ := os.ReadFile(out)
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Files) != 3 {
		t.Errorf("files %v", doc.Files)
	}
	if !strings.Contains(r.stderr, "warning: skipped:") || !strings.Contains(r.stderr, "deploy.yaml") {
		t.Errorf("the Helm template was skipped silently: %q", r.stderr)
	}
	ids := map[string]bool{}
	for _, f := range doc.Findings {
		ids[f.ID] = true
	}
	for _, id := range []string{"BD001", "BD003", "BD012", "BD013", "BD014", "BK001", "BK002", "BK008"} {
		if !ids[id] {
			t.Errorf("no %s in %+v", id, doc.Findings)
		}
	}
	if strings.Contains(string(data), "hunter2hunter2") {
		t.Error("the report shows the password")
	}
	// --severity HIGH,CRITICAL leaves the root user and the secret.
	r = runLint(t, "-f", "json", "-o", out, "--severity", "HIGH+", filepath.Join(dir, "svc", "worker.Dockerfile"))
	if r.code != 0 {
		t.Fatalf("clean file: exit %d %v", r.code, r.err)
	}
	// A syntax error names the file and line.
	bad := write("bad/Containerfile", "FROM debian\nRUN <<EOF\necho\n")
	r = runLint(t, bad)
	if r.code != 1 || r.err == nil || !strings.Contains(r.err.Error(), "Containerfile:2: syntax error") {
		t.Errorf("syntax error: exit %d %v", r.code, r.err)
	}
	if r := runLint(t, bad[:len(bad)-len("Containerfile")]+"../chart/templates/deploy.yaml"); r.code != 1 || r.err == nil || !strings.Contains(r.err.Error(), "syntax error") {
		t.Errorf("a named YAML file that does not parse: exit %d %v", r.code, r.err)
	}
	if r := runLint(t, t.TempDir()); r.err == nil || !strings.Contains(r.err.Error(), "no Dockerfile or manifest found") {
		t.Errorf("empty dir: %v", r.err)
	}
}
