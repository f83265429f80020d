package filesystem

import (
	"bytes"
	"context"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/blob"
)

const (
	dataFile  = "data"
	stateFile = "hashstate"
	// stateMagic starts a hash state file; the format is the magic, the
	// algorithm name and a newline, the content size as 8 big-endian bytes,
	// then the hash's own binary marshalling.
	stateMagic = "berth-upload-hash-v1 "
)

// copyBufs holds the buffers uploads copy request bodies through: large
// enough to keep syscalls few, pooled so uploads do not allocate them.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

type upload struct {
	store *Store
	id    string
	dir   string
	f     *os.File
	size  int64
	alg   digest.Algorithm
	// h hashes everything written so far with alg. It is nil after a resume
	// whose saved state was stale; the data file is then rehashed on demand.
	h    hash.Hash
	done bool
	// flushed is how far writeback has been started (see startWriteback).
	flushed int64
}

// writebackEvery is how much unflushed content an upload accumulates before
// it starts writeback.
const writebackEvery = 8 << 20

var _ blob.Upload = (*upload)(nil)

func (u *upload) ID() string  { return u.id }
func (u *upload) Size() int64 { return u.size }

func (u *upload) Write(p []byte) (int, error) {
	if err := u.ready(); err != nil {
		return 0, err
	}
	n, err := u.f.Write(p)
	u.h.Write(p[:n])
	u.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("upload %s: %w", u.id, err)
	}
	return n, nil
}

