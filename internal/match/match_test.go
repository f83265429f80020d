package match

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/osv"
)

func pkg(eco inventory.Ecosystem, name, ver string) inventory.Package {
	return inventory.Package{Ecosystem: eco, Name: name, Version: ver, PURL: "pkg:" + string(eco) + "/" + name + "@" + ver}
}

func findingIDs(fs []Finding, name string) []string {
	var ids []string
	for _, f := range fs {
		if f.Package.Name == name {
			ids = append(ids, f.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func findingByID(t *testing.T, fs []Finding, id string) Finding {
	t.Helper()
	for _, f := range fs {
		if f.ID == id {
			return f
		}
	}
	t.Fatalf("no finding %s", id)
	return Finding{}
}

// TestRealOSVRecords matches packages against every OSV record in
// vulndata. The expected ids were worked out by reading the records (see
// the comment on each case), not from this matcher's output; the primary
// id is the CVE each record lists in aliases.
func TestRealOSVRecords(t *testing.T) {
	src := osvSource(t)
	inv := inventory.Inventory{Packages: []inventory.Package{
		pkg(inventory.NPM, "lodash", "4.17.15"),
		pkg(inventory.NPM, "minimist", "1.2.0"),
		pkg(inventory.NPM, "node-fetch", "2.6.0"),
		pkg(inventory.Go, "golang.org/x/net", "v0.0.0-20210226172049-e18ecbb05110"),
		pkg(inventory.Go, "golang.org/x/text", "v0.3.5"),
		pkg(inventory.Go, "stdlib", "go1.26.8"),
		pkg(inventory.PyPI, "requests", "2.28.1"),
		pkg(inventory.PyPI, "urllib3", "1.26.12"),
		pkg(inventory.PyPI, "IDNA", "3.3"), // PEP 503: IDNA is idna
		pkg(inventory.PyPI, "certifi", "2022.9.24"),
	}}
	r, err := New(src).Match(context.Background(), inv)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		// GHSA-29mw-wpgm-hmr9 [0, 4.17.21) and GHSA-p6mc-m468-83gw
		// [3.7.0, 4.17.19) both include 4.17.15.
		"lodash": {"CVE-2020-28500", "CVE-2020-8203"},
		// GHSA-vh95-rmgr-6w4m [1.0.0, 1.2.3) and GHSA-xvch-5gv4-984h
		// [1.0.0, 1.2.6); their other ranges ([0, 0.2.x)) do not apply.
		"minimist": {"CVE-2020-7598", "CVE-2021-44906"},
		// GHSA-w7rc-rwvf-8q5r [2.0.0, 2.6.1).
		"node-fetch": {"CVE-2020-15168"},
		// The pseudo-version is dated 2021-02-26. GO- records fixed by a
		// later pseudo-version or by any tagged v0.x are affected:
		// GO-2021-0238 (…20210520), GO-2022-0236 (…20210428), GO-2022-0288
		// (…20211209), GO-2022-0969 (…20220906), GO-2022-1144 (0.4.0),
		// GO-2023-1571 (0.7.0), GO-2023-1988 (0.13.0), GO-2023-2102 (0.17.0,
		// merged with GHSA-4374-p667-p6c8), GO-2024-2687 (0.23.0, merged
		// with GHSA-4v7x-pqxf-cx7m), GO-2024-3333 (0.33.0), GO-2025-3595
		// (0.38.0), GO-2026-4441 (0.45.0), GO-2026-4918 (0.53.0),
		// GO-2026-5026/5027/5030 (0.55.0), GO-2026-5942 (0.56.0). Not
		// affected: GO-2021-0078, GO-2022-0192/0193/0197/0536 (fixed by
		// 2018–2019 pseudo-versions), GO-2023-1495 (introduced by a 2022
		// pseudo-version), GO-2026-4559 (introduced 0.50.0).
		"golang.org/x/net": {
			"CVE-2021-31525", "CVE-2021-33194", "CVE-2021-44716", "CVE-2022-27664",
			"CVE-2022-41717", "CVE-2022-41723", "CVE-2023-3978", "CVE-2023-39325",
			"CVE-2023-45288", "CVE-2024-45338", "CVE-2025-22872", "CVE-2025-58190",
			"CVE-2026-27136", "CVE-2026-33814", "CVE-2026-39821", "CVE-2026-42502",
			"CVE-2026-46600",
		},
		// GO-2021-0113 [0, 0.3.7), GO-2022-1059 = GHSA-69ch-w2m2-3vjp
		// [0, 0.3.8), GO-2026-5970 [0, 0.39.0); GO-2020-0015 was fixed in
		// 0.3.3.
		"golang.org/x/text": {"CVE-2021-38561", "CVE-2022-32149", "CVE-2026-56852"},
		// Every stdlib record's 1.26 range ends with a fix at or below
		// 1.26.6 and the 1.27 ranges start at 1.27.0-0: go1.26.8 is clean.
		"stdlib": nil,
		// PYSEC-2023-74 [2.3.0, 2.31.0) and GHSA-9wx4-h78v-vm56
		// [0, 2.32.0); PYSEC-2014-13/14 were fixed in 2.3.0.
		"requests": {"CVE-2023-32681", "CVE-2024-35195"},
		// PYSEC-2023-192 = GHSA-v845-jxx5-vc9f (fixed 1.26.17, events
		// unsorted in the PYSEC record) and PYSEC-2023-212 =
		// GHSA-g4mx-q9vg-27p4 (fixed 1.26.18); the older PYSEC records
		// were fixed by 1.26.5 at the latest.
		"urllib3": {"CVE-2023-43804", "CVE-2023-45803"},
		// PYSEC-2024-60 [0.1, 3.7) and GHSA-jjg7-2v4v-x38h [0, 3.7): one
		// flaw, one finding.
		"IDNA": {"CVE-2024-3651"},
		// PYSEC-2022-42986 [2017.11.5, 2022.12.7), PYSEC-2023-135 =
		// GHSA-xqr8-7jwr-rhp7 [2015.4.28, 2023.7.22), GHSA-248v-346w-9cwc
		// [2021.05.30, 2024.07.4).
		"certifi": {"CVE-2022-23491", "CVE-2023-37920", "CVE-2024-39689"},
	}
	for name, ids := range want {
		slices.Sort(ids)
		if got := findingIDs(r.Findings, name); !slices.Equal(got, ids) {
			t.Errorf("%s: got %v\nwant %v", name, got, ids)
		}
	}
	for _, f := range r.Findings {
		if f.Uncertain {
			t.Errorf("%s %s: uncertain: %s", f.Package.Name, f.ID, f.UncertainReason)
		}
	}

	// Merged: one finding lists every id of the GO and GHSA records.
	f := findingByID(t, r.Findings, "CVE-2023-39325")
	if !slices.Contains(f.Aliases, "GO-2023-2102") || !slices.Contains(f.Aliases, "GHSA-4374-p667-p6c8") ||
		!slices.Equal(f.Records, []string{"GHSA-4374-p667-p6c8", "GO-2023-2102"}) {
		t.Errorf("CVE-2023-39325 not merged: aliases %v records %v", f.Aliases, f.Records)
	}
	if !slices.Equal(f.FixedVersions, []string{"0.17.0"}) || f.Status != StatusFixed {
		t.Errorf("CVE-2023-39325 fixed %v status %s", f.FixedVersions, f.Status)
	}
	// certifi's fix is written "2024.07.4" upstream and kept as written.
	if f := findingByID(t, r.Findings, "CVE-2024-39689"); !slices.Equal(f.FixedVersions, []string{"2024.07.4"}) {
		t.Errorf("CVE-2024-39689 fixed %v", f.FixedVersions)
	}
	// GHSA-4374-p667-p6c8 scores CVSS:3.1 7.5.
	if f.Severity != SeverityHigh || f.SeveritySource != "cvss_v3.1" {
		t.Errorf("CVE-2023-39325 severity %s from %s", f.Severity, f.SeveritySource)
	}
	// The report is the stored document: it must survive JSON.
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Findings) != len(r.Findings) || back.Inventory.Packages[0].Name != "lodash" {
		t.Errorf("report did not round-trip")
	}
	again, err := New(src).Match(context.Background(), back.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Findings) != len(r.Findings) {
		t.Errorf("rematch found %d findings, first match %d", len(again.Findings), len(r.Findings))
	}
}

// TestStdlibOlderRelease checks the go1.x → semver mapping on a release
// the records do affect: GO-2026-5026 covers [1.26.0-0, 1.26.6), while
// GO-2026-4970's [1.26.0-0, 1.26.5) is fixed in go1.26.5.
func TestStdlibOlderRelease(t *testing.T) {
	src := osvSource(t)
	r, err := New(src).Match(context.Background(), inventory.Inventory{Packages: []inventory.Package{pkg(inventory.Go, "stdlib", "go1.26.5")}})
	if err != nil {
		t.Fatal(err)
	}
	ids := findingIDs(r.Findings, "stdlib")
	if !slices.Contains(ids, "CVE-2026-39821") || slices.Contains(ids, "CVE-2026-39822") {
		t.Errorf("go1.26.5: %v", ids)
	}
	f := findingByID(t, r.Findings, "CVE-2026-39821")
	if !slices.Equal(f.FixedVersions, []string{"1.26.6"}) || f.Version != "1.26.5" {
		t.Errorf("fixed %v version %s", f.FixedVersions, f.Version)
	}
}

func debianInventory(release string, pkgs ...inventory.Package) inventory.Inventory {
	return inventory.Inventory{Distro: &inventory.Distro{ID: "debian", VersionID: release}, Packages: pkgs}
}

func debPkg(name, ver, srcName, srcVer string) inventory.Package {
	return inventory.Package{Ecosystem: inventory.Deb, Name: name, Version: ver, SourceName: srcName, SourceVersion: srcVer,
		PURL: "pkg:deb/debian/" + name + "@" + ver, Layer: "sha256:aaaa"}
}

// TestDebianAdvisories uses DSA-5343-1 (openssl, bullseye fixed in
// 1.1.1n-0+deb11u4) and DLA-3325-1 (openssl, buster fixed in
// 1.1.1n-0+deb10u4), both naming CVE-2022-2097, -4304, -4450, 2023-0215
// and -0286.
func TestDebianAdvisories(t *testing.T) {
	src := newMemSource(debianAdvisory(t, "DSA", "DSA-5343-1"), debianAdvisory(t, "DLA", "DLA-3325-1"))
	m := New(src)
	tests := []struct {
		name string
		inv  inventory.Inventory
		want []string // records matched, per finding (one finding expected when set)
	}{
		{"bullseye before the fix", debianInventory("11", debPkg("libssl1.1", "1.1.1n-0+deb11u3", "openssl", "1.1.1n-0+deb11u3")), []string{"DSA-5343-1"}},
		{"bullseye fixed", debianInventory("11", debPkg("libssl1.1", "1.1.1n-0+deb11u4", "openssl", "1.1.1n-0+deb11u4")), nil},
		{"bullseye binNMU of the vulnerable source", debianInventory("11", debPkg("libssl1.1", "1.1.1n-0+deb11u3+b1", "openssl", "")), []string{"DSA-5343-1"}},
		// A binary versioned apart from its source: the source decides.
		{"binary version differs from source", debianInventory("11", debPkg("openssl-tool", "9.0-1", "openssl", "1.1.1n-0+deb11u3")), []string{"DSA-5343-1"}},
		{"buster before the fix", debianInventory("10", debPkg("libssl1.1", "1.1.1n-0+deb10u3", "openssl", "")), []string{"DLA-3325-1"}},
		{"buster fixed", debianInventory("10", debPkg("libssl1.1", "1.1.1n-0+deb10u4", "openssl", "")), nil},
		// Neither advisory names bookworm: a Debian 12 image must not
		// borrow Debian 11's or 10's records.
		{"bookworm never crosses releases", debianInventory("12", debPkg("libssl1.1", "1.1.1n-0+deb11u3", "openssl", "")), nil},
		{"codename when VERSION_ID is missing", inventory.Inventory{Distro: &inventory.Distro{ID: "debian", Codename: "bullseye"},
			Packages: []inventory.Package{debPkg("libssl1.1", "1.1.1n-0+deb11u3", "openssl", "")}}, []string{"DSA-5343-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := m.Match(context.Background(), tc.inv)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if len(r.Findings) != 0 {
					t.Fatalf("want no finding, got %v", r.Findings)
				}
				return
			}
			if len(r.Findings) != 1 {
				t.Fatalf("want one finding, got %d: %+v", len(r.Findings), r.Findings)
			}
			f := r.Findings[0]
			if !slices.Equal(f.Records, tc.want) {
				t.Errorf("records %v, want %v", f.Records, tc.want)
			}
			// Primary id: the lowest CVE (2022-2097 < 2022-4304 numerically).
			if f.ID != "CVE-2022-2097" || !slices.Contains(f.Aliases, tc.want[0]) || !slices.Contains(f.Aliases, "CVE-2023-0286") {
				t.Errorf("id %s aliases %v", f.ID, f.Aliases)
			}
			if f.Name != "openssl" || f.Package.Layer != "sha256:aaaa" || f.Status != StatusFixed || len(f.FixedVersions) != 1 {
				t.Errorf("finding %+v", f)
			}
		})
	}
}

