package analyzers

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"berth.dev/berth/internal/inventory/analyzertest"
)

// TestSharedSuite runs the shared analyzer suite on every analyzer of
// All, each with one file it reads; an analyzer without a sample here
// fails the test.
func TestSharedSuite(t *testing.T) {
	samples := samples(t)
	for _, a := range All() {
		t.Run(a.Name(), func(t *testing.T) {
			s, ok := samples[a.Name()]
			if !ok {
				t.Fatalf("no sample for analyzer %s: add one to samples()", a.Name())
			}
			analyzertest.Run(t, a, s)
		})
	}
}

func samples(t *testing.T) map[string]analyzertest.Sample {
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.FromSlash(p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	gunzip := func(p string) []byte {
		zr, err := gzip.NewReader(bytes.NewReader(read(p)))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	goBinary := buildGoBinary(t)
	// cargo-auditable reads executables of 64 KiB and more; bytes after
	// an ELF file's sections change nothing in it.
	demo := read("rust/testdata/auditable/demo")
	demo = append(demo, make([]byte, 64<<10)...)
	return map[string]analyzertest.Sample{
		"os-release":            {Path: "etc/os-release", Data: []byte("ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")},
		"dpkg":                  {Path: "var/lib/dpkg/status", Data: read("dpkg/testdata/status")},
		"apk":                   {Path: "lib/apk/db/installed", Data: read("apk/testdata/installed")},
		"rpm":                   {Path: "var/lib/rpm/rpmdb.sqlite", Data: gunzip("rpm/testdata/rpmdb.sqlite.gz")},
		"gobinary":              {Path: "usr/bin/app", Data: goBinary, Mode: 0o755},
		"gomod":                 {Path: "src/app/go.mod", Data: read("gomod/testdata/app/go.mod")},
		"npm-installed":         {Path: "app/node_modules/debug/package.json", Data: read("npm/testdata/installed/node_modules/debug/package.json")},
		"npm-lock":              {Path: "app/package-lock.json", Data: read("npm/testdata/lock-v3/package-lock.json")},
		"yarn-lock":             {Path: "app/yarn.lock", Data: read("npm/testdata/yarn-v1/yarn.lock")},
		"pnpm-lock":             {Path: "app/pnpm-lock.yaml", Data: read("npm/testdata/pnpm-v9/pnpm-lock.yaml")},
		"python-installed":      {Path: "usr/lib/python3/dist-packages/urllib3-2.7.0.dist-info/METADATA", Data: read("python/testdata/site-packages/urllib3-2.7.0.dist-info/METADATA")},
		"pip-requirements":      {Path: "app/requirements.txt", Data: read("python/testdata/requirements/requirements.txt")},
		"poetry-lock":           {Path: "app/poetry.lock", Data: read("python/testdata/poetry-2/poetry.lock")},
		"pipenv-lock":           {Path: "app/Pipfile.lock", Data: read("python/testdata/pipenv/Pipfile.lock")},
		"uv-lock":               {Path: "app/uv.lock", Data: read("python/testdata/uv/uv.lock")},
		"java-archive":          {Path: "opt/app/app.jar", Data: read("java/testdata/app.jar")},
		"cargo-lock":            {Path: "src/Cargo.lock", Data: read("rust/testdata/cargo-v3/Cargo.lock")},
		"cargo-auditable":       {Path: "usr/bin/demo", Data: demo, Mode: 0o755},
		"composer-lock":         {Path: "app/composer.lock", Data: read("php/testdata/app/composer.lock")},
		"composer-installed":    {Path: "app/vendor/composer/installed.json", Data: read("php/testdata/app/vendor/composer/installed.json")},
		"gemspec":               {Path: "usr/lib/ruby/gems/3.1.0/specifications/rake-13.0.6.gemspec", Data: read("ruby/testdata/gems/usr/lib/ruby/gems/3.1.0/specifications/rake-13.0.6.gemspec")},
		"gemfile-lock":          {Path: "app/Gemfile.lock", Data: read("ruby/testdata/bundle/Gemfile.lock")},
		"dotnet-deps":           {Path: "app/Shop.deps.json", Data: read("dotnet/testdata/app/Shop.deps.json")},
		"nuget-lock":            {Path: "src/packages.lock.json", Data: read("dotnet/testdata/src/packages.lock.json")},
		"bun-lock":              {Path: "app/bun.lock", Data: read("bun/testdata/app/bun.lock")},
		"pdm-lock":              {Path: "app/pdm.lock", Data: read("pdm/testdata/app/pdm.lock")},
		"pylock":                {Path: "app/pylock.toml", Data: read("pylock/testdata/app/pylock.toml")},
		"python-egg":            {Path: "usr/lib/python3.11/site-packages/SQLAlchemy-1.3.24-py3.11.egg", Data: read("egg/testdata/SQLAlchemy-1.3.24-py3.11.egg")},
		"conda-meta":            {Path: "opt/conda/conda-meta/numpy-1.26.4-py311h64a7726_0.json", Data: read("conda/testdata/env/conda-meta/numpy-1.26.4-py311h64a7726_0.json")},
		"gradle-lockfile":       {Path: "src/app/gradle.lockfile", Data: read("gradle/testdata/app/gradle.lockfile")},
		"maven-pom":             {Path: "src/app/pom.xml", Data: read("mavenpom/testdata/app/pom.xml")},
		"nuget-packages-config": {Path: "src/app/packages.config", Data: read("packagesconfig/testdata/app/packages.config")},
		"mix-lock":              {Path: "src/app/mix.lock", Data: read("mix/testdata/app/mix.lock")},
		"pubspec-lock":          {Path: "src/app/pubspec.lock", Data: read("pubspec/testdata/app/pubspec.lock")},
		"conan-lock":            {Path: "src/app/conan.lock", Data: read("conan/testdata/v2/conan.lock")},
	}
}

// buildGoBinary builds the smallest Go program there is (about 1 MB
// stripped, build info kept): the test binary itself would do, but at
// 30 MB under the race detector the suite's twenty-odd reads of it took a
// minute.
func buildGoBinary(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/suite\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", "app", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "app"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
