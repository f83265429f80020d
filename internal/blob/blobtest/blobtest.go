// Package blobtest is the test suite and benchmark set every blob.Store
// implementation runs, so that the filesystem store and the object-store one
// behave the same. Call Run from the implementation's tests and Bench from
// its benchmarks.
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/blob"
)

// Factory makes an empty store for one test. reopen returns a fresh Store
// value over the same backing storage, as a restarted process would see it.
type Factory func(t testing.TB) (s blob.Store, reopen func() blob.Store)

// Run runs the whole suite against stores made by f.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"PutOpenRoundTrip", testPutOpenRoundTrip},
		{"PutWrongDigestStoresNothing", testPutWrongDigest},
		{"UnsupportedDigests", testUnsupportedDigests},
		{"MissingBlob", testMissingBlob},
		{"Delete", testDelete},
		{"Walk", testWalk},
		{"ReaderSeeks", testReaderSeeks},
		{"ChunkedUploadAcrossReopen", testChunkedUploadAcrossReopen},
		{"CommitMismatchKeepsUpload", testCommitMismatchKeepsUpload},
		{"CommitOtherAlgorithm", testCommitOtherAlgorithm},
		{"CancelUpload", testCancelUpload},
		{"UnknownUploadIDs", testUnknownUploadIDs},
		{"WalkAndRemoveUploads", testWalkAndRemoveUploads},
		{"ReadFromKeepsPartialContent", testReadFromPartial},
		{"ConcurrentPutsOfOneBlob", testConcurrentPuts},
		{"CommitOverExistingBlob", testCommitOverExisting},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, f) })
	}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func readAll(t testing.TB, s blob.Store, d digest.Digest) []byte {
	t.Helper()
	r, size, err := s.Open(context.Background(), d)
	if err != nil {
		t.Fatalf("Open(%s): %v", d, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", d, err)
	}
	if int64(len(b)) != size {
		t.Fatalf("Open(%s) reported size %d, read %d bytes", d, size, len(b))
	}
	return b
}

func countUploads(t testing.TB, s blob.Store) int {
	t.Helper()
	n := 0
	if err := s.WalkUploads(context.Background(), func(blob.UploadInfo) error { n++; return nil }); err != nil {
		t.Fatalf("WalkUploads: %v", err)
	}
	return n
}

func testPutOpenRoundTrip(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	for _, size := range []int{0, 1, 4096, 1<<20 + 17} {
		for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
			t.Run(fmt.Sprintf("%s/%d", alg, size), func(t *testing.T) {
				content := randomBytes(t, size)
				d := alg.FromBytes(content)
				n, err := s.Put(ctx, d, bytes.NewReader(content))
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
				if n != int64(size) {
					t.Errorf("Put returned size %d, want %d", n, size)
				}
				info, err := s.Stat(ctx, d)
				if err != nil {
					t.Fatalf("Stat: %v", err)
				}
				if info.Size != int64(size) || info.Digest != d {
					t.Errorf("Stat = %+v, want digest %s size %d", info, d, size)
				}
				if got := readAll(t, s, d); !bytes.Equal(got, content) {
					t.Errorf("content differs after round trip")
				}
			})
		}
	}
	if n := countUploads(t, s); n != 0 {
		t.Errorf("%d uploads left behind by Put", n)
	}
}

func testPutWrongDigest(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	content := randomBytes(t, 3000)
	wrong := digest.FromBytes([]byte("something else"))
	_, err := s.Put(ctx, wrong, bytes.NewReader(content))
	if !errors.Is(err, blob.ErrDigestMismatch) {
		t.Fatalf("Put with wrong digest: err = %v, want ErrDigestMismatch", err)
	}
	for _, d := range []digest.Digest{wrong, digest.FromBytes(content)} {
		if _, err := s.Stat(ctx, d); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Stat(%s) after failed Put: err = %v, want ErrNotFound", d, err)
		}
	}
	if n := countUploads(t, s); n != 0 {
		t.Errorf("%d uploads left behind by a failed Put", n)
	}
}

