package sarif

import (
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/golden"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/secret"
)

// TestSecretsGolden: secrets of every kind become rules and results that
// the SARIF schema and GitHub's extra requirements accept; an allowed one
// is a suppressed result; the document holds only masked text.
func TestSecretsGolden(t *testing.T) {
	h := 3
	r := &match.Report{
		SchemaVersion: match.ReportSchemaVersion,
		Scanners:      []string{"secret"},
		Findings:      []match.Finding{},
		Secrets: []secret.Finding{
			{RuleID: "github-pat", Description: "GitHub personal access token", Severity: "CRITICAL", Kind: "file",
				Path: "app/.env", StartLine: 2, EndLine: 2, Match: "GITHUB_TOKEN=ghp_************", Secret: "ghp_************",
				Layer: "sha256:" + strings.Repeat("a", 64), CreatedBy: "COPY app/ /app/", RemovedBy: "sha256:" + strings.Repeat("b", 64), Fingerprint: "f1"},
			{RuleID: "npm-access-token", Description: "npm token", Severity: "CRITICAL", Kind: "env", Path: "NPM_TOKEN",
				Match: "NPM_TOKEN=npm_************", Secret: "npm_************", Fingerprint: "f2"},
			{RuleID: "gitlab-pat", Description: "GitLab token", Severity: "CRITICAL", Kind: "history", History: &h,
				Match: "glpa************", Secret: "glpa************", Fingerprint: "f3"},
			{RuleID: "aws-access-token", Description: "AWS key id", Severity: "CRITICAL", Kind: "file", Path: "app/docs/example conf.md",
				StartLine: 4, EndLine: 4, Match: "AKIA************", Secret: "AKIA************", Allowed: "documentation example", Fingerprint: "f4"},
		},
	}
	r.Inventory.Source = "registry.example/app:1"
	out := encode(t, r)
	golden.Check(t, filepath.Join("testdata", "secrets.sarif.json"), out)
	l := decode(t, out)
	run := l.Runs[0]
	if len(run.Results) != 4 || len(run.Tool.Driver.Rules) != 4 {
		t.Fatalf("%d results, %d rules", len(run.Results), len(run.Tool.Driver.Rules))
	}
	if s := run.Results[3].Suppressions; len(s) != 1 || s[0].Justification != "documentation example" {
		t.Errorf("allowed secret: suppressions %+v", s)
	}
	if loc := run.Results[0].Locations[0].PhysicalLocation; loc.ArtifactLocation.URI != "app/.env" || loc.Region.StartLine != 2 {
		t.Errorf("file location %+v", loc)
	}
	if !strings.Contains(run.Results[0].Message.Text, "Deleted by layer bbbbbbbbbbbb, but still in the image") {
		t.Errorf("message %q", run.Results[0].Message.Text)
	}
}
