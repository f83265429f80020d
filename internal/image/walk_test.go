package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"berth.dev/berth/internal/image/imagetest"
)

type tarEntry2 struct {
	name, body, link string
	typ              byte
	size             int64 // when set, overrides len(body) in the header
}

func makeTar(t testing.TB, entries ...tarEntry2) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: 0o644, Size: int64(len(e.body))}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

func diffIDOf(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// memLayer is a layer whose blob is data; diffID is that of raw.
func memLayer(diffID string, blob []byte) Layer {
	return NewLayer(diffID, "", "", int64(len(blob)), func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob)), nil
	})
}

type seen struct {
	path string
	kind Kind
	body string
	link string
}

func walkAll(t testing.TB, l Layer, limits Limits) ([]seen, *Changes, error) {
	t.Helper()
	var got []seen
	ch, err := Walk(context.Background(), l, WalkOptions{Limits: limits}, func(e *Entry, body io.Reader) error {
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		got = append(got, seen{e.Path, e.Kind, string(b), e.Link})
		return nil
	})
	return got, ch, err
}

func TestWalkEntriesAndWhiteouts(t *testing.T) {
	raw := makeTar(t,
		tarEntry2{name: "./etc/", typ: tar.TypeDir},
		tarEntry2{name: "./etc/os-release", body: "ID=debian\n"},
		tarEntry2{name: "/usr/bin/perl", body: "ELF"},
		tarEntry2{name: "usr/bin/perl5.36.0", typ: tar.TypeLink, link: "./usr/bin/perl"},
		tarEntry2{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
		tarEntry2{name: "app/.wh.npm-debug.log"},
		tarEntry2{name: "var/log/apt/.wh..wh..opq"},
		tarEntry2{name: ".wh..wh..opq"},
		tarEntry2{name: "../../etc/passwd", body: "root:x:0:0"},
		tarEntry2{name: "a/../../escape", body: "x"},
		tarEntry2{name: "bad-link", typ: tar.TypeLink, link: "../../etc/shadow"},
		tarEntry2{name: "dir/.wh...", body: ""},
	)
	for _, compress := range []string{"none", "gzip", "zstd"} {
		blob := raw
		switch compress {
		case "gzip":
			blob = gzipped(t, raw)
		case "zstd":
			enc, err := zstd.NewWriter(nil)
			if err != nil {
				t.Fatal(err)
			}
			blob = enc.EncodeAll(raw, nil)
		}
		got, ch, err := walkAll(t, memLayer(diffIDOf(raw), blob), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		want := []seen{
			{"etc", KindDir, "", ""},
			{"etc/os-release", KindFile, "ID=debian\n", ""},
			{"usr/bin/perl", KindFile, "ELF", ""},
			{"usr/bin/perl5.36.0", KindHardLink, "", "usr/bin/perl"},
			{"lib", KindSymlink, "", "usr/lib"},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("entries:\n got %+v\nwant %+v", got, want)
		}
		if !reflect.DeepEqual(maps.Collect(ch.Links.All()), map[string]string{"lib": "usr/lib"}) || ch.LinkBytes() != int64(len("lib")+len("usr/lib")) {
			t.Errorf("links %q (%d bytes)", maps.Collect(ch.Links.All()), ch.LinkBytes())
		}
		if !reflect.DeepEqual(ch.Whiteouts, []string{"app/npm-debug.log"}) || !reflect.DeepEqual(ch.Opaque, []string{"var/log/apt", ""}) {
			t.Errorf("whiteouts %q opaque %q", ch.Whiteouts, ch.Opaque)
		}
		if len(ch.Warnings) != 4 {
			t.Fatalf("want 4 warnings (two escaping names, an escaping link, an empty whiteout), got %q", ch.Warnings)
		}
		for _, w := range ch.Warnings[:3] {
			if !strings.Contains(w, "escapes the root") || !strings.Contains(w, diffIDOf(raw)) {
				t.Errorf("warning %q should say the entry escapes and name the layer", w)
			}
		}
	}
}

func TestWalkBadInput(t *testing.T) {
	raw := makeTar(t, tarEntry2{name: "etc/os-release", body: strings.Repeat("ID=debian\n", 200)})
	gz := gzipped(t, raw)
	corrupt := append([]byte(nil), gz...)
	for i := 20; i < 40; i++ {
		corrupt[i] ^= 0xff
	}
	tests := []struct {
		name   string
		layer  Layer
		limits Limits
		want   error
		msg    string
	}{
		{"corrupt gzip", memLayer(diffIDOf(raw), corrupt), Limits{}, nil, "decompress"},
		{"not gzip at all", memLayer(diffIDOf(raw), []byte{0x1f, 0x8b, 0, 0}), Limits{}, nil, "gzip"},
		{"truncated tar", memLayer(diffIDOf(raw), raw[:700]), Limits{}, nil, "unexpected EOF"},
		{"truncated gzip", memLayer(diffIDOf(raw), gz[:len(gz)/2]), Limits{}, nil, "unexpected EOF"},
		{"wrong diffID", memLayer(diffIDOf([]byte("other")), gz), Limits{}, ErrDiffIDMismatch, "does not match its diffID"},
		{"file too large", memLayer(diffIDOf(raw), gz), Limits{MaxFileBytes: 100}, ErrLimit, "MaxFileBytes"},
		{"layer too large", memLayer(diffIDOf(raw), gz), Limits{MaxLayerBytes: 1024}, ErrLimit, "MaxLayerBytes"},
		{"too many files", memLayer("", makeTar(t, tarEntry2{name: "a"}, tarEntry2{name: "b"}, tarEntry2{name: "c"})), Limits{MaxFiles: 2}, ErrLimit, "MaxFiles"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := walkAll(t, tt.layer, tt.limits)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v is not %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), "layer ") {
				t.Errorf("error %q should name the layer and contain %q", err, tt.msg)
			}
		})
	}
}

