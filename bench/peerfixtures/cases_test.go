package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
)

// peerTest is a test package in the shapes the peers write their tables
// in (written here, not copied): osv-scalibr's InputConfig and
// PURLType, a lower-case path with wantPackages, Trivy's file and want
// naming a list declared in another file, testify's wantErr, expected
// lists built by code, and a FileRequired table.
const peerTest = `package x

func TestExtract(t *testing.T) {
	tests := []struct{}{
		{
			Name: "scalibr shape",
			InputConfig: extracttest.ScanInputMockConfig{Path: "testdata/one.json"},
			WantPackages: []*extractor.Package{
				{Name: "wrappy", Version: "1.0.2", PURLType: purl.TypeNPM},
				{Name: "zlib", Version: "1.2.11-3.el8", PURLType: purl.TypeRPM, Metadata: &rpmmeta.Metadata{Epoch: 2}},
			},
		},
		{Name: "error", InputConfig: extracttest.ScanInputMockConfig{Path: "testdata/bad.json"}, WantErr: extracttest.ContainsErrStr{Str: "x"}},
		{name: "lower case", path: "testdata/req.txt", wantPackages: []*extractor.Package{{Name: "PyCrypto"}}},
		{name: "no list", path: "testdata/empty.txt"},
		{name: "by code", path: "testdata/code.txt", wantPackages: makePackages()},
		{name: "trivy shape", file: "testdata/lock.json", want: trivyList, wantErr: assert.NoError},
		{name: "git", path: "testdata/git.json", wantPackages: []*extractor.Package{{Name: "g", PURLType: purl.TypeGit}}},
		{name: "option", inputFile: "testdata/pub.lock", useMinVersion: true, want: trivyList},
		{name: "not a fixture", path: "/etc/passwd", wantPackages: nil},
	}
	_ = tests
}

func TestExtractor_FileRequired(t *testing.T) {
	_ = []struct{}{{path: "testdata/one.json"}}
}

func TestOther(t *testing.T) {
	_ = []struct{}{{path: "testdata/other.json", wantPackages: nil}}
}
`

const peerCases = `package x

var trivyList = []ftypes.Package{
	{ID: "ms@2.1.3", Name: "ms", Version: "2.1.3", Dev: true},
}

var rpmList = []*PackageInfo{
	{0, "setup", "2.5.58", "9.el5", "noarch"},
	{10, "centos-release", "5", "11.el5.centos", "x86_64"},
}
`

