package match

import (
	"slices"

	"berth.dev/berth/internal/inventory"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/match/version"
	"berth.dev/berth/internal/osv"
)

func ev(kind, v string) osv.Event {
	switch kind {
	case "i":
		return osv.Event{Introduced: v}
	case "f":
		return osv.Event{Fixed: v}
	case "la":
		return osv.Event{LastAffected: v}
	}
	return osv.Event{Limit: v}
}

func rng(typ string, evs ...osv.Event) osv.Range { return osv.Range{Type: typ, Events: evs} }

// TestEvaluate covers OSV's evaluation rules (schema, "Evaluation").
func TestEvaluate(t *testing.T) {
	eco := osv.RangeEcosystem
	tests := []struct {
		name      string
		scheme    version.Scheme
		version   string
		aff       osv.Affected
		affected  bool
		uncertain bool
		fixed     []string
	}{
		{"introduced 0 affects everything", version.NPM, "9.9.9", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "0"))}}, true, false, nil},
		{"introduced 0 needs no parse", version.NPM, "not-a-version", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "0"))}}, true, false, nil},
		{"below fixed", version.NPM, "1.2.0", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "0"), ev("f", "1.2.3"))}}, true, false, []string{"1.2.3"}},
		{"at fixed", version.NPM, "1.2.3", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "0"), ev("f", "1.2.3"))}}, false, false, nil},
		{"below introduced", version.NPM, "0.9.0", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "1.0.0"), ev("f", "1.2.3"))}}, false, false, nil},
		{"at introduced", version.NPM, "1.0.0", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "1.0.0"), ev("f", "1.2.3"))}}, true, false, []string{"1.2.3"}},
		{"at last_affected", version.NPM, "2.1.214", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "0"), ev("la", "2.1.214"))}}, true, false, nil},
		{"above last_affected", version.NPM, "2.1.215", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "0"), ev("la", "2.1.214"))}}, false, false, nil},
		{"second interval of one range", version.NPM, "3.1.0", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "1.0.0"), ev("f", "1.0.2"), ev("i", "3.0.0"), ev("f", "3.2.5"))}}, true, false, []string{"3.2.5"}},
		{"between intervals", version.NPM, "2.0.0", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "1.0.0"), ev("f", "1.0.2"), ev("i", "3.0.0"), ev("f", "3.2.5"))}}, false, false, nil},
		// PYSEC-2023-192 lists [2.0.0, 2.0.6) before [0, 1.26.17).
		{"unsorted events", version.PEP440, "1.26.12", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "2.0.0"), ev("f", "2.0.6"), ev("i", "0"), ev("f", "1.26.17"))}}, true, false, []string{"1.26.17"}},
		{"unsorted events, fixed line", version.PEP440, "2.0.6", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "2.0.0"), ev("f", "2.0.6"), ev("i", "0"), ev("f", "1.26.17"))}}, false, false, nil},
		{"several ranges", version.NPM, "5.0.0", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "0"), ev("f", "1.0.0")), rng(eco, ev("i", "4.0.0"), ev("f", "5.1.0"))}}, true, false, []string{"5.1.0"}},
		{"below limit", version.NPM, "1.5.0", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "1.0.0"), ev("l", "2.0.0"))}}, true, false, nil},
		{"at limit", version.NPM, "2.0.0", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "1.0.0"), ev("l", "2.0.0"))}}, false, false, nil},
		{"limit star", version.NPM, "9.0.0", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "1.0.0"), ev("l", "*"))}}, true, false, nil},
		{"versions list only", version.PEP440, "1.0", osv.Affected{Versions: []string{"0.9", "1.0.0"}}, true, false, nil},
		{"versions list miss", version.PEP440, "1.1", osv.Affected{Versions: []string{"0.9", "1.0.0"}}, false, false, nil},
		{"versions list wins over ranges", version.PEP440, "3.0", osv.Affected{Versions: []string{"3.0"}, Ranges: []osv.Range{rng(eco, ev("i", "0"), ev("f", "2.0"))}}, true, false, nil},
		{"GIT ranges ignored", version.PEP440, "1.0", osv.Affected{Ranges: []osv.Range{rng(osv.RangeGit, ev("i", "0"), ev("f", "1dd69c5c5982fae7c87a620d487c2ebf7a6b436b"))}}, false, false, nil},
		// SEMVER compares as semver whatever the ecosystem: PEP 440 would
		// reject 1.0.0-x.7.z.92.
		{"SEMVER range in another ecosystem", version.PEP440, "1.0.0-x.7.z.92", osv.Affected{Ranges: []osv.Range{rng(osv.RangeSemver, ev("i", "0"), ev("f", "1.0.0"))}}, true, false, []string{"1.0.0"}},
		{"installed version unparsable", version.NPM, "latest", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "0"), ev("f", "1.0.0"))}}, false, true, []string{"1.0.0"}},
		{"record version unparsable", version.Dpkg, "1.0-1", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "0"), ev("f", "<unfixed>"))}}, false, true, []string{"<unfixed>"}},
		{"certain range beats uncertain one", version.NPM, "1.0.0", osv.Affected{Ranges: []osv.Range{rng(eco, ev("i", "0"), ev("f", "bogus")), rng(eco, ev("i", "0"), ev("f", "2.0.0"))}}, true, false, []string{"2.0.0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &evaluator{cache: version.NewCache(), scheme: tc.scheme, version: tc.version}
			got := e.evaluate(&tc.aff)
			if got.affected != tc.affected || (got.uncertain != "") != tc.uncertain {
				t.Fatalf("affected %v uncertain %q; want affected %v uncertain %v", got.affected, got.uncertain, tc.affected, tc.uncertain)
			}
			if !slices.Equal(got.fixed, tc.fixed) {
				t.Errorf("fixed %v, want %v", got.fixed, tc.fixed)
			}
		})
	}
}

