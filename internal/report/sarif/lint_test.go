package sarif

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/golden"
	"berth.dev/berth/internal/misconfig"
)

// TestLintGolden lints a Dockerfile that breaks most rules and checks the
// SARIF log against the schema, GitHub's requirements and the golden
// file: one rule per failed check, results at the Dockerfile's lines,
// secrets masked.
func TestLintGolden(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "lint", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := misconfig.LintDockerfile("testdata/lint/Dockerfile", bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := EncodeLint(&buf, fs, meta); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "lint", "Dockerfile.sarif.json"), buf.Bytes())
	l := decode(t, buf.Bytes())
	run := l.Runs[0]
	if len(run.Results) != len(fs) || len(run.Results) < 10 {
		t.Fatalf("%d results for %d findings", len(run.Results), len(fs))
	}
	for _, res := range run.Results {
		loc := res.Locations[0].PhysicalLocation
		if loc.ArtifactLocation.URI != "testdata/lint/Dockerfile" || loc.Region.StartLine < 2 {
			t.Errorf("%s at %+v", res.RuleID, loc)
		}
	}
	for _, leak := range []string{"0123456789abcdef"} {
		if strings.Contains(buf.String(), leak) {
			t.Errorf("the log shows %q", leak)
		}
	}
	// A clean lint is a valid, empty log.
	buf.Reset()
	if err := EncodeLint(&buf, nil, meta); err != nil {
		t.Fatal(err)
	}
	decode(t, buf.Bytes())
}
