package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// syftTest is a cataloger test package in the shapes syft writes them in
// (written here, not copied): pkgtest.TestFileParser with a local fixture
// and expected list, CatalogTester chains, tables ranged over, and the
// cases the reader must leave out with a reason.
const syftTest = `package x

var globalPkgs = []pkg.Package{{Name: "ms", Version: "2.1.3", Type: pkg.NpmPkg}}

func TestFileParserLocals(t *testing.T) {
	fixture := "test-fixtures/pkg-lock/package-lock-2.json"
	var rels []artifact.Relationship
	expectedPkgs := []pkg.Package{
		{Name: "wrappy", Version: "1.0.2", PURL: "pkg:npm/wrappy@1.0.2", Type: pkg.NpmPkg},
		{Name: "commons-text", Version: "1.10.0", PURL: "pkg:maven/org.apache.commons/commons-text@1.10.0", Type: pkg.JavaPkg},
		{Name: "requests", Version: "2.22.0", PURL: "pkg:pypi/requests@2.22.0"},
	}
	pkgtest.TestFileParser(t, fixture, adapter.parsePackageLock, expectedPkgs, rels)
}

func TestChains(t *testing.T) {
	pkgtest.NewCatalogTester().
		FromFile(t, filepath.Join("test-fixtures", "yarn", "yarn.lock")).
		Expects(globalPkgs, nil).
		IgnoreLocationLayer().
		TestParser(t, parseYarnLock)
	pkgtest.NewCatalogTester().
		FromDirectory(t, "test-fixtures/tree").
		ExpectsPackageStrings([]string{"cowsay @ 1.4.0 (/node_modules/cowsay/package.json)"}).
		TestCataloger(t, NewLockCataloger())
	pkgtest.NewCatalogTester().FromFile(t, "test-fixtures/corrupt/package-lock.json").WithError().TestParser(t, parse)
	pkgtest.NewCatalogTester().FromDirectory(t, "test-fixtures/glob-paths").ExpectsResolverContentQueries([]string{"a"}).TestCataloger(t, c)
	pkgtest.NewCatalogTester().FromDirectory(t, "test-fixtures/rels").ExpectsRelationshipStrings(nil).TestCataloger(t, c)
	pkgtest.NewCatalogTester().FromDirectory(t, "test-fixtures/custom").ExpectsAssertion(check).TestCataloger(t, c)
	pkgtest.NewCatalogTester().FromString("x.lock", "data").Expects(nil, nil).TestParser(t, parse)
	pkgtest.NewCatalogTester().FromFile(t, "test-fixtures/nix").Expects([]pkg.Package{{Name: "glibc", Type: pkg.NixPkg}}, nil).TestParser(t, parse)
}

func TestTable(t *testing.T) {
	tests := []struct {
		name     string
		fixture  string
		cfg      CatalogerConfig
		expected []pkg.Package
		wantErr  require.ErrorAssertionFunc
	}{
		{name: "plain", fixture: "test-fixtures/one.mod", expected: []pkg.Package{{Name: "github.com/a/b", Version: "v1.0.0", Type: pkg.GoModulePkg}}},
		{name: "default config", fixture: "test-fixtures/two.mod", cfg: CatalogerConfig{Guess: false}},
		{name: "option", fixture: "test-fixtures/three.mod", cfg: CatalogerConfig{Guess: true}},
		{name: "error", fixture: "test-fixtures/bad.mod", wantErr: require.Error},
		{name: "no error", fixture: "test-fixtures/good.mod", wantErr: require.NoError, expected: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgtest.NewCatalogTester().
				FromFile(t, tt.fixture).
				Expects(tt.expected, nil).
				WithErrorAssertion(tt.wantErr).
				TestParser(t, parseGoModFile)
		})
	}
}

func TestRangeStrings(t *testing.T) {
	fixtures := []string{"test-fixtures/a/installed.json", "test-fixtures/b/installed.json"}
	expected := []pkg.Package{{Name: "asm89/stack-cors", Version: "1.0.0", Type: pkg.PhpComposerPkg}}
	for _, fixture := range fixtures {
		pkgtest.TestFileParser(t, fixture, parseInstalledJSON, expected, nil)
	}
}

func TestBuiltByCode(t *testing.T) {
	expected := make([]pkg.Package, 1)
	expected = append(expected, pkg.Package{Name: "x"})
	pkgtest.TestFileParser(t, "test-fixtures/twice.json", parse, expected, nil)
	pkgtest.TestFileParser(t, "test-fixtures/call.json", parse, makePackages(), nil)
	pkgtest.TestFileParser(t, "test-fixtures/noname.json", parse, []pkg.Package{{Version: "1"}}, nil)
}

func TestGrown(t *testing.T) {
	var grown []pkg.Package
	grown = append(grown, pkg.Package{Name: "x"})
	pkgtest.TestFileParser(t, "test-fixtures/grown.json", parse, grown, nil)
	built, err := makeExpected()
	pkgtest.TestFileParser(t, constFixture, parse, built, nil)
}

const constFixture = "test-fixtures/const.json"

func TestParsesItself(t *testing.T) {
	f, _ := os.Open("testdata/status.d/single")
	want := []pkg.DpkgDBEntry{{Package: "apt", Version: "1.8.2"}}
	got, _ := parseDpkgStatus(f)
	assert.Equal(t, want, got)
}

func TestMetadataOnly(t *testing.T) {
	f, _ := os.Open("test-fixtures/copyright/libc6")
	assert.Equal(t, []string{"GPL-2"}, parseLicenses(f))
}
`

