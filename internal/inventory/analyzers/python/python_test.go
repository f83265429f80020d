package python

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"berth.dev/berth/internal/golden"
	"berth.dev/berth/internal/inventory"
)

// TestGolden runs each analyzer over a folder of fixtures (see
// testdata/README.md) and compares the result with a reviewed golden file.
func TestGolden(t *testing.T) {
	tests := []struct {
		dir      string
		analyzer inventory.Analyzer
	}{
		{"kitchen-sink", InstalledAnalyzer{}},
		{"site-packages", InstalledAnalyzer{}},
		{"requirements", RequirementsAnalyzer{}},
		{"poetry-1", PoetryAnalyzer{}},
		{"poetry-2", PoetryAnalyzer{}},
		{"pipenv", PipenvAnalyzer{}},
		{"uv", UVAnalyzer{}},
	}
	for _, tt := range tests {
		t.Run(tt.dir+"/"+tt.analyzer.Name(), func(t *testing.T) {
			res, err := tt.analyzer.Analyze(context.Background(), os.DirFS(filepath.Join("testdata", tt.dir)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden.Check(t, filepath.Join("testdata", "golden", tt.dir+"."+tt.analyzer.Name()+".json"), got)
		})
	}
}

// TestKitchenSink checks the ground truth of the shared kitchen-sink image:
// the metadata files were copied unchanged from its
// /usr/lib/python3/dist-packages.
func TestKitchenSink(t *testing.T) {
	want := map[string]string{
		"requests": "2.28.1", "urllib3": "1.26.12", "certifi": "2022.9.24", "idna": "3.3",
		"six": "1.16.0", "chardet": "5.1.0", "charset-normalizer": "3.0.1",
	}
	res, err := InstalledAnalyzer{}.Analyze(context.Background(), os.DirFS("testdata/kitchen-sink"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range res.Sets {
		if !strings.HasPrefix(s.Origin, "usr/lib/python3/dist-packages/") || len(s.Packages) != 1 {
			t.Errorf("set %s: %+v", s.Origin, s.Packages)
		}
		for _, p := range s.Packages {
			got[p.Name] = p.Version
		}
	}
	if len(got) != len(want) || len(res.Warns) != 0 {
		t.Errorf("got %v (warnings %v), want %v", got, res.Warns, want)
	}
	for n, v := range want {
		if got[n] != v {
			t.Errorf("%s = %q, want %q", n, got[n], v)
		}
	}
}

func TestLicenses(t *testing.T) {
	tests := []struct {
		name     string
		metadata string
		want     []string
	}{
		{"expression wins", "Name: a\nVersion: 1\nLicense: MIT License\nLicense-Expression: MIT OR Apache-2.0\n", []string{"MIT OR Apache-2.0"}},
		{"license field", "Name: a\nVersion: 1\nLicense: BSD-3-Clause\nClassifier: License :: OSI Approved :: BSD License\n", []string{"BSD-3-Clause"}},
		{"classifiers when no field", "Name: a\nVersion: 1\nClassifier: License :: OSI Approved :: MIT License\nClassifier: Topic :: Utilities\n", []string{"MIT License"}},
		{"UNKNOWN is no license", "Name: a\nVersion: 1\nLicense: UNKNOWN\n", nil},
		{"a whole license text is not a name", "Name: a\nVersion: 1\nLicense: Copyright (c) 2020\n        Permission is hereby granted\nClassifier: License :: OSI Approved :: MIT License\n", []string{"MIT License"}},
		{"body is not headers", "Name: a\nVersion: 1\n\nLicense: GPL\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, err := ParseMetadata([]byte(tt.metadata), "/m", "python-installed")
			if err != nil {
				t.Fatal(err)
			}
			if got := pkgs[0].Licenses; strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("licenses = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestBadInput feeds every analyzer a garbled file beside a good one: the
// bad file is a warning that names it, the good one is still read.
func TestBadInput(t *testing.T) {
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := map[string]string{
		"python-installed": "kitchen-sink/usr/lib/python3/dist-packages/requests-2.28.1.egg-info/PKG-INFO",
		"poetry-lock":      "poetry-1/poetry.lock",
		"pipenv-lock":      "pipenv/Pipfile.lock",
		"uv-lock":          "uv/uv.lock",
	}
	tests := []struct {
		analyzer inventory.Analyzer
		bad      string
		data     []byte
	}{
		{InstalledAnalyzer{}, "x/bad.dist-info/METADATA", []byte("Summary: no name\n")},
		{InstalledAnalyzer{}, "x/bad.dist-info/METADATA", []byte("  continuation first\nName: a\n")},
		{InstalledAnalyzer{}, "x/bad.egg-info", []byte("\x00\x01\x02 binary garbage")},
		{PoetryAnalyzer{}, "bad/poetry.lock", []byte("[[package]]\nname = \"a\"\nversion = ")},
		{PoetryAnalyzer{}, "bad/poetry.lock", []byte("[[package]]\nname = \"a\"\n")},
		{PoetryAnalyzer{}, "bad/poetry.lock", cut(t, read("poetry-1/poetry.lock"), "url = \"../dev")},
		{PipenvAnalyzer{}, "bad/Pipfile.lock", []byte("not JSON")},
		{PipenvAnalyzer{}, "bad/Pipfile.lock", cut(t, read("pipenv/Pipfile.lock"), "\"default\": {")},
		{PipenvAnalyzer{}, "bad/Pipfile.lock", []byte(`{"default": {}}`)},
		{UVAnalyzer{}, "bad/uv.lock", cut(t, read("uv/uv.lock"), "source = { registry = \"https://pypi")},
		{UVAnalyzer{}, "bad/uv.lock", []byte("version = 7\n")},
		{UVAnalyzer{}, "bad/uv.lock", []byte("version = 1\n[[package]]\nname = \"a\"\nsource = { registry = \"r\" }\n")},
	}
	for _, tt := range tests {
		t.Run(tt.analyzer.Name()+"/"+tt.bad, func(t *testing.T) {
			g := good[tt.analyzer.Name()]
			goodPath := "good/" + g[strings.Index(g, "/")+1:]
			files := fstest.MapFS{goodPath: {Data: read(g)}, tt.bad: {Data: tt.data}}
			res, err := tt.analyzer.Analyze(context.Background(), files)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Warns) != 1 || !strings.HasPrefix(res.Warns[0], "/"+tt.bad+": ") {
				t.Errorf("warnings = %q, want one naming /%s", res.Warns, tt.bad)
			}
			if len(res.Sets) != 1 || res.Sets[0].Origin != goodPath || len(res.Sets[0].Packages) == 0 {
				t.Errorf("sets = %+v, want the packages of %s", res.Sets, goodPath)
			}
		})
	}
}

// TestRequirementsGarbage: a requirements file allows far more than pins,
// so nothing in it is an error; garbage just yields no packages.
func TestRequirementsGarbage(t *testing.T) {
	pkgs, err := ParseRequirements([]byte("\x00\xff==\n==1.0\nname==\n\\"), "/r", "pip-requirements")
	if err != nil || len(pkgs) != 0 {
		t.Errorf("got %+v, %v; want nothing", pkgs, err)
	}
}

func cut(t *testing.T, data []byte, mark string) []byte {
	t.Helper()
	i := bytes.Index(data, []byte(mark))
	if i < 0 {
		t.Fatalf("%q not in fixture", mark)
	}
	return data[:i+len(mark)]
}

func TestRequired(t *testing.T) {
	tests := []struct {
		analyzer inventory.Analyzer
		path     string
		want     bool
	}{
		{InstalledAnalyzer{}, "usr/lib/python3/dist-packages/requests-2.28.1.egg-info/PKG-INFO", true},
		{InstalledAnalyzer{}, "usr/lib/python3/dist-packages/chardet-5.1.0.dist-info/METADATA", true},
		{InstalledAnalyzer{}, "usr/lib/python3/dist-packages/python_apt-2.6.0.egg-info", true},
		{InstalledAnalyzer{}, "usr/local/lib/python3.11/site-packages/x-1.egg/EGG-INFO/PKG-INFO", true},
		{InstalledAnalyzer{}, "usr/lib/python3/dist-packages/chardet-5.1.0.dist-info/RECORD", false},
		{InstalledAnalyzer{}, "src/project/METADATA", false},
		{InstalledAnalyzer{}, "src/project/PKG-INFO", false},
		{RequirementsAnalyzer{}, "app/requirements.txt", true},
		{RequirementsAnalyzer{}, "app/requirements-dev.txt", true},
		{RequirementsAnalyzer{}, "app/dev-requirements.txt", true},
		{RequirementsAnalyzer{}, "app/other-requirements.txt", true},
		{RequirementsAnalyzer{}, "app/requirements/base.txt", true},
		{RequirementsAnalyzer{}, "app/constraints.txt", true},
		{RequirementsAnalyzer{}, "app/notes.txt", false},
		{PoetryAnalyzer{}, "app/poetry.lock", true},
		{PipenvAnalyzer{}, "app/Pipfile.lock", true},
		{PipenvAnalyzer{}, "app/Pipfile", false},
		{UVAnalyzer{}, "app/uv.lock", true},
	}
	for _, tt := range tests {
		if got := tt.analyzer.Required(tt.path, fileInfo{mode: 0o644}); got != tt.want {
			t.Errorf("%s.Required(%q) = %v, want %v", tt.analyzer.Name(), tt.path, got, tt.want)
		}
	}
	if (InstalledAnalyzer{}).Required("a/x.egg-info", fileInfo{mode: fs.ModeDir | 0o755}) {
		t.Error("an .egg-info directory is not a metadata file")
	}
}

func FuzzParseMetadata(f *testing.F) {
	fuzzParser(f, ParseMetadata, "kitchen-sink/usr/lib/python3/dist-packages/requests-2.28.1.egg-info/PKG-INFO", "site-packages/libcst-1.0.1.dist-info/METADATA")
}

func FuzzParsePoetryLock(f *testing.F) {
	fuzzParser(f, ParsePoetryLock, "poetry-1/poetry.lock", "poetry-2/poetry.lock")
}

func FuzzParseUVLock(f *testing.F) { fuzzParser(f, ParseUVLock, "uv/uv.lock") }

func FuzzParsePipfileLock(f *testing.F) { fuzzParser(f, ParsePipfileLock, "pipenv/Pipfile.lock") }

func FuzzParseRequirements(f *testing.F) {
	fuzzParser(f, ParseRequirements, "requirements/requirements.txt")
}

// fuzzParser seeds a fuzz target with the fixtures and checks that the
// parser never panics and never returns a package without name or version.
func fuzzParser(f *testing.F, parse inventory.ParseFunc, seeds ...string) {
	for _, s := range seeds {
		b, err := os.ReadFile(filepath.Join("testdata", s))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := parse(data, "/x", "fuzz")
		if err != nil && pkgs != nil {
			t.Fatal("packages returned with an error")
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" {
				t.Fatalf("package without name or version: %+v", p)
			}
		}
	})
}

type fileInfo struct{ mode fs.FileMode }

func (f fileInfo) Name() string       { return "x" }
func (f fileInfo) Size() int64        { return 100 }
func (f fileInfo) Mode() fs.FileMode  { return f.mode }
func (f fileInfo) ModTime() time.Time { return time.Time{} }
func (f fileInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fileInfo) Sys() any           { return nil }
