package sarif

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"berth.dev/berth/internal/golden"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report/internal/fixture"
	"berth.dev/berth/internal/report/internal/schematest"
	"berth.dev/berth/internal/vex"
)

var meta = Meta{ToolVersion: "1.0.0-test", InformationURI: "https://berth.dev"}

func encode(t testing.TB, r *match.Report) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, r, meta); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decode validates doc against the SARIF 2.1.0 schema and checks what
// GitHub code scanning requires beyond it: every result names an existing
// rule by id and index, has a location with a relative URI and a start
// line, and every rule has a security-severity between 0 and 10.
func decode(t *testing.T, doc []byte) *log {
	t.Helper()
	schematest.SARIF(t, doc)
	var l log
	if err := json.Unmarshal(doc, &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Runs) != 1 {
		t.Fatalf("%d runs", len(l.Runs))
	}
	run := l.Runs[0]
	ids := map[string]bool{}
	for _, r := range run.Tool.Driver.Rules {
		if ids[r.ID] {
			t.Errorf("rule %s twice", r.ID)
		}
		ids[r.ID] = true
		s, err := strconv.ParseFloat(r.Properties.SecuritySeverity, 64)
		if err != nil || s < 0 || s > 10 {
			t.Errorf("rule %s security-severity %q", r.ID, r.Properties.SecuritySeverity)
		}
		if r.Help.Text == "" || r.Help.Markdown == "" || r.ShortDescription.Text == "" {
			t.Errorf("rule %s lacks help or description", r.ID)
		}
	}
	for _, res := range run.Results {
		if res.RuleIndex < 0 || res.RuleIndex >= len(run.Tool.Driver.Rules) || run.Tool.Driver.Rules[res.RuleIndex].ID != res.RuleID {
			t.Errorf("result %s points at rule index %d", res.RuleID, res.RuleIndex)
		}
		if len(res.Locations) == 0 {
			t.Errorf("result %s has no location", res.RuleID)
		}
		for _, loc := range res.Locations {
			if u := loc.PhysicalLocation.ArtifactLocation.URI; u == "" || strings.HasPrefix(u, "/") || loc.PhysicalLocation.Region.StartLine < 1 {
				t.Errorf("result %s location %+v", res.RuleID, loc.PhysicalLocation)
			}
		}
	}
	return &l
}

func TestKitchenSinkGolden(t *testing.T) {
	r := fixture.KitchenSinkReport(t)
	out := encode(t, r)
	golden.Check(t, filepath.Join("testdata", "kitchen-sink.sarif.json"), out)
	l := decode(t, out)
	run := l.Runs[0]
	// 24 findings and 2 suppressed ones, one result each; one rule per id.
	if len(run.Results) != 26 || len(run.Tool.Driver.Rules) != 26 {
		t.Errorf("%d results, %d rules; want 26 and 26", len(run.Results), len(run.Tool.Driver.Rules))
	}
	results := map[string]result{}
	for _, res := range run.Results {
		results[res.RuleID] = res
	}
	rules := map[string]rule{}
	for _, r := range run.Tool.Driver.Rules {
		rules[r.ID] = r
	}

	lodash := results["CVE-2020-8203"]
	if lodash.Level != "error" || len(lodash.Locations) != 2 ||
		lodash.Locations[0].PhysicalLocation.ArtifactLocation.URI != "app/node_modules/lodash/package.json" ||
		lodash.Locations[1].PhysicalLocation.ArtifactLocation.URI != "app/package-lock.json" ||
		lodash.Locations[0].PhysicalLocation.ArtifactLocation.URIBaseID != "ROOTPATH" {
		t.Errorf("lodash result %+v", lodash)
	}
	if !strings.Contains(lodash.Message.Text, "Fixed in 4.17.19.") || !strings.Contains(lodash.Message.Text, "layer 48eb869ab9ab (COPY app/ /app/)") {
		t.Errorf("lodash message %q", lodash.Message.Text)
	}
	// CVSS 3.1 7.4 is where HIGH came from; GitHub ranks by this number.
	if got := rules["CVE-2020-8203"].Properties.SecuritySeverity; got != "7.4" {
		t.Errorf("CVE-2020-8203 security-severity %s, want 7.4", got)
	}
	if got := rules["CVE-2021-44906"]; got.DefaultConfiguration.Level != "error" || got.Properties.SecuritySeverity != "9.8" || got.HelpURI != "https://nvd.nist.gov/vuln/detail/CVE-2021-44906" {
		t.Errorf("CVE-2021-44906 rule %+v", got)
	}
	// A Go record without a score: UNKNOWN, a note, security-severity 0.
	if got := rules["CVE-2021-31525"]; got.Properties.SecuritySeverity != "0.0" || got.DefaultConfiguration.Level != "note" {
		t.Errorf("CVE-2021-31525 rule %+v", got.Properties)
	}
	// Suppressed findings are results with a suppression and the reason.
	for id, want := range map[string]string{
		"CVE-2020-7598":  "VEX not_affected (vulnerable_code_not_in_execute_path)",
		"CVE-2021-38561": "ignored by .trivyignore:2",
	} {
		s := results[id].Suppressions
		if len(s) != 1 || s[0].Kind != "external" || s[0].Status != "accepted" || !strings.Contains(s[0].Justification, want) {
			t.Errorf("%s suppressions %+v, want one naming %q", id, s, want)
		}
	}
	if len(results["CVE-2020-8203"].Suppressions) != 0 {
		t.Error("an active finding carries a suppression")
	}
}