func testUnsupportedDigests(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	content := []byte("x")
	sum := digest.FromBytes(content)
	for _, d := range []digest.Digest{
		"",
		"sha256",
		"sha256:",
		"md5:9dd4e461268c8034f5c8564e155c67a6",
		digest.Digest("SHA256:" + sum.Encoded()),
		digest.Digest("sha256:" + sum.Encoded()[:63]),
		digest.Digest("sha256:" + sum.Encoded() + "0"),
		digest.Digest("sha256:../../" + sum.Encoded()[6:]),
		digest.Digest("sha384:" + sum.Encoded() + sum.Encoded()[:32]),
	} {
		if _, err := s.Put(ctx, d, bytes.NewReader(content)); !errors.Is(err, blob.ErrUnsupportedDigest) {
			t.Errorf("Put(%q): err = %v, want ErrUnsupportedDigest", d, err)
		}
		if _, err := s.Stat(ctx, d); !errors.Is(err, blob.ErrUnsupportedDigest) {
			t.Errorf("Stat(%q): err = %v, want ErrUnsupportedDigest", d, err)
		}
		if _, _, err := s.Open(ctx, d); !errors.Is(err, blob.ErrUnsupportedDigest) {
			t.Errorf("Open(%q): err = %v, want ErrUnsupportedDigest", d, err)
		}
		if err := s.Delete(ctx, d); !errors.Is(err, blob.ErrUnsupportedDigest) {
			t.Errorf("Delete(%q): err = %v, want ErrUnsupportedDigest", d, err)
		}
	}
}

func testMissingBlob(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	d := digest.FromString("never stored")
	if _, err := s.Stat(ctx, d); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat: err = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Open(ctx, d); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open: err = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, d); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Delete: err = %v, want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	keep, gone := []byte("keep"), []byte("gone")
	for _, c := range [][]byte{keep, gone} {
		if _, err := s.Put(ctx, digest.FromBytes(c), bytes.NewReader(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, digest.FromBytes(gone)); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(ctx, digest.FromBytes(gone)); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat after Delete: err = %v, want ErrNotFound", err)
	}
	if got := readAll(t, s, digest.FromBytes(keep)); !bytes.Equal(got, keep) {
		t.Errorf("the other blob changed after Delete")
	}
}

func testWalk(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	want := map[digest.Digest]int64{}
	for i := range 20 {
		c := randomBytes(t, i*10)
		alg := digest.SHA256
		if i%3 == 0 {
			alg = digest.SHA512
		}
		d := alg.FromBytes(c)
		if _, err := s.Put(ctx, d, bytes.NewReader(c)); err != nil {
			t.Fatal(err)
		}
		want[d] = int64(len(c))
	}
	// An unfinished upload is not a blob.
	u, err := s.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("pending"))
	u.Close()

	got := map[digest.Digest]int64{}
	if err := s.Walk(ctx, func(i blob.Info) error {
		if _, dup := got[i.Digest]; dup {
			t.Errorf("Walk visited %s twice", i.Digest)
		}
		got[i.Digest] = i.Size
		return nil
	}); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if len(got) != len(want) {
		t.Errorf("Walk found %d blobs, want %d", len(got), len(want))
	}
	for d, size := range want {
		if got[d] != size {
			t.Errorf("Walk: %s size %d, want %d", d, got[d], size)
		}
	}
	stop := errors.New("stop")
	if err := s.Walk(ctx, func(blob.Info) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Walk did not return the callback's error: %v", err)
	}
}

