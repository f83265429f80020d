//go:build unix

package image

import (
	"context"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// walkRoot opens dir as a root filesystem and returns path → what the walk
// said of it, and the warnings.
func walkRoot(t *testing.T, dir string, limits Limits) (map[string]string, []string) {
	t.Helper()
	im, err := Open(context.Background(), "dir:"+dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	got := map[string]string{}
	ch, err := Walk(context.Background(), im.Layers[0], WalkOptions{Limits: limits}, func(e *Entry, body io.Reader) error {
		switch e.Kind {
		case KindFile:
			b, err := io.ReadAll(body)
			if err != nil {
				return err
			}
			got[e.Path] = string(b)
		case KindHardLink:
			got[e.Path] = "=" + e.Link
		case KindSymlink:
			got[e.Path] = "→" + e.Link
		case KindOther:
			got[e.Path] = "other"
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, ch.Warnings
}

func TestRootFSWalk(t *testing.T) {
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
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write("etc/os-release", "ID=debian\n")
	// The kernel's views of a running system, right below the root.
	write("proc/1/status", "Name: init\n")
	write("sys/kernel/notes", "x")
	write("dev/null", "")
	write("usr/share/dev/kept", "kept") // only the root's own dev is skipped
	// Special files are announced and never opened: opening a fifo
	// would block the walk.
	must(syscall.Mkfifo(filepath.Join(root, "etc", "initctl"), 0o600))
	l, err := net.Listen("unix", filepath.Join(root, "etc", "sock"))
	must(err)
	defer l.Close()
	// One file, two names.
	write("usr/bin/perl", "#!perl")
	must(os.Link(filepath.Join(root, "usr/bin/perl"), filepath.Join(root, "usr/bin/perl5.36.0")))
	// Too big for any analyzer: skipped, not fatal. Sparse, so nothing is
	// written.
	must(os.MkdirAll(filepath.Join(root, "var"), 0o755))
	big, err := os.Create(filepath.Join(root, "var", "big.img"))
	must(err)
	must(big.Truncate(2 << 20))
	big.Close()
	// Links out of the root stay links.
	outside := filepath.Join(parent, "outside")
	must(os.MkdirAll(outside, 0o755))
	must(os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o644))
	must(os.Symlink(outside, filepath.Join(root, "escape")))
	// The root itself may be named through a symlink.
	via := filepath.Join(parent, "via")
	must(os.Symlink(root, via))

	got, warnings := walkRoot(t, via, Limits{MaxFileBytes: 1 << 20})
	want := map[string]string{
		"etc/os-release":     "ID=debian\n",
		"etc/initctl":        "other",
		"etc/sock":           "other",
		"usr/share/dev/kept": "kept",
		"usr/bin/perl":       "#!perl",
		"usr/bin/perl5.36.0": "=usr/bin/perl",
		"escape":             "→" + outside,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "big.img is 2097152 bytes") {
		t.Errorf("warnings %q", warnings)
	}
}

func TestRootFSUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		// Root reads every file whatever its mode: the test runs again
		// as nobody.
		runAsNobody(t, "TestRootFSUnreadable")
		return
	}
	root := t.TempDir()
	for _, name := range []string{"secret/file", "locked"} {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "locked"), 0)
	os.Chmod(filepath.Join(root, "secret"), 0)
	defer os.Chmod(filepath.Join(root, "secret"), 0o755)
	got, warnings := walkRoot(t, root, Limits{})
	if len(got) != 0 || len(warnings) != 2 {
		t.Errorf("entries %q, warnings %q; want both skipped with a warning each", got, warnings)
	}
}

// A file that shrinks or grows after the walk saw it reads as the size
// the walk announced.
func TestFileBodyKeepsTheAnnouncedSize(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		size int64
		want string
	}{
		{10, "0123456789"},
		{4, "0123"},
		{13, "0123456789\x00\x00\x00"},
	} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(&fileBody{f: f, left: tt.size})
		f.Close()
		if err != nil || string(b) != tt.want {
			t.Errorf("size %d: %q, %v; want %q", tt.size, b, err, tt.want)
		}
	}
}

// TestRootFSLinks: a root filesystem's symlinks are recorded like a
// layer's; past MaxLinkBytes the rest are left out with a warning rather
// than failing the scan of the user's own tree.
func TestRootFSLinks(t *testing.T) {
	root := t.TempDir()
	for name, target := range map[string]string{"lib": "usr/lib", "bin": "usr/bin", "sbin": "usr/sbin"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	walk := func(limits Limits) *Changes {
		im, err := Open(context.Background(), "dir:"+root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer im.Close()
		ch, err := Walk(context.Background(), im.Layers[0], WalkOptions{Limits: limits}, func(*Entry, io.Reader) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	if ch := walk(Limits{}); !reflect.DeepEqual(maps.Collect(ch.Links.All()), map[string]string{"lib": "usr/lib", "bin": "usr/bin", "sbin": "usr/sbin"}) || len(ch.Warnings) != 0 {
		t.Errorf("links %q, warnings %q", maps.Collect(ch.Links.All()), ch.Warnings)
	}
	// Walked in name order: bin (10 bytes) and lib (10) fit in 20.
	ch := walk(Limits{MaxLinkBytes: 20})
	if !reflect.DeepEqual(maps.Collect(ch.Links.All()), map[string]string{"lib": "usr/lib", "bin": "usr/bin"}) || ch.LinkBytes() != 20 {
		t.Errorf("links %q (%d bytes), want bin and lib only", maps.Collect(ch.Links.All()), ch.LinkBytes())
	}
	if len(ch.Warnings) != 1 || !strings.Contains(ch.Warnings[0], "sbin") || !strings.Contains(ch.Warnings[0], "MaxLinkBytes") {
		t.Errorf("warnings %q", ch.Warnings)
	}
}

// runAsNobody runs test from a copy of this test binary as the user and
// group 65534, and fails unless it passed there (a skip is no pass).
func runAsNobody(t *testing.T, test string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The build's directory is root's alone: nobody runs a copy from a
	// directory it may enter, and works in one of its own.
	dir, err := os.MkdirTemp("", "as-nobody-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "image.test")
	work := filepath.Join(dir, "tmp")
	if err := copyFile(self, bin); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, work} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", "^"+test+"$", "-test.count", "1", "-test.v")
	cmd.Dir, cmd.Env = work, []string{"TMPDIR=" + work, "HOME=" + work, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatalf("%s as nobody: %v\n%s", test, err, out)
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
