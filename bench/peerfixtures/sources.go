package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"path"
	"regexp"
	"strings"
)

// source is one peer test package whose extraction tests are measured.
type source struct {
	module string // which module: scalibr, trivy or rpmdb, each given by its flag
	dir    string // the test package, inside the module
	eco    string // ecosystem of expected packages that do not say
	// funcs selects the test functions read (the others test file
	// matching or metadata, not the package list).
	funcs *regexp.Regexp
	pos   *positional
	// sample says the test checks only part of what the extractor returns
	// (osv-scalibr's rpm test compares the first three packages): berth's
	// findings count only under the names the test expects, so precision
	// there says nothing about the packages the test does not list.
	sample string
	// noDev says the peer leaves development dependencies out (Trivy's
	// pnpm parser before lockfile v9, its conan and packages.config
	// parsers; berth reports them flagged dev): berth's dev packages are
	// then not counted, unless the case expects a package flagged dev.
	noDev string
	// noDevRunners, when set, limits noDev to the cases that run these
	// parsers (syft leaves development dependencies out in some parsers
	// and not in others).
	noDevRunners map[string]bool
	// ecoAs says the peer files these packages under another ecosystem
	// than the other peer and berth do: expected packages of ecosystem
	// ecoAs.from count as the source's ecosystem; ecoAs.why is printed.
	ecoAs struct{ from, why string }
	// fixtureOnly counts only the packages berth read from the fixture
	// itself: the peer's test extracts that one file, while berth scans
	// the folder its companions were placed in too.
	fixtureOnly bool
	// place says where in a root filesystem berth finds the fixture: the
	// file name and folder the analyzer claims (fixtures are named after
	// their case, e.g. one-package.v1.json). An empty dest skips the case
	// with why.
	place func(fixture string) (dest string, exec bool, why string)
	// companions, when set, lists the files the peer's test reads with
	// the fixture: from their path beside the fixture to their name
	// beside dest (pip's -r and -c includes; the go.sum of a go.mod; a
	// POM's parent at its relativePath).
	companions func(fixture string, data []byte) map[string]string
	// helpers names the test's own functions that build expected lists.
	helpers map[string]helper
	// placeCase, when set, places a case instead of place: syft's
	// placement follows the parser the test runs, and a directory
	// fixture (Tree) is copied whole under dest.
	placeCase func(c testCase) (dest string, exec bool, why string)
	// deepCompanions follows the companions' own companions
	// (osv-scanner's requirements parser follows -r includes of -r
	// includes; its fixtures have chains and cycles).
	deepCompanions bool
}

// extractFuncs are osv-scalibr's extraction tests; notExtractFuncs those
// among them that run the extractor with a configuration other than its
// default (ExcludeIndirect), repeat another table to check line numbers,
// or test file selection, cancellation and fake files rather than a
// fixture's packages.
var (
	extractFuncs    = regexp.MustCompile(`Extract`)
	notExtractFuncs = regexp.MustCompile(`FileRequired|Config|LineNumbers|ContextCancelled|FakeFiles|VirtualFilesystem|WithoutReadAt|NoLimit`)
)

// trivyFuncs are Trivy's parser tests (pkg/dependency/parser/*/*).
var trivyFuncs = regexp.MustCompile(`^TestParse$|^TestParser_Parse$`)

func trivy(dir, eco, dest string) source {
	return source{module: "trivy", dir: "pkg/dependency/parser/" + dir, eco: eco, funcs: trivyFuncs, place: at(dest)}
}

// at puts every fixture at one path.
func at(dest string) func(string) (string, bool, string) {
	return func(string) (string, bool, string) { return dest, false, "" }
}