// sparseLayer is an uncompressed layer of a few KB holding sparse files
// of the given logical sizes, each with a little data at its start.
func sparseLayer(t *testing.T, sizes map[string]int64) Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, size := range sizes {
		if err := imagetest.WriteSparse(tw, &buf, name, 0o755, size, []byte("data")); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return memLayer(diffIDOf(buf.Bytes()), buf.Bytes())
}

// TestWalkCountsSparseFiles: sparse entries declare their logical size
// but store only their data; a few KB may announce gigabytes of zeros.
// The walker counts them at full size against the layer limits, and
// refuses the layer before anything reads a byte of the holes.
func TestWalkCountsSparseFiles(t *testing.T) {
	attack := map[string]int64{
		"usr/bin/tool1": 1 << 30, "usr/bin/tool2": 1 << 30, "usr/bin/tool3": 1 << 30, "usr/bin/tool4": 1 << 30,
		"var/lib/dpkg/status": 2 << 30,
	}
	tests := []struct {
		name   string
		sizes  map[string]int64
		limits Limits
		msg    string // "" for a layer that walks
	}{
		{"issue's image, default limits", attack, Limits{}, "MaxRatio"},
		{"past the layer size", attack, Limits{MaxRatio: 1 << 40, MaxLayerBytes: 3 << 30}, "MaxLayerBytes"},
		{"small sparse file", map[string]int64{"var/log/lastlog": 1 << 20}, Limits{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := sparseLayer(t, tt.sizes)
			var read int64
			_, err := Walk(context.Background(), l, WalkOptions{Limits: tt.limits}, func(e *Entry, body io.Reader) error {
				if e.Size > 1<<20 {
					return nil // what the walker itself reads is the point
				}
				n, err := io.Copy(io.Discard, body)
				read += n
				if err == nil && e.Kind == KindFile && n != e.Size {
					t.Errorf("%s: read %d bytes of %d", e.Path, n, e.Size)
				}
				return err
			})
			if tt.msg == "" {
				if err != nil || read != 1<<20 {
					t.Errorf("walk: %v, %d bytes read; want the file's 1 MiB", err, read)
				}
				return
			}
			if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), "sparse") {
				t.Fatalf("error %v; want ErrLimit naming %s and the sparse file", err, tt.msg)
			}
			if read != 0 {
				t.Errorf("%d bytes read before the refusal", read)
			}
		})
	}
}

