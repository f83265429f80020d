package scan

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report/reportjson"
	"berth.dev/berth/internal/testpeers"
	"berth.dev/berth/internal/vulndb"
	"berth.dev/berth/internal/vulndb/update"
	"berth.dev/berth/internal/vulndb/vulndbtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// vulndata, sharedImage and kitchenSink are paths in the shared fixtures;
// a missing one fails the test.
func vulndata(tb testing.TB, elem ...string) string {
	tb.Helper()
	return testpeers.Shared(tb, append([]string{"vulndata"}, elem...)...)
}

func sharedImage(tb testing.TB, name string) string {
	tb.Helper()
	return testpeers.Shared(tb, "images", name)
}

func kitchenSink(tb testing.TB) string {
	tb.Helper()
	return sharedImage(tb, "kitchen-sink.oci.tar")
}

// The fixture DB and the layer cache are built once per test binary: the
// full import and a cold scan of kitchen-sink are the slow parts.
var (
	fixtureOnce   sync.Once
	fixtureDir    string
	fixtureErr    error
	kitchenReport *match.Report
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// fixture returns the DB built from all of vulndata through the real
// update path (an OSV feed, the Debian tracker, Alpine secdb and the
// Node.js WG, served over loopback HTTP as upstream serves them), the
// layer cache directory, and the report of a cold scan of kitchen-sink.
func fixture(tb testing.TB) (dbDir, cacheDir string, r *match.Report) {
	tb.Helper()
	feed, img := vulndata(tb), kitchenSink(tb)
	fixtureOnce.Do(func() {
		if fixtureDir, fixtureErr = os.MkdirTemp("", "berth-scan-test-"); fixtureErr != nil {
			return
		}
		srv := vulndbtest.NewServer(tb, feed)
		_, fixtureErr = update.Run(context.Background(), update.Options{
			Dir: filepath.Join(fixtureDir, "db"),
			Sources: []string{
				srv.URL + "/osv",
				update.PrefixDebianTracker + srv.URL + "/debian-tracker",
				update.PrefixAlpineSecDB + srv.URL + "/alpine-secdb",
				update.PrefixNodeJSWG + srv.URL + "/nodejs-security-wg/vuln.zip",
			},
			Logger: quiet,
		})
		if fixtureErr != nil {
			return
		}
		var e *Engine
		var closeDB func()
		if e, closeDB, fixtureErr = newEngine(filepath.Join(fixtureDir, "db"), filepath.Join(fixtureDir, "cache")); fixtureErr != nil {
			return
		}
		defer closeDB()
		kitchenReport, fixtureErr = e.Scan(context.Background(), "oci-archive:"+img, image.Options{})
	})
	if fixtureErr != nil {
		tb.Fatal(fixtureErr)
	}
	return filepath.Join(fixtureDir, "db"), filepath.Join(fixtureDir, "cache"), kitchenReport
}

// newEngine is the engine as `berth scan` builds it.
func newEngine(dbDir, cacheDir string) (*Engine, func(), error) {
	db, err := vulndb.Open(dbDir)
	if err != nil {
		return nil, nil, err
	}
	cache, err := inventory.OpenCache(cacheDir)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	e := &Engine{
		Inventory: &inventory.Scanner{Analyzers: analyzers.All(), Cache: cache},
		Matcher:   match.New(db),
		Logger:    quiet,
	}
	return e, func() { db.Close() }, nil
}

func findingsOf(r *match.Report, pkg string) map[string]match.Finding {
	out := map[string]match.Finding{}
	for _, f := range r.Findings {
		if f.Package.Name == pkg {
			out[f.ID] = f
		}
	}
	return out
}

const (
	layerApp   = "sha256:48eb869ab9aba5e43d554a7cfb75916ff1d16b9dbcc3b28cf77f965cb57e6944" // COPY app/ /app/
	layerGoBin = "sha256:8fc691692aa97b34a7b4f1271c21056206763134d48bc36fe4f458002bf48a8f" // COPY ks-app /usr/local/bin/ks-app
)

// TestScanKitchenSink checks findings whose ids were worked out by reading
// the records in vulndata (osv/npm/all.zip, osv/Go/all.zip), each with the
// layer that brought its package.
func TestScanKitchenSink(t *testing.T) {
	_, _, r := fixture(t)
	tests := []struct {
		pkg, id, alias, fixed, layer string
		severity                     match.Severity
	}{
		// GHSA-p6mc-m468-83gw: lodash [3.7.0, 4.17.19), CVSS 3.1 7.4.
		{"lodash", "CVE-2020-8203", "GHSA-p6mc-m468-83gw", "4.17.19", layerApp, match.SeverityHigh},
		// GHSA-29mw-wpgm-hmr9: lodash [0, 4.17.21).
		{"lodash", "CVE-2020-28500", "GHSA-29mw-wpgm-hmr9", "4.17.21", layerApp, match.SeverityMedium},
		// GHSA-xvch-5gv4-984h: minimist [1.0.0, 1.2.6), CVSS 3.1 9.8.
		{"minimist", "CVE-2021-44906", "GHSA-xvch-5gv4-984h", "1.2.6", layerApp, match.SeverityCritical},
		// GHSA-vh95-rmgr-6w4m: minimist [1.0.0, 1.2.3).
		{"minimist", "CVE-2020-7598", "GHSA-vh95-rmgr-6w4m", "1.2.3", layerApp, match.SeverityMedium},
		// GHSA-w7rc-rwvf-8q5r: node-fetch [2.0.0, 2.6.1), CVSS 3.1 2.6.
		{"node-fetch", "CVE-2020-15168", "GHSA-w7rc-rwvf-8q5r", "2.6.1", layerApp, match.SeverityLow},
		// GO-2022-1059 = GHSA-69ch-w2m2-3vjp: x/text [0, 0.3.8), CVSS 3.1 7.5.
		{"golang.org/x/text", "CVE-2022-32149", "GHSA-69ch-w2m2-3vjp", "0.3.8", layerGoBin, match.SeverityHigh},
		// GO-2023-2102 = GHSA-4374-p667-p6c8: x/net before 0.17.0; the
		// February 2021 pseudo-version is below it.
		{"golang.org/x/net", "CVE-2023-39325", "GO-2023-2102", "0.17.0", layerGoBin, match.SeverityHigh},
	}
	for _, tc := range tests {
		t.Run(tc.pkg+" "+tc.id, func(t *testing.T) {
			f, ok := findingsOf(r, tc.pkg)[tc.id]
			if !ok {
				t.Fatalf("no finding %s for %s; have %v", tc.id, tc.pkg, slices.Collect(maps.Keys(findingsOf(r, tc.pkg))))
			}
			if !slices.Contains(f.Aliases, tc.alias) || f.Severity != tc.severity ||
				len(f.FixedVersions) == 0 || f.FixedVersions[0] != tc.fixed || f.Package.Layer != tc.layer {
				t.Errorf("got aliases %v severity %s fixed %v layer %s", f.Aliases, f.Severity, f.FixedVersions, f.Package.Layer)
			}
		})
	}
	// The lockfile entry and the installed copy of lodash are one package.
	if f := findingsOf(r, "lodash")["CVE-2020-8203"]; !slices.Equal(f.Package.Locations, []string{"/app/node_modules/lodash/package.json", "/app/package-lock.json"}) {
		t.Errorf("lodash locations %v", f.Package.Locations)
	}
	// go1.26.8 is past every stdlib fix in the data; the main module has
	// no version to match.
	for _, clean := range []string{"stdlib", "example.com/kitchensink/ks-app"} {
		if fs := findingsOf(r, clean); len(fs) > 0 {
			t.Errorf("%s: unexpected findings %v", clean, slices.Collect(maps.Keys(fs)))
		}
	}
}

// TestOSManagedPackagesInKitchenSink: requests and urllib3 in
// /usr/lib/python3/dist-packages came with python3-requests and
// python3-urllib3 (layer 2's apt-get), so they stay in the inventory but
// are not matched against PyPI, whose records would say 2.28.1 and
// 1.26.12 are affected (CVE-2023-32681, CVE-2023-43804).
func TestOSManagedPackagesInKitchenSink(t *testing.T) {
	_, _, r := fixture(t)
	var pypi, debs int
	for _, p := range r.Inventory.Packages {
		switch p.Ecosystem {
		case inventory.PyPI:
			pypi++
		case inventory.Deb:
			debs++
		}
	}
	if pypi != 7 || debs != 123 {
		t.Errorf("inventory has %d pypi and %d deb packages, want 7 and 123", pypi, debs)
	}
	for _, f := range r.Findings {
		if f.Package.Ecosystem == inventory.PyPI || f.Package.Ecosystem == inventory.Maven {
			t.Errorf("%s %s matched against its language feed: %s", f.Package.Ecosystem, f.Package.Name, f.ID)
		}
	}
	// The tracker fixture predates bookworm: the DB has no Debian 12
	// records, so neither the deb packages nor the language packages left
	// to them were matched, and the report must not let them look clean.
	for _, want := range []string{
		"123 deb packages not matched (adduser, apt, base-files, base-passwd, bash, …): the database holds no Debian:12 records",
		"1 maven, 7 pypi packages installed by the OS package manager were not matched either: they are matched through their OS packages, not their language feeds",
	} {
		if !slices.Contains(r.Warnings, want) {
			t.Errorf("warnings %q lack %q", r.Warnings, want)
		}
	}
}

// TestPipInstalledPackageIsMatched is the other side of the rule: the same
// requests installed by pip (into /usr/local) is the user's, and PyPI's
// records apply. Ids from osv/PyPI/all.zip: PYSEC-2023-74 [2.3.0, 2.31.0)
// and GHSA-9wx4-h78v-vm56 [0, 2.32.0).
func TestPipInstalledPackageIsMatched(t *testing.T) {
	dbDir, cacheDir, _ := fixture(t)
	e, closeDB, err := newEngine(dbDir, cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB()
	inv := func(location string) *inventory.Inventory {
		return &inventory.Inventory{
			Source: "test", Distro: &inventory.Distro{ID: "debian", VersionID: "12"},
			Packages: []inventory.Package{
				{Ecosystem: inventory.Deb, Name: "python3-requests", Version: "2.28.1+dfsg-1", SourceName: "requests", Locations: []string{"/var/lib/dpkg/status"}},
				{Ecosystem: inventory.PyPI, Name: "requests", Version: "2.28.1", PURL: "pkg:pypi/requests@2.28.1", Locations: []string{location}},
			},
		}
	}
	pip, err := e.Match(context.Background(), inv("/usr/local/lib/python3.11/dist-packages/requests-2.28.1.dist-info/METADATA"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for id := range findingsOf(pip, "requests") {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if want := []string{"CVE-2023-32681", "CVE-2024-35195"}; !slices.Equal(ids, want) {
		t.Errorf("pip-installed requests: %v, want %v", ids, want)
	}
	apt, err := e.Match(context.Background(), inv("/usr/lib/python3/dist-packages/requests-2.28.1.egg-info/PKG-INFO"))
	if err != nil {
		t.Fatal(err)
	}
	if fs := findingsOf(apt, "requests"); len(fs) > 0 || len(apt.Inventory.Packages) != 2 {
		t.Errorf("apt-installed requests: %d findings, %d packages kept", len(fs), len(apt.Inventory.Packages))
	}
}

func TestOSManaged(t *testing.T) {
	debian := &inventory.Distro{ID: "debian", VersionID: "12"}
	dpkg := inventory.Package{Ecosystem: inventory.Deb, Name: "libc6", Version: "2.36-9", Locations: []string{"/var/lib/dpkg/status"}}
	tests := []struct {
		name   string
		distro *inventory.Distro
		osPkgs bool
		p      inventory.Package
		want   bool
	}{
		{"python3-* egg-info", debian, true, inventory.Package{Ecosystem: inventory.PyPI, Locations: []string{"/usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO"}}, true},
		{"python2.7 dist-packages", debian, true, inventory.Package{Ecosystem: inventory.PyPI, Locations: []string{"/usr/lib/python2.7/dist-packages/six-1.16.0.egg-info/PKG-INFO"}}, true},
		{"pip into /usr/local", debian, true, inventory.Package{Ecosystem: inventory.PyPI, Locations: []string{"/usr/local/lib/python3.11/dist-packages/six-1.16.0.dist-info/METADATA"}}, false},
		{"virtualenv site-packages", debian, true, inventory.Package{Ecosystem: inventory.PyPI, Locations: []string{"/opt/venv/lib/python3.11/site-packages/six-1.16.0.dist-info/METADATA"}}, false},
		{"Debian jar", debian, true, inventory.Package{Ecosystem: inventory.Maven, Locations: []string{"/usr/share/java/commons-lang3.jar"}}, true},
		{"application jar", debian, true, inventory.Package{Ecosystem: inventory.Maven, Locations: []string{"/app/lib/commons-lang3.jar"}}, false},
		{"also in a lockfile", debian, true, inventory.Package{Ecosystem: inventory.NPM, Locations: []string{"/usr/share/nodejs/lodash/package.json", "/app/package-lock.json"}}, false},
		{"node-* package", debian, true, inventory.Package{Ecosystem: inventory.NPM, Locations: []string{"/usr/share/nodejs/lodash/package.json"}}, true},
		{"Go binary in /usr/bin", debian, true, inventory.Package{Ecosystem: inventory.Go, Locations: []string{"/usr/bin/app"}}, false},
		{"path escaping the directory", debian, true, inventory.Package{Ecosystem: inventory.PyPI, Locations: []string{"/usr/lib/python3/dist-packages/../../../app/x/METADATA"}}, false},
		{"no location", debian, true, inventory.Package{Ecosystem: inventory.PyPI}, false},
		{"no dpkg database", debian, false, inventory.Package{Ecosystem: inventory.PyPI, Locations: []string{"/usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO"}}, false},
		{"Ubuntu", &inventory.Distro{ID: "ubuntu", VersionID: "22.04"}, true, inventory.Package{Ecosystem: inventory.PyPI, Locations: []string{"/usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO"}}, true},
		{"Alpine mixes pip and apk", &inventory.Distro{ID: "alpine", VersionID: "3.19.1"}, true, inventory.Package{Ecosystem: inventory.PyPI, Locations: []string{"/usr/lib/python3.11/site-packages/six-1.16.0.dist-info/METADATA"}}, false},
		{"unknown distro", nil, true, inventory.Package{Ecosystem: inventory.PyPI, Locations: []string{"/usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO"}}, false},
		{"the OS package itself", debian, true, dpkg, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := &inventory.Inventory{Distro: tc.distro, Packages: []inventory.Package{tc.p}}
			if tc.osPkgs {
				inv.Packages = append(inv.Packages, dpkg)
			}
			if got := OSManaged(inv, &tc.p); got != tc.want {
				t.Errorf("OSManaged = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRematchWithoutImage stores a report, moves the image away, adds one
// record to the upstream feed and updates the DB: rematching the stored
// report finds the new vulnerability. The engine used for the rematch has
// no inventory scanner at all, so it could not read an image if it tried.
func TestRematchWithoutImage(t *testing.T) {
	_, cacheDir, _ := fixture(t)
	const added = "GHSA-w7rc-rwvf-8q5r" // node-fetch [2.0.0, 2.6.1)

	// An upstream feed of the npm records without the one to add.
	feed := t.TempDir()
	writeNPMFeed(t, feed, func(name string) bool { return name != added+".json" })
	srv := vulndbtest.NewServer(t, feed)
	dbDir := t.TempDir()
	updateOpts := update.Options{Dir: dbDir, Sources: []string{srv.URL}, Logger: quiet}
	if _, err := update.Run(context.Background(), updateOpts); err != nil {
		t.Fatal(err)
	}

	img := filepath.Join(t.TempDir(), "kitchen-sink.oci.tar")
	copyFile(t, kitchenSink(t), img)
	e, closeDB, err := newEngine(dbDir, cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	first, err := e.Scan(context.Background(), "oci-archive:"+img, image.Options{})
	closeDB()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := findingsOf(first, "node-fetch")["CVE-2020-15168"]; ok {
		t.Fatal("node-fetch finding before its record was published")
	}
	if _, ok := findingsOf(first, "lodash")["CVE-2020-8203"]; !ok {
		t.Fatal("no lodash finding: the feed did not load")
	}
	var stored bytes.Buffer
	if err := reportjson.Encode(&stored, first); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(img, img+".gone"); err != nil {
		t.Fatal(err)
	}

	writeNPMFeed(t, feed, func(string) bool { return true })
	if _, err := update.Run(context.Background(), updateOpts); err != nil {
		t.Fatal(err)
	}
	db, err := vulndb.Open(dbDir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	loaded, err := ReadStored(&stored)
	if err != nil {
		t.Fatal(err)
	}
	rematcher := &Engine{Matcher: match.New(db), Logger: quiet}
	again, err := rematcher.Rematch(context.Background(), loaded)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := findingsOf(again, "node-fetch")["CVE-2020-15168"]
	if !ok {
		t.Fatalf("rematch did not find the new record; findings %d", len(again.Findings))
	}
	if f.Package.Layer != layerApp || !slices.Contains(f.Records, added) {
		t.Errorf("new finding: layer %s records %v", f.Package.Layer, f.Records)
	}
	if len(again.Findings) != len(first.Findings)+1 {
		t.Errorf("rematch has %d findings, want the %d of the first scan and one more", len(again.Findings), len(first.Findings))
	}
	if len(again.Inventory.Packages) != len(first.Inventory.Packages) {
		t.Errorf("inventory changed: %d packages, was %d", len(again.Inventory.Packages), len(first.Inventory.Packages))
	}
}

// writeNPMFeed lays out an OSV feed holding the vulndata npm records that
// keep accepts.
func writeNPMFeed(t *testing.T, dir string, keep func(name string) bool) {
	t.Helper()
	src, err := zip.OpenReader(vulndata(t, "osv", "npm", "all.zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range src.File {
		if !keep(f.Name) {
			continue
		}
		w, err := zw.Create(f.Name)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(w, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "npm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ecosystems.txt"), []byte("npm\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "npm", "all.zip"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestMatchAndRematchRejectBadInput(t *testing.T) {
	e := &Engine{Logger: quiet}
	if _, err := e.Match(context.Background(), nil); err == nil {
		t.Error("Match(nil) succeeded")
	}
	if _, err := e.Rematch(context.Background(), nil); err == nil {
		t.Error("Rematch(nil) succeeded")
	}
	_, err := e.Rematch(context.Background(), &match.Report{SchemaVersion: match.ReportSchemaVersion + 1})
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Rematch of a newer schema: %v", err)
	}
}

func TestScanBadImage(t *testing.T) {
	e := &Engine{Inventory: &inventory.Scanner{Analyzers: analyzers.All()}, Logger: quiet}
	_, err := e.Scan(context.Background(), "oci-archive:"+filepath.Join(t.TempDir(), "missing.tar"), image.Options{})
	if err == nil || !strings.Contains(err.Error(), "missing.tar") {
		t.Errorf("scan of a missing archive: %v", err)
	}
}

// TestUnjudged counts what the database cannot judge: kitchen-sink's
// Debian 12 packages (the tracker fixture predates bookworm) with the
// language packages left to them; nothing for a release the database
// covers or an image without OS packages; everything OS for a release
// berth does not know.
func TestUnjudged(t *testing.T) {
	dbDir, cacheDir, r := fixture(t)
	e, closeDB, err := newEngine(dbDir, cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB()
	apk := func(n int) []inventory.Package {
		var out []inventory.Package
		for i := range n {
			out = append(out, inventory.Package{Ecosystem: inventory.APK, Name: fmt.Sprintf("pkg%d", i), Version: "1.0-r0"})
		}
		return append(out, inventory.Package{Ecosystem: inventory.NPM, Name: "lodash", Version: "4.17.15"})
	}
	tests := []struct {
		name string
		inv  *inventory.Inventory
		want Unjudged
	}{
		{"debian 12 without its records", &r.Inventory, Unjudged{Packages: 123 + 8, Release: "debian 12"}},
		{"alpine 3.10, covered", &inventory.Inventory{Distro: &inventory.Distro{ID: "alpine", VersionID: "3.10.9"}, Packages: apk(3)}, Unjudged{Release: "alpine 3.10.9"}},
		{"alpine 3.20, not covered", &inventory.Inventory{Distro: &inventory.Distro{ID: "alpine", VersionID: "3.20.1"}, Packages: apk(3)}, Unjudged{Packages: 3, Release: "alpine 3.20.1"}},
		{"no OS", &inventory.Inventory{Packages: apk(0)}, Unjudged{}},
		{"OS packages, release unknown", &inventory.Inventory{Packages: apk(2)}, Unjudged{Packages: 2}},
	}
	for _, tc := range tests {
		if got := e.Unjudged(tc.inv); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	s := Summarize(r, r)
	s.Unjudged = e.Unjudged(&r.Inventory)
	if !strings.HasSuffix(s.String(), "; 131 packages not judged (the database holds no debian 12 records)") {
		t.Errorf("summary %q", s)
	}
}