func testReaderSeeks(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	content := randomBytes(t, 10000)
	d := digest.FromBytes(content)
	if _, err := s.Put(ctx, d, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	r, _, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Seek(9000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content[9000:]) {
		t.Errorf("read after Seek(9000) returned the wrong bytes")
	}
	end, err := r.Seek(0, io.SeekEnd)
	if err != nil || end != int64(len(content)) {
		t.Errorf("Seek to end = %d, %v; want %d", end, err, len(content))
	}
}

func testChunkedUploadAcrossReopen(t *testing.T, f Factory) {
	ctx := context.Background()
	s, reopen := f(t)
	content := randomBytes(t, 3<<20+5)
	chunks := [][]byte{content[:1<<20], content[1<<20 : 2<<20], content[2<<20:]}

	u, err := s.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := u.ID()
	if _, err := u.Write(chunks[0]); err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}

	// Same store value, resumed.
	u, err = s.ResumeUpload(ctx, id)
	if err != nil {
		t.Fatalf("ResumeUpload: %v", err)
	}
	if u.Size() != int64(len(chunks[0])) {
		t.Fatalf("resumed size %d, want %d", u.Size(), len(chunks[0]))
	}
	if _, err := u.ReadFrom(bytes.NewReader(chunks[1])); err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}

	// A restarted process.
	s = reopen()
	u, err = s.ResumeUpload(ctx, id)
	if err != nil {
		t.Fatalf("ResumeUpload after reopen: %v", err)
	}
	if u.Size() != 2<<20 {
		t.Fatalf("size after reopen %d, want %d", u.Size(), 2<<20)
	}
	if _, err := u.Write(chunks[2]); err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(content)
	n, err := u.Commit(ctx, d)
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if n != int64(len(content)) {
		t.Errorf("Commit size %d, want %d", n, len(content))
	}
	if got := readAll(t, s, d); !bytes.Equal(got, content) {
		t.Errorf("content differs after a chunked upload across a reopen")
	}
	if _, err := s.ResumeUpload(ctx, id); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Errorf("ResumeUpload after Commit: err = %v, want ErrUploadNotFound", err)
	}
	if n := countUploads(t, s); n != 0 {
		t.Errorf("%d uploads left after Commit", n)
	}
}

func testCommitMismatchKeepsUpload(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	content := randomBytes(t, 5000)
	u, err := s.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u.Write(content)
	wrong := digest.FromString("wrong")
	if _, err := u.Commit(ctx, wrong); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Fatalf("Commit with wrong digest: err = %v, want ErrDigestMismatch", err)
	}
	if _, err := s.Stat(ctx, wrong); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("a mismatched commit stored a blob: %v", err)
	}
	if _, err := u.Commit(ctx, digest.FromBytes(content)); err != nil {
		t.Fatalf("Commit with the right digest after a mismatch: %v", err)
	}
	if got := readAll(t, s, digest.FromBytes(content)); !bytes.Equal(got, content) {
		t.Errorf("content differs")
	}
}

func testCommitOtherAlgorithm(t *testing.T, f Factory) {
	ctx := context.Background()
	s, reopen := f(t)
	content := randomBytes(t, 70000)
	u, err := s.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u.Write(content[:30000])
	id := u.ID()
	u.Close()
	s = reopen()
	u, err = s.ResumeUpload(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	u.Write(content[30000:])
	d := digest.SHA512.FromBytes(content)
	if _, err := u.Commit(ctx, d); err != nil {
		t.Fatalf("Commit as sha512: %v", err)
	}
	if got := readAll(t, s, d); !bytes.Equal(got, content) {
		t.Errorf("content differs")
	}
}

func testCancelUpload(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	u, err := s.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("abandoned"))
	if err := u.Cancel(ctx); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if _, err := s.ResumeUpload(ctx, u.ID()); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Errorf("ResumeUpload after Cancel: err = %v, want ErrUploadNotFound", err)
	}
	if n := countUploads(t, s); n != 0 {
		t.Errorf("%d uploads after Cancel", n)
	}
	if _, err := s.Stat(ctx, digest.FromString("abandoned")); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("a cancelled upload became a blob")
	}
}

func testUnknownUploadIDs(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	for _, id := range []string{"", "nope", "../../etc", "0123456789abcdef0123456789abcdef", "/tmp", "..", "%2e%2e"} {
		if _, err := s.ResumeUpload(ctx, id); !errors.Is(err, blob.ErrUploadNotFound) {
			t.Errorf("ResumeUpload(%q): err = %v, want ErrUploadNotFound", id, err)
		}
		if err := s.RemoveUpload(ctx, id); err != nil {
			t.Errorf("RemoveUpload(%q): %v, want nil", id, err)
		}
	}
}

