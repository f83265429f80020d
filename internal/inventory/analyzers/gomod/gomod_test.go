package gomod

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"berth.dev/berth/internal/golden"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzertest"
)

func TestGolden(t *testing.T) {
	for _, dir := range []string{"app", "replace", "legacy"} {
		t.Run(dir, func(t *testing.T) {
			res, err := Analyzer{}.Analyze(context.Background(), os.DirFS(filepath.Join("testdata", dir)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden.Check(t, filepath.Join("testdata", "golden", dir+".json"), got)
		})
	}
}

// versions returns name@version of every package.
func versions(t *testing.T, dir string) []string {
	t.Helper()
	res, err := Analyzer{}.Analyze(context.Background(), os.DirFS(filepath.Join("testdata", dir)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sets) != 1 || len(res.Warns) != 0 {
		t.Fatalf("sets %d, warnings %q", len(res.Sets), res.Warns)
	}
	var out []string
	for _, p := range res.Sets[0].Packages {
		out = append(out, p.Name+"@"+p.Version)
	}
	return out
}

// TestReplace: a replacement of every version, of one version and by a
// local directory each land as the go command applies them.
func TestReplace(t *testing.T) {
	got := versions(t, "replace")
	for _, want := range []string{"github.com/ugorji/go/codec@v1.2.12", "github.com/json-iterator/go@v1.1.12", "golang.org/x/sys@"} {
		if !slices.Contains(got, want) {
			t.Errorf("%v lacks %s", got, want)
		}
	}
	for _, gone := range []string{"github.com/ugorji/go/codec@v1.1.7", "github.com/json-iterator/go@v1.1.9", "golang.org/x/sys@v0.5.0"} {
		if slices.Contains(got, gone) {
			t.Errorf("%v still has %s", got, gone)
		}
	}
}

// TestLegacyReadsGoSum: a go 1.16 go.mod names gin and x/net only; the
// modules the build needs come from go.sum's content hashes, one version
// each, not the older versions whose go.mod alone is hashed.
func TestLegacyReadsGoSum(t *testing.T) {
	legacy, app := versions(t, "legacy"), versions(t, "app")
	for _, want := range app {
		if !slices.Contains(legacy, want) {
			t.Errorf("legacy %v lacks %s, which the go 1.26 go.mod requires", legacy, want)
		}
	}
	var sys []string
	for _, v := range legacy {
		if strings.HasPrefix(v, "golang.org/x/sys@") {
			sys = append(sys, v)
		}
	}
	if !slices.Equal(sys, []string{"golang.org/x/sys@v0.5.0"}) {
		t.Errorf("x/sys versions %v, want only v0.5.0", sys)
	}
	// With go 1.17 or later, go.sum is not needed and not read.
	mod, err := os.ReadFile(filepath.Join("testdata", "app", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Parse(mod, []byte("example.com/extra v1.0.0 h1:AAAA=\n"), "/go.mod", "gomod")
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(pkgs, func(p inventory.Package) bool { return p.Name == "example.com/extra" }) {
		t.Error("go.sum read for a go 1.26 module")
	}
}

// TestNoStandardLibrary: neither the go directive's nor the toolchain
// directive's Go is listed, nor the module itself (the project, not a
// dependency).
func TestNoStandardLibrary(t *testing.T) {
	pkgs, err := Parse([]byte("module m\n\ngo 1.22.1\n\ntoolchain go1.23.4\n\nrequire golang.org/x/text v0.3.5\n"), nil, "/go.mod", "gomod")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, p := range pkgs {
		names = append(names, p.Name+"@"+p.Version)
	}
	if !slices.Equal(names, []string{"golang.org/x/text@v0.3.5"}) {
		t.Errorf("packages %v", names)
	}
}

// TestBadGoMod: a go.mod the go command rejects is a warning naming it;
// the other go.mod files are still read.
func TestBadGoMod(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "app", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"garbled":           "module m\nrequire (\n\tgolang.org/x/net\n",
		"unknown directive": "module m\nfrobnicate x\n",
		"branch version":    "module m\nrequire golang.org/x/net master\n",
		"bad module path":   "module m\nrequire ../net v1.0.0\n",
		"bad replacement":   "module m\nrequire golang.org/x/net v0.7.0\nreplace golang.org/x/net => github.com/x/../y v1.0.0\n",
	} {
		t.Run(name, func(t *testing.T) {
			files := fstest.MapFS{"good/go.mod": {Data: good}, "bad/go.mod": {Data: []byte(data)}}
			res, err := Analyzer{}.Analyze(context.Background(), files)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Warns) != 1 || !strings.HasPrefix(res.Warns[0], "/bad/go.mod: ") {
				t.Errorf("warnings = %q", res.Warns)
			}
			if len(res.Sets) != 1 || res.Sets[0].Origin != "good/go.mod" {
				t.Errorf("sets = %+v", res.Sets)
			}
		})
	}
}

func TestRequired(t *testing.T) {
	regular, dir := fileInfo{mode: 0o644, size: 1 << 10}, fileInfo{mode: fs.ModeDir | 0o755}
	tests := []struct {
		path string
		info fileInfo
		want bool
	}{
		{"src/app/go.mod", regular, true},
		{"src/app/go.sum", regular, true},
		{"go.mod", regular, true},
		{"src/app/go.work", regular, false},
		{"src/app/go.mod", dir, false},
		{"root/go/pkg/mod/golang.org/x/net@v0.7.0/go.mod", regular, false},
		{"src/app/vendor/github.com/x/y/go.mod", regular, false},
		{"src/app/internal/testdata/mod/go.mod", regular, false},
	}
	for _, tt := range tests {
		if got := (Analyzer{}).Required(tt.path, tt.info); got != tt.want {
			t.Errorf("Required(%q, %v) = %v, want %v", tt.path, tt.info.mode, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, d := range []string{"app", "replace", "legacy"} {
		mod, err := os.ReadFile(filepath.Join("testdata", d, "go.mod"))
		if err != nil {
			f.Fatal(err)
		}
		sum, err := os.ReadFile(filepath.Join("testdata", d, "go.sum"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(mod, sum)
	}
	f.Fuzz(func(t *testing.T, mod, sum []byte) {
		pkgs, err := Parse(mod, sum, "/go.mod", "fuzz")
		if err != nil && pkgs != nil {
			t.Fatal("packages returned with an error")
		}
		for _, p := range pkgs {
			if p.Name == "" {
				t.Fatalf("package without a name: %+v", p)
			}
		}
	})
}

type fileInfo struct {
	mode fs.FileMode
	size int64
}

func (f fileInfo) Name() string       { return "x" }
func (f fileInfo) Size() int64        { return f.size }
func (f fileInfo) Mode() fs.FileMode  { return f.mode }
func (f fileInfo) ModTime() time.Time { return time.Time{} }
func (f fileInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fileInfo) Sys() any           { return nil }

// TestExcludedVersions: the go command never builds a version its go.mod
// excludes. go.sum names the higher version built instead when it holds
// its content hash; otherwise the requirement is not reported, and a
// warning says so.
func TestExcludedVersions(t *testing.T) {
	mod := `module example.com/app

go 1.22

require (
	github.com/adrg/xdg v0.2.1
	golang.org/x/text v0.3.7
	golang.org/x/net v0.17.0
)

exclude (
	github.com/adrg/xdg v0.2.1
	golang.org/x/text v0.3.7
	golang.org/x/text v0.3.8
)
`
	tests := []struct {
		name    string
		sum     string
		want    []string
		wantErr string
	}{
		{"no go.sum", "", []string{"golang.org/x/net@v0.17.0"},
			"required versions the go.mod excludes, not reported (the go command ignores them): github.com/adrg/xdg@v0.2.1, golang.org/x/text@v0.3.7"},
		{"go.sum names the version built", "github.com/adrg/xdg v0.2.3 h1:x=\ngithub.com/adrg/xdg v0.2.3/go.mod h1:y=\n" +
			"golang.org/x/text v0.3.8 h1:z=\n",
			[]string{"github.com/adrg/xdg@v0.2.3", "golang.org/x/net@v0.17.0"},
			"required versions the go.mod excludes, not reported (the go command ignores them): golang.org/x/text@v0.3.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sum []byte
			if tt.sum != "" {
				sum = []byte(tt.sum)
			}
			pkgs, err := Parse([]byte(mod), sum, "/app/go.mod", "gomod")
			if got := analyzertest.Summary(pkgs); !slices.Equal(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("error %v\nwant %s", err, tt.wantErr)
			}
		})
	}
}
