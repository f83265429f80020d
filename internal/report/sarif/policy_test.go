package sarif

import (
	"bytes"
	"encoding/json"
	"testing"

	"berth.dev/berth/internal/report/internal/schematest"
)

func TestEncodePolicyIsValidSARIF(t *testing.T) {
	for _, results := range [][]PolicyResult{nil, {
		{Policy: "ImagePolicy/prod", Rule: "signature", Image: "r.example/app@sha256:ab", Message: "not signed by 2 of [ci, scan]", PolicyFile: "policy.yaml"},
		{Policy: "ImagePolicy/prod", Rule: "tag", Image: "r.example/app@sha256:ab", Message: `tag "latest" is refused`, Warning: true, PolicyFile: "policy.yaml"},
	}} {
		var buf bytes.Buffer
		if err := EncodePolicy(&buf, results, Meta{ToolVersion: "test"}); err != nil {
			t.Fatal(err)
		}
		schematest.SARIF(t, buf.Bytes())
		var doc struct {
			Runs []struct {
				Results []struct {
					RuleID, Level string
					Message       struct{ Text string }
				}
			}
		}
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if got := len(doc.Runs[0].Results); got != len(results) {
			t.Fatalf("%d results, want %d", got, len(results))
		}
		if len(results) > 0 {
			r := doc.Runs[0].Results
			if r[0].RuleID != "ImagePolicy/prod/signature" || r[0].Level != "error" || r[1].Level != "warning" ||
				r[0].Message.Text != "r.example/app@sha256:ab: not signed by 2 of [ci, scan]" {
				t.Errorf("results %+v", r)
			}
		}
	}
}