func TestReadSyft(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x_test.go"), []byte(syftTest), 0o644); err != nil {
		t.Fatal(err)
	}
	cases, skips, err := readSyft("syft:x", dir, dir, "npm")
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		Want   []pkg
		Runner string
		Tree   bool
	}
	gotCases := map[string]got{}
	for _, c := range cases {
		gotCases[c.Fixture] = got{c.Want, c.Runner, c.Tree}
	}
	wantCases := map[string]got{
		"test-fixtures/pkg-lock/package-lock-2.json": {[]pkg{{"npm", "wrappy", "1.0.2"},
			{"maven", "org.apache.commons:commons-text", "1.10.0"}, {"pypi", "requests", "2.22.0"}}, "parsePackageLock", false},
		"test-fixtures/yarn/yarn.lock":   {[]pkg{{"npm", "ms", "2.1.3"}}, "parseYarnLock", false},
		"test-fixtures/tree":             {[]pkg{{"npm", "cowsay", "1.4.0"}}, "NewLockCataloger()", true},
		"test-fixtures/one.mod":          {[]pkg{{"golang", "github.com/a/b", "v1.0.0"}}, "parseGoModFile", false},
		"test-fixtures/two.mod":          {nil, "parseGoModFile", false},
		"test-fixtures/good.mod":         {nil, "parseGoModFile", false},
		"test-fixtures/a/installed.json": {[]pkg{{"composer", "asm89/stack-cors", "1.0.0"}}, "parseInstalledJSON", false},
		"test-fixtures/b/installed.json": {[]pkg{{"composer", "asm89/stack-cors", "1.0.0"}}, "parseInstalledJSON", false},
	}
	if !reflect.DeepEqual(gotCases, wantCases) {
		t.Errorf("cases:\n got %+v\nwant %+v", gotCases, wantCases)
	}
	why := map[string]string{}
	for _, s := range skips {
		why[s.Fixture] = s.Why
	}
	wantWhy := map[string]string{
		"test-fixtures/corrupt/package-lock.json": "expects an error",
		"test-fixtures/glob-paths":                "checks which files are searched, not packages",
		"test-fixtures/rels":                      "checks relationships only, not the package list",
		"test-fixtures/custom":                    "expected list built by code (ExpectsAssertion)",
		"-":                                       "fixture is a string in the test, not a file",
		"test-fixtures/nix":                       "package type pkg.NixPkg has no berth ecosystem",
		"test-fixtures/three.mod":                 "runs the parser with a non-default option (cfg)",
		"test-fixtures/bad.mod":                   "expects an error",
		"test-fixtures/twice.json":                "expected list built by code (expected is assigned more than once)",
		"test-fixtures/call.json":                 "expected list built by code (makePackages())",
		"test-fixtures/noname.json":               "expects a package without a name",
		"testdata/status.d/single":                "calls the parser itself, not through pkgtest: not read",
		"test-fixtures/grown.json":                "expected list built by code (grown is assigned more than once)",
		"test-fixtures/const.json":                "expected list built by code (makeExpected())",
	}
	if !reflect.DeepEqual(why, wantWhy) {
		t.Errorf("skips:\n got %v\nwant %v", why, wantWhy)
	}
}

