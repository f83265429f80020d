package vulntable

import (
	"strings"
	"testing"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report/table"
	"berth.dev/berth/internal/secret"
)

func TestSecretsSection(t *testing.T) {
	r := &match.Report{
		Scanners: []string{"secret"},
		Secrets: []secret.Finding{
			{RuleID: "generic-password", Severity: "MEDIUM", Kind: "file", Path: "etc/app.ini", StartLine: 3, Match: "password = hunt************", Layer: "sha256:" + strings.Repeat("c", 64)},
			{RuleID: "github-pat", Severity: "CRITICAL", Kind: "file", Path: "app/.env", StartLine: 2, Match: "T=ghp_************\x1b[2J",
				Layer: "sha256:" + strings.Repeat("a", 64), RemovedBy: "sha256:" + strings.Repeat("b", 64)},
			{RuleID: "npm-access-token", Severity: "CRITICAL", Kind: "env", Path: "NPM_TOKEN", Match: "NPM_TOKEN=npm_************"},
			{RuleID: "aws-access-token", Severity: "CRITICAL", Kind: "file", Path: "docs/x.md", StartLine: 1, Match: "AKIA************", Allowed: "documentation example"},
		},
	}
	var sb strings.Builder
	if err := Encode(&sb, r, table.Options{}); err != nil {
		t.Fatal(err)
	}
	got := sb.String()
	want := `SEVERITY  RULE              WHERE           LAYER         STATUS                   MATCH
CRITICAL  github-pat        /app/.env:2     aaaaaaaaaaaa  deleted in bbbbbbbbbbbb  T=ghp_************\x1b[2J
CRITICAL  npm-access-token  Env NPM_TOKEN                 in config                NPM_TOKEN=npm_************
MEDIUM    generic-password  /etc/app.ini:3  cccccccccccc  present                  password = hunt************

Allowed:
  aws-access-token in /docs/x.md:1: documentation example
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// A secret-only report has no vulnerability table; the terminal
	// layout ends with the count.
	sb.Reset()
	if err := Encode(&sb, r, table.Options{Terminal: true, Width: 200}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sb.String(), "vulnerabilit") || !strings.HasSuffix(sb.String(), "3 secrets: CRITICAL 2, MEDIUM 1; 1 allowed\n") {
		t.Errorf("terminal:\n%s", sb.String())
	}
}
