package dotnet

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"berth.dev/berth/internal/golden"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzertest"
)

func TestGolden(t *testing.T) {
	tests := []struct {
		dir      string
		analyzer inventory.Analyzer
	}{
		{"app", Analyzer{}},
		{"src", LockAnalyzer{}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
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

func TestBadInput(t *testing.T) {
	good, err := os.ReadFile("testdata/app/Shop.deps.json")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"truncated":    good[:len(good)/2],
		"no libraries": []byte(`{"runtimeTarget": {}}`),
		"bad key":      []byte(`{"libraries": {"NoVersion": {"type": "package"}}}`),
	} {
		// A file whose only library is unreadable gives no set.
		files := fstest.MapFS{"app/Shop.deps.json": {Data: good}, "bad/Bad.deps.json": {Data: data}}
		res, err := Analyzer{}.Analyze(context.Background(), files)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Warns) != 1 || !strings.HasPrefix(res.Warns[0], "/bad/Bad.deps.json: ") {
			t.Errorf("%s: warnings = %q", name, res.Warns)
		}
		if len(res.Sets) != 1 || res.Sets[0].Origin != "app/Shop.deps.json" {
			t.Errorf("%s: sets = %+v", name, res.Sets)
		}
	}
}

// TestDepsJSONSkipsBadKeys: a library key that is not Name/Version is
// named in the error; the other libraries are still read.
func TestDepsJSONSkipsBadKeys(t *testing.T) {
	tests := []struct {
		name, deps string
		want       []string
		wantErr    string
	}{
		{"one bad key", `{"libraries": {"A/1.0": {"type": "package"}, "NoVersion": {"type": "package"}, "B/": {"type": "package"}}}`,
			[]string{"A@1.0"}, `libraries not Name/Version, skipped: "B/", "NoVersion"`},
		{"projects are the application's own, listed local", `{"libraries": {"App/1.0.0": {"type": "project"}, "A/1.0": {"type": "package"}}}`,
			[]string{"A@1.0", "App@1.0.0 local"}, ""},
		{"framework references are not packages", `{"libraries": {"System.Net.Http/4.0.0.0": {"type": "referenceassembly"}, "mscorlib/4.0.0.0": {"type": "reference"}, "A/1.0": {"type": "package"}}}`,
			[]string{"A@1.0"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, err := ParseDepsJSON([]byte(tt.deps), "/app/App.deps.json", "dotnet-deps")
			if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
			if (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestDepsJSONMetaPackages: a package whose entry in the runtime target
// lists no runtime, per-RID or native asset ships no code (a
// meta-package) and is left out; a package the runtime target does not
// list, or every package when there is no runtime target, is kept.
func TestDepsJSONMetaPackages(t *testing.T) {
	libs := `"libraries": {
    "App/1.0.0": {"type": "project"},
    "JsonDiffPatch/2.0.61": {"type": "package"},
    "Libuv/1.9.1": {"type": "package"},
    "Native.Only/1.0.0": {"type": "package"},
    "Microsoft.NETCore.App/1.1.2": {"type": "package"},
    "NETStandard.Library/1.6.0": {"type": "package"},
    "Not.In.Target/2.0.0": {"type": "package"}
  }`
	target := `{
      "App/1.0.0": {"dependencies": {"JsonDiffPatch": "2.0.61"}, "runtime": {"App.dll": {}}},
      "JsonDiffPatch/2.0.61": {"dependencies": {"Microsoft.NETCore.App": "1.1.2"}, "runtime": {"lib/netcoreapp1.1/JsonDiffPatch.dll": {}}},
      "Libuv/1.9.1": {"runtimeTargets": {"runtimes/debian-x64/native/libuv.so": {"rid": "debian-x64", "assetType": "native"}}},
      "Native.Only/1.0.0": {"native": {"runtimes/linux-x64/native/libx.so": {}}},
      "Microsoft.NETCore.App/1.1.2": {"dependencies": {"Libuv": "1.9.1", "NETStandard.Library": "1.6.0"}},
      "NETStandard.Library/1.6.0": {"runtime": {}}
    }`
	tests := []struct {
		name, deps string
		want       []string
	}{
		{"runtime target", `{"runtimeTarget": {"name": ".NETCoreApp,Version=v6.0"}, "targets": {".NETCoreApp,Version=v6.0": ` + target + `}, ` + libs + `}`,
			[]string{"App@1.0.0 local", "JsonDiffPatch@2.0.61", "Libuv@1.9.1", "Native.Only@1.0.0", "Not.In.Target@2.0.0"}},
		{"no runtime target", `{"targets": {".NETCoreApp,Version=v6.0": ` + target + `}, ` + libs + `}`,
			[]string{"App@1.0.0 local", "JsonDiffPatch@2.0.61", "Libuv@1.9.1", "Microsoft.NETCore.App@1.1.2", "NETStandard.Library@1.6.0", "Native.Only@1.0.0", "Not.In.Target@2.0.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, err := ParseDepsJSON([]byte(tt.deps), "/app/App.deps.json", "dotnet-deps")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range pkgs {
				got = append(got, p.Name+"@"+p.Version+localMark(p))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestBadPackagesLock(t *testing.T) {
	good, err := os.ReadFile("testdata/src/packages.lock.json")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"truncated":   good[:len(good)/2],
		"future":      []byte(`{"version": 9, "dependencies": {}}`),
		"no resolved": []byte(`{"version": 1, "dependencies": {"net8.0": {"A": {"type": "Direct"}}}}`),
	} {
		files := fstest.MapFS{"src/packages.lock.json": {Data: good}, "bad/packages.lock.json": {Data: data}}
		res, err := LockAnalyzer{}.Analyze(context.Background(), files)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Warns) != 1 || !strings.HasPrefix(res.Warns[0], "/bad/packages.lock.json: ") {
			t.Errorf("%s: warnings = %q", name, res.Warns)
		}
		if len(res.Sets) != 1 || res.Sets[0].Origin != "src/packages.lock.json" {
			t.Errorf("%s: sets = %+v", name, res.Sets)
		}
	}
}

func TestRequired(t *testing.T) {
	tests := []struct {
		path string
		mode fs.FileMode
		want bool
	}{
		{"app/Shop.deps.json", 0o644, true},
		{"app/Shop.runtimeconfig.json", 0o644, false},
		{"app/deps.json", 0o644, false},
		{"app/Shop.deps.json", fs.ModeSymlink, false},
	}
	for _, tt := range tests {
		if got := (Analyzer{}).Required(tt.path, fileInfo{mode: tt.mode}); got != tt.want {
			t.Errorf("Required(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
	if !(LockAnalyzer{}).Required("src/Shop/packages.lock.json", fileInfo{mode: 0o644}) ||
		(LockAnalyzer{}).Required("src/Shop/packages.config", fileInfo{mode: 0o644}) {
		t.Error("LockAnalyzer.Required: want packages.lock.json only")
	}
}

func FuzzParsePackagesLock(f *testing.F) {
	b, err := os.ReadFile("testdata/src/packages.lock.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := ParsePackagesLock(data, "/x", "fuzz")
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

func FuzzParseDepsJSON(f *testing.F) {
	b, err := os.ReadFile("testdata/app/Shop.deps.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		// Libraries it cannot read are skipped, the others returned
		// with the error that names them.
		pkgs, _ := ParseDepsJSON(data, "/x", "fuzz")
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

// TestRuntimePack: a self-contained app's deps.json lists the runtime it
// bundles as a "runtimepack" library; it is reported under its NuGet
// name, where the runtime's advisories are filed.
func TestRuntimePack(t *testing.T) {
	deps := `{
  "runtimeTarget": {"name": ".NETCoreApp,Version=v8.0/linux-x64"},
  "targets": {
    ".NETCoreApp,Version=v8.0/linux-x64": {
      "app/1.0.0": {"dependencies": {"Newtonsoft.Json": "13.0.3", "runtimepack.Microsoft.NETCore.App.Runtime.linux-x64": "8.0.1"}},
      "runtimepack.Microsoft.NETCore.App.Runtime.linux-x64/8.0.1": {"runtime": {"System.Private.CoreLib.dll": {}}},
      "runtimepack.Microsoft.AspNetCore.App.Runtime.linux-x64/8.0.1": {"runtime": {}},
      "Newtonsoft.Json/13.0.3": {"runtime": {"lib/net6.0/Newtonsoft.Json.dll": {}}}
    }
  },
  "libraries": {
    "app/1.0.0": {"type": "project", "serviceable": false, "sha512": ""},
    "runtimepack.Microsoft.NETCore.App.Runtime.linux-x64/8.0.1": {"type": "runtimepack", "serviceable": false, "sha512": ""},
    "runtimepack.Microsoft.AspNetCore.App.Runtime.linux-x64/8.0.1": {"type": "runtimepack", "serviceable": false, "sha512": ""},
    "Newtonsoft.Json/13.0.3": {"type": "package", "serviceable": true, "sha512": "sha512-x"}
  }
}`
	pkgs, err := ParseDepsJSON([]byte(deps), "/app/app.deps.json", "dotnet-deps")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pkgs {
		got = append(got, p.Name+"@"+p.Version+localMark(p))
	}
	want := []string{"Microsoft.AspNetCore.App.Runtime.linux-x64@8.0.1", "Microsoft.NETCore.App.Runtime.linux-x64@8.0.1", "Newtonsoft.Json@13.0.3", "app@1.0.0 local"}
	sort.Strings(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// localMark is " local" for a package not from the registry.
func localMark(p inventory.Package) string {
	if p.Local {
		return " local"
	}
	return ""
}
