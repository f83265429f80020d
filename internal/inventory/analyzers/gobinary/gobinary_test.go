package gobinary

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"reflect"
	"runtime/debug"
	"testing"
	"testing/fstest"
	"time"

	"berth.dev/berth/internal/image/imagetest"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/testpeers"
)

const ksApp = "usr/local/bin/ks-app"

// kitchenSinkFile is a file of the shared kitchen-sink image, whose README
// lists the ground truth; the test fails without the image.
func kitchenSinkFile(tb testing.TB, name string) []byte {
	tb.Helper()
	return imagetest.ArchiveFiles(tb, testpeers.Shared(tb, "images", "kitchen-sink.oci.tar"), name)[name]
}

func TestKitchenSinkBinary(t *testing.T) {
	bin := kitchenSinkFile(t, ksApp)
	res, err := Analyzer{}.Analyze(context.Background(), fstest.MapFS{ksApp: {Data: bin, Mode: 0o755}})
	if err != nil {
		t.Fatal(err)
	}
	loc := []string{"/" + ksApp}
	want := []inventory.PackageSet{{Origin: ksApp, Packages: []inventory.Package{
		{Ecosystem: inventory.Go, Name: "golang.org/x/net", Version: "v0.0.0-20210226172049-e18ecbb05110", Locations: loc, Analyzer: "gobinary"},
		{Ecosystem: inventory.Go, Name: "golang.org/x/text", Version: "v0.3.5", Locations: loc, Analyzer: "gobinary"},
		{Ecosystem: inventory.Go, Name: "stdlib", Version: "go1.26.8", Locations: loc, Analyzer: "gobinary"},
		{Ecosystem: inventory.Go, Name: "example.com/kitchensink/ks-app", Version: "", Locations: loc, Analyzer: "gobinary",
			DependsOn: []string{"golang.org/x/net", "golang.org/x/text", "stdlib"}},
	}}}
	if !reflect.DeepEqual(res.Sets, want) {
		t.Errorf("sets:\n got %+v\nwant %+v", res.Sets, want)
	}
	if len(res.Warns) != 0 {
		t.Errorf("warnings: %v", res.Warns)
	}
}

