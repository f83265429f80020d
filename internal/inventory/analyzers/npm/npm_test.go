package npm

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

// TestGolden runs each analyzer over a folder of real files made by npm,
// Yarn and pnpm (see testdata/README.md) and compares the result with a
// reviewed golden file.
func TestGolden(t *testing.T) {
	tests := []struct {
		dir      string
		analyzer inventory.Analyzer
	}{
		{"lock-v1", LockAnalyzer{}},
		{"lock-v2", LockAnalyzer{}},
		{"lock-v3", LockAnalyzer{}},
		{"yarn-v1", YarnAnalyzer{}},
		{"yarn-berry", YarnAnalyzer{}},
		{"pnpm-v5.4", PNPMAnalyzer{}},
		{"pnpm-v6", PNPMAnalyzer{}},
		{"pnpm-v9", PNPMAnalyzer{}},
		{"installed", InstalledAnalyzer{}},
		{"kitchen-sink", InstalledAnalyzer{}},
		{"kitchen-sink", LockAnalyzer{}},
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
			golden.Check(t, filepath.Join("testdata", "golden", tt.dir+"."+tt.analyzer.Name()+".json"), append(got, '\n'))
		})
	}
}

// TestKitchenSink checks the ground truth of the shared kitchen-sink image
// (its README): lodash 4.17.15, minimist 1.2.0, node-fetch 2.6.0, from
// both the v3 lockfile and node_modules. The files were copied from the
// image unchanged.
func TestKitchenSink(t *testing.T) {
	want := map[string]string{"lodash": "4.17.15", "minimist": "1.2.0", "node-fetch": "2.6.0"}
	files := os.DirFS("testdata/kitchen-sink")
	for _, a := range []inventory.Analyzer{LockAnalyzer{}, InstalledAnalyzer{}} {
		res, err := a.Analyze(context.Background(), files)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, s := range res.Sets {
			for _, p := range s.Packages {
				got[p.Name] = p.Version
				if p.Ecosystem != inventory.NPM || len(p.Licenses) != 1 || p.Licenses[0] != "MIT" || p.Dev {
					t.Errorf("%s: %+v", a.Name(), p)
				}
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: got %v, want %v", a.Name(), got, want)
		}
		for n, v := range want {
			if got[n] != v {
				t.Errorf("%s: %s = %q, want %q", a.Name(), n, got[n], v)
			}
		}
	}
}

// TestBadInput feeds every analyzer a garbled copy of its file beside a
// good one: the bad file is a warning that names it, the good one is still
// read.
func TestBadInput(t *testing.T) {
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		analyzer inventory.Analyzer
		good     string // fixture path, also the path in the FS
		bad      string // path in the FS
		data     []byte
	}{
		{LockAnalyzer{}, "lock-v3/package-lock.json", "bad/package-lock.json", []byte("this is not JSON")},
		{LockAnalyzer{}, "lock-v3/package-lock.json", "trunc/package-lock.json", read("lock-v3/package-lock.json")[:300]},
		{LockAnalyzer{}, "lock-v3/package-lock.json", "future/package-lock.json", []byte(`{"lockfileVersion": 4, "packages": {}}`)},
		{LockAnalyzer{}, "lock-v1/package-lock.json", "trunc/npm-shrinkwrap.json", read("lock-v1/package-lock.json")[:200]},
		{YarnAnalyzer{}, "yarn-v1/yarn.lock", "trunc/yarn.lock", []byte("debug@2.6.9:\n  version \"2.6.9\n")},
		{YarnAnalyzer{}, "yarn-v1/yarn.lock", "garbled/yarn.lock", []byte("  version \"1.0.0\"\n")},
		{YarnAnalyzer{}, "yarn-v1/yarn.lock", "noversion/yarn.lock", []byte("debug@2.6.9:\n  resolved \"x\"\n")},
		{YarnAnalyzer{}, "yarn-berry/yarn.lock", "trunc/yarn.lock", cutAfter(t, read("yarn-berry/yarn.lock"), "\"debug@npm:2.")},
		{YarnAnalyzer{}, "yarn-berry/yarn.lock", "garbled/yarn.lock", []byte("__metadata:\n  version: 10\n\"a@npm:1\":\n  version: [\n")},
		{PNPMAnalyzer{}, "pnpm-v9/pnpm-lock.yaml", "trunc/pnpm-lock.yaml", cutAfter(t, read("pnpm-v9/pnpm-lock.yaml"), "resolution: {integrity: sha512-SQ7")},
		{PNPMAnalyzer{}, "pnpm-v9/pnpm-lock.yaml", "garbled/pnpm-lock.yaml", []byte("lockfileVersion: '9.0'\npackages: [1, 2\n")},
		{PNPMAnalyzer{}, "pnpm-v6/pnpm-lock.yaml", "badkey/pnpm-lock.yaml", []byte("lockfileVersion: '6.0'\npackages:\n  /nameonly:\n    dev: false\n")},
		{InstalledAnalyzer{}, "installed/node_modules/ms/package.json", "node_modules/bad/package.json", []byte("{\"name\": \"bad\",")},
		{InstalledAnalyzer{}, "installed/node_modules/ms/package.json", "node_modules/nover/package.json", []byte(`{"name": "nover"}`)},
	}
	for _, tt := range tests {
		t.Run(tt.analyzer.Name()+"/"+tt.bad, func(t *testing.T) {
			goodPath := tt.good[strings.Index(tt.good, "/")+1:]
			files := fstest.MapFS{
				goodPath: {Data: read(tt.good)},
				tt.bad:   {Data: tt.data},
			}
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

// cutAfter truncates data just after the first occurrence of mark.
func cutAfter(t *testing.T, data []byte, mark string) []byte {
	t.Helper()
	i := bytes.Index(data, []byte(mark))
	if i < 0 {
		t.Fatalf("%q not in fixture", mark)
	}
	return data[:i+len(mark)]
}

// TestYarnDevFromManifest: with the project's package.json beside
// yarn.lock, packages only devDependencies reach are dev; a package.json
// that is not JSON costs the dev flags, with a warning, not the packages.
func TestYarnDevFromManifest(t *testing.T) {
	lock := map[string][]byte{}
	for _, dir := range []string{"yarn-v1", "yarn-berry"} {
		b, err := os.ReadFile(filepath.Join("testdata", dir, "yarn.lock"))
		if err != nil {
			t.Fatal(err)
		}
		lock[dir] = b
	}
	manifest, err := os.ReadFile("testdata/yarn-v1/package.json")
	if err != nil {
		t.Fatal(err)
	}
	for dir, data := range lock {
		t.Run(dir, func(t *testing.T) {
			files := fstest.MapFS{
				"app/yarn.lock":    {Data: data},
				"app/package.json": {Data: manifest},
				"bad/yarn.lock":    {Data: data},
				"bad/package.json": {Data: []byte("{nope")},
				"bare/yarn.lock":   {Data: data},
			}
			res, err := YarnAnalyzer{}.Analyze(context.Background(), files)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Sets) != 3 {
				t.Fatalf("sets: %+v", res.Sets)
			}
			for _, s := range res.Sets {
				for _, p := range s.Packages {
					wantDev := s.Origin == "app/yarn.lock" && p.Name == "minimist"
					if p.Dev != wantDev {
						t.Errorf("%s: %s dev = %v, want %v", s.Origin, p.Name, p.Dev, wantDev)
					}
				}
			}
			if len(res.Warns) != 1 || !strings.HasPrefix(res.Warns[0], "/bad/package.json: ") {
				t.Errorf("warnings = %q", res.Warns)
			}
		})
	}
}

func TestRequired(t *testing.T) {
	tests := []struct {
		analyzer inventory.Analyzer
		path     string
		want     bool
	}{
		{LockAnalyzer{}, "app/package-lock.json", true},
		{LockAnalyzer{}, "package-lock.json", true},
		{LockAnalyzer{}, "app/npm-shrinkwrap.json", true},
		{LockAnalyzer{}, "app/node_modules/.package-lock.json", false},
		{LockAnalyzer{}, "app/node_modules/x/package-lock.json", false},
		{YarnAnalyzer{}, "srv/yarn.lock", true},
		{YarnAnalyzer{}, "srv/node_modules/x/yarn.lock", false},
		{YarnAnalyzer{}, "srv/package.json", true},
		{YarnAnalyzer{}, "srv/node_modules/x/package.json", false},
		{PNPMAnalyzer{}, "srv/pnpm-lock.yaml", true},
		{PNPMAnalyzer{}, "srv/pnpm-lock.yml", false},
		{InstalledAnalyzer{}, "app/node_modules/lodash/package.json", true},
		{InstalledAnalyzer{}, "node_modules/@scope/name/package.json", true},
		{InstalledAnalyzer{}, "app/node_modules/a/node_modules/b/package.json", true},
		{InstalledAnalyzer{}, "app/package.json", false},
		{InstalledAnalyzer{}, "app/node_modules/lodash/fp/package.json", false},
		{InstalledAnalyzer{}, "app/node_modules/x/test/fixtures/package.json", false},
		{InstalledAnalyzer{}, "app/node_modules/package.json", false},
	}
	for _, tt := range tests {
		if got := tt.analyzer.Required(tt.path, fileInfo{mode: 0o644}); got != tt.want {
			t.Errorf("%s.Required(%q) = %v, want %v", tt.analyzer.Name(), tt.path, got, tt.want)
		}
	}
	// The walker hands over only regular files, but a symlink must not
	// count twice if it ever gets here.
	if (LockAnalyzer{}).Required("app/package-lock.json", fileInfo{mode: fs.ModeSymlink}) {
		t.Error("symlink required")
	}
}

func FuzzParsePackageLock(f *testing.F) {
	addLocalSeeds(f, fmtPackageLock)
	fuzzParser(f, ParsePackageLock, "lock-v1/package-lock.json", "lock-v2/package-lock.json", "lock-v3/package-lock.json")
}

func FuzzParseYarnLock(f *testing.F) {
	addLocalSeeds(f, fmtYarnLock)
	fuzzParser(f, ParseYarnLock, "yarn-v1/yarn.lock", "yarn-berry/yarn.lock")
}

func FuzzParsePNPMLock(f *testing.F) {
	// Entries it cannot name are skipped, the others returned with the
	// error that lists them.
	addLocalSeeds(f, fmtPNPMLock)
	fuzzParser(f, func(data []byte, location, analyzer string) ([]inventory.Package, error) {
		pkgs, _ := ParsePNPMLock(data, location, analyzer)
		return pkgs, nil
	}, "pnpm-v5.4/pnpm-lock.yaml", "pnpm-v6/pnpm-lock.yaml", "pnpm-v9/pnpm-lock.yaml")
}

// addLocalSeeds seeds a fuzz target with the workspace and local folder
// lockfiles of TestLocalPackages in its format.
func addLocalSeeds(f *testing.F, format string) {
	for _, c := range localCases {
		if c.format == format {
			f.Add([]byte(c.data))
		}
	}
}

// fuzzParser seeds a fuzz target with the real fixtures and checks that
// the parser never panics and never returns packages without a name.
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
			if p.Name == "" {
				t.Fatalf("package without a name: %+v", p)
			}
		}
	})
}