func record(id string, aliases []string, eco, name string, evs ...osv.Event) *osv.Vulnerability {
	return &osv.Vulnerability{ID: id, Aliases: aliases, Affected: []osv.Affected{{
		Package: osv.Package{Ecosystem: eco, Name: name}, Ranges: []osv.Range{rng(osv.RangeEcosystem, evs...)},
	}}}
}

func TestMatchPackageRules(t *testing.T) {
	p := pkg("npm", "left-pad", "1.0.0")
	tgt, err := targetFor(&p, nil)
	if err != nil {
		t.Fatal(err)
	}
	withdrawn := record("GHSA-wwww-wwww-wwww", nil, "npm", "left-pad", ev("i", "0"))
	withdrawn.Withdrawn = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := []*osv.Vulnerability{
		withdrawn,
		// Linked transitively: A–B share CVE-1, B–C share GHSA-x.
		record("GHSA-aaaa-aaaa-aaaa", []string{"CVE-2021-1"}, "npm", "left-pad", ev("i", "0"), ev("f", "1.1.0")),
		record("OSV-B", []string{"CVE-2021-1", "GHSA-xxxx-xxxx-xxxx"}, "npm", "left-pad", ev("i", "0"), ev("f", "1.2.0")),
		record("GHSA-xxxx-xxxx-xxxx", []string{"CVE-2020-99"}, "npm", "left-pad", ev("i", "0"), ev("f", "1.2.0")),
		// Another package and another ecosystem: not this package.
		record("GHSA-bbbb-bbbb-bbbb", nil, "npm", "right-pad", ev("i", "0")),
		record("PYSEC-1", nil, "PyPI", "left-pad", ev("i", "0")),
		// Unparsable fix: uncertain, kept, flagged.
		record("GHSA-cccc-cccc-cccc", nil, "npm", "left-pad", ev("i", "0"), ev("f", "next")),
	}
	cache := version.NewCache()
	hits, _ := matchRecords(tgt, recs, cache)
	var fs []Finding
	for _, g := range groupByAlias(hits) {
		fs = append(fs, buildFinding(p, tgt, g, cache))
	}
	if len(fs) != 2 {
		t.Fatalf("want 2 findings, got %+v", fs)
	}
	merged := fs[0]
	// CVE-2020-99 sorts before CVE-2021-1.
	if merged.ID != "CVE-2020-99" || !slices.Equal(merged.Aliases, []string{"CVE-2021-1", "GHSA-aaaa-aaaa-aaaa", "GHSA-xxxx-xxxx-xxxx", "OSV-B"}) {
		t.Errorf("merged id %s aliases %v", merged.ID, merged.Aliases)
	}
	if !slices.Equal(merged.FixedVersions, []string{"1.1.0", "1.2.0"}) || merged.Status != StatusFixed || merged.Uncertain {
		t.Errorf("merged fixed %v status %s uncertain %v", merged.FixedVersions, merged.Status, merged.Uncertain)
	}
	unc := fs[1]
	if unc.ID != "GHSA-cccc-cccc-cccc" || !unc.Uncertain || !strings.Contains(unc.UncertainReason, `"next"`) {
		t.Errorf("uncertain finding %+v", unc)
	}
}

func TestPrimaryID(t *testing.T) {
	tests := []struct {
		ids  []string
		want string
	}{
		{[]string{"GO-2023-1", "GHSA-b", "CVE-2023-9999", "CVE-2023-10000"}, "CVE-2023-9999"},
		{[]string{"DSA-1-1", "GHSA-z", "GHSA-a"}, "GHSA-a"},
		{[]string{"PYSEC-2", "DLA-1-1"}, "DLA-1-1"},
		{[]string{"CVE-2024-1", "CVE-2023-50000"}, "CVE-2023-50000"},
	}
	for _, tc := range tests {
		if got := primaryID(tc.ids); got != tc.want {
			t.Errorf("primaryID(%v) = %s, want %s", tc.ids, got, tc.want)
		}
	}
}