func testWalkAndRemoveUploads(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	sizes := map[string]int64{}
	for i := range 3 {
		u, err := s.NewUpload(ctx)
		if err != nil {
			t.Fatal(err)
		}
		u.Write(make([]byte, i*100))
		sizes[u.ID()] = int64(i * 100)
		u.Close()
	}
	seen := map[string]int64{}
	if err := s.WalkUploads(ctx, func(i blob.UploadInfo) error {
		if i.ModTime.IsZero() {
			t.Errorf("upload %s has no modification time", i.ID)
		}
		seen[i.ID] = i.Size
		if one, err := s.StatUpload(ctx, i.ID); err != nil || one != i {
			t.Errorf("StatUpload(%s) = %+v, %v; WalkUploads saw %+v", i.ID, one, err, i)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(sizes) {
		t.Fatalf("WalkUploads saw %d uploads, want %d", len(seen), len(sizes))
	}
	for id, size := range sizes {
		if seen[id] != size {
			t.Errorf("upload %s: size %d, want %d", id, seen[id], size)
		}
		if err := s.RemoveUpload(ctx, id); err != nil {
			t.Errorf("RemoveUpload: %v", err)
		}
		if err := s.RemoveUpload(ctx, id); err != nil {
			t.Errorf("second RemoveUpload: %v", err)
		}
	}
	if n := countUploads(t, s); n != 0 {
		t.Errorf("%d uploads left after RemoveUpload", n)
	}
	for id := range sizes {
		if _, err := s.StatUpload(ctx, id); !errors.Is(err, blob.ErrUploadNotFound) {
			t.Errorf("StatUpload of a removed upload: err = %v, want ErrUploadNotFound", err)
		}
	}
	if _, err := s.StatUpload(ctx, "../../etc"); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Errorf("StatUpload of a path: err = %v, want ErrUploadNotFound", err)
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func testReadFromPartial(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	content := randomBytes(t, 10000)
	u, err := s.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	broken := errors.New("connection reset")
	n, err := u.ReadFrom(&failingReader{data: content[:4000], err: broken})
	if !errors.Is(err, broken) {
		t.Fatalf("ReadFrom: err = %v, want the reader's error", err)
	}
	if n != 4000 || u.Size() != 4000 {
		t.Fatalf("ReadFrom kept %d bytes (Size %d), want 4000", n, u.Size())
	}
	if _, err := u.ReadFrom(bytes.NewReader(content[4000:])); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Commit(ctx, digest.FromBytes(content)); err != nil {
		t.Fatalf("Commit after a resumed partial chunk: %v", err)
	}
}

func testConcurrentPuts(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	content := randomBytes(t, 256<<10)
	d := digest.FromBytes(content)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Put(ctx, d, bytes.NewReader(content)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Put: %v", err)
	}
	if got := readAll(t, s, d); !bytes.Equal(got, content) {
		t.Errorf("content differs after concurrent puts")
	}
}

func testCommitOverExisting(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	content := randomBytes(t, 1000)
	d := digest.FromBytes(content)
	if _, err := s.Put(ctx, d, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	// A reader opened before the second commit keeps reading whole content.
	r, _, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	u, err := s.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u.Write(content)
	if _, err := u.Commit(ctx, d); err != nil {
		t.Fatalf("Commit of an already stored blob: %v", err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("reader opened before the second commit read %d bytes, %v", len(got), err)
	}
	if got := readAll(t, s, d); !bytes.Equal(got, content) {
		t.Errorf("content differs")
	}
}

// Bench runs the shared blob store benchmarks against stores made by f.
func Bench(b *testing.B, f Factory) {
	ctx := context.Background()
	for _, size := range []int{32 << 10, 8 << 20} {
		content := randomBytes(b, size)
		b.Run(fmt.Sprintf("Put/%dKiB", size>>10), func(b *testing.B) {
			s, _ := f(b)
			b.SetBytes(int64(size))
			for i := 0; b.Loop(); i++ {
				// Vary one byte so every Put writes a new blob.
				c := append([]byte(nil), content...)
				c[0], c[1], c[2] = byte(i), byte(i>>8), byte(i>>16)
				if _, err := s.Put(ctx, digest.FromBytes(c), bytes.NewReader(c)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("Open/%dKiB", size>>10), func(b *testing.B) {
			s, _ := f(b)
			d := digest.FromBytes(content)
			if _, err := s.Put(ctx, d, bytes.NewReader(content)); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			for b.Loop() {
				r, _, err := s.Open(ctx, d)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, r); err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
		})
	}
	b.Run("Stat", func(b *testing.B) {
		s, _ := f(b)
		c := []byte("stat me")
		d := digest.FromBytes(c)
		if _, err := s.Put(ctx, d, bytes.NewReader(c)); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := s.Stat(ctx, d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