// linkLayer streams an uncompressed layer of n symlinks with targets of
// targetLen bytes, generated as the walker reads it: the walker's limits
// stop it long before the whole layer exists.
func linkLayer(n, targetLen int) Layer {
	return NewLayer("", "", "", 0, func(context.Context) (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			target := "/" + strings.Repeat("t", targetLen-1)
			for i := range n {
				if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("links/%06d", i), Typeflag: tar.TypeSymlink, Linkname: target}); err != nil {
					pw.CloseWithError(err)
					return
				}
			}
			pw.CloseWithError(tw.Close())
		}()
		return pr, nil
	})
}

// TestWalkBoundsSymlinks: the walker keeps every symlink of a layer for
// the scan; 200,000 links with 10 KB targets once took 2.8 GiB. Targets
// no system could resolve are not kept, and the rest is bounded.
func TestWalkBoundsSymlinks(t *testing.T) {
	t.Run("targets longer than PATH_MAX", func(t *testing.T) {
		_, ch, err := walkAll(t, linkLayer(2_000, 10_000), Limits{MaxLinkBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if ch.Links.Len() != 0 || ch.LinkBytes() != 0 {
			t.Errorf("%d links kept (%d bytes), want none", ch.Links.Len(), ch.LinkBytes())
		}
		if len(ch.Warnings) != maxWarnings+1 || !strings.Contains(ch.Warnings[0], "target of 10000 bytes") ||
			!strings.Contains(ch.Warnings[maxWarnings], "1900 more warnings") {
			t.Errorf("%d warnings, first %q, last %q", len(ch.Warnings), ch.Warnings[0], ch.Warnings[len(ch.Warnings)-1])
		}
	})
	t.Run("past MaxLinkBytes", func(t *testing.T) {
		var seen int
		_, err := Walk(context.Background(), linkLayer(20_000, 4000), WalkOptions{Limits: Limits{MaxLinkBytes: 1 << 20}},
			func(*Entry, io.Reader) error { seen++; return nil })
		if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "MaxLinkBytes") {
			t.Fatalf("error %v, want ErrLimit naming MaxLinkBytes", err)
		}
		// 1 MiB holds 262 links of 4,012 bytes: the walk stopped there.
		if seen != (1<<20)/4012 {
			t.Errorf("%d links walked before the refusal", seen)
		}
	})
	t.Run("within the limit", func(t *testing.T) {
		_, ch, err := walkAll(t, linkLayer(200, 4000), Limits{MaxLinkBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if ch.Links.Len() != 200 || ch.LinkBytes() != 200*4012 {
			t.Errorf("%d links, %d bytes; want 200, %d", ch.Links.Len(), ch.LinkBytes(), 200*4012)
		}
	})
}

// zeroTar streams a tar holding one file of n zero bytes, never holding
// more than a buffer of it in memory.
func zeroTar(n int64) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		if err := tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Size: n, Mode: 0o644}); err != nil {
			pw.CloseWithError(err)
			return
		}
		if _, err := io.CopyN(tw, zeroReader{}, n); err != nil {
			pw.CloseWithError(err)
			return
		}
		pw.CloseWithError(tw.Close())
	}()
	return pr
}

// streamedBomb gzips 1 GiB of zeros (about 1 MiB compressed) on the fly.
func streamedBomb() Layer {
	return NewLayer("sha256:"+strings.Repeat("0", 64), "", "", 0, func(context.Context) (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			zw, _ := gzip.NewWriterLevel(pw, gzip.BestSpeed)
			_, err := io.Copy(zw, zeroTar(1<<30))
			if err == nil {
				err = zw.Close()
			}
			pw.CloseWithError(err)
		}()
		return pr, nil
	})
}

func TestWalkRefusesGzipBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: decompresses a few hundred MiB (scripts/test.sh, as CI runs, does not pass -short)")
	}
	// Default limits: the ratio check stops it once ratioFloor is passed.
	var calls int
	_, err := Walk(context.Background(), streamedBomb(), WalkOptions{}, func(*Entry, io.Reader) error { calls++; return nil })
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "MaxRatio") {
		t.Fatalf("bomb not refused by the ratio limit: %v", err)
	}
	// A file-size limit refuses it from the header alone.
	_, err = Walk(context.Background(), streamedBomb(), WalkOptions{Limits: Limits{MaxFileBytes: 256 << 20}}, func(*Entry, io.Reader) error { return nil })
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "MaxFileBytes") || !strings.Contains(err.Error(), `"zeros"`) {
		t.Fatalf("bomb not refused by the file limit: %v", err)
	}
	if hwm, ok := peakRSS(t); ok && hwm > 256<<20 {
		t.Errorf("peak RSS %d MiB, want under 256 MiB", hwm>>20)
	}
}

// peakRSS reads the process's high-water resident set size (Linux only).
func peakRSS(t *testing.T) (int64, bool) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err != nil {
				t.Fatalf("parse %q: %v", line, err)
			}
			return kb << 10, true
		}
	}
	return 0, false
}

func TestSafePath(t *testing.T) {
	tests := map[string]struct {
		want string
		ok   bool
	}{
		"etc/passwd": {"etc/passwd", true}, "./etc/passwd": {"etc/passwd", true}, "/etc/passwd": {"etc/passwd", true},
		"//etc//x/": {"etc/x", true}, "./": {"", true}, "a/../b": {"b", true},
		"../etc/passwd": {"", false}, "../../etc/passwd": {"", false}, "a/../../b": {"", false}, "..": {"", false},
	}
	for in, tt := range tests {
		got, ok := safePath(in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("safePath(%q) = %q, %v; want %q, %v", in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestResolveWithin(t *testing.T) {
	links := map[string]string{
		"etc/os-release": "../usr/lib/os-release",
		"lib":            "usr/lib",
		"root-link":      "/",
		"up":             "../../../..",
		"abs":            "/usr/share",
		"loop-a":         "loop-b",
		"loop-b":         "loop-a",
		"self":           "self/x",
	}
	readlink := func(p string) (string, bool) { t, ok := links[p]; return t, ok }
	tests := []struct{ in, want string }{
		{"etc/os-release", "usr/lib/os-release"},
		{"lib/x/y", "usr/lib/x/y"},
		{"root-link/etc/passwd", "etc/passwd"},
		{"root-link/root-link/root-link", ""},
		{"up/etc/shadow", "etc/shadow"},
		{"abs/doc", "usr/share/doc"},
		{"../../x", "x"},
	}
	for _, tt := range tests {
		got, err := ResolveWithin(tt.in, readlink)
		if err != nil || got != tt.want {
			t.Errorf("ResolveWithin(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, p := range []string{"loop-a", "loop-b/x", "self"} {
		if _, err := ResolveWithin(p, readlink); !errors.Is(err, ErrSymlinkLoop) {
			t.Errorf("ResolveWithin(%q): %v, want a symlink loop error", p, err)
		}
	}
}

func FuzzWalk(f *testing.F) {
	f.Add(makeTar(f, tarEntry2{name: "etc/os-release", body: "ID=x"}, tarEntry2{name: "a/.wh.b"}, tarEntry2{name: "l", typ: tar.TypeLink, link: "etc/os-release"}))
	f.Add(gzipped(f, makeTar(f, tarEntry2{name: "../x", body: "y"}, tarEntry2{name: ".wh..wh..opq"})))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0})
	f.Fuzz(func(t *testing.T, blob []byte) {
		limits := Limits{MaxLayerBytes: 1 << 20, MaxFileBytes: 1 << 20, MaxFiles: 1000}
		_, err := Walk(context.Background(), memLayer("", blob), WalkOptions{Limits: limits}, func(e *Entry, body io.Reader) error {
			if e.Path == "" || strings.HasPrefix(e.Path, "/") || e.Path == ".." || strings.HasPrefix(e.Path, "../") {
				t.Fatalf("unsafe path %q", e.Path)
			}
			if e.Kind == KindHardLink && (strings.HasPrefix(e.Link, "../") || strings.HasPrefix(e.Link, "/")) {
				t.Fatalf("unsafe link %q", e.Link)
			}
			_, err := io.Copy(io.Discard, body)
			return err
		})
		_ = err // bad input is an error, never a panic or an escape
	})
}

// zeroReader reads zeros forever.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