// BenchmarkParsePackageLock parses a real lockfile of 147 packages
// (express 4.18.2 and, dev-only, mocha 10.2.0).
func BenchmarkParsePackageLock(b *testing.B) {
	data, err := os.ReadFile("testdata/bench/package-lock.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParsePackageLock(data, "/x", "npm-lock"); err != nil {
			b.Fatal(err)
		}
	}
}

type fileInfo struct{ mode fs.FileMode }

func (f fileInfo) Name() string       { return "x" }
func (f fileInfo) Size() int64        { return 100 }
func (f fileInfo) Mode() fs.FileMode  { return f.mode }
func (f fileInfo) ModTime() time.Time { return time.Time{} }
func (f fileInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fileInfo) Sys() any           { return nil }

// TestSetKeepsRuntimeOverDev: a package that a lockfile lists twice, once
// dev-only and once needed at run time, is one runtime package.
func TestSetKeepsRuntimeOverDev(t *testing.T) {
	var s set
	dev := pkg("ms", "2.0.0", "/l", "npm-lock")
	dev.Dev = true
	s.add(dev)
	s.add(pkg("ms", "2.0.0", "/l", "npm-lock"))
	s.add(dev)
	if len(s.pkgs) != 1 || s.pkgs[0].Dev {
		t.Errorf("got %+v, want one runtime ms", s.pkgs)
	}
}

