package filesystem_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/blob/blobtest"
	"berth.dev/berth/internal/blob/filesystem"
)

func factory(t testing.TB) (blob.Store, func() blob.Store) {
	dir := t.TempDir()
	open := func() blob.Store {
		s, err := filesystem.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return open(), open
}

func TestSuite(t *testing.T) { blobtest.Run(t, factory) }

func BenchmarkSuite(b *testing.B) { blobtest.Bench(b, factory) }

// A stale or corrupt hash state file must not corrupt a resumed upload: the
// store falls back to rehashing the data.
func TestStaleHashStateIsIgnored(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := filesystem.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("hello "))
	u.Close()
	for _, state := range [][]byte{
		nil,
		[]byte("garbage"),
		[]byte("berth-upload-hash-v1 sha256\n\x00\x00\x00\x00\x00\x00\x00\x06junk"),
		[]byte("berth-upload-hash-v1 md5\n\x00\x00\x00\x00\x00\x00\x00\x06"),
	} {
		p := filepath.Join(dir, "_uploads", u.ID(), "hashstate")
		if state == nil {
			os.Remove(p)
		} else if err := os.WriteFile(p, state, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := s.ResumeUpload(ctx, u.ID())
		if err != nil {
			t.Fatal(err)
		}
		if r.Size() != 6 {
			t.Fatalf("resumed size %d, want 6", r.Size())
		}
		r.Close()
	}
	// Data appended behind the state's back (a crash after a write but
	// before the state was saved) is picked up by rehashing.
	f, err := os.OpenFile(filepath.Join(dir, "_uploads", u.ID(), "data"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("world"))
	f.Close()
	r, err := s.ResumeUpload(ctx, u.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Commit(ctx, "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"); err != nil {
		t.Fatalf("Commit of %q: %v", "hello world", err)
	}
}

// Files that are not blobs (editor leftovers, wrong names) are not reported
// by Walk and never deleted by it.
func TestWalkSkipsForeignFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := filesystem.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	misplaced := "sha256/00/ab" + strings.Repeat("0", 62) // valid name, wrong prefix directory
	for _, p := range []string{"sha256/ab/notadigest", misplaced, "sha256/zz/README", "md5/ab/abcd"} {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, []byte("x"), 0o644)
	}
	n := 0
	if err := s.Walk(context.Background(), func(blob.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("Walk reported %d foreign files as blobs", n)
	}
}