func sources() []source {
	lang := func(dir, eco, dest string) source {
		return source{module: "scalibr", dir: "extractor/filesystem/language/" + dir, eco: eco, funcs: extractFuncs, place: at(dest)}
	}
	return append([]source{
		{module: "scalibr", dir: "extractor/filesystem/language/javascript/packagelockjson", eco: "npm", funcs: extractFuncs,
			place: at("app/package-lock.json"), companions: shrinkwrap, fixtureOnly: true},
		lang("javascript/yarnlock", "npm", "app/yarn.lock"),
		lang("javascript/pnpmlock", "npm", "app/pnpm-lock.yaml"),
		lang("javascript/bunlock", "npm", "app/bun.lock"),
		{module: "scalibr", dir: "extractor/filesystem/language/python/requirements", eco: "pypi", funcs: extractFuncs,
			place: at("app/requirements.txt"), companions: pipIncludes},
		lang("python/poetrylock", "pypi", "app/poetry.lock"),
		lang("python/pipfilelock", "pypi", "app/Pipfile.lock"),
		lang("python/pdmlock", "pypi", "app/pdm.lock"),
		{module: "scalibr", dir: "extractor/filesystem/language/python/uvlock", eco: "pypi", funcs: extractFuncs, place: at("app/uv.lock"),
			helpers: map[string]helper{"pkg": {kind: helperPackage, nameArg: 1, versionArg: 2}}},
		lang("python/pylock", "pypi", "app/pylock.toml"),
		{module: "scalibr", dir: "extractor/filesystem/language/python/wheelegg", eco: "pypi", funcs: extractFuncs, place: placePython},
		{module: "scalibr", dir: "extractor/filesystem/language/python/condameta", eco: "conda", funcs: extractFuncs,
			place: at("opt/conda/conda-meta/fixture.json"),
			ecoAs: struct{ from, why string }{"pypi", "osv-scalibr files a conda-meta record under PyPI, Trivy under conda, as berth does: compared as conda"}},
		{module: "scalibr", dir: "extractor/filesystem/language/golang/gomod", eco: "golang", funcs: extractFuncs,
			place: at("app/go.mod"), companions: goSum},
		{module: "scalibr", dir: "extractor/filesystem/language/golang/gobinary", eco: "golang", funcs: extractFuncs,
			place: func(f string) (string, bool, string) { return "usr/local/bin/" + path.Base(f), true, "" },
			helpers: map[string]helper{"goPackage": {kind: helperPackage, nameArg: 0, versionArg: 1},
				"createPackages": {kind: helperList}, "createPackagesWithMain": {kind: helperListWithMain}}},
		lang("rust/cargolock", "cargo", "app/Cargo.lock"),
		lang("php/composerlock", "composer", "app/composer.lock"),
		lang("ruby/gemfilelock", "gem", "app/Gemfile.lock"),
		{module: "scalibr", dir: "extractor/filesystem/language/ruby/gemspec", eco: "gem", funcs: extractFuncs, place: placeGemspec},
		{module: "scalibr", dir: "extractor/filesystem/language/java/pomxml", eco: "maven", funcs: extractFuncs,
			place: at("app/pom.xml"), companions: pomParent, fixtureOnly: true},
		lang("java/gradlelockfile", "maven", "app/gradle.lockfile"),
		lang("dotnet/depsjson", "nuget", "app/fixture.deps.json"),
		lang("dotnet/packagesconfig", "nuget", "app/packages.config"),
		lang("dotnet/packageslockjson", "nuget", "app/packages.lock.json"),
		lang("elixir/mixlock", "hex", "app/mix.lock"),
		lang("erlang/mixlock", "hex", "app/mix.lock"),
		lang("dart/pubspec", "pub", "app/pubspec.lock"),
		lang("cpp/conanlock", "conan", "app/conan.lock"),
		{module: "scalibr", dir: "extractor/filesystem/os/dpkg", eco: "deb", funcs: extractFuncs, place: placeDpkg},
		{module: "scalibr", dir: "extractor/filesystem/os/apk", eco: "apk", funcs: extractFuncs, place: at("lib/apk/db/installed"),
			helpers: map[string]helper{"getPackage": {kind: helperPackage, nameArg: 1, versionArg: 3}}},
		{module: "scalibr", dir: "extractor/filesystem/os/rpm", eco: "rpm", funcs: extractFuncs, place: placeRPM,
			sample: "the test compares only the first three packages of each database"},
		trivy("nodejs/npm", "npm", "app/package-lock.json"),
		trivy("nodejs/yarn", "npm", "app/yarn.lock"),
		{module: "trivy", dir: "pkg/dependency/parser/nodejs/pnpm", eco: "npm", funcs: trivyFuncs, place: at("app/pnpm-lock.yaml"),
			noDev: "Trivy's pnpm parser leaves dev dependencies out before lockfile v9; berth's, flagged dev, are not counted where the test expects none"},
		trivy("nodejs/bun", "npm", "app/bun.lock"),
		{module: "trivy", dir: "pkg/dependency/parser/python/pip", eco: "pypi", funcs: trivyFuncs,
			place: at("app/requirements.txt"), companions: pipIncludes},
		trivy("python/pipenv", "pypi", "app/Pipfile.lock"),
		trivy("python/poetry", "pypi", "app/poetry.lock"),
		trivy("python/uv", "pypi", "app/uv.lock"),
		trivy("python/pylock", "pypi", "app/pylock.toml"),
		{module: "trivy", dir: "pkg/dependency/parser/python/packaging", eco: "pypi", funcs: trivyFuncs, place: placePython},
		{module: "trivy", dir: "pkg/dependency/parser/golang/mod", eco: "golang", funcs: trivyFuncs,
			place: at("app/go.mod"), companions: goSum},
		trivy("rust/cargo", "cargo", "app/Cargo.lock"),
		trivy("php/composer", "composer", "app/composer.lock"),
		trivy("ruby/bundler", "gem", "app/Gemfile.lock"),
		{module: "trivy", dir: "pkg/dependency/parser/ruby/gemspec", eco: "gem", funcs: trivyFuncs, place: placeGemspec},
		trivy("gradle/lockfile", "maven", "app/gradle.lockfile"),
		{module: "trivy", dir: "pkg/dependency/parser/nuget/config", eco: "nuget", funcs: trivyFuncs, place: at("app/packages.config"),
			noDev: "Trivy's packages.config parser leaves developmentDependency packages out; berth's, flagged dev, are not counted"},
		trivy("nuget/lock", "nuget", "app/packages.lock.json"),
		trivy("dotnet/core_deps", "nuget", "app/fixture.deps.json"),
		trivy("hex/mix", "hex", "app/mix.lock"),
		trivy("dart/pub", "pub", "app/pubspec.lock"),
		{module: "trivy", dir: "pkg/dependency/parser/c/conan", eco: "conan", funcs: trivyFuncs, place: at("app/conan.lock"),
			noDev: "Trivy's conan parser leaves build requirements out; berth's, flagged dev, are not counted"},
		trivy("conda/meta", "conda", "opt/conda/conda-meta/fixture.json"),
		{module: "rpmdb", dir: "pkg", eco: "rpm", funcs: regexp.MustCompile(`^TestPackageList$`),
			pos: &positional{Epoch: 0, Name: 1, Version: 2, Release: 3}, place: placeRPM},
	}, append(syftSources(),
		// osv-scanner v1 lists development dependencies (DepGroups "dev"),
		// as berth does (flagged dev): all are counted.
		source{module: "osvscanner", dir: "pkg/lockfile", placeCase: placeOSVScanner,
			companions: osvPipIncludes, deepCompanions: true})...)
}