// TestPackageLockNamesTheShrinkwrapBesideIt: npm installs from
// npm-shrinkwrap.json and ignores the package-lock.json beside it. Both
// are read; each package-lock.json's set names the shrinkwrap that would
// shadow it, for the merge to look up in the whole image.
func TestPackageLockNamesTheShrinkwrapBesideIt(t *testing.T) {
	lock := func(name, version string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(`{"lockfileVersion": 3, "packages": {"": {"name": "app"}, "node_modules/` + name + `": {"version": "` + version + `"}}}`)}
	}
	files := fstest.MapFS{
		"app/package-lock.json":   lock("stale", "1.0.0"),
		"app/npm-shrinkwrap.json": lock("wrappy", "1.0.2"),
		"other/package-lock.json": lock("left-pad", "1.3.0"),
		"package-lock.json":       lock("ms", "2.1.3"),
	}
	res, err := LockAnalyzer{}.Analyze(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range res.Sets {
		for _, p := range s.Packages {
			got = append(got, s.Origin+" "+p.Name+"@"+p.Version+" shadowed by "+s.ShadowedBy)
		}
	}
	want := []string{
		"app/npm-shrinkwrap.json wrappy@1.0.2 shadowed by ",
		"app/package-lock.json stale@1.0.0 shadowed by app/npm-shrinkwrap.json",
		"other/package-lock.json left-pad@1.3.0 shadowed by other/npm-shrinkwrap.json",
		"package-lock.json ms@2.1.3 shadowed by npm-shrinkwrap.json",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
