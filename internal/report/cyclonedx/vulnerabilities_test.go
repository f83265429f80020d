package cyclonedx

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"berth.dev/berth/internal/golden"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report/internal/fixture"
	"berth.dev/berth/internal/report/internal/schematest"
	"berth.dev/berth/internal/vex"
)

func encodeReport(t testing.TB, r *match.Report) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := EncodeReport(&buf, r, fixedMeta); err != nil {
		t.Fatalf("EncodeReport: %v", err)
	}
	return buf.Bytes()
}

// decodeVulnBOM validates doc against the CycloneDX 1.6 schema, decodes it
// and checks that every affects ref names a component.
func decodeVulnBOM(t *testing.T, doc []byte) *cdx.BOM {
	t.Helper()
	schematest.CycloneDX(t, doc)
	var b cdx.BOM
	if err := json.Unmarshal(doc, &b); err != nil {
		t.Fatal(err)
	}
	sameAsCycloneDXGo(t, doc, &b)
	refs := map[string]bool{}
	if b.Components != nil {
		for _, c := range *b.Components {
			refs[c.BOMRef] = true
		}
	}
	if b.Vulnerabilities != nil {
		for _, v := range *b.Vulnerabilities {
			if v.Affects == nil || len(*v.Affects) == 0 {
				t.Errorf("%s affects nothing", v.ID)
				continue
			}
			for _, a := range *v.Affects {
				if !refs[a.Ref] {
					t.Errorf("%s affects %q, which is no component", v.ID, a.Ref)
				}
			}
		}
	}
	return &b
}

func vulnsByID(b *cdx.BOM) map[string][]cdx.Vulnerability {
	out := map[string][]cdx.Vulnerability{}
	if b.Vulnerabilities != nil {
		for _, v := range *b.Vulnerabilities {
			out[v.ID] = append(out[v.ID], v)
		}
	}
	return out
}

func TestKitchenSinkReportGolden(t *testing.T) {
	r := fixture.KitchenSinkReport(t)
	out := encodeReport(t, r)
	golden.Check(t, filepath.Join("testdata", "kitchen-sink.vuln.cdx.json"), out)
	b := decodeVulnBOM(t, out)
	vulns := vulnsByID(b)

	// 24 findings shown plus the VEX-suppressed one; the ignored one is
	// left out.
	if n := len(*b.Vulnerabilities); n != 25 {
		t.Errorf("%d vulnerabilities, want 25", n)
	}
	if _, ok := vulns["CVE-2021-38561"]; ok {
		t.Error("CVE-2021-38561, suppressed by the ignore file, is in the document")
	}

	lodash := vulns["CVE-2020-8203"]
	if len(lodash) != 1 {
		t.Fatalf("CVE-2020-8203: %d entries", len(lodash))
	}
	v := lodash[0]
	// The lockfile and node_modules findings are one package, one
	// component.
	var refs []string
	for _, a := range *v.Affects {
		refs = append(refs, a.Ref)
		if vs := *a.Range; len(vs) != 2 || vs[0] != (cdx.AffectedVersions{Version: "4.17.15", Status: cdx.VulnerabilityStatusAffected}) ||
			vs[1] != (cdx.AffectedVersions{Version: "4.17.19", Status: cdx.VulnerabilityStatusNotAffected}) {
			t.Errorf("CVE-2020-8203 versions %+v", vs)
		}
	}
	if len(refs) != 1 || refs[0] != "pkg:npm/lodash@4.17.15" {
		t.Errorf("CVE-2020-8203 affects %v, want the lodash component", refs)
	}
	if rs := *v.Ratings; len(rs) != 1 || rs[0].Method != cdx.ScoringMethodCVSSv31 || *rs[0].Score != 7.4 ||
		rs[0].Severity != cdx.SeverityHigh || rs[0].Source.Name != "GitHub" {
		t.Errorf("CVE-2020-8203 ratings %+v", rs)
	}
	if v.Source.Name != "NVD" || (*v.References)[0].ID != "GHSA-p6mc-m468-83gw" || v.Recommendation != "Upgrade lodash to 4.17.19." {
		t.Errorf("CVE-2020-8203 source %+v references %+v recommendation %q", v.Source, *v.References, v.Recommendation)
	}

	if a := vulns["CVE-2020-7598"][0].Analysis; a == nil || a.State != cdx.IASNotAffected || a.Justification != cdx.IAJCodeNotReachable ||
		!strings.Contains(a.Detail, "fixed argument list") {
		t.Errorf("CVE-2020-7598 analysis %+v", a)
	}
	if a := vulns["CVE-2022-32149"][0].Analysis; a == nil || a.State != cdx.IASInTriage {
		t.Errorf("CVE-2022-32149 analysis %+v", a)
	}
	if a := vulns["CVE-2020-28500"][0].Analysis; a != nil {
		t.Errorf("CVE-2020-28500 has analysis %+v without any VEX statement", a)
	}
}