func writePeer(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range map[string]string{"x_test.go": peerTest, "x_testcase.go": peerCases} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReadCases(t *testing.T) {
	dir := writePeer(t)
	cases, skips, err := readCases("peer", dir, dir, extractFuncs, notExtractFuncs, nil, "npm", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]pkg{}
	dev := map[string]bool{}
	for _, c := range cases {
		got[c.Fixture] = c.Want
		dev[c.Fixture] = c.WantDev
	}
	want := map[string][]pkg{
		"testdata/one.json":  {{"npm", "wrappy", "1.0.2"}, {"rpm", "zlib", "2:1.2.11-3.el8"}},
		"testdata/req.txt":   {{"npm", "PyCrypto", ""}},
		"testdata/empty.txt": nil,
		"testdata/lock.json": {{"npm", "ms", "2.1.3"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cases:\n got %v\nwant %v", got, want)
	}
	if !dev["testdata/lock.json"] || dev["testdata/one.json"] {
		t.Errorf("WantDev = %v", dev)
	}
	why := map[string]string{}
	for _, s := range skips {
		why[s.Fixture] = s.Why
	}
	wantWhy := map[string]string{
		"testdata/bad.json": "expects an error",
		"testdata/code.txt": "expected list is built by code (makePackages(…))",
		"testdata/git.json": "purl type TypeGit has no berth ecosystem",
		"testdata/pub.lock": "runs the parser with a non-default option (useMinVersion)",
	}
	if !reflect.DeepEqual(why, wantWhy) {
		t.Errorf("skips:\n got %v\nwant %v", why, wantWhy)
	}
}

// TestReadCasesPositional: go-rpmdb's unkeyed PackageInfo literals,
// epoch written into the version as rpm writes it.
func TestReadCasesPositional(t *testing.T) {
	dir := t.TempDir()
	test := "package x\nfunc TestPackageList(t *testing.T) {\n\t_ = []struct{}{{file: \"testdata/Packages\", pkgList: rpmList}}\n}\n"
	for name, text := range map[string]string{"x_test.go": test, "x_testcase.go": peerCases} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases, _, err := readCases("rpmdb", dir, dir, regexp.MustCompile(`^TestPackageList$`), notExtractFuncs, &positional{Epoch: 0, Name: 1, Version: 2, Release: 3}, "rpm", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []pkg{{"rpm", "setup", "2.5.58-9.el5"}, {"rpm", "centos-release", "10:5-11.el5.centos"}}
	if len(cases) != 1 || !reflect.DeepEqual(cases[0].Want, want) {
		t.Errorf("got %+v, want one case of %v", cases, want)
	}
}

func TestSetNormalisesNotation(t *testing.T) {
	got := set([]pkg{
		{"pypi", "Foo_Bar.baz", "1.0"},
		{"nuget", "Newtonsoft.Json", "13.0.1"},
		{"golang", "golang.org/x/net", "v0.5.6"},
		{"npm", "Foo", "v1.0.0"},
		{"golang", "go", "1.22.0"},
		{"golang", "stdlib", "go1.23.4"},
		{"golang", "app", "(devel)"},
	})
	want := map[pkg]bool{
		{"pypi", "foo-bar-baz", "1.0"}:          true,
		{"nuget", "newtonsoft.json", "13.0.1"}:  true,
		{"golang", "golang.org/x/net", "0.5.6"}: true,
		{"npm", "Foo", "v1.0.0"}:                true,
		{"golang", "stdlib", "1.22.0"}:          true,
		{"golang", "stdlib", "1.23.4"}:          true,
		{"golang", "app", ""}:                   true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestPlacePython(t *testing.T) {
	for fixture, want := range map[string]string{
		"testdata/pip-22.2.2.dist-info/METADATA":                 "usr/lib/python3/dist-packages/pip-22.2.2.dist-info/METADATA",
		"testdata/setuptools-57.4.0-py3.9.egg/EGG-INFO/PKG-INFO": "usr/lib/python3/dist-packages/setuptools-57.4.0-py3.9.egg/EGG-INFO/PKG-INFO",
		"testdata/monotonic-1.6-py3.10.egg":                      "usr/lib/python3/dist-packages/monotonic-1.6-py3.10.egg",
		"testdata/egginfo_pkginfo":                               "usr/lib/python3/dist-packages/fixture-0.egg-info/PKG-INFO",
		"testdata/distinfo_meta":                                 "usr/lib/python3/dist-packages/fixture-0.dist-info/METADATA",
		"testdata/monotonic-1.6-py2.py3-none-any.whl":            "",
	} {
		if got, _, _ := placePython(fixture); got != want {
			t.Errorf("placePython(%q) = %q, want %q", fixture, got, want)
		}
	}
}

// TestPomParent: the parent a pom.xml names by relativePath comes along,
// a directory as its pom.xml; none without the element or with an empty
// one.
func TestPomParent(t *testing.T) {
	pom := func(parent string) []byte {
		return []byte("<project><parent><groupId>g</groupId><artifactId>p</artifactId>" + parent + "</parent></project>")
	}
	tests := []struct {
		name string
		data []byte
		want map[string]string
	}{
		{"file", pom("<relativePath>./parent/pom.xml</relativePath>"), map[string]string{"parent/pom.xml": "parent/pom.xml"}},
		{"directory", pom("<relativePath>../build</relativePath>"), map[string]string{"../build/pom.xml": "../build/pom.xml"}},
		{"absent", pom(""), nil},
		{"empty", pom("<relativePath/>"), nil},
		{"no parent", []byte("<project><artifactId>a</artifactId></project>"), nil},
		{"not XML", []byte("<project"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pomParent("testdata/x.xml", tt.data); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestReadCasesHelpers: expected lists built with append and the test's
// own helpers, as osv-scalibr's gobinary test builds them.
func TestReadCasesHelpers(t *testing.T) {
	dir := t.TempDir()
	test := `package x
var (
	Deps      = []*extractor.Package{goPackage("github.com/a/b", "1.0.0")}
	Toolchain = goPackage("go", "1.22.0")
)
func TestExtract(t *testing.T) {
	_ = []struct{}{
		{path: "testdata/app-linux-amd64", wantPackages: createPackagesWithMain(append(Deps, Toolchain), "testdata/app-linux-amd64")},
		{path: "testdata/other", wantPackages: createPackages(append(Deps, goPackage("x.io/y", "(devel)")), "testdata/other")},
		{path: "testdata/unknown", wantPackages: somethingElse(Deps)},
	}
}
`
	if err := os.WriteFile(filepath.Join(dir, "x_test.go"), []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	helpers := map[string]helper{"goPackage": {kind: helperPackage, nameArg: 0, versionArg: 1}, "createPackages": {kind: helperList}, "createPackagesWithMain": {kind: helperListWithMain}}
	cases, skips, err := readCases("gobinary", dir, dir, extractFuncs, notExtractFuncs, nil, "golang", helpers)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]pkg{}
	for _, c := range cases {
		got[c.Fixture] = c.Want
	}
	want := map[string][]pkg{
		"testdata/app-linux-amd64": {{"golang", "github.com/a/b", "1.0.0"}, {"golang", "go", "1.22.0"}, {"golang", "app", "(devel)"}},
		"testdata/other":           {{"golang", "github.com/a/b", "1.0.0"}, {"golang", "x.io/y", "(devel)"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cases:\n got %v\nwant %v", got, want)
	}
	if len(skips) != 1 || skips[0].Why != "expected list is built by code (somethingElse(…))" {
		t.Errorf("skips = %+v", skips)
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		name             string
		src              source
		c                testCase
		berth            []found
		wantTally        map[string]tally
		misses, phantoms int
	}{
		{
			name: "one miss, one phantom, notation normalised",
			src:  source{eco: "pypi"},
			c:    testCase{Want: []pkg{{"pypi", "Foo_Bar", "1.0"}, {"pypi", "gone", "2.0"}}},
			berth: []found{{pkg: pkg{"pypi", "foo-bar", "1.0"}}, {pkg: pkg{"pypi", "extra", "3.0"}},
				{pkg: pkg{"npm", "other-ecosystem", "1.0"}}},
			wantTally: map[string]tally{"pypi": {cases: 1, want: 2, found: 2, tp: 1}},
			misses:    1, phantoms: 1,
		},
		{
			name:      "dev packages left out where the peer drops them",
			src:       source{eco: "npm", noDev: "x"},
			c:         testCase{Want: []pkg{{"npm", "a", "1.0"}}},
			berth:     []found{{pkg: pkg{"npm", "a", "1.0"}}, {pkg: pkg{"npm", "devonly", "1.0"}, dev: true}},
			wantTally: map[string]tally{"npm": {cases: 1, want: 1, found: 1, tp: 1}},
		},
		{
			name:      "dev packages left out in a case that runs the parser that drops them",
			src:       source{eco: "npm", noDev: "x", noDevRunners: map[string]bool{"parsePackageLock": true}},
			c:         testCase{Want: []pkg{{"npm", "a", "1.0"}}, Runner: "parsePackageLock"},
			berth:     []found{{pkg: pkg{"npm", "a", "1.0"}}, {pkg: pkg{"npm", "devonly", "1.0"}, dev: true}},
			wantTally: map[string]tally{"npm": {cases: 1, want: 1, found: 1, tp: 1}},
		},
		{
			name:      "dev packages counted in a case that runs another parser",
			src:       source{eco: "npm", noDev: "x", noDevRunners: map[string]bool{"parsePackageLock": true}},
			c:         testCase{Want: []pkg{{"npm", "a", "1.0"}}, Runner: "parsePnpmLock"},
			berth:     []found{{pkg: pkg{"npm", "a", "1.0"}}, {pkg: pkg{"npm", "devonly", "1.0"}, dev: true}},
			wantTally: map[string]tally{"npm": {cases: 1, want: 1, found: 2, tp: 1}},
			phantoms:  1,
		},
		{
			name:      "dev packages counted where the test expects some",
			src:       source{eco: "npm", noDev: "x"},
			c:         testCase{Want: []pkg{{"npm", "a", "1.0"}}, WantDev: true},
			berth:     []found{{pkg: pkg{"npm", "a", "1.0"}}, {pkg: pkg{"npm", "devonly", "1.0"}, dev: true}},
			wantTally: map[string]tally{"npm": {cases: 1, want: 1, found: 2, tp: 1}},
			phantoms:  1,
		},
		{
			name:      "a sample compares only the names it lists",
			src:       source{eco: "rpm", sample: "x"},
			c:         testCase{Want: []pkg{{"rpm", "bash", "5.1-1"}}},
			berth:     []found{{pkg: pkg{"rpm", "bash", "5.1-2"}}, {pkg: pkg{"rpm", "zlib", "1.2-1"}}},
			wantTally: map[string]tally{"rpm": {cases: 1, want: 1, found: 1, tp: 0}},
			misses:    1, phantoms: 1,
		},
		{
			name:      "a case of another ecosystem counts once",
			src:       source{eco: "conda"},
			c:         testCase{Want: []pkg{{"pypi", "jupyterlab", "3.1.12"}}},
			berth:     []found{{pkg: pkg{"conda", "jupyterlab", "3.1.12"}}},
			wantTally: map[string]tally{"conda": {cases: 1, found: 1}, "pypi": {want: 1}},
			misses:    1, phantoms: 1,
		},
		{
			name:      "a peer's other name for the ecosystem, allowed",
			src:       source{eco: "conda", ecoAs: struct{ from, why string }{"pypi", "x"}},
			c:         testCase{Want: []pkg{{"pypi", "jupyterlab", "3.1.12"}}},
			berth:     []found{{pkg: pkg{"conda", "jupyterlab", "3.1.12"}}},
			wantTally: map[string]tally{"conda": {cases: 1, want: 1, found: 1, tp: 1}},
		},
		{
			name:      "nothing expected, nothing found",
			src:       source{eco: "gem"},
			wantTally: map[string]tally{"gem": {cases: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := compare(tt.src, tt.c, tt.berth)
			got := map[string]tally{}
			for eco, x := range out.per {
				got[eco] = *x
			}
			if !reflect.DeepEqual(got, tt.wantTally) {
				t.Errorf("tallies %+v, want %+v", got, tt.wantTally)
			}
			if len(out.misses) != tt.misses || len(out.phantoms) != tt.phantoms {
				t.Errorf("misses %q, phantoms %q; want %d and %d", out.misses, out.phantoms, tt.misses, tt.phantoms)
			}
		})
	}
}
