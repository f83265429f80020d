package inventory

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"berth.dev/berth/internal/image"
)

func TestAnalyzerFS(t *testing.T) {
	lb := newLayerBuffer()
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
	afs := newAnalyzerFS(lb.files, lb.links)

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
	lb := newLayerBuffer()
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
	got, err := io.ReadAll(bf.reader())
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