func TestAwkwardGolden(t *testing.T) {
	for _, a := range fixture.AwkwardReports() {
		t.Run(a.Name, func(t *testing.T) {
			out := encode(t, a.R)
			golden.Check(t, filepath.Join("testdata", "awkward", strings.ReplaceAll(a.Name, " ", "-")+".sarif.json"), out)
			decode(t, out)
		})
	}
}

// TestHostileText: package names, ids and summaries cannot inject Markdown
// into GitHub's rendering of the help, and odd paths stay valid URIs.
func TestHostileText(t *testing.T) {
	var r *match.Report
	for _, a := range fixture.AwkwardReports() {
		if a.Name == "odd characters" {
			r = a.R
		}
	}
	l := decode(t, encode(t, r))
	md := l.Runs[0].Tool.Driver.Rules[0].Help.Markdown
	for _, bad := range []string{"[link](", " <img", "**<script>", "GHSA-[x](y)", "javascript:alert(1)", "\x1b", "\u202e"} {
		if strings.Contains(md, bad) {
			t.Errorf("help Markdown contains %q unescaped:\n%s", bad, md)
		}
	}
	if !strings.Contains(md, `\[link\]\(javascript:alert\(1\)\)`) {
		t.Errorf("help Markdown lost the escaped link text:\n%s", md)
	}
	// No location: the image name stands in, as a relative URI.
	if u := l.Runs[0].Results[0].Locations[0].PhysicalLocation.ArtifactLocation.URI; u != "im%C3%A4ge" {
		t.Errorf("location URI %q", u)
	}
}

// TestSchemaRejectsBrokenLogs proves the validator is in force: a log
// missing what the schema requires fails.
func TestSchemaRejectsBrokenLogs(t *testing.T) {
	for name, doc := range map[string]string{
		"no runs":     `{"version":"2.1.0"}`,
		"bad version": `{"version":"2.0.0","runs":[]}`,
		"bad level":   `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"message":{"text":"m"},"level":"fatal"}]}]}`,
		"bad region":  `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"message":{"text":"m"},"locations":[{"physicalLocation":{"artifactLocation":{"uri":"a"},"region":{"startLine":0}}}]}]}]}`,
	} {
		if err := schematest.SARIFError([]byte(doc)); err == nil {
			t.Errorf("%s: schema accepted %s", name, doc)
		}
	}
}

// fuzzReport is one finding made of arbitrary text, shown and suppressed.
func fuzzReport(id, alias, name, version, summary, ref, location, fixed string) *match.Report {
	p := inventory.Package{Ecosystem: inventory.NPM, Name: name, Version: version, PURL: "pkg:npm/" + name + "@" + version, Locations: []string{location}, Layer: "sha256:" + version}
	f := match.Finding{ID: id, Aliases: []string{alias}, Package: p, Summary: summary, Severity: match.SeverityHigh,
		SeveritySource: "cvss_v3.1", CVSS: []match.CVSS{{Version: "3.1", Vector: "CVSS:3.1/AV:N", Score: 7.5, Source: id}},
		References: []string{ref}, FixedVersions: []string{fixed}, Status: match.StatusFixed}
	return &match.Report{
		SchemaVersion: 1,
		Inventory:     inventory.Inventory{Source: location, Layers: []inventory.Layer{{DiffID: p.Layer, CreatedBy: summary}}, Packages: []inventory.Package{p}},
		Findings:      []match.Finding{f},
		Suppressed:    []match.Suppressed{{Finding: f, By: "vex", Statement: &vex.Statement{Vulnerability: id, Status: vex.NotAffected, Justification: summary, Document: ref}}},
	}
}

// FuzzEncode: whatever text records and packages carry, the log stays
// valid SARIF that GitHub accepts.
func FuzzEncode(f *testing.F) {
	f.Add("CVE-2020-8203", "GHSA-p6mc-m468-83gw", "lodash", "4.17.15", "Prototype Pollution", "https://github.com/advisories/GHSA-p6mc-m468-83gw", "/app/package-lock.json", "4.17.19")
	f.Add("", "", "", "", "", "", "", "")
	f.Add("CVE-<x> y", "GHSA-%zz", "x", "1", "", "", "", "")
	f.Add("<x>", "[a](b)", "na me\x1b", "1 0\u202e", "**b**\n|x|", "javascript:x", "/we ird/ü:x", "\xff")
	f.Fuzz(func(t *testing.T, id, alias, name, version, summary, ref, location, fixed string) {
		var buf bytes.Buffer
		if err := Encode(&buf, fuzzReport(id, alias, name, version, summary, ref, location, fixed), meta); err != nil {
			t.Fatal(err)
		}
		if err := schematest.SARIFError(buf.Bytes()); err != nil {
			t.Fatalf("invalid log: %v\n%s", err, buf.Bytes())
		}
	})
}