func TestAwkwardReports(t *testing.T) {
	for _, a := range fixture.AwkwardReports() {
		t.Run(a.Name, func(t *testing.T) {
			out := encodeReport(t, a.R)
			name := strings.ReplaceAll(a.Name, " ", "-")
			golden.Check(t, filepath.Join("testdata", "awkward", name+".vuln.cdx.json"), out)
			decodeVulnBOM(t, out)
		})
	}
}

// TestOneIDInSeveralPackages: one CVE in two binary packages of one source
// package, one of them covered by a VEX statement, is two entries: the
// analysis belongs to a vulnerability, not to one affected component.
func TestOneIDInSeveralPackages(t *testing.T) {
	var r *match.Report
	for _, a := range fixture.AwkwardReports() {
		if a.Name == "one id in several packages" {
			r = a.R
		}
	}
	b := decodeVulnBOM(t, encodeReport(t, r))
	entries := vulnsByID(b)["CVE-2023-5678"]
	if len(entries) != 2 {
		t.Fatalf("%d entries for CVE-2023-5678, want 2", len(entries))
	}
	plain, vexed := entries[0], entries[1]
	if plain.Analysis != nil || vexed.Analysis == nil {
		t.Fatalf("analyses %+v and %+v", plain.Analysis, vexed.Analysis)
	}
	if a := vexed.Analysis; a.State != cdx.IASNotAffected || a.Justification != "" ||
		!strings.Contains(a.Detail, "vulnerable_code_cannot_be_controlled_by_adversary") || a.LastUpdated != "2026-11-01T00:00:00Z" {
		t.Errorf("VEX analysis %+v", a)
	}
	affected := func(v cdx.Vulnerability) []string {
		var refs []string
		for _, a := range *v.Affects {
			refs = append(refs, a.Ref)
		}
		return refs
	}
	if got := affected(plain); len(got) != 1 || !strings.Contains(got[0], "libssl3") {
		t.Errorf("plain entry affects %v", got)
	}
	if got := affected(vexed); len(got) != 1 || !strings.Contains(got[0], "/openssl@") {
		t.Errorf("VEX entry affects %v", got)
	}
	// The Debian rating is berth's choice for libssl3: kept as method
	// "other" beside the CVSS vector.
	methods := map[cdx.ScoringMethod]string{}
	for _, rt := range *plain.Ratings {
		methods[rt.Method] = string(rt.Severity) + " " + rt.Source.Name
	}
	if methods[cdx.ScoringMethodOther] != "low debian" || methods[cdx.ScoringMethodCVSSv31] != "medium Debian" {
		t.Errorf("ratings %v", methods)
	}
	// The ignore-suppressed copy adds nothing.
	if n := len(*b.Vulnerabilities); n != 3 || !slices.ContainsFunc(*b.Vulnerabilities, func(v cdx.Vulnerability) bool { return v.ID == "CVE-2020-8203" }) {
		t.Errorf("%d vulnerabilities", n)
	}
}

// FuzzEncodeReport: whatever text records and packages carry, the document
// stays valid CycloneDX and every affects ref names a component.
func FuzzEncodeReport(f *testing.F) {
	f.Add("CVE-2020-8203", "GHSA-p6mc-m468-83gw", "lodash", "4.17.15", "Prototype Pollution", "https://github.com/advisories/GHSA-p6mc-m468-83gw", "vulnerable_code_not_present")
	f.Add("", "", "", "", "", "", "")
	f.Add("CVE-<x> y", "[a](b)", "na me\x1b", "1 0\u202e", "**b**\n", "javascript:x", "\xff")
	f.Fuzz(func(t *testing.T, id, alias, name, version, summary, ref, justification string) {
		p := inventory.Package{Ecosystem: inventory.NPM, Name: name, Version: version, PURL: "pkg:npm/" + name + "@" + version}
		fd := match.Finding{ID: id, Aliases: []string{alias}, Package: p, Summary: summary, Severity: match.SeverityHigh,
			SeveritySource: "database", CVSS: []match.CVSS{{Version: "3.1", Vector: summary, Score: 7.5, Source: alias}},
			References: []string{ref}, FixedVersions: []string{version + "1"}, Status: match.StatusFixed}
		r := &match.Report{
			Inventory:  inventory.Inventory{Source: name, Packages: []inventory.Package{p, p}},
			Findings:   []match.Finding{fd},
			Suppressed: []match.Suppressed{{Finding: fd, By: "vex", Statement: &vex.Statement{Vulnerability: id, Status: vex.NotAffected, Justification: justification, ImpactStatement: summary}}},
		}
		var buf bytes.Buffer
		if err := EncodeReport(&buf, r, fixedMeta); err != nil {
			t.Fatal(err)
		}
		if err := schematest.CycloneDXError(buf.Bytes()); err != nil {
			t.Fatalf("invalid document: %v\n%s", err, buf.Bytes())
		}
		var doc cdx.BOM
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		sameAsCycloneDXGo(t, buf.Bytes(), &doc)
	})
}

func BenchmarkEncodeReportKitchenSink(b *testing.B) {
	r := fixture.KitchenSinkReport(b)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := EncodeReport(&buf, r, fixedMeta); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}
