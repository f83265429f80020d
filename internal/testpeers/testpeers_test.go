package testpeers

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// recorder stands in for the test a helper is given: it records how the
// helper ended it, stopping the helper's goroutine as the testing package
// does.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Skipf(format string, args ...any) {
	r.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a recorder on its own goroutine, so that Goexit ends
// only f.
func run(t *testing.T, f func(testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

func TestShared(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "images", "a.oci.tar"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(SharedEnv, dir)
	tests := []struct {
		name      string
		elem      []string
		wantFatal []string // pieces of the failure; none: the path is returned
	}{
		{"present file", []string{"images", "a.oci.tar"}, nil},
		{"present folder", []string{"images"}, nil},
		{"missing file", []string{"images", "b.oci.tar"}, []string{filepath.Join(dir, "images", "b.oci.tar"), "../shared", SharedEnv}},
		{"missing folder", []string{"vulndata"}, []string{filepath.Join(dir, "vulndata"), "../shared", SharedEnv}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			r := run(t, func(tb testing.TB) { got = Shared(tb, tt.elem...) })
			if r.skip != "" {
				t.Fatalf("skipped (%s); a missing fixture must fail", r.skip)
			}
			if tt.wantFatal == nil {
				if r.fatal != "" || got != filepath.Join(append([]string{dir}, tt.elem...)...) {
					t.Fatalf("got %q, failure %q", got, r.fatal)
				}
				return
			}
			for _, w := range tt.wantFatal {
				if !strings.Contains(r.fatal, w) {
					t.Errorf("failure %q does not name %q", r.fatal, w)
				}
			}
		})
	}
}

// Without BERTH_SHARED the fixtures are ../shared beside the module root,
// which is two folders above this package.
func TestSharedDirDefault(t *testing.T) {
	t.Setenv(SharedEnv, "")
	got, err := sharedDir()
	if err != nil {
		t.Fatal(err)
	}
	want, err := filepath.Abs(filepath.Join("..", "..", "..", "shared"))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("sharedDir() = %q, want %q", got, want)
	}
}

func TestMissingAndTool(t *testing.T) {
	peers := t.TempDir()
	if err := os.WriteFile(filepath.Join(peers, "present"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(PeersEnv, peers)
	t.Setenv("PATH", t.TempDir()) // nothing on PATH
	tests := []struct {
		name, tool, require string
		wantPath            bool
		wantFatal, wantSkip bool
	}{
		{"present", "present", "1", true, false, false},
		{"absent, required", "absent", "1", false, true, false},
		{"absent, not required", "absent", "", false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(RequirePeersEnv, tt.require)
			var got string
			r := run(t, func(tb testing.TB) { got = Tool(tb, tt.tool) })
			if (got == filepath.Join(peers, tt.tool)) != tt.wantPath || (r.fatal != "") != tt.wantFatal || (r.skip != "") != tt.wantSkip {
				t.Fatalf("got %q, failure %q, skip %q", got, r.fatal, r.skip)
			}
			for _, msg := range []string{r.fatal, r.skip} {
				if msg != "" && (!strings.Contains(msg, tt.tool) || !strings.Contains(msg, "scripts/peers.sh")) {
					t.Errorf("%q does not name the tool and how to install it", msg)
				}
			}
		})
	}
}