func (u *upload) ReadFrom(r io.Reader) (int64, error) {
	if err := u.ready(); err != nil {
		return 0, err
	}
	// Hash on a second goroutine while the next buffer is read and
	// written: for a large upload, hashing and the disk write overlap.
	type chunk struct {
		buf *[]byte
		n   int
	}
	const depth = 2
	free := make(chan *[]byte, depth)
	full := make(chan chunk, depth)
	for range depth {
		free <- copyBufs.Get().(*[]byte)
	}
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for c := range full {
			u.h.Write((*c.buf)[:c.n])
			free <- c.buf
		}
	}()
	defer func() {
		close(full)
		<-hashed
		for range depth {
			copyBufs.Put(<-free)
		}
	}()
	var total int64
	for {
		bp := <-free
		n, rerr := r.Read(*bp)
		w := 0
		var werr error
		if n > 0 {
			w, werr = u.f.Write((*bp)[:n])
			u.size += int64(w)
			total += int64(w)
		}
		full <- chunk{bp, w}
		if werr != nil {
			return total, fmt.Errorf("upload %s: %w", u.id, werr)
		}
		if u.size-u.flushed >= writebackEvery {
			startWriteback(u.f, u.flushed, u.size-u.flushed)
			u.flushed = u.size
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

func (u *upload) Commit(_ context.Context, d digest.Digest) (int64, error) {
	if u.done {
		return 0, fmt.Errorf("upload %s is already finished", u.id)
	}
	final, err := u.store.path(d)
	if err != nil {
		return 0, err
	}
	if err := u.f.Sync(); err != nil {
		return 0, fmt.Errorf("upload %s: sync: %w", u.id, err)
	}
	got, err := u.digest(d.Algorithm())
	if err != nil {
		return 0, err
	}
	if got != d {
		return 0, fmt.Errorf("%w: want %s, content is %s", blob.ErrDigestMismatch, d, got)
	}
	if err := u.f.Close(); err != nil {
		return 0, fmt.Errorf("upload %s: %w", u.id, err)
	}
	u.done = true
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o750); err != nil {
		return 0, fmt.Errorf("commit blob %s: %w", d, err)
	}
	data := filepath.Join(u.dir, dataFile)
	if err := touch(data); err != nil {
		return 0, fmt.Errorf("commit blob %s: %w", d, err)
	}
	if err := os.Rename(data, final); err != nil {
		return 0, fmt.Errorf("commit blob %s: %w", d, err)
	}
	if err := syncDir(parent); err != nil {
		return 0, fmt.Errorf("commit blob %s: sync directory: %w", d, err)
	}
	if err := os.RemoveAll(u.dir); err != nil {
		return 0, fmt.Errorf("commit blob %s: remove upload: %w", d, err)
	}
	return u.size, nil
}

func (u *upload) Cancel(_ context.Context) error {
	if !u.done {
		u.done = true
		u.f.Close()
	}
	if err := os.RemoveAll(u.dir); err != nil {
		return fmt.Errorf("cancel upload %s: %w", u.id, err)
	}
	return nil
}

func (u *upload) Close() error {
	if u.done {
		return nil
	}
	u.done = true
	err := u.saveState()
	return errors.Join(err, u.f.Close())
}

// ready makes sure the running hash covers the data already written.
func (u *upload) ready() error {
	if u.done {
		return fmt.Errorf("upload %s is closed", u.id)
	}
	if u.h != nil {
		return nil
	}
	h, n, err := u.hashData(u.alg)
	if err != nil {
		return err
	}
	u.h, u.size = h, n
	return nil
}

// digest returns the digest of everything written, with alg.
func (u *upload) digest(alg digest.Algorithm) (digest.Digest, error) {
	if alg == u.alg {
		if err := u.ready(); err != nil {
			return "", err
		}
		return digest.NewDigest(alg, u.h), nil
	}
	// The client chose another algorithm than the one hashed while
	// streaming: read the content once more.
	h, n, err := u.hashData(alg)
	if err != nil {
		return "", err
	}
	if n != u.size {
		return "", fmt.Errorf("upload %s: data file holds %d bytes, expected %d", u.id, n, u.size)
	}
	return digest.NewDigest(alg, h), nil
}

func (u *upload) hashData(alg digest.Algorithm) (hash.Hash, int64, error) {
	f, err := os.Open(filepath.Join(u.dir, dataFile))
	if err != nil {
		return nil, 0, fmt.Errorf("upload %s: %w", u.id, err)
	}
	defer f.Close()
	h := alg.Hash()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	n, err := io.CopyBuffer(h, f, *bp)
	if err != nil {
		return nil, 0, fmt.Errorf("upload %s: rehash: %w", u.id, err)
	}
	return h, n, nil
}

// saveState records the running hash so a resumed upload need not reread its
// data. It is an optimisation only: loadState ignores a state that does not
// match the data file, so it is written without fsync.
func (u *upload) saveState() error {
	if u.h == nil {
		return nil
	}
	m, ok := u.h.(encoding.BinaryMarshaler)
	if !ok {
		return nil
	}
	raw, err := m.MarshalBinary()
	if err != nil {
		return fmt.Errorf("upload %s: save hash state: %w", u.id, err)
	}
	var buf bytes.Buffer
	buf.WriteString(stateMagic)
	buf.WriteString(string(u.alg))
	buf.WriteByte('\n')
	binary.Write(&buf, binary.BigEndian, u.size)
	buf.Write(raw)
	if err := os.WriteFile(filepath.Join(u.dir, stateFile), buf.Bytes(), 0o640); err != nil {
		return fmt.Errorf("upload %s: save hash state: %w", u.id, err)
	}
	return nil
}

// loadState restores the running hash if the saved state matches the data
// file; otherwise the hash is rebuilt from the data when next needed.
func (u *upload) loadState() {
	raw, err := os.ReadFile(filepath.Join(u.dir, stateFile))
	if err != nil {
		return
	}
	rest, ok := bytes.CutPrefix(raw, []byte(stateMagic))
	if !ok {
		return
	}
	name, rest, ok := bytes.Cut(rest, []byte{'\n'})
	if !ok || len(rest) < 8 {
		return
	}
	alg := digest.Algorithm(name)
	if alg != digest.SHA256 && alg != digest.SHA512 {
		return
	}
	if int64(binary.BigEndian.Uint64(rest[:8])) != u.size {
		return
	}
	h := alg.Hash()
	um, ok := h.(encoding.BinaryUnmarshaler)
	if !ok || um.UnmarshalBinary(rest[8:]) != nil {
		return
	}
	u.alg, u.h = alg, h
}