func TestPlaceSyft(t *testing.T) {
	place := placeSyft(map[string]string{
		"parsePackageLock": "app/package-lock.json", "parseRpmDB": "rpmdb", "parseGemSpecEntries": "gemspec",
		"NewLockCataloger()": "/", "NewInstalledPackageCataloger()": "/+", "parseSetup": "-setup.py",
	})
	tests := []struct {
		c         testCase
		dest, why string
	}{
		{c: testCase{Fixture: "test-fixtures/pkg-lock/package-lock-2.json", Runner: "parsePackageLock"}, dest: "app/package-lock.json"},
		{c: testCase{Fixture: "test-fixtures/Packages", Runner: "parseRpmDB"}, dest: "var/lib/rpm/Packages"},
		{c: testCase{Fixture: "test-fixtures/bundler.gemspec", Runner: "parseGemSpecEntries"}, dest: "usr/local/lib/ruby/gems/3.3.0/specifications/bundler.gemspec"},
		{c: testCase{Fixture: "test-fixtures/pkg-lock", Runner: "NewLockCataloger()", Tree: true}, dest: "."},
		{c: testCase{Fixture: "test-fixtures/site-packages/partial.dist-info", Runner: "NewInstalledPackageCataloger()", Tree: true}, dest: "partial.dist-info"},
		{c: testCase{Fixture: "test-fixtures/setup/setup.py", Runner: "parseSetup"}, why: "berth has no analyzer for setup.py"},
		{c: testCase{Fixture: "test-fixtures/x", Runner: "parseOther"}, why: "runs parseOther, which berth has no placement for"},
		{c: testCase{Fixture: "test-fixtures/pkg-lock", Runner: "parsePackageLock", Tree: true}, why: "runs parsePackageLock on a directory, which berth has no placement for"},
	}
	for _, tt := range tests {
		dest, _, why := place(tt.c)
		if dest != tt.dest || why != tt.why {
			t.Errorf("place(%+v) = %q, %q; want %q, %q", tt.c, dest, why, tt.dest, tt.why)
		}
	}
}

func TestMavenCoordinates(t *testing.T) {
	for purl, want := range map[string][2]string{
		"pkg:maven/org.apache.commons/commons-text@1.10.0": {"org.apache.commons", "commons-text"},
		"pkg:maven/com.example/my%2Dlib@1.0?type=jar":      {"com.example", "my-lib"},
		"pkg:maven/commons-text@1.10.0":                    {},
		"pkg:npm/%40scope/name@1.0.0":                      {},
	} {
		g, a, ok := mavenCoordinates(purl)
		if got := [2]string{g, a}; ok != (want != [2]string{}) || ok && got != want {
			t.Errorf("mavenCoordinates(%q) = %q, %q, %v; want %q", purl, g, a, ok, want)
		}
	}
}

// TestCopyFixtureTree: a directory fixture arrives whole, a file alone.
func TestCopyFixtureTree(t *testing.T) {
	src := t.TempDir()
	for name, text := range map[string]string{"package-lock.json": "{}", "node_modules/cowsay/package.json": `{"name":"cowsay"}`} {
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(t.TempDir(), "root")
	if err := copyFixture(src, dst, false); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dst, "node_modules", "cowsay", "package.json"))
	if err != nil || string(data) != `{"name":"cowsay"}` {
		t.Errorf("nested file: %q, %v", data, err)
	}
	one := filepath.Join(t.TempDir(), "app", "go.mod")
	if err := copyFixture(filepath.Join(src, "package-lock.json"), one, true); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(one); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("single file: %v, %v", st, err)
	}
}
