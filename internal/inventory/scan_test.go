package inventory_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers/dpkg"
	"berth.dev/berth/internal/inventory/analyzers/java"
	"berth.dev/berth/internal/inventory/analyzers/npm"
	"berth.dev/berth/internal/inventory/analyzers/osrelease"
)

// file is a tar entry: a regular file, or a hard link when link is set.
type file struct{ name, body, link string }

func layerTar(t *testing.T, files ...file) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.body))}
		if f.link != "" {
			h.Typeflag, h.Linkname, h.Size = tar.TypeLink, f.link, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, f.body)
	}
	tw.Close()
	raw := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// synthetic writes an image made of layers to an OCI layout and opens it
// with every layer read counted.
func synthetic(t *testing.T, reads *atomic.Int64, layers ...v1.Layer) *image.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	im, err := image.Open(context.Background(), "oci-dir:"+dir, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { im.Close() })
	if reads != nil {
		for i, l := range im.Layers {
			im.Layers[i] = image.NewLayer(l.DiffID, l.Digest, l.MediaType, l.Size, func(ctx context.Context) (io.ReadCloser, error) {
				reads.Add(1)
				return l.Open(ctx)
			})
		}
	}
	return im
}

func stanza(name, version string) string {
	return "Package: " + name + "\nStatus: install ok installed\nVersion: " + version + "\nArchitecture: amd64\n\n"
}

// names lists "name@version@layerIndex" for the packages of inv.
func names(inv *inventory.Inventory) []string {
	idx := map[string]int{}
	for i, l := range inv.Layers {
		idx[l.DiffID] = i + 1
	}
	var out []string
	for _, p := range inv.Packages {
		out = append(out, p.Name+"@"+p.Version+"@"+string(rune('0'+idx[p.Layer])))
	}
	sort.Strings(out)
	return out
}

func TestMergeWhiteoutsAndAttribution(t *testing.T) {
	base := layerTar(t,
		file{name: "var/lib/dpkg/status", body: stanza("a", "1") + stanza("b", "1")},
		file{name: "var/lib/dpkg/status.d/c", body: stanza("c", "1")},
		file{name: "opt/x/var/lib/dpkg/status.d/d", body: stanza("d", "1")},
	)
	tests := []struct {
		name   string
		layers []v1.Layer
		want   []string
	}{
		{"base only", nil, []string{"a@1@1", "b@1@1", "c@1@1"}},
		{"status rewritten without b, a upgraded",
			[]v1.Layer{layerTar(t, file{name: "var/lib/dpkg/status", body: stanza("a", "2") + stanza("e", "1")})},
			[]string{"a@2@2", "c@1@1", "e@1@2"}},
		{"status rewritten unchanged keeps the base layer",
			[]v1.Layer{layerTar(t, file{name: "var/lib/dpkg/status", body: stanza("a", "1") + stanza("b", "1")})},
			[]string{"a@1@1", "b@1@1", "c@1@1"}},
		{"origin whited out", []v1.Layer{layerTar(t, file{name: "var/lib/dpkg/status.d/.wh.c", body: ""})},
			[]string{"a@1@1", "b@1@1"}},
		{"parent directory whited out", []v1.Layer{layerTar(t, file{name: "var/lib/.wh.dpkg", body: ""})}, nil},
		{"opaque directory", []v1.Layer{layerTar(t, file{name: "var/lib/dpkg/.wh..wh..opq", body: ""}, file{name: "var/lib/dpkg/status.d/f", body: stanza("f", "1")})},
			[]string{"f@1@2"}},
		{"status emptied", []v1.Layer{layerTar(t, file{name: "var/lib/dpkg/status", body: "\n"})}, []string{"c@1@1"}},
		{"hard link to a required file", []v1.Layer{layerTar(t,
			file{name: "var/lib/dpkg/status.d/g", body: stanza("g", "1")},
			file{name: "var/lib/dpkg/status.d/h", link: "var/lib/dpkg/status.d/g"},
			file{name: "var/lib/dpkg/status.d/i", link: "etc/not-read"},
		)}, []string{"a@1@1", "b@1@1", "c@1@1", "g@1@2"}},
		{"whited out then restored", []v1.Layer{
			layerTar(t, file{name: "var/lib/dpkg/.wh.status", body: ""}),
			layerTar(t, file{name: "var/lib/dpkg/status", body: stanza("a", "1")}),
		}, []string{"a@1@3", "c@1@1"}},
	}
	// The one warning a case expects, by case name; the others expect none.
	warnings := map[string]string{
		"hard link to a required file": "/var/lib/dpkg/status.d/i is a hard link to /etc/not-read, which no analyzer read",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := synthetic(t, nil, append([]v1.Layer{base}, tt.layers...)...)
			s := &inventory.Scanner{Analyzers: []inventory.Analyzer{dpkg.Analyzer{}}}
			inv, err := s.Scan(context.Background(), im)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(inv); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("packages %q, want %q", got, tt.want)
			}
			warn := warnings[tt.name]
			if warn == "" && len(inv.Warnings) > 0 || warn != "" && (len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], warn)) {
				t.Errorf("warnings %q, want %q", inv.Warnings, warn)
			}
		})
	}
}

