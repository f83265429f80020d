package scan

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report"
	"berth.dev/berth/internal/sign/attestation"
)

// TestVulnPredicate checks the record the CLI and the server attest: the
// result is the JSON report byte for byte, the database and scanner are
// named, and the times are UTC.
func TestVulnPredicate(t *testing.T) {
	r := &match.Report{Inventory: inventory.Inventory{Source: "registry.example/app@sha256:" + string(bytes.Repeat([]byte("a"), 64))}}
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	out, err := VulnPredicate(r, PredicateInput{ToolVersion: "1.2.3", DBSources: []string{"osv a", "debian b"},
		DBUpdatedAt: started, Parameters: []string{"--severity=HIGH+"}, Started: started, Finished: started.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	var p attestation.VulnPredicate
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := report.EncodeReport(&want, "json", r, report.Options{ToolVersion: "1.2.3"}); err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	json.Compact(&compact, want.Bytes())
	if got := string(p.Scanner.Result); got != compact.String() {
		t.Errorf("result\n%s\nwant the JSON report\n%s", got, compact.String())
	}
	if p.Scanner.URI != "pkg:golang/berth.dev/berth@1.2.3" || p.Scanner.DB.URI != "osv a, debian b" || p.Scanner.DB.Version != "2026-01-02T02:04:05Z" {
		t.Errorf("scanner %+v", p.Scanner)
	}
	if !p.Metadata.ScanFinishedOn.Equal(started.Add(time.Second)) || p.Metadata.ScanStartedOn.Location() != time.UTC {
		t.Errorf("metadata %+v", p.Metadata)
	}
}
