package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// osvLockfile is the part of osv-scanner v1's lockfile package the reader
// resolves ecosystems through (written here, not copied): typed
// constants, one constant naming another, and a release constant.
const osvLockfile = `package lockfile

type Ecosystem string

const NpmEcosystem Ecosystem = "npm"
const PipEcosystem Ecosystem = "PyPI"
const PdmEcosystem = PipEcosystem
const DebianEcosystem Ecosystem = "Debian"
const AlpineEcosystem Ecosystem = "Alpine"
const AlpineFallbackVersion = "v3.20"
const CRANEcosystem Ecosystem = "CRAN"
const GoEcosystem Ecosystem = "Go"
`

// osvTest holds the test forms osv-scanner v1 writes its lockfile tests
// in, and the ones the reader must leave out with a reason.
const osvTest = `package lockfile_test

const alpineEcosystem = lockfile.AlpineEcosystem + ":" + lockfile.AlpineFallbackVersion

func TestShouldExtract(t *testing.T) {
	e := lockfile.NpmLockExtractor{}
	if !e.ShouldExtract("package-lock.json") {
		t.Error("no")
	}
}

func TestParseNpmLock_OnePackageDev(t *testing.T) {
	packages, err := lockfile.ParseNpmLock("fixtures/npm/one-package-dev.v1.json")
	if err != nil {
		t.Errorf("Got unexpected error: %v", err)
	}
	expectPackages(t, packages, []lockfile.PackageDetails{
		{Name: "wrappy", Version: "1.0.2", Ecosystem: lockfile.NpmEcosystem, CompareAs: lockfile.NpmEcosystem, DepGroups: []string{"dev"}},
	})
}

func TestParsePdmLock_TwoPackages(t *testing.T) {
	packages, _ := lockfile.ParsePdmLock("fixtures/pdm/two-packages.toml")
	expectPackages(t, packages, []lockfile.PackageDetails{
		{Name: "toml", Version: "0.10.2", Ecosystem: lockfile.PdmEcosystem},
		{Name: "six", Version: "1.16.0", Ecosystem: lockfile.PdmEcosystem},
	})
}

func TestParseDpkgStatus_Multiple(t *testing.T) {
	packages, _ := lockfile.ParseDpkgStatus("fixtures/dpkg/multiple_status")
	expectPackages(t, packages, []lockfile.PackageDetails{
		{Name: "bash", Version: "5.1-2", Ecosystem: lockfile.DebianEcosystem + ":12"},
	})
}

func TestParseApkInstalled_Single(t *testing.T) {
	packages, _ := lockfile.ParseApkInstalled("fixtures/apk/single_installed")
	expectPackages(t, packages, []lockfile.PackageDetails{
		{Name: "apk-tools", Version: "2.12.10-r1", Ecosystem: alpineEcosystem, Commit: "0188f5"},
	})
}

func TestParseNpmLock_NestedDependenciesDup(t *testing.T) {
	packages, _ := lockfile.ParseNpmLock("fixtures/npm/nested-dependencies-dup.v1.json")
	if len(packages) != 39 {
		t.Errorf("Expected to get 39 packages, but got %d", len(packages))
	}
	expectPackage(t, packages, lockfile.PackageDetails{Name: "supports-color", Version: "6.1.0", Ecosystem: lockfile.NpmEcosystem})
	expectPackage(t, packages, lockfile.PackageDetails{Name: "supports-color", Version: "2.0.0", Ecosystem: lockfile.NpmEcosystem})
}

func TestParseNpmLock_NoPackages(t *testing.T) {
	packages, err := lockfile.ParseNpmLock("fixtures/npm/empty.v1.json")
	if err != nil {
		t.Errorf("Got unexpected error: %v", err)
	}
	expectPackages(t, packages, []lockfile.PackageDetails{})
}

func TestParseNpmLock_FileDoesNotExist(t *testing.T) {
	packages, err := lockfile.ParseNpmLock("fixtures/npm/does-not-exist")
	expectErrIs(t, err, fs.ErrNotExist)
	expectPackages(t, packages, []lockfile.PackageDetails{})
}

func TestExtractGoBinary_OnePackage(t *testing.T) {
	file, err := lockfile.OpenLocalDepFile("fixtures/go/binaries/has-one-dep")
	if err != nil {
		t.Fatalf("could not open file %v", err)
	}
	packages, err := lockfile.GoBinaryExtractor{}.Extract(file)
	if err != nil {
		t.Errorf("Got unexpected error: %v", err)
	}
	expectPackages(t, packages, []lockfile.PackageDetails{
		{Name: "stdlib", Version: "1.21.10", Ecosystem: lockfile.GoEcosystem},
	})
}

func TestExtractGoBinary_NotAGoBinary(t *testing.T) {
	file, _ := lockfile.OpenLocalDepFile("fixtures/go/one-package.mod")
	packages, err := lockfile.GoBinaryExtractor{}.Extract(file)
	if err == nil {
		t.Errorf("did not get expected error when extracting")
	}
	if len(packages) != 0 {
		t.Errorf("packages not empty")
	}
}

func TestNodeModulesExtractor_OnePackage(t *testing.T) {
	packages, _ := testParsingNodeModules(t, "fixtures/npm/one-package.v1.json")
	expectPackages(t, packages, []lockfile.PackageDetails{{Name: "wrappy", Version: "1.0.2", Ecosystem: lockfile.NpmEcosystem}})
}

func TestParseRenvLock_OnePackage(t *testing.T) {
	packages, _ := lockfile.ParseRenvLock("fixtures/renv/one-package.lock")
	expectPackages(t, packages, []lockfile.PackageDetails{{Name: "morning", Version: "0.1.0", Ecosystem: lockfile.CRANEcosystem}})
}

func TestParseYarnLock_Cran(t *testing.T) {
	packages, _ := lockfile.ParseYarnLock("fixtures/yarn/cran.lock")
	expectPackages(t, packages, []lockfile.PackageDetails{{Name: "morning", Version: "0.1.0", Ecosystem: lockfile.CRANEcosystem}})
}

func TestParseCargoLock_ByCode(t *testing.T) {
	packages, _ := lockfile.ParseCargoLock("fixtures/cargo/two-packages.lock")
	if len(packages) != 2 {
		t.Errorf("want 2")
	}
}

func TestParseTwice(t *testing.T) {
	a, _ := lockfile.ParseMixLock("fixtures/mix/one.lock")
	b, _ := lockfile.ParseMixLock("fixtures/mix/two.lock")
	expectPackages(t, append(a, b...), []lockfile.PackageDetails{})
}

func TestFromCSVFile(t *testing.T) {
	tests := []struct{ pathToCSV string }{{pathToCSV: "fixtures/csv/one-row.csv"}}
	for _, tt := range tests {
		_, _ = lockfile.FromCSVFile(tt.pathToCSV, "-")
	}
}

func TestParseGemfileLock_VersionByCode(t *testing.T) {
	packages, _ := lockfile.ParseGemfileLock("fixtures/bundler/one-gem.lock")
	expectPackages(t, packages, []lockfile.PackageDetails{{Name: "ast", Version: version(), Ecosystem: lockfile.BundlerEcosystem}})
}
`