// versioned wraps an analyzer to change its version and count its runs.
type versioned struct {
	inventory.Analyzer
	version int
	runs    *atomic.Int64
}

func (v versioned) Version() int { return v.version }
func (v versioned) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	v.runs.Add(1)
	return v.Analyzer.Analyze(ctx, files)
}

func TestCache(t *testing.T) {
	base := layerTar(t, file{name: "var/lib/dpkg/status", body: stanza("a", "1")}, file{name: "etc/os-release", body: "ID=debian\nVERSION_ID=12\n"})
	top := layerTar(t, file{name: "var/lib/dpkg/status", body: stanza("a", "1") + stanza("b", "1")})
	other := layerTar(t, file{name: "etc/motd", body: "hi"})
	cacheDir := t.TempDir()
	cache, err := inventory.OpenCache(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	var dpkgRuns, osRuns atomic.Int64
	scanner := func(dpkgVersion int) *inventory.Scanner {
		return &inventory.Scanner{Cache: cache, Analyzers: []inventory.Analyzer{
			versioned{osrelease.Analyzer{}, 1, &osRuns}, versioned{dpkg.Analyzer{}, dpkgVersion, &dpkgRuns},
		}}
	}
	run := func(s *inventory.Scanner, layers ...v1.Layer) (*inventory.Inventory, int64, []image.Layer) {
		t.Helper()
		var reads atomic.Int64
		var planned []image.Layer
		s.OnPlan = func(l []image.Layer) { planned = l }
		inv, err := s.Scan(context.Background(), synthetic(t, &reads, layers...))
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(planned)) != reads.Load() {
			t.Errorf("planned %d layer reads, made %d", len(planned), reads.Load())
		}
		return inv, reads.Load(), planned
	}

	cold, reads, _ := run(scanner(1), base, top)
	if reads != 2 || dpkgRuns.Load() != 2 || osRuns.Load() != 1 {
		t.Fatalf("cold: %d reads, dpkg ran %d times, os-release %d", reads, dpkgRuns.Load(), osRuns.Load())
	}
	warm, reads, _ := run(scanner(1), base, top)
	if reads != 0 {
		t.Errorf("warm scan read %d layers, want 0", reads)
	}
	warm.Source = cold.Source
	if c, w := jsonOf(t, cold), jsonOf(t, warm); c != w {
		t.Errorf("warm inventory differs:\ncold %s\nwarm %s", c, w)
	}
	// A second image sharing the base reads only its own layer.
	_, reads, planned := run(scanner(1), base, other)
	if reads != 1 || planned[0].Digest == "" {
		t.Errorf("image sharing the base read %d layers, want 1", reads)
	}
	// Bumping dpkg's version re-runs dpkg only.
	dpkgRuns.Store(0)
	osRuns.Store(0)
	bumped, reads, _ := run(scanner(2), base, top)
	if reads != 2 || dpkgRuns.Load() != 2 || osRuns.Load() != 0 {
		t.Errorf("after a version bump: %d reads, dpkg ran %d times, os-release %d; want 2, 2, 0", reads, dpkgRuns.Load(), osRuns.Load())
	}
	if !reflect.DeepEqual(names(bumped), names(cold)) {
		t.Errorf("bumped %q, cold %q", names(bumped), names(cold))
	}
	// A corrupt entry is ignored and rewritten.
	var entries []string
	all, _ := filepath.Glob(filepath.Join(cacheDir, "*", "sha256", "*.json"))
	for _, e := range all {
		if data, _ := os.ReadFile(e); bytes.Contains(data, []byte(`"dpkg-v2"`)) {
			entries = append(entries, e)
		}
	}
	if len(all) != 3 || len(entries) != 2 {
		t.Fatalf("cache files %q, with dpkg v2 %q; want 3 layers, 2 with dpkg v2", all, entries)
	}
	for _, e := range entries {
		os.WriteFile(e, []byte(`{"analyzers": {"dpkg-v2": {"result": {"sets": [tru`), 0o644)
	}
	repaired, reads, _ := run(scanner(2), base, top)
	if reads != 2 || !reflect.DeepEqual(names(repaired), names(cold)) {
		t.Errorf("with corrupt entries: %d reads, packages %q", reads, names(repaired))
	}
	for _, e := range entries {
		if data, _ := os.ReadFile(e); !bytes.Contains(data, []byte(`"name":"a"`)) {
			t.Errorf("%s not rewritten: %s", e, data)
		}
	}
	if _, reads, _ := run(scanner(2), base, top); reads != 0 {
		t.Errorf("after repair: %d reads, want 0", reads)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(cacheDir, "*", "sha256", "*", ".tmp-*")); len(leftovers) > 0 {
		t.Errorf("temporary files left in the cache: %q", leftovers)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestOpenCacheRemovesObsoleteLayouts(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "inventory-v1", "sha256", strings.Repeat("a", 64))
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "dpkg-v2.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	unrelated := filepath.Join(dir, "other-tool")
	if err := os.Mkdir(unrelated, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := inventory.OpenCache(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "inventory-v1")); !os.IsNotExist(err) {
		t.Errorf("inventory-v1 still there (stat: %v)", err)
	}
	if _, err := os.Stat(unrelated); err != nil {
		t.Errorf("a folder that is not a cache layout was touched: %v", err)
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv("BERTH_CACHE_DIR", "/somewhere/else")
	if d, err := inventory.DefaultCacheDir(); err != nil || d != "/somewhere/else" {
		t.Errorf("BERTH_CACHE_DIR not honoured: %q %v", d, err)
	}
	t.Setenv("BERTH_CACHE_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d, err := inventory.DefaultCacheDir(); err != nil || !strings.HasSuffix(d, "/berth") {
		t.Errorf("default %q %v", d, err)
	}
}

func TestMergeLicenseFiles(t *testing.T) {
	mr := "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: "
	base := layerTar(t,
		file{name: "usr/share/doc/a/copyright", body: mr + "MIT\n"},
		file{name: "var/lib/dpkg/status", body: stanza("a", "1")},
	)
	upgrade := layerTar(t,
		file{name: "usr/share/doc/b/copyright", body: mr + "GPL-2+\n"},
		file{name: "var/lib/dpkg/status", body: stanza("a", "1") + stanza("b", "1")},
	)
	licensesOf := func(layers ...v1.Layer) map[string]string {
		s := &inventory.Scanner{Analyzers: []inventory.Analyzer{dpkg.Analyzer{}}}
		inv, err := s.Scan(context.Background(), synthetic(t, nil, layers...))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, p := range inv.Packages {
			out[p.Name] = strings.Join(p.Licenses, ",")
		}
		return out
	}
	if got, want := licensesOf(base, upgrade), map[string]string{"a": "MIT", "b": "GPL-2+"}; !reflect.DeepEqual(got, want) {
		t.Errorf("across layers: %v, want %v", got, want)
	}
	removed := layerTar(t, file{name: "usr/share/doc/a/.wh.copyright"})
	rewritten := layerTar(t, file{name: "usr/share/doc/b/copyright", body: "no license named\n"})
	if got, want := licensesOf(base, upgrade, removed, rewritten), map[string]string{"a": "", "b": ""}; !reflect.DeepEqual(got, want) {
		t.Errorf("after whiteout and rewrite: %v, want %v", got, want)
	}
}

func TestMergeDistro(t *testing.T) {
	osRelease := layerTar(t, file{name: "usr/lib/os-release", body: "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n"})
	tests := []struct {
		name  string
		upper v1.Layer
		want  inventory.Distro
	}{
		{"version file rewritten", layerTar(t, file{name: "etc/debian_version", body: "12.6\n"}),
			inventory.Distro{ID: "debian", VersionID: "12", Codename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)"}},
		{"another distribution on top", layerTar(t, file{name: "etc/alpine-release", body: "3.19.1\n"}),
			inventory.Distro{ID: "alpine", VersionID: "3.19.1"}},
		{"os-release replaced", layerTar(t, file{name: "usr/lib/os-release", body: "ID=debian\nVERSION_ID=13\n"}),
			inventory.Distro{ID: "debian", VersionID: "13"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &inventory.Scanner{Analyzers: []inventory.Analyzer{osrelease.Analyzer{}}}
			inv, err := s.Scan(context.Background(), synthetic(t, nil, osRelease, tt.upper))
			if err != nil {
				t.Fatal(err)
			}
			if inv.Distro == nil || *inv.Distro != tt.want {
				t.Errorf("distro %+v, want %+v", inv.Distro, tt.want)
			}
		})
	}
}

// panicky is an analyzer with a bug: it panics on every layer it reads.
type panicky struct{ inventory.Analyzer }

func (panicky) Name() string { return "panicky" }
func (panicky) Analyze(context.Context, fs.FS) (*inventory.Result, error) {
	panic("index out of range")
}

func TestAnalyzerPanicIsAWarning(t *testing.T) {
	cache, err := inventory.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &inventory.Scanner{Cache: cache, Analyzers: []inventory.Analyzer{panicky{dpkg.Analyzer{}}, dpkg.Analyzer{}}}
	layer := layerTar(t, file{name: "var/lib/dpkg/status", body: stanza("a", "1")})
	for run := 0; run < 2; run++ {
		var reads atomic.Int64
		inv, err := s.Scan(context.Background(), synthetic(t, &reads, layer))
		if err != nil {
			t.Fatal(err)
		}
		if got := names(inv); !reflect.DeepEqual(got, []string{"a@1@1"}) {
			t.Errorf("run %d: packages %q; the other analyzer's must survive", run, got)
		}
		if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], "analyzer panicky failed") {
			t.Errorf("run %d: warnings %q", run, inv.Warnings)
		}
		// The crash is not cached: the second run reads the layer again.
		if reads.Load() != 1 {
			t.Errorf("run %d: %d layer reads, want 1", run, reads.Load())
		}
	}
}

// requiredPanics is an analyzer whose Required has a bug.
type requiredPanics struct{ inventory.Analyzer }

func (requiredPanics) Name() string                      { return "required-panics" }
func (requiredPanics) Required(string, fs.FileInfo) bool { panic("nil map") }

func TestRequiredPanicIsAnError(t *testing.T) {
	s := &inventory.Scanner{Analyzers: []inventory.Analyzer{requiredPanics{dpkg.Analyzer{}}}}
	_, err := s.Scan(context.Background(), synthetic(t, nil, layerTar(t, file{name: "etc/motd", body: "hi"})))
	if !errors.Is(err, inventory.ErrAnalyzerPanic) {
		t.Errorf("error %v, want ErrAnalyzerPanic", err)
	}
}

// located lists "name@version@layerIndex dev? locations…" for the packages
// of inv.
func located(inv *inventory.Inventory) []string {
	idx := map[string]int{}
	for i, l := range inv.Layers {
		idx[l.DiffID] = i + 1
	}
	var out []string
	for _, p := range inv.Packages {
		s := p.Name + "@" + p.Version + "@" + string(rune('0'+idx[p.Layer]))
		if p.Dev {
			s += " dev"
		}
		if p.Local {
			s += " local"
		}
		out = append(out, s+" "+strings.Join(p.Locations, " "))
	}
	sort.Strings(out)
	return out
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// recording is an analyzer that notes the files it is given.
type recording struct {
	inventory.Analyzer
	mu    sync.Mutex
	files []string
}

func (r *recording) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			r.mu.Lock()
			r.files = append(r.files, p)
			r.mu.Unlock()
		}
		return err
	})
	return r.Analyzer.Analyze(ctx, files)
}

