// Package analyzertest is the one suite every package analyzer passes, as
// blobtest is for blob stores: given one file the analyzer reads and finds
// something in, it checks what every analyzer owes the scanner whatever
// the file holds — an empty file, a huge one, one that is not UTF-8, one
// cut short — and that the layer machinery around it holds: the file
// replaced or deleted by a later layer takes its packages with it, and
// bumping the analyzer's Version re-runs that analyzer only.
package analyzertest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"

	"io"
	"io/fs"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
)

// Sample is one file an analyzer reads and finds something in.
type Sample struct {
	// Path is where the file lies in a layer: slash-separated, no
	// leading slash, a path the analyzer's Required accepts.
	Path string
	Data []byte
	// Mode is the file's mode; 0 means 0o644. Binaries need 0o755.
	Mode fs.FileMode
}

// HugeSize is the size of the "huge" input: the sample repeated until it
// is at least this long.
const HugeSize = 4 << 20

// maxAllocFactor bounds what an analyzer may allocate while reading the
// huge input, as a multiple of its size (plus a fixed allowance): a parser
// that copies its input a few times passes, one that goes quadratic or
// balloons a tree per byte does not.
const (
	maxAllocFactor = 48
	allocAllowance = 64 << 20
)

// Run runs the suite against a with sample.
func Run(t *testing.T, a inventory.Analyzer, sample Sample) {
	t.Helper()
	if sample.Mode == 0 {
		sample.Mode = 0o644
	}
	if !a.Required(sample.Path, fileInfo{sample.Path, int64(len(sample.Data)), sample.Mode}) {
		t.Fatalf("%s does not require its sample %s", a.Name(), sample.Path)
	}
	t.Run("sample", func(t *testing.T) {
		res := analyze(t, a, sample.Path, sample.Data, sample.Mode)
		if len(packages(res)) == 0 && res.Distro == nil && len(res.Licenses) == 0 {
			t.Fatalf("found nothing in its sample: %+v", res)
		}
	})
	t.Run("empty", func(t *testing.T) {
		if !a.Required(sample.Path, fileInfo{sample.Path, 0, sample.Mode}) {
			return // the scanner never hands it an empty file
		}
		if pkgs := packages(analyze(t, a, sample.Path, nil, sample.Mode)); len(pkgs) != 0 {
			t.Errorf("packages from an empty file: %+v", pkgs)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		for _, n := range cuts(len(sample.Data)) {
			analyze(t, a, sample.Path, sample.Data[:n], sample.Mode)
		}
	})
	t.Run("not UTF-8", func(t *testing.T) {
		analyze(t, a, sample.Path, notUTF8(sample.Data), sample.Mode)
	})
	t.Run("huge", func(t *testing.T) {
		huge := bytes.Repeat(sample.Data, HugeSize/max(len(sample.Data), 1)+1)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		analyze(t, a, sample.Path, huge, sample.Mode)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > raceFactor*uint64(maxAllocFactor*len(huge)+allocAllowance) {
			t.Errorf("reading %d bytes allocated %d bytes (%.0f×)", len(huge), alloc, float64(alloc)/float64(len(huge)))
		}
	})
	t.Run("replaced or deleted in a later layer", func(t *testing.T) {
		base := layer(t, entry{sample.Path, sample.Data, sample.Mode, false})
		found := func(layers ...v1.Layer) []inventory.Package {
			s := &inventory.Scanner{Analyzers: []inventory.Analyzer{a}}
			inv, err := s.Scan(context.Background(), synthetic(t, append([]v1.Layer{base}, layers...)...))
			if err != nil {
				t.Fatal(err)
			}
			return inv.Packages
		}
		if len(packages(analyze(t, a, sample.Path, sample.Data, sample.Mode))) > 0 && len(found()) == 0 {
			t.Fatal("the sample in a layer gives no package")
		}
		if pkgs := found(layer(t, entry{path: whiteout(sample.Path), whiteout: true})); len(pkgs) != 0 {
			t.Errorf("deleted by a later layer, still reported: %+v", pkgs)
		}
		// Replaced by a file of the same size and mode (so the analyzer
		// still reads it) that holds nothing.
		zeros := make([]byte, len(sample.Data))
		if pkgs := found(layer(t, entry{sample.Path, zeros, sample.Mode, false})); len(pkgs) != 0 {
			t.Errorf("replaced by a later layer, still reported: %+v", pkgs)
		}
	})
	t.Run("version bump re-runs only this analyzer", func(t *testing.T) {
		cache, err := inventory.OpenCache(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		var mine, other atomic.Int64
		img := synthetic(t, layer(t, entry{sample.Path, sample.Data, sample.Mode, false}, entry{"berth-suite-marker", []byte("x"), 0o644, false}))
		scan := func(version int) *inventory.Inventory {
			s := &inventory.Scanner{Cache: cache, Analyzers: []inventory.Analyzer{
				counted{Analyzer: a, version: version, runs: &mine},
				counted{Analyzer: marker{}, version: 1, runs: &other},
			}}
			inv, err := s.Scan(context.Background(), img)
			if err != nil {
				t.Fatal(err)
			}
			return inv
		}
		first := scan(a.Version())
		scan(a.Version())
		if mine.Load() != 1 || other.Load() != 1 {
			t.Fatalf("runs after a warm scan: %d and %d, want 1 and 1", mine.Load(), other.Load())
		}
		bumped := scan(a.Version() + 1)
		if mine.Load() != 2 || other.Load() != 1 {
			t.Errorf("runs after the version bump: %d and %d, want 2 and 1", mine.Load(), other.Load())
		}
		if !sameJSON(t, first.Packages, bumped.Packages) {
			t.Error("the re-run found something else")
		}
	})
}

// analyze runs a over one file and checks what holds for any input: no
// error (bad content is a warning), every package named and of an
// ecosystem, and output that encodes as valid UTF-8 JSON.
func analyze(t *testing.T, a inventory.Analyzer, path string, data []byte, mode fs.FileMode) *inventory.Result {
	t.Helper()
	if !a.Required(path, fileInfo{path, int64(len(data)), mode}) {
		return &inventory.Result{}
	}
	files := fstest.MapFS{path: {Data: data, Mode: mode}}
	res, err := a.Analyze(context.Background(), files)
	if err != nil {
		t.Fatalf("%d bytes: error %v; want a warning at most", len(data), err)
	}
	if res == nil {
		t.Fatalf("%d bytes: nil result", len(data))
	}
	for _, p := range packages(res) {
		if p.Name == "" || p.Ecosystem == "" {
			t.Errorf("%d bytes: package without a name or ecosystem: %+v", len(data), p)
		}
	}
	out, err := json.Marshal(res)
	if err != nil {
		t.Fatalf("%d bytes: result does not encode: %v", len(data), err)
	}
	if !utf8.Valid(out) {
		t.Errorf("%d bytes: result is not valid UTF-8", len(data))
	}
	return res
}

func packages(res *inventory.Result) []inventory.Package {
	var out []inventory.Package
	for _, s := range res.Sets {
		out = append(out, s.Packages...)
	}
	return out
}

// cuts returns up to 24 lengths to cut a file of n bytes at: the first
// few bytes, then evenly spread.
func cuts(n int) []int {
	var out []int
	for _, c := range []int{1, 2, 7, 16} {
		if c < n {
			out = append(out, c)
		}
	}
	const spread = 20
	for i := 1; i < spread; i++ {
		if c := n * i / spread; c > 16 {
			out = append(out, c)
		}
	}
	return out
}

// notUTF8 returns data with invalid UTF-8 put in: a Latin-1 byte and a
// stray continuation byte every 512 bytes (text keeps most of its
// structure), and an invalid sequence at the start and end.
func notUTF8(data []byte) []byte {
	out := make([]byte, 0, len(data)+len(data)/256+8)
	out = append(out, 0xff, 0xfe)
	for i := 0; i < len(data); i += 512 {
		out = append(out, data[i:min(i+512, len(data))]...)
		out = append(out, 0xe9, 0x80)
	}
	return append(out, 0xc3)
}

func sameJSON(t *testing.T, a, b any) bool {
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

// counted changes an analyzer's version and counts its runs.
type counted struct {
	inventory.Analyzer
	version int
	runs    *atomic.Int64
}

func (c counted) Version() int { return c.version }
func (c counted) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	c.runs.Add(1)
	return c.Analyzer.Analyze(ctx, files)
}

// marker is a second analyzer in the same layer: its cached result must
// survive another analyzer's version bump.
type marker struct{}

func (marker) Name() string                          { return "berth-suite-marker" }
func (marker) Version() int                          { return 1 }
func (marker) Required(p string, _ fs.FileInfo) bool { return p == "berth-suite-marker" }
func (marker) MaxFileBytes() int64                   { return 1 << 10 }
func (marker) Analyze(context.Context, fs.FS) (*inventory.Result, error) {
	return &inventory.Result{}, nil
}

type fileInfo struct {
	name string
	size int64
	mode fs.FileMode
}

func (f fileInfo) Name() string       { return f.name }
func (f fileInfo) Size() int64        { return f.size }
func (f fileInfo) Mode() fs.FileMode  { return f.mode }
func (f fileInfo) ModTime() time.Time { return time.Time{} }
func (f fileInfo) IsDir() bool        { return false }
func (f fileInfo) Sys() any           { return nil }

type entry struct {
	path     string
	data     []byte
	mode     fs.FileMode
	whiteout bool
}

func whiteout(p string) string {
	dir, base := "", p
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			dir, base = p[:i+1], p[i+1:]
			break
		}
	}
	return dir + ".wh." + base
}

func layer(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Name: e.path, Typeflag: tar.TypeReg, Mode: int64(mode.Perm()), Size: int64(len(e.data))}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// synthetic writes an image of layers to an OCI layout and opens it.
func synthetic(t *testing.T, layers ...v1.Layer) *image.Image {
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
	return im
}
