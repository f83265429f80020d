package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: what a user's shell gives berth.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal to show the progress display on: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// withStderr runs fn with the process's standard error replaced by w, and
// returns what was written to r meanwhile.
func withStderr(t *testing.T, w *os.File, r io.Reader, fn func()) string {
	t.Helper()
	var got bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(&got, r)
	}()
	saved := os.Stderr
	os.Stderr = w
	fn()
	os.Stderr = saved
	w.Close()
	wg.Wait()
	return got.String()
}

// httpFeed serves an OSV feed folder over HTTP, as osv.dev's bucket does.
func httpFeed(t *testing.T) string {
	t.Helper()
	dir := dbFeed(t)
	if err := os.WriteFile(filepath.Join(dir, "ecosystems.txt"), []byte("PyPI\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestProgressOnlyOnATerminal runs berth db update with standard error on
// a terminal, where it draws which source it loads and the download's
// bytes, and into a pipe and with --log-format json, where it draws
// nothing at all.
func TestProgressOnlyOnATerminal(t *testing.T) {
	feed := httpFeed(t)
	update := func(args ...string) error {
		cmd := newRootCmd()
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		cmd.SetArgs(append([]string{"db", "update", "--db-dir", t.TempDir(), "--source", feed}, args...))
		return cmd.Execute()
	}

	master, slave := openPTY(t)
	defer master.Close()
	// The terminal is read until the slave closes; reads then fail with EIO.
	onTerminal := withStderr(t, slave, readUntilEIO{master}, func() {
		if err := update(); err != nil {
			t.Fatal(err)
		}
	})
	for _, want := range []string{"[1/1] osv " + feed, "all.zip"} {
		if !strings.Contains(onTerminal, want) {
			t.Errorf("terminal lacks %q:\n%q", want, onTerminal)
		}
	}
	// The bar says what the info lines would: they are not printed over it.
	if strings.Contains(onTerminal, "loading source") {
		t.Errorf("info lines printed over the progress bar:\n%q", onTerminal)
	}

	for _, args := range [][]string{nil, {"--log-format", "json"}} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		piped := withStderr(t, w, r, func() {
			if err := update(args...); err != nil {
				t.Fatal(err)
			}
		})
		if strings.ContainsAny(piped, "\r\x1b") || strings.Contains(piped, "all.zip") {
			t.Errorf("progress drawn into a pipe (%v):\n%q", args, piped)
		}
		if len(args) == 0 {
			continue
		}
		// --log-format json, for CI: every line of standard error is a
		// JSON object with a level and a message.
		lines := strings.Split(strings.TrimSpace(piped), "\n")
		for _, line := range lines {
			var entry struct{ Level, Msg string }
			if err := json.Unmarshal([]byte(line), &entry); err != nil || entry.Level == "" || entry.Msg == "" {
				t.Errorf("--log-format json printed %q (%v)", line, err)
			}
		}
		if len(lines) < 2 {
			t.Errorf("--log-format json printed %d lines: %q", len(lines), piped)
		}
	}

	// On a terminal with JSON logs, no bar either: the logs are for machines.
	master2, slave2 := openPTY(t)
	defer master2.Close()
	jsonLogs := withStderr(t, slave2, readUntilEIO{master2}, func() {
		if err := update("--log-format", "json"); err != nil {
			t.Fatal(err)
		}
	})
	if strings.Contains(jsonLogs, "all.zip") || strings.Contains(strings.ReplaceAll(jsonLogs, "\r\n", "\n"), "\r") {
		t.Errorf("progress drawn with --log-format json:\n%q", jsonLogs)
	}
}

// readUntilEIO reads a pty master, taking the EIO that follows the
// slave's close for the end.
type readUntilEIO struct{ f *os.File }

func (r readUntilEIO) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	if err != nil && n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// TestSBOMFormatFollowsTheTerminal: berth sbom prints a table for a person
// at a terminal and CycloneDX JSON into a pipe (or with -o), as syft does;
// -f takes Trivy's and syft's names spdx-json and cyclonedx-json.
func TestSBOMFormatFollowsTheTerminal(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(root, "var/lib/dpkg/status"), "Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13\n\n", 0o644)
	sbom := func(stdout *os.File, args ...string) {
		t.Helper()
		saved := os.Stdout
		os.Stdout = stdout
		defer func() { os.Stdout = saved }()
		cmd := newSBOMCmd()
		cmd.SetErr(io.Discard)
		cmd.SetArgs(append([]string{"--no-cache", "dir:" + root}, args...))
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
	}
	capture := func(args ...string) string {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan string)
		go func() { b, _ := io.ReadAll(r); done <- string(b) }()
		sbom(w, args...)
		w.Close()
		return <-done
	}

	master, slave := openPTY(t)
	defer master.Close()
	var got bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&got, readUntilEIO{master}); close(done) }()
	sbom(slave)
	slave.Close()
	<-done
	if !strings.Contains(got.String(), "zlib1g") || strings.Contains(got.String(), `"bomFormat"`) {
		t.Errorf("on a terminal berth sbom printed:\n%s", got.String())
	}

	for args, want := range map[string]string{
		"":                  `"bomFormat": "CycloneDX"`,
		"-f cyclonedx-json": `"bomFormat": "CycloneDX"`,
		"-f spdx-json":      `"spdxVersion": "SPDX-2.3"`,
		"-f table":          "zlib1g",
	} {
		out := capture(strings.Fields(args)...)
		if !strings.Contains(out, want) {
			t.Errorf("berth sbom %s into a pipe lacks %q:\n%.300s", args, want, out)
		}
	}
}