// A hard link is the file it links to: its packages are listed once, with
// the target's path first and the link's after it, and the jar is read
// once. Deleting either path in a later layer leaves the other.
func TestHardLinkedJar(t *testing.T) {
	jar := readFile(t, filepath.Join("analyzers", "java", "testdata", "app.jar"))
	linked := layerTar(t,
		file{name: "opt/app/lib/app.jar", body: jar},
		file{name: "opt/app/bin/app-1.0.jar", link: "opt/app/lib/app.jar"},
		file{name: "opt/app/bin/app-current.jar", link: "opt/app/bin/app-1.0.jar"}, // a link to a link
	)
	all := []string{"/opt/app/lib/app.jar", "/opt/app/bin/app-1.0.jar", "/opt/app/bin/app-current.jar"}
	tests := []struct {
		name      string
		upper     []v1.Layer
		locations []string
	}{
		{"one layer", nil, all},
		{"target deleted", []v1.Layer{layerTar(t, file{name: "opt/app/lib/.wh.app.jar"})}, all[1:]},
		{"link deleted", []v1.Layer{layerTar(t, file{name: "opt/app/bin/.wh.app-1.0.jar"})}, []string{all[0], all[2]}},
		{"link replaced by a file that is no jar", []v1.Layer{layerTar(t, file{name: "opt/app/bin/app-1.0.jar", body: "not a zip"})}, []string{all[0], all[2]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := &recording{Analyzer: java.Analyzer{}}
			s := &inventory.Scanner{Analyzers: []inventory.Analyzer{read}}
			inv, err := s.Scan(context.Background(), synthetic(t, nil, append([]v1.Layer{linked}, tt.upper...)...))
			if err != nil {
				t.Fatal(err)
			}
			if tt.upper == nil && !reflect.DeepEqual(read.files, []string{"opt/app/lib/app.jar"}) {
				t.Errorf("the analyzer saw %q; the links must not be read again", read.files)
			}
			want := []string{"com.example:app@1.0.0@1", "com.example:util@2.1.0@1", "org.apache.commons:commons-lang3@3.12.0@1"}
			for i := range want {
				want[i] += " " + strings.Join(tt.locations, " ")
			}
			if got := located(inv); !reflect.DeepEqual(got, want) {
				t.Errorf("packages\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// The same package found by two analyzers (node_modules and the lockfile)
// or in two files is one package: locations of both, the earliest layer,
// dev only when every finding says so. Packages whose purls differ stay
// apart.
func TestSamePURLIsOnePackage(t *testing.T) {
	lock := func(devLodash bool) string {
		return `{"name": "app", "version": "1.0.0", "lockfileVersion": 3, "packages": {
			"": {"name": "app", "version": "1.0.0", "dependencies": {"lodash": "4.17.15"}, "devDependencies": {"jest": "29.0.0"}},
			"node_modules/lodash": {"version": "4.17.15", "license": "MIT", "dev": ` + strconv.FormatBool(devLodash) + `},
			"node_modules/jest": {"version": "29.0.0", "dev": true, "dependencies": {"lodash": "4.17.15"}},
			"node_modules/minimist": {"version": "1.2.0"}
		}}`
	}
	installed := func(name, version string) string {
		return `{"name": "` + name + `", "version": "` + version + `"}`
	}
	modules := layerTar(t,
		file{name: "app/node_modules/lodash/package.json", body: installed("lodash", "4.17.15")},
		file{name: "app/node_modules/minimist/package.json", body: installed("minimist", "1.2.6")},
	)
	tests := []struct {
		name   string
		layers []v1.Layer
		want   []string
	}{
		// With node_modules beside it, the lockfile's entries that have no
		// installed copy (jest pruned, minimist 1.2.0 not the installed
		// one) are not installed packages.
		{"installed below, lockfile above", []v1.Layer{modules, layerTar(t, file{name: "app/package-lock.json", body: lock(false)})}, []string{
			"lodash@4.17.15@1 /app/node_modules/lodash/package.json /app/package-lock.json",
			"minimist@1.2.6@1 /app/node_modules/minimist/package.json",
		}},
		{"dev in the lockfile, installed anyway", []v1.Layer{modules, layerTar(t, file{name: "app/package-lock.json", body: lock(true)})}, []string{
			"lodash@4.17.15@1 /app/node_modules/lodash/package.json /app/package-lock.json",
			"minimist@1.2.6@1 /app/node_modules/minimist/package.json",
		}},
		{"two lockfiles, dev in both", []v1.Layer{layerTar(t,
			file{name: "a/package-lock.json", body: lock(true)},
			file{name: "b/package-lock.json", body: lock(true)},
		)}, []string{
			"jest@29.0.0@1 dev /a/package-lock.json /b/package-lock.json",
			"lodash@4.17.15@1 dev /a/package-lock.json /b/package-lock.json",
			"minimist@1.2.0@1 /a/package-lock.json /b/package-lock.json",
		}},
		{"installed tree deleted", []v1.Layer{modules, layerTar(t, file{name: "app/package-lock.json", body: lock(false)}),
			layerTar(t, file{name: "app/.wh.node_modules"})}, []string{
			"jest@29.0.0@2 dev /app/package-lock.json",
			"lodash@4.17.15@2 /app/package-lock.json",
			"minimist@1.2.0@2 /app/package-lock.json",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &inventory.Scanner{Analyzers: []inventory.Analyzer{npm.InstalledAnalyzer{}, npm.LockAnalyzer{}}}
			inv, err := s.Scan(context.Background(), synthetic(t, nil, tt.layers...))
			if err != nil {
				t.Fatal(err)
			}
			if got := located(inv); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("packages\n%q\nwant\n%q", got, tt.want)
			}
			for _, p := range inv.Packages {
				// The first finding names the analyzer: the installed copy's
				// when there is one.
				first := "npm-lock"
				if strings.HasSuffix(p.Locations[0], "/package.json") {
					first = "npm-installed"
				}
				if p.Name == "lodash" && (p.Analyzer != first || !slices.Contains(p.Licenses, "MIT")) {
					t.Errorf("lodash: analyzer %s, licenses %q", p.Analyzer, p.Licenses)
				}
				if p.Name == "jest" && !reflect.DeepEqual(p.DependsOn, []string{"lodash"}) {
					t.Errorf("jest depends on %q", p.DependsOn)
				}
			}
		})
	}
}

// onlyPath is an analyzer that requires one path and nothing else.
type onlyPath struct {
	inventory.Analyzer
	path string
}

func (o onlyPath) Name() string                          { return "only-path" }
func (o onlyPath) Required(p string, _ fs.FileInfo) bool { return p == o.path }

// An analyzer that wants a file only under a hard link's name reads it
// there, even though another analyzer read it under the target's.
func TestHardLinkReadUnderItsOwnName(t *testing.T) {
	jar := readFile(t, filepath.Join("analyzers", "java", "testdata", "app.jar"))
	layer := layerTar(t,
		file{name: "opt/lib/app.jar", body: jar},
		file{name: "opt/bin/app.jar", link: "opt/lib/app.jar"},
	)
	s := &inventory.Scanner{Analyzers: []inventory.Analyzer{onlyPath{java.Analyzer{}, "opt/lib/app.jar"}, onlyPath{java.Analyzer{}, "opt/bin/app.jar"}}}
	inv, err := s.Scan(context.Background(), synthetic(t, nil, layer))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"com.example:app@1.0.0@1 /opt/lib/app.jar /opt/bin/app.jar",
		"com.example:util@2.1.0@1 /opt/lib/app.jar /opt/bin/app.jar",
		"org.apache.commons:commons-lang3@3.12.0@1 /opt/lib/app.jar /opt/bin/app.jar",
	}
	if got := located(inv); !reflect.DeepEqual(got, want) {
		t.Errorf("packages\n%q\nwant\n%q", got, want)
	}
}

// A root filesystem on disk goes through the same engine: hard links are
// one file, symlinks out of the root are not followed, the kernel's
// directories are not read.
func TestRootFilesystem(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "rootfs")
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	installed := func(name string) string { return `{"name": "` + name + `", "version": "1.0.0"}` }
	write("var/lib/dpkg/status", stanza("a", "1"))
	write("opt/lib/app.jar", readFile(t, filepath.Join("analyzers", "java", "testdata", "app.jar")))
	write("opt/bin/app.sh", "#!/bin/sh\n")
	if err := os.Link(filepath.Join(root, "opt/lib/app.jar"), filepath.Join(root, "opt/bin/app.jar")); err != nil {
		t.Fatal(err)
	}
	write("srv/node_modules/inside/package.json", installed("inside"))
	write("proc/1/root/node_modules/in-proc/package.json", installed("in-proc"))
	outside := filepath.Join(parent, "outside")
	if err := os.MkdirAll(filepath.Join(outside, "outside"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(outside, "outside", "package.json"), []byte(installed("outside")), 0o644)
	if err := os.Symlink(outside, filepath.Join(root, "app")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "web"), 0o755)
	if err := os.Symlink(outside, filepath.Join(root, "web", "node_modules")); err != nil {
		t.Fatal(err)
	}

	img, err := image.Open(context.Background(), "dir:"+root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	s := &inventory.Scanner{Analyzers: []inventory.Analyzer{dpkg.Analyzer{}, java.Analyzer{}, npm.InstalledAnalyzer{}}}
	inv, err := s.Scan(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range inv.Packages {
		got = append(got, p.Name+" "+strings.Join(p.Locations, " "))
	}
	want := []string{
		"a /var/lib/dpkg/status",
		"com.example:app /opt/bin/app.jar /opt/lib/app.jar",
		"com.example:util /opt/bin/app.jar /opt/lib/app.jar",
		"org.apache.commons:commons-lang3 /opt/bin/app.jar /opt/lib/app.jar",
		"inside /srv/node_modules/inside/package.json",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("packages\n%q\nwant\n%q", got, want)
	}
	// The fixture jar holds one damaged nested jar; read once, it warns
	// once, under the name the walk met first.
	if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], "/opt/bin/app.jar!/BOOT-INF/lib/garbage.jar") {
		t.Errorf("warnings %q", inv.Warnings)
	}
}