func TestSeverity(t *testing.T) {
	v3 := osv.Severity{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"} // 9.8
	v2 := osv.Severity{Type: "CVSS_V2", Score: "AV:N/AC:L/Au:N/C:P/I:P/A:P"}                   // 7.5
	v4 := osv.Severity{Type: "CVSS_V4", Score: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N"}
	tests := []struct {
		name   string
		rec    osv.Vulnerability
		distro bool
		want   Severity
		source string
	}{
		{"v3 critical", osv.Vulnerability{ID: "A", Severity: []osv.Severity{v3}}, false, SeverityCritical, "cvss_v3.1"},
		{"v2 high has no critical", osv.Vulnerability{ID: "A", Severity: []osv.Severity{v2}}, false, SeverityHigh, "cvss_v2.0"},
		{"newest version wins", osv.Vulnerability{ID: "A", Severity: []osv.Severity{v3, v4}}, false, SeverityMedium, "cvss_v4.0"},
		{"GHSA rating word", osv.Vulnerability{ID: "A", DatabaseSpecific: []byte(`{"severity":"MODERATE"}`)}, false, SeverityMedium, "database"},
		{"distro rating wins", osv.Vulnerability{ID: "A", Severity: []osv.Severity{v3}, DatabaseSpecific: []byte(`{"urgency":"low"}`)}, true, SeverityLow, "debian"},
		{"Ubuntu priority", osv.Vulnerability{ID: "A", Severity: []osv.Severity{{Type: "Ubuntu", Score: "medium"}, v3}}, true, SeverityMedium, "ubuntu"},
		{"nothing", osv.Vulnerability{ID: "A"}, false, SeverityUnknown, ""},
		{"bad vector ignored", osv.Vulnerability{ID: "A", Severity: []osv.Severity{{Type: "CVSS_V3", Score: "CVSS:3.1/garbage"}}}, false, SeverityUnknown, ""},
	}
	for _, tc := range tests {
		aff := osv.Affected{Package: osv.Package{Ecosystem: "Debian:12"}}
		got, src := decideSeverity([]severityEvidence{collectSeverity(&tc.rec, &aff, tc.distro)})
		if got != tc.want || src != tc.source {
			t.Errorf("%s: %s from %q, want %s from %q", tc.name, got, src, tc.want, tc.source)
		}
	}
}

func TestTargetFor(t *testing.T) {
	debian := &inventoryDistro{"debian", "12"}
	tests := []struct {
		p       pkgSpec
		d       *inventoryDistro
		eco     string
		name    string
		version string
	}{
		{pkgSpec{"deb", "bash", "5.2.15-2+b13", "bash", "5.2.15-2"}, debian, "Debian:12", "bash", "5.2.15-2"},
		{pkgSpec{"deb", "bash", "5.2.15-2+b13", "", ""}, debian, "Debian:12", "bash", "5.2.15-2"},
		{pkgSpec{"apk", "libssl3", "3.1.4-r5", "openssl", ""}, &inventoryDistro{"alpine", "3.19.1"}, "Alpine:v3.19", "openssl", "3.1.4-r5"},
		{pkgSpec{"deb", "libc6", "2.35-0ubuntu3.6", "glibc", ""}, &inventoryDistro{"ubuntu", "22.04"}, "Ubuntu:22.04:LTS", "glibc", "2.35-0ubuntu3.6"},
		{pkgSpec{"golang", "stdlib", "go1.26.8", "", ""}, nil, "Go", "stdlib", "1.26.8"},
		{pkgSpec{"golang", "golang.org/x/net", "v0.7.0", "", ""}, nil, "Go", "golang.org/x/net", "v0.7.0"},
		{pkgSpec{"pypi", "Typing_Extensions", "4.0", "", ""}, nil, "PyPI", "typing-extensions", "4.0"},
		{pkgSpec{"maven", "org.apache.commons:commons-text", "1.9", "", ""}, nil, "Maven", "org.apache.commons:commons-text", "1.9"},
	}
	for _, tc := range tests {
		pk := tc.p.pkg()
		tg, err := targetFor(&pk, tc.d.distro())
		if err != nil {
			t.Errorf("%v: %v", tc.p, err)
			continue
		}
		if tg.ecosystems[0] != tc.eco || tg.name != tc.name || tg.version != tc.version {
			t.Errorf("%v: got %v %s %s, want %s %s %s", tc.p, tg.ecosystems, tg.name, tg.version, tc.eco, tc.name, tc.version)
		}
	}
	if _, err := targetFor(&inventory.Package{Ecosystem: "rpm", Name: "bash", Version: "5.1-1.el9"}, (&inventoryDistro{"rhel", "9.4"}).distro()); err == nil {
		t.Errorf("rhel without a CPE-scoped feed should be reported")
	}
}

type pkgSpec struct{ eco, name, version, srcName, srcVersion string }

func (p pkgSpec) pkg() inventory.Package {
	return inventory.Package{Ecosystem: inventory.Ecosystem(p.eco), Name: p.name, Version: p.version, SourceName: p.srcName, SourceVersion: p.srcVersion}
}

type inventoryDistro struct{ id, version string }

func (d *inventoryDistro) distro() *inventory.Distro {
	if d == nil {
		return nil
	}
	return &inventory.Distro{ID: d.id, VersionID: d.version}
}