func TestReadOSVScanner(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{"ecosystems.go": osvLockfile, "x_test.go": osvTest} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases, skips, err := readOSVScanner("osvscanner:x", dir, dir)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		Want             []pkg
		Runner, Eco      string
		WantDev, Partial bool
	}
	gotCases := map[string]got{}
	for _, c := range cases {
		gotCases[c.Fixture] = got{c.Want, c.Runner, c.Eco, c.WantDev, c.Partial}
	}
	wantCases := map[string]got{
		"fixtures/npm/one-package-dev.v1.json": {[]pkg{{"npm", "wrappy", "1.0.2"}}, "ParseNpmLock", "npm", true, false},
		"fixtures/pdm/two-packages.toml":       {[]pkg{{"pypi", "toml", "0.10.2"}, {"pypi", "six", "1.16.0"}}, "ParsePdmLock", "pypi", false, false},
		"fixtures/dpkg/multiple_status":        {[]pkg{{"deb", "bash", "5.1-2"}}, "ParseDpkgStatus", "deb", false, false},
		"fixtures/apk/single_installed":        {[]pkg{{"apk", "apk-tools", "2.12.10-r1"}}, "ParseApkInstalled", "apk", false, false},
		"fixtures/npm/nested-dependencies-dup.v1.json": {[]pkg{{"npm", "supports-color", "6.1.0"}, {"npm", "supports-color", "2.0.0"}},
			"ParseNpmLock", "npm", false, true},
		"fixtures/npm/empty.v1.json":       {nil, "ParseNpmLock", "npm", false, false},
		"fixtures/go/binaries/has-one-dep": {[]pkg{{"golang", "stdlib", "1.21.10"}}, "GoBinaryExtractor", "golang", false, false},
		"fixtures/npm/one-package.v1.json": {nil, "NodeModulesExtractor", "", false, false},
		"fixtures/renv/one-package.lock":   {nil, "ParseRenvLock", "", false, false},
	}
	if !reflect.DeepEqual(gotCases, wantCases) {
		t.Errorf("cases:\n got %+v\nwant %+v", gotCases, wantCases)
	}
	why := map[string]string{}
	for _, s := range skips {
		why[s.Fixture] = s.Why
	}
	wantWhy := map[string]string{
		"fixtures/npm/does-not-exist":      "expects an error",
		"fixtures/go/one-package.mod":      "expects an error",
		"fixtures/yarn/cran.lock":          "expects packages of ecosystem CRAN, which berth has no analyzer for",
		"fixtures/cargo/two-packages.lock": "checks the packages by code, not with expectPackages: not read",
		"fixtures/mix/one.lock":            "calls the parser more than once: not read",
		"fixtures/csv/one-row.csv":         "names a fixture but hands it to no parser the harness knows: not read",
		"fixtures/bundler/one-gem.lock":    "an expected package's Version is not a string literal",
	}
	if !reflect.DeepEqual(why, wantWhy) {
		t.Errorf("skips:\n got %v\nwant %v", why, wantWhy)
	}
}