// TestPackages reads build info in the text form `go version -m` prints
// and the linker embeds, so replacements and version forms that the one
// fixture binary lacks are covered too.
func TestPackages(t *testing.T) {
	tests := []struct {
		name string
		// goVersion is the toolchain line, which ParseBuildInfo leaves to
		// its caller.
		goVersion string
		info      string
		want      []inventory.Package
	}{
		{
			name:      "replacement by another module",
			goVersion: "go1.22.1 X:boringcrypto",
			info: "path\texample.com/app\nmod\texample.com/app\tv1.2.3\t\n" +
				"dep\tgithub.com/a/b\tv1.0.0\n=>\tgithub.com/fork/b\tv1.0.1\th1:abc=\n",
			want: []inventory.Package{
				{Name: "github.com/fork/b", Version: "v1.0.1"},
				{Name: "stdlib", Version: "go1.22.1"},
				{Name: "example.com/app", Version: "v1.2.3", DependsOn: []string{"github.com/fork/b", "stdlib"}},
			},
		},
		{
			name:      "replacement by a local directory",
			goVersion: "go1.21.0",
			info: "path\texample.com/app\nmod\texample.com/app\t(devel)\t\n" +
				"dep\tgithub.com/a/b\tv1.0.0\n=>\t../b\t\t\n",
			want: []inventory.Package{
				{Name: "github.com/a/b", Version: ""},
				{Name: "stdlib", Version: "go1.21.0"},
				{Name: "example.com/app", Version: "", DependsOn: []string{"github.com/a/b", "stdlib"}},
			},
		},
		{
			name:      "release version stamped with -ldflags",
			goVersion: "go1.22.1",
			info: "path\texample.com/app/cmd/app\nmod\texample.com/app\t(devel)\t\n" +
				"build\t-ldflags=\"-s -w -X example.com/app/internal/version.Version=v2.4.1 -X main.commit=abc\"\n",
			want: []inventory.Package{
				{Name: "stdlib", Version: "go1.22.1"},
				{Name: "example.com/app", Version: "v2.4.1", DependsOn: []string{"stdlib"}},
			},
		},
		{
			name:      "non-version ldflags values are ignored",
			goVersion: "go1.22.1",
			info: "path\texample.com/app\nmod\texample.com/app\t(devel)\t\n" +
				"build\t-ldflags=\"-X main.version=dev -X=main.Version=unknown -X example.com/app/pkg.Version=1.0.0\"\n",
			want: []inventory.Package{
				{Name: "stdlib", Version: "go1.22.1"},
				{Name: "example.com/app", Version: "", DependsOn: []string{"stdlib"}},
			},
		},
		{
			name:      "development toolchain",
			goVersion: "devel go1.27-1a2b3c4 Tue Jan 5 10:00:00 2027 +0000",
			info:      "path\texample.com/app\nmod\texample.com/app\tv1.0.0\t\n",
			want:      []inventory.Package{{Name: "example.com/app", Version: "v1.0.0"}},
		},
		{
			name:      "GOPATH build without modules",
			goVersion: "go1.21.0",
			info:      "path\tcommand-line-arguments\n",
			want:      []inventory.Package{{Name: "stdlib", Version: "go1.21.0"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := debug.ParseBuildInfo(tt.info)
			if err != nil {
				t.Fatal(err)
			}
			info.GoVersion = tt.goVersion
			got := packages(info, "/bin/app", "gobinary")
			for i := range tt.want {
				tt.want[i].Ecosystem, tt.want[i].Analyzer, tt.want[i].Locations = inventory.Go, "gobinary", []string{"/bin/app"}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestNotGoBinaries checks that executables without Go build info give no
// packages and no warnings, and do not stop the other files being read.
func TestNotGoBinaries(t *testing.T) {
	notGo, err := os.ReadFile("testdata/not-go.elf")
	if err != nil {
		t.Fatal(err)
	}
	files := fstest.MapFS{
		"bin/not-go":  {Data: notGo, Mode: 0o755},
		"bin/script":  {Data: []byte("#!/bin/sh\necho hi\n"), Mode: 0o755},
		"bin/garbage": {Data: bytes.Repeat([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1}, 100), Mode: 0o755},
	}
	bin := kitchenSinkFile(t, ksApp)
	// The same Go binary with its build-info magic scrubbed: a Go program
	// that no longer carries build info.
	files["bin/scrubbed"] = &fstest.MapFile{Data: bytes.ReplaceAll(bin, []byte("\xff Go buildinf:"), []byte("\xff Go xxxxxxxx:")), Mode: 0o755}
	files["bin/ks-app"] = &fstest.MapFile{Data: bin, Mode: 0o755}
	res, err := Analyzer{}.Analyze(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warns) != 0 {
		t.Errorf("warnings: %v", res.Warns)
	}
	for _, s := range res.Sets {
		if s.Origin != "bin/ks-app" {
			t.Errorf("packages from %s: %+v", s.Origin, s.Packages)
		}
	}
	if _, ok := files["bin/ks-app"]; ok && len(res.Sets) != 1 {
		t.Errorf("want the one real Go binary analysed, got %d sets", len(res.Sets))
	}
}

func TestRequired(t *testing.T) {
	tests := []struct {
		name string
		mode fs.FileMode
		size int64
		want bool
	}{
		{"executable", 0o755, 2 << 20, true},
		{"owner-executable only", 0o700, 2 << 20, true},
		{"not executable", 0o644, 2 << 20, false},
		{"symlink", fs.ModeSymlink | 0o777, 2 << 20, false},
		{"directory", fs.ModeDir | 0o755, 2 << 20, false},
		{"tiny script", 0o755, 120, false},
		{"huge: required, the scanner skips it past MaxFileBytes", 0o755, 2 << 30, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := fileInfo{mode: tt.mode, size: tt.size}
			if got := (Analyzer{}).Required("usr/bin/x", info); got != tt.want {
				t.Errorf("Required = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAnalyzeCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Analyzer{}.Analyze(ctx, fstest.MapFS{"bin/x": {Data: []byte("x"), Mode: 0o755}})
	if err == nil {
		t.Fatal("want an error from a cancelled context")
	}
}

func FuzzAnalyze(f *testing.F) {
	notGo, err := os.ReadFile("testdata/not-go.elf")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(notGo)
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Analyzer{}.Analyze(context.Background(), fstest.MapFS{"bin/x": {Data: data, Mode: 0o755}})
		if err != nil || res == nil {
			t.Fatalf("Analyze: %v", err)
		}
	})
}

func BenchmarkAnalyze(b *testing.B) {
	bin := kitchenSinkFile(b, ksApp)
	files := fstest.MapFS{ksApp: {Data: bin, Mode: 0o755}}
	b.SetBytes(int64(len(bin)))
	for b.Loop() {
		if _, err := (Analyzer{}).Analyze(context.Background(), files); err != nil {
			b.Fatal(err)
		}
	}
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
