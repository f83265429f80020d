package main

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteOutputRegularFiles(t *testing.T) {
	failed := errors.New("encoder failed")
	tests := []struct {
		name string
		// setup prepares dir and returns the path to write to.
		setup   func(t *testing.T, dir string) string
		opts    outputFile
		write   string
		fail    bool
		checked string // the file whose content and mode are checked
		want    string
		mode    fs.FileMode
	}{
		{name: "new file", setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "out.json") },
			opts: outputFile{Perm: 0o644}, write: "new", checked: "out.json", want: "new", mode: 0o644},
		{name: "replaced file keeps its mode", setup: func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "out.json")
			writeTestFile(t, p, "old", 0o640)
			return p
		}, opts: outputFile{Perm: 0o644}, write: "new", checked: "out.json", want: "new", mode: 0o640},
		{name: "forced mode over a readable file", setup: func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "cosign.key")
			writeTestFile(t, p, "old", 0o644)
			return p
		}, opts: outputFile{Perm: 0o600, ForcePerm: true}, write: "secret", checked: "cosign.key", want: "secret", mode: 0o600},
		{name: "failed write leaves the old file", setup: func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "out.json")
			writeTestFile(t, p, "old", 0o644)
			return p
		}, opts: outputFile{Perm: 0o644}, write: "half", fail: true, checked: "out.json", want: "old", mode: 0o644},
		{name: "symlink to a file replaces the file, keeps the link", setup: func(t *testing.T, dir string) string {
			writeTestFile(t, filepath.Join(dir, "real.json"), "old", 0o600)
			link := filepath.Join(dir, "link.json")
			if err := os.Symlink("real.json", link); err != nil {
				t.Fatal(err)
			}
			return link
		}, opts: outputFile{Perm: 0o644}, write: "new", checked: "real.json", want: "new", mode: 0o600},
		{name: "dangling symlink creates its target", setup: func(t *testing.T, dir string) string {
			link := filepath.Join(dir, "link.json")
			if err := os.Symlink("made.json", link); err != nil {
				t.Fatal(err)
			}
			return link
		}, opts: outputFile{Perm: 0o644}, write: "new", checked: "made.json", want: "new", mode: 0o644},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := tt.setup(t, dir)
			err := writeOutput(p, tt.opts, func(w io.Writer) error {
				io.WriteString(w, tt.write)
				if tt.fail {
					return failed
				}
				return nil
			})
			if tt.fail != (err != nil) || tt.fail && err != failed {
				t.Fatalf("error %v, fail %v", err, tt.fail)
			}
			checked := filepath.Join(dir, tt.checked)
			if got := readTestFile(t, checked); got != tt.want {
				t.Errorf("%s holds %q, want %q", tt.checked, got, tt.want)
			}
			if st, err := os.Stat(checked); err != nil || st.Mode().Perm() != tt.mode {
				t.Errorf("%s: mode %v (%v), want %v", tt.checked, st.Mode(), err, tt.mode)
			}
			if st, err := os.Lstat(p); err == nil && p != checked && st.Mode()&fs.ModeSymlink == 0 {
				t.Errorf("%s is no longer a symlink: %v", p, st.Mode())
			}
			assertNoTempFiles(t, dir)
		})
	}
}

func TestWriteOutputDirectory(t *testing.T) {
	dir := t.TempDir()
	err := writeOutput(dir, outputFile{Perm: 0o644}, writeBytes([]byte("x")))
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("writing to a directory: %v", err)
	}
}

func writeTestFile(t *testing.T, p, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func readTestFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// assertNoTempFiles fails when writeOutput left one of its temporary
// files (".NAME.random") in dir.
func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

// TestWriteOutputOwnStreams: -o /dev/stdout while the shell appends
// standard output to a log must append, not reopen (and empty) the log.
func TestWriteOutputOwnStreams(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	writeTestFile(t, log, "earlier run\n", 0o644)
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stdout
	os.Stdout = f
	err = writeOutput("/dev/stdout", outputFile{Perm: 0o644}, writeBytes([]byte("this run\n")))
	os.Stdout = saved
	if err != nil {
		t.Fatal(err)
	}
	if got := readTestFile(t, log); got != "earlier run\nthis run\n" {
		t.Errorf("log holds %q", got)
	}
}

// TestKeyGenerateForceKeepsKeyPrivate: --force over a world-readable file
// used to keep its mode (os.WriteFile applies the mode only on creation),
// leaving the new private key readable by everyone.
func TestKeyGenerateForceKeepsKeyPrivate(t *testing.T) {
	t.Setenv("BERTH_KEY_PASSWORD", "test password")
	prefix := filepath.Join(t.TempDir(), "release")
	writeTestFile(t, prefix+".key", "old", 0o644)
	writeTestFile(t, prefix+".pub", "old", 0o640)
	cmd := newKeyCmd()
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"generate", "--force", "--output-key-prefix", prefix})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]fs.FileMode{prefix + ".key": 0o600, prefix + ".pub": 0o640} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v (%v), want %v", p, st.Mode(), err, mode)
		}
	}
	if !strings.Contains(readTestFile(t, prefix+".key"), "ENCRYPTED SIGSTORE PRIVATE KEY") {
		t.Error("key not written")
	}
}