func TestPlaceOSVScanner(t *testing.T) {
	tests := []struct {
		c         testCase
		dest, why string
		exec      bool
	}{
		{c: testCase{Fixture: "fixtures/npm/one-package.v2.json", Runner: "ParseNpmLock"}, dest: "app/package-lock.json"},
		{c: testCase{Fixture: "fixtures/pip/file-format-example.txt", Runner: "ParseRequirementsTxt"}, dest: "app/requirements.txt"},
		{c: testCase{Fixture: "fixtures/go/binaries/has-one-dep", Runner: "GoBinaryExtractor"}, dest: "usr/local/bin/has-one-dep", exec: true},
		{c: testCase{Fixture: "fixtures/npm/one-package.v1.json", Runner: "NodeModulesExtractor"},
			why: osvRunners["NodeModulesExtractor"].why},
		{c: testCase{Fixture: "fixtures/renv/one-package.lock", Runner: "ParseRenvLock"}, why: "berth has no analyzer for R's renv.lock"},
		{c: testCase{Fixture: "fixtures/x", Runner: "ParseOther"}, why: "runs ParseOther, which berth has no placement for"},
	}
	for _, tt := range tests {
		dest, exec, why := placeOSVScanner(tt.c)
		if dest != tt.dest || exec != tt.exec || why != tt.why {
			t.Errorf("placeOSVScanner(%+v) = %q, %v, %q; want %q, %v, %q", tt.c, dest, exec, why, tt.dest, tt.exec, tt.why)
		}
	}
}

// TestOSVPipIncludes: -r chains are followed through the includes'
// own includes, cycles end, and paths that leave the folder are not
// followed (place copies none).
func TestOSVPipIncludes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pip")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"a.txt":   "-r ./b.txt\nflask==1.0\n",
		"b.txt":   "-r ./c.txt\n-r ./a.txt\n",
		"c.txt":   "-r ./../pip/a.txt\n-c sub/constraints.txt\n",
		"lock.js": "-r ./b.txt\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := source{companions: osvPipIncludes, deepCompanions: true}
	got := companionsOf(src, filepath.Join(dir, "a.txt"), "fixtures/pip/a.txt")
	want := map[string]string{"b.txt": "b.txt", "c.txt": "c.txt", "a.txt": "a.txt", "sub/constraints.txt": "sub/constraints.txt"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("deep: got %v, want %v", got, want)
	}
	src.deepCompanions = false
	if got := companionsOf(src, filepath.Join(dir, "a.txt"), "fixtures/pip/a.txt"); !reflect.DeepEqual(got, map[string]string{"b.txt": "b.txt"}) {
		t.Errorf("one level: got %v", got)
	}
	if got := companionsOf(src, filepath.Join(dir, "lock.js"), "fixtures/pip/lock.js"); len(got) != 0 {
		t.Errorf("a lockfile has no includes: got %v", got)
	}
}