func alpineInventory(release string, pkgs ...inventory.Package) inventory.Inventory {
	return inventory.Inventory{Distro: &inventory.Distro{ID: "alpine", VersionID: release}, Packages: pkgs}
}

func apkPkg(name, ver, origin string) inventory.Package {
	return inventory.Package{Ecosystem: inventory.APK, Name: name, Version: ver, SourceName: origin, PURL: "pkg:apk/alpine/" + name + "@" + ver}
}

// TestAlpineSecdb uses the openssl and busybox secfixes of v3.9 and
// v3.10/main. v3.10 openssl: 1.1.1d-r0 fixes CVE-2019-1547, -1549, -1563;
// 1.1.1b-r1 fixes CVE-2019-1543; 1.1.1a-r0 fixes CVE-2018-0734, -0735.
// v3.10 busybox lists CVE-2019-5747 under 1.29.3-r10 (carried over from
// v3.9) and again under 1.30.1-r2, the fix in v3.10's own line.
func TestAlpineSecdb(t *testing.T) {
	src := newMemSource(append(alpineRecords(t, "openssl", "v3.9", "v3.10"), alpineRecords(t, "busybox", "v3.9", "v3.10")...)...)
	m := New(src)
	tests := []struct {
		name string
		inv  inventory.Inventory
		want []string
	}{
		{"3.10 openssl 1.1.1c", alpineInventory("3.10.2", apkPkg("libcrypto1.1", "1.1.1c-r0", "openssl")),
			[]string{"CVE-2019-1547", "CVE-2019-1549", "CVE-2019-1563"}},
		{"3.10 openssl 1.1.1b-r0", alpineInventory("3.10.0", apkPkg("libssl1.1", "1.1.1b-r0", "openssl")),
			[]string{"CVE-2019-1543", "CVE-2019-1547", "CVE-2019-1549", "CVE-2019-1563"}},
		{"3.10 openssl fixed", alpineInventory("3.10.9", apkPkg("libcrypto1.1", "1.1.1d-r0", "openssl")), nil},
		{"3.10 busybox 1.30.1-r1", alpineInventory("3.10.3", apkPkg("busybox", "1.30.1-r1", "busybox")), []string{"CVE-2019-5747"}},
		{"3.10 busybox 1.30.1-r2", alpineInventory("3.10.3", apkPkg("busybox", "1.30.1-r2", "busybox")), nil},
		// No v3.11 data is loaded: a 3.11 image matches nothing rather than
		// borrowing v3.10's records.
		{"3.11 never crosses releases", alpineInventory("3.11.6", apkPkg("libcrypto1.1", "1.1.1c-r0", "openssl")), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := m.Match(context.Background(), tc.inv)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range r.Findings {
				got = append(got, f.ID)
				if f.Ecosystem != "Alpine:v"+majorMinorOf(tc.inv.Distro.VersionID) {
					t.Errorf("%s matched under %s", f.ID, f.Ecosystem)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestUnmatchablePackagesAreReported: a package the matcher cannot place
// in a feed is a warning, never silently dropped.
func TestUnmatchablePackagesAreReported(t *testing.T) {
	r, err := New(newMemSource()).Match(context.Background(), inventory.Inventory{Packages: []inventory.Package{
		debPkg("bash", "5.2.15-2+b2", "bash", "5.2.15-2"),
		debPkg("coreutils", "9.1-1", "", ""),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "2 deb packages not matched (bash, coreutils): the image's distro is unknown") {
		t.Errorf("warnings %v", r.Warnings)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New(newMemSource()).Match(ctx, inventory.Inventory{Packages: []inventory.Package{pkg(inventory.NPM, "a", "1.0.0")}}); err == nil {
		t.Errorf("cancelled match: no error")
	}
}

// TestLocalPackagesAndKeysAreNotMatched: a workspace member, an
// application or an SDK package shares its name with a registry package
// by chance, and an rpm database's gpg-pubkey entries are keys. Each is
// listed and named in a warning, and no advisory about the registry
// package of its name becomes a finding; the same name from the registry
// still is matched.
func TestLocalPackagesAndKeysAreNotMatched(t *testing.T) {
	src := newMemSource(
		record("GHSA-cccc-cccc-cccc", nil, "npm", "client", ev("i", "0")),
		record("GHSA-tttt-tttt-tttt", nil, "Pub", "flutter_test", ev("i", "0")),
	)
	local := func(p inventory.Package) inventory.Package { p.Local = true; return p }
	rhel := &inventory.Distro{ID: "rhel", VersionID: "9.4"}
	for _, tc := range []struct {
		name     string
		pkgs     []inventory.Package
		findings []string
		warning  string
	}{
		{"workspace member", []inventory.Package{local(pkg(inventory.NPM, "client", "1.0.0"))}, nil,
			"1 npm packages not matched (client): the project's own or shipped with its SDK, not from the registry"},
		{"SDK package", []inventory.Package{local(pkg(inventory.Pub, "flutter_test", "0.0.0"))}, nil,
			"1 pub packages not matched (flutter_test): the project's own or shipped with its SDK, not from the registry"},
		{"registry package of the same name", []inventory.Package{pkg(inventory.NPM, "client", "1.0.0")}, []string{"GHSA-cccc-cccc-cccc"}, ""},
		{"rpm signing key", []inventory.Package{{Ecosystem: inventory.RPM, Name: "gpg-pubkey", Version: "fd431d51-4ae0493b"}}, nil,
			"1 rpm packages not matched (gpg-pubkey): signing keys, not software"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(src).Match(context.Background(), inventory.Inventory{Distro: rhel, Packages: tc.pkgs})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, f := range r.Findings {
				ids = append(ids, f.ID)
			}
			if !slices.Equal(ids, tc.findings) {
				t.Errorf("findings %v, want %v", ids, tc.findings)
			}
			if tc.warning == "" && len(r.Warnings) > 0 || tc.warning != "" && !slices.Contains(r.Warnings, tc.warning) {
				t.Errorf("warnings %q, want %q", r.Warnings, tc.warning)
			}
		})
	}
}

// coveringSource is a memSource that says which ecosystems it holds, as
// the real DB does.
type coveringSource struct{ *memSource }

func (s coveringSource) HasEcosystem(eco string) bool {
	for k := range s.byKey {
		if strings.HasPrefix(k, eco+"\x00") {
			return true
		}
	}
	return false
}

// TestDistroWithoutRecordsIsReported: packages of a distro release the
// database holds no records for are not matched, and the report says so
// rather than letting them pass as clean; a release with records is
// matched as usual.
func TestDistroWithoutRecordsIsReported(t *testing.T) {
	rec := &osv.Vulnerability{ID: "DSA-1", Affected: []osv.Affected{{
		Package: osv.Package{Ecosystem: "Debian:11", Name: "bash"},
		Ranges:  []osv.Range{{Type: osv.RangeEcosystem, Events: []osv.Event{{Introduced: "0"}, {Fixed: "5.2.15-3"}}}},
	}}}
	src := coveringSource{newMemSource(rec)}
	pkgs := []inventory.Package{debPkg("bash", "5.2.15-2+b2", "bash", "5.2.15-2"), debPkg("coreutils", "9.1-1", "", ""), pkg(inventory.NPM, "left-pad", "1.0.0")}
	tests := []struct {
		release  string
		findings int
		warning  string
	}{
		{"11", 1, ""},
		{"12", 0, "2 deb packages not matched (bash, coreutils): the database holds no Debian:12 records"},
	}
	for _, tc := range tests {
		d := &inventory.Distro{ID: "debian", VersionID: tc.release}
		r, err := New(src).Match(context.Background(), inventory.Inventory{Distro: d, Packages: pkgs})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Findings) != tc.findings {
			t.Errorf("Debian %s: %d findings, want %d", tc.release, len(r.Findings), tc.findings)
		}
		if tc.warning == "" && len(r.Warnings) > 0 || tc.warning != "" && !slices.ContainsFunc(r.Warnings, func(w string) bool { return w == tc.warning }) {
			t.Errorf("Debian %s: warnings %q, want %q", tc.release, r.Warnings, tc.warning)
		}
		if got, want := New(src).DistroCovered(d, inventory.Deb), tc.warning == ""; got != want {
			t.Errorf("Debian %s: DistroCovered = %v, want %v", tc.release, got, want)
		}
	}
	// A source that cannot tell is taken to cover every release.
	if !New(newMemSource(rec)).DistroCovered(&inventory.Distro{ID: "debian", VersionID: "12"}, inventory.Deb) {
		t.Error("DistroCovered without Coverage = false")
	}
	if New(src).DistroCovered(&inventory.Distro{ID: "plan9", VersionID: "4"}, inventory.Deb) {
		t.Error("DistroCovered of an unknown distro = true")
	}
}

// TestDuplicatePackagesMerge: node_modules and a lockfile report the same
// purl; one set of findings results, with both locations.
func TestDuplicatePackagesMerge(t *testing.T) {
	src := osvSource(t)
	a := pkg(inventory.NPM, "node-fetch", "2.6.0")
	a.Locations = []string{"/app/node_modules/node-fetch/package.json"}
	b := a
	b.Locations = []string{"/app/package-lock.json"}
	r, err := New(src).Match(context.Background(), inventory.Inventory{Packages: []inventory.Package{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 1 || len(r.Findings[0].Package.Locations) != 2 {
		t.Errorf("findings %+v", r.Findings)
	}
}
