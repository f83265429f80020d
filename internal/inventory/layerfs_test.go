package inventory

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"testing/iotest"

	"berth.dev/berth/internal/image"
)

func TestAnalyzerFS(t *testing.T) {
	lb := newLayerBuffer(nil)
	defer lb.close()
	add := func(p, body string) {
		e := &image.Entry{Path: p, Kind: image.KindFile, Size: int64(len(body)), Mode: 0o644}
		if _, err := lb.add(e, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	add("usr/lib/os-release", "ID=debian\n")
	add("var/lib/dpkg/status.d/a", "Package: a\n")
	add("var/lib/dpkg/status.d/b", "Package: b\n")
	lb.links["etc/os-release"] = "../usr/lib/os-release"
	lb.links["loop"] = "loop"
	lb.links["root"] = "/"
	afs := newAnalyzerFS(lb.files, mapLookup(lb.links))

	if err := fstest.TestFS(afs, "usr/lib/os-release", "var/lib/dpkg/status.d/a", "var/lib/dpkg/status.d/b"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"etc/os-release", "root/usr/lib/os-release", "root/root/etc/os-release"} {
		data, err := fs.ReadFile(afs, name)
		if err != nil || string(data) != "ID=debian\n" {
			t.Errorf("ReadFile(%q) = %q, %v", name, data, err)
		}
	}
	if _, err := afs.Open("loop"); err == nil {
		t.Error("a symlink loop opened")
	}
	if _, err := afs.Open("../etc/passwd"); err == nil {
		t.Error("an invalid path opened")
	}
	got, err := fs.Glob(afs, "var/lib/dpkg/status.d/*")
	if err != nil || !reflect.DeepEqual(got, []string{"var/lib/dpkg/status.d/a", "var/lib/dpkg/status.d/b"}) {
		t.Errorf("Glob = %q, %v", got, err)
	}
	f, err := afs.Open("var/lib/dpkg/status.d/b")
	if err != nil {
		t.Fatal(err)
	}
	ra, ok := f.(interface {
		io.ReaderAt
		io.Seeker
	})
	if !ok {
		t.Fatal("files do not implement io.ReaderAt and io.Seeker")
	}
	buf := make([]byte, 1)
	if _, err := ra.ReadAt(buf, 9); err != nil || buf[0] != 'b' {
		t.Errorf("ReadAt = %q, %v", buf, err)
	}
}

// Files past the in-memory budget are spooled and read back the same.
func TestLayerBufferSpools(t *testing.T) {
	lb := newLayerBuffer(nil)
	big := make([]byte, maxMemFile+10)
	for i := range big {
		big[i] = byte(i)
	}
	e := &image.Entry{Path: "big", Kind: image.KindFile, Size: int64(len(big))}
	bf, err := lb.add(e, strings.NewReader(string(big)))
	if err != nil {
		t.Fatal(err)
	}
	if bf.spooled == nil || lb.spool == nil {
		t.Fatal("large file kept in memory")
	}
	r, closeFn, err := bf.open()
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	got, err := io.ReadAll(r)
	if err != nil || string(got) != string(big) {
		t.Errorf("spooled content differs (%v)", err)
	}
	name := lb.spool.Name()
	if err := lb.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("spool %s left behind", name)
	}
}

// A root filesystem's file is left where it is and read when opened, at
// most the size the walk saw.
func TestLayerBufferLeavesHostFilesInPlace(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(p, []byte("Package: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lb := newLayerBuffer(nil)
	e := &image.Entry{Path: "var/lib/dpkg/status", Kind: image.KindFile, Size: 7, HostPath: p}
	if _, err := lb.add(e, iotest.ErrReader(errors.New("the body must not be read"))); err != nil {
		t.Fatal(err)
	}
	if lb.memUsed != 0 || lb.spool != nil {
		t.Errorf("host file copied: %d bytes in memory, spool %v", lb.memUsed, lb.spool)
	}
	afs := newAnalyzerFS(lb.files)
	got, err := fs.ReadFile(afs, "var/lib/dpkg/status")
	if err != nil || string(got) != "Package" {
		t.Errorf("read %q, %v", got, err)
	}
	os.Remove(p)
	if _, err := afs.Open("var/lib/dpkg/status"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file gone since the walk: %v", err)
	}
}

func TestSpoolBudgetReserve(t *testing.T) {
	tests := []struct {
		name         string
		held, own, n int64
		want         error
		heldAfter    int64
		writtenAfter int64
		skippedAfter int
	}{
		{"fits", 0, 0, 6, nil, 6, 6, 0},
		{"fits beside others", 4, 0, 6, nil, 10, 6, 0},
		{"fills it exactly", 4, 4, 6, nil, 10, 6, 0},
		{"would fit alone: others hold the rest", 8, 2, 6, errSpoolContended, 8, 0, 0},
		{"too large even alone", 4, 4, 7, errOverBudget, 4, 0, 1},
		{"larger than the budget", 0, 0, 11, errOverBudget, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &spoolBudget{limit: 10, held: tt.held}
			if err := b.reserve(tt.own, tt.n); err != tt.want {
				t.Errorf("reserve = %v, want %v", err, tt.want)
			}
			if b.held != tt.heldAfter || b.written != tt.writtenAfter || b.skipped != tt.skippedAfter {
				t.Errorf("held %d written %d skipped %d; want %d %d %d", b.held, b.written, b.skipped, tt.heldAfter, tt.writtenAfter, tt.skippedAfter)
			}
		})
	}
}

// The budget's accounting is the spool file's size, and closing the
// buffer gives it back.
func TestLayerBufferBudget(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	budget := &spoolBudget{limit: 10 << 20}
	lb := newLayerBuffer(budget)
	add := func(p string, size int64) error {
		e := &image.Entry{Path: p, Kind: image.KindFile, Size: size}
		_, err := lb.add(e, io.LimitReader(zeros{}, size))
		return err
	}
	if err := add("a", 6<<20); err != nil {
		t.Fatal(err)
	}
	if err := add("b", 6<<20); err != errOverBudget {
		t.Fatalf("second file: %v, want errOverBudget", err)
	}
	if _, ok := lb.files["b"]; ok {
		t.Error("a skipped file is in the buffer")
	}
	st, err := lb.spool.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 6<<20 || budget.held != 6<<20 || budget.peak != 6<<20 {
		t.Errorf("spool file %d bytes, budget held %d, peak %d; want 6 MiB each", st.Size(), budget.held, budget.peak)
	}
	if err := lb.close(); err != nil {
		t.Fatal(err)
	}
	if budget.held != 0 {
		t.Errorf("budget still holds %d bytes after close", budget.held)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