// placePython puts installed-package metadata where pip would: a
// dist-info METADATA, an egg-info PKG-INFO or a zipped .egg.
func placePython(f string) (string, bool, string) {
	const site = "usr/lib/python3/dist-packages/"
	base := path.Base(f)
	switch {
	case strings.HasSuffix(base, ".whl"):
		return "", false, "a wheel archive is a download, not an installed package; berth does not read .whl"
	case strings.HasSuffix(base, ".egg"):
		return site + base, false, ""
	case strings.HasSuffix(f, "/METADATA"):
		return site + path.Base(path.Dir(f)) + "/METADATA", false, ""
	case strings.HasSuffix(f, "/PKG-INFO"):
		dir := path.Dir(f)
		if path.Base(dir) == "EGG-INFO" {
			return site + path.Base(path.Dir(dir)) + "/EGG-INFO/PKG-INFO", false, ""
		}
		return site + path.Base(dir) + "/PKG-INFO", false, ""
	case strings.Contains(base, "pkginfo") || strings.Contains(base, "egginfo"):
		return site + "fixture-0.egg-info/PKG-INFO", false, ""
	}
	return site + "fixture-0.dist-info/METADATA", false, ""
}

func placeGemspec(f string) (string, bool, string) {
	if !strings.HasSuffix(f, ".gemspec") {
		return "", false, "not a gemspec"
	}
	return "usr/local/lib/ruby/gems/3.3.0/specifications/" + path.Base(f), false, ""
}

func placeDpkg(f string) (string, bool, string) {
	if strings.Contains(f, "/opkg/") {
		return "", false, "an opkg (OpenWrt) status file; berth has no opkg analyzer"
	}
	return "var/lib/dpkg/status", false, ""
}

// placeRPM keeps the database's format, which its file name tells.
func placeRPM(f string) (string, bool, string) {
	switch base := path.Base(f); {
	case strings.HasSuffix(base, ".sqlite"):
		return "var/lib/rpm/rpmdb.sqlite", false, ""
	case base == "Packages.db":
		return "var/lib/rpm/Packages.db", false, ""
	default: // Berkeley DB: Packages, Packages_epoch
		return "var/lib/rpm/Packages", false, ""
	}
}

// pipIncludes lists the -r and -c files of a requirements file, kept
// under their own names.
func pipIncludes(_ string, data []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && (f[0] == "-r" || f[0] == "-c" || f[0] == "--requirement" || f[0] == "--constraint") {
			out[f[1]] = f[1]
		}
	}
	return out
}

// goSum is the X.sum osv-scalibr's gomod test reads beside X.mod, which
// the go command names go.sum.
// shrinkwrap places the npm-shrinkwrap.json beside a package-lock.json
// fixture, which npm (and osv-scalibr's test) then reads instead.
func shrinkwrap(fixture string, _ []byte) map[string]string {
	if path.Base(fixture) != "package-lock.json" {
		return nil
	}
	return map[string]string{"npm-shrinkwrap.json": "npm-shrinkwrap.json"}
}

func goSum(fixture string, _ []byte) map[string]string {
	return map[string]string{strings.TrimSuffix(path.Base(fixture), ".mod") + ".sum": "go.sum"}
}

// pomParent is the parent POM a pom.xml names by its relativePath, kept
// at that path beside it (a directory means its pom.xml). Without the
// element Maven looks at ../pom.xml, which lies outside a fixture's
// folder and is not copied.
func pomParent(_ string, data []byte) map[string]string {
	var p struct {
		RelativePath string `xml:"parent>relativePath"`
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	if dec.Decode(&p) != nil {
		return nil
	}
	rel := strings.TrimSpace(p.RelativePath)
	if rel == "" {
		return nil
	}
	if path.Ext(rel) == "" {
		rel = path.Join(rel, "pom.xml")
	}
	rel = path.Clean(rel)
	return map[string]string{rel: rel}
}
