package main

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// outputWriters are the commands that write a file the user names, each
// run writing into target (for key generate, target is PREFIX.key). Each
// returns what it should have written first, for a check of what a FIFO
// reader got.
func outputWriters(t *testing.T) map[string]func(t *testing.T, target string) string {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(root, "var/lib/dpkg/status"), "Package: a\nStatus: install ok installed\nVersion: 1\n\n", 0o644)
	dbDir := t.TempDir()
	if _, _, err := runDB(t, "update", "--db-dir", dbDir, "--source", dbFeed(t)); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BERTH_KEY_PASSWORD", "test password")
	return map[string]func(t *testing.T, target string) string{
		"sbom": func(t *testing.T, target string) string {
			cmd := newSBOMCmd()
			cmd.SetArgs([]string{"--no-cache", "-f", "json", "-o", target, "dir:" + root})
			if err := cmd.ExecuteContext(context.Background()); err != nil {
				t.Fatal(err)
			}
			return `"packages"`
		},
		"scan": func(t *testing.T, target string) string {
			if r := runScan(t, "--no-cache", "--db-dir", dbDir, "--ignorefile=", "-f", "json", "-o", target, "dir:"+root); r.err != nil {
				t.Fatalf("%v\n%s", r.err, r.stderr)
			}
			return `"findings"`
		},
		"db export": func(t *testing.T, target string) string {
			if _, stderr, err := runDB(t, "export", "--db-dir", dbDir, target); err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			return "" // a zstd tar: checked by its size only
		},
		"key generate": func(t *testing.T, target string) string {
			cmd := newKeyCmd()
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			cmd.SetArgs([]string{"generate", "--force", "--output-key-prefix", strings.TrimSuffix(target, ".key")})
			if err := cmd.ExecuteContext(context.Background()); err != nil {
				t.Fatal(err)
			}
			return "ENCRYPTED SIGSTORE PRIVATE KEY"
		},
	}
}

// TestOutputIntoCharDevice writes every command's output into a character
// device: it must still be one afterwards. Renaming a temporary file over
// -o /dev/null, as root may, destroyed /dev/null for the whole machine.
func TestOutputIntoCharDevice(t *testing.T) {
	for name, run := range outputWriters(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			dev := filepath.Join(dir, "null.key")
			if os.Geteuid() == 0 {
				// A null device of our own (major 1, minor 3 in Linux's
				// encoding): a bug here must not take the real one.
				if err := syscall.Mknod(dev, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
					t.Fatal(err)
				}
			} else {
				// Without root a rename over /dev/null fails anyway; what
				// remains to check is that writing into it works.
				dev = "/dev/null"
			}
			run(t, dev)
			st, err := os.Lstat(dev)
			if err != nil || st.Mode()&fs.ModeCharDevice == 0 {
				t.Fatalf("%s after the write: %v %v; want a character device", dev, st.Mode(), err)
			}
			if dev != "/dev/null" {
				assertNoTempFiles(t, dir)
			}
		})
	}
}

// TestOutputIntoFIFO writes every command's output into a named pipe that
// a reader drains: the reader must get the output and the pipe must stay a
// pipe.
func TestOutputIntoFIFO(t *testing.T) {
	for name, run := range outputWriters(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			fifo := filepath.Join(dir, "out.key")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			got := make(chan []byte, 1)
			go func() {
				f, err := os.Open(fifo)
				if err != nil {
					got <- nil
					return
				}
				defer f.Close()
				data, _ := io.ReadAll(f)
				got <- data
			}()
			want := run(t, fifo)
			st, err := os.Lstat(fifo)
			if err != nil || st.Mode()&fs.ModeNamedPipe == 0 {
				t.Fatalf("%s after the write: %v %v; want a FIFO", fifo, st.Mode(), err)
			}
			// Should the command not have opened the pipe, this open
			// releases the reader (with nothing) instead of hanging.
			if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
			data := <-got
			if len(data) == 0 || !strings.Contains(string(data), want) {
				t.Errorf("the reader got %d bytes, want output containing %q", len(data), want)
			}
			if strings.HasPrefix(want, `"`) && !json.Valid(data) {
				t.Errorf("the reader got invalid JSON: %.200s", data)
			}
			assertNoTempFiles(t, dir)
		})
	}
}
