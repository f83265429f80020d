package java

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"berth.dev/berth/internal/golden"
	"berth.dev/berth/internal/image/imagetest"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/testpeers"
)

// TestGolden reads the archives testdata/gen.sh builds: a Spring Boot
// style fat jar with nested jars (one named only by its OSGi manifest, one
// with no version anywhere, one that is not a zip), an EAR → WAR → jar →
// jar chain one level deeper than is read, and a .jar that is not a zip.
func TestGolden(t *testing.T) {
	res, err := Analyzer{}.Analyze(context.Background(), os.DirFS("testdata"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden.Check(t, filepath.Join("testdata", "golden.json"), got)
}

const commonsLang3 = "usr/share/java/commons-lang3.jar"

// kitchenSinkFile is a file of the shared kitchen-sink image, whose README
// lists the ground truth; the test fails without the image.
func kitchenSinkFile(tb testing.TB, name string) []byte {
	tb.Helper()
	return imagetest.ArchiveFiles(tb, testpeers.Shared(tb, "images", "kitchen-sink.oci.tar"), name)[name]
}

// TestKitchenSink reads Debian's commons-lang3 jar from the shared image.
// Its symlink commons-lang3-3.12.0.jar is not a regular file, so the walker
// never offers it and the jar is counted once.
func TestKitchenSink(t *testing.T) {
	jar := kitchenSinkFile(t, commonsLang3)
	res, err := Analyzer{}.Analyze(context.Background(), fstest.MapFS{commonsLang3: {Data: jar, Mode: 0o644}})
	if err != nil {
		t.Fatal(err)
	}
	want := []inventory.PackageSet{{Origin: commonsLang3, Packages: []inventory.Package{{
		Ecosystem: inventory.Maven, Name: "org.apache.commons:commons-lang3", Version: "3.12.0",
		Locations: []string{"/" + commonsLang3}, Analyzer: "java-archive",
	}}}}
	if len(res.Warns) != 0 || len(res.Sets) != 1 || !equalJSON(t, res.Sets, want) {
		t.Errorf("got %+v (warnings %v), want %+v", res.Sets, res.Warns, want)
	}
	link := fileInfo{mode: fs.ModeSymlink | 0o777, size: 17}
	if (Analyzer{}).Required("usr/share/java/commons-lang3-3.12.0.jar", link) {
		t.Error("the symlink was required; the jar would be counted twice")
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

func TestRequired(t *testing.T) {
	tests := []struct {
		path string
		info fileInfo
		want bool
	}{
		{"app/app.jar", fileInfo{mode: 0o644, size: 1 << 20}, true},
		{"opt/x.WAR", fileInfo{mode: 0o644, size: 1 << 20}, true},
		{"opt/x.ear", fileInfo{mode: 0o644, size: 1 << 20}, true},
		{"var/jenkins/plugins/git.jpi", fileInfo{mode: 0o644, size: 1 << 20}, true},
		{"opt/x.zip", fileInfo{mode: 0o644, size: 1 << 20}, false},
		{"opt/x.jar", fileInfo{mode: fs.ModeDir | 0o755}, false},
		{"opt/huge.jar", fileInfo{mode: 0o644, size: 3 << 30}, true}, // the scanner skips it past MaxFileBytes
	}
	for _, tt := range tests {
		if got := (Analyzer{}).Required(tt.path, tt.info); got != tt.want {
			t.Errorf("Required(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

// TestFromManifest covers how an archive without pom.properties is named.
func TestFromManifest(t *testing.T) {
	tests := []struct {
		file     string
		manifest string
		name     string
		version  string
	}{
		{"guava-31.1-jre.jar", "Bundle-SymbolicName: com.google.guava\n", "com.google:guava", "31.1-jre"},
		{"x.jar", "Implementation-Vendor-Id: org.example\nImplementation-Version: 2.0\n", "org.example:x", "2.0"},
		{"lib-1.0.jar", "", "lib", "1.0"},
		{"lib.jar", "Created-By: hand\n", "", ""},
	}
	for _, tt := range tests {
		name, version := fromManifest(parseManifest([]byte(tt.manifest)), tt.file)
		if name != tt.name || version != tt.version {
			t.Errorf("%s: got %q %q, want %q %q", tt.file, name, version, tt.name, tt.version)
		}
	}
}

// TestInflateLimits checks that an entry claiming or reaching more than
// its limit is refused, and that the per-archive budget holds.
func TestInflateLimits(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	fw, err := zw.Create("META-INF/maven/g/a/pom.properties")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(bytes.Repeat([]byte("x"), 4096)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	w := walker{budget: 1 << 20}
	if _, err := w.inflate(zr.File[0], 1024); err == nil {
		t.Error("entry over the limit was inflated")
	}
	w.budget = 100
	if _, err := w.inflate(zr.File[0], 1<<20); err == nil {
		t.Error("entry over the budget was inflated")
	}
}

func FuzzAnalyze(f *testing.F) {
	for _, s := range []string{"testdata/app.jar", "testdata/shop.ear"} {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Analyzer{}.Analyze(context.Background(), fstest.MapFS{"a.jar": {Data: data}})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range res.Sets {
			for _, p := range s.Packages {
				if p.Name == "" || p.Version == "" {
					t.Fatalf("package without name or version: %+v", p)
				}
			}
		}
	})
}

func BenchmarkAnalyze(b *testing.B) {
	jar := kitchenSinkFile(b, commonsLang3)
	files := fstest.MapFS{commonsLang3: {Data: jar}}
	b.SetBytes(int64(len(jar)))
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
