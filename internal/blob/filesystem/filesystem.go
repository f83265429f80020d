// Package filesystem is the default blob.Store: one file per blob under a
// root directory, laid out as <root>/<algorithm>/<first two hex>/<hex>.
//
// Unfinished uploads live in <root>/_uploads/<id>/ on the same filesystem, so
// finishing one is a rename: content is written to the upload's data file,
// hashed while it streams, fsynced, verified, then renamed into place and the
// directory fsynced. A crash at any point leaves either no blob or the whole
// verified blob, never a partial one.
package filesystem

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/blob"
)

const uploadsDir = "_uploads"

// Store keeps blobs as files under a root directory.
type Store struct {
	root string
}

var _ blob.Store = (*Store)(nil)

// New opens (creating if needed) a blob store rooted at dir.
func New(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, uploadsDir), 0o750); err != nil {
		return nil, fmt.Errorf("blob store %s: %w", dir, err)
	}
	return &Store{root: dir}, nil
}

func (s *Store) path(d digest.Digest) (string, error) {
	if !blob.Supported(d) {
		return "", fmt.Errorf("%w: %q", blob.ErrUnsupportedDigest, d)
	}
	enc := d.Encoded()
	return filepath.Join(s.root, string(d.Algorithm()), enc[:2], enc), nil
}

// Stat implements blob.Store.
func (s *Store) Stat(_ context.Context, d digest.Digest) (blob.Info, error) {
	p, err := s.path(d)
	if err != nil {
		return blob.Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return blob.Info{}, notFound(d, err)
	}
	return blob.Info{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Open implements blob.Store. The reader is an *os.File.
func (s *Store) Open(_ context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	p, err := s.path(d)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, notFound(d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return f, fi.Size(), nil
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, d digest.Digest, r io.Reader) (int64, error) {
	if !blob.Supported(d) {
		return 0, fmt.Errorf("%w: %q", blob.ErrUnsupportedDigest, d)
	}
	u, err := s.newUpload(d.Algorithm())
	if err != nil {
		return 0, err
	}
	if _, err := u.ReadFrom(r); err != nil {
		return 0, errors.Join(err, u.Cancel(ctx))
	}
	n, err := u.Commit(ctx, d)
	if err != nil {
		return 0, errors.Join(err, u.Cancel(ctx))
	}
	return n, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(_ context.Context, d digest.Digest) error {
	p, err := s.path(d)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return notFound(d, err)
	}
	return nil
}

// Walk implements blob.Store.
func (s *Store) Walk(ctx context.Context, fn func(blob.Info) error) error {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		algDir := filepath.Join(s.root, string(alg))
		prefixes, err := os.ReadDir(algDir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("walk blobs: %w", err)
		}
		for _, prefix := range prefixes {
			if err := ctx.Err(); err != nil {
				return err
			}
			if !prefix.IsDir() {
				continue
			}
			entries, err := os.ReadDir(filepath.Join(algDir, prefix.Name()))
			if err != nil {
				return fmt.Errorf("walk blobs: %w", err)
			}
			for _, e := range entries {
				d := digest.NewDigestFromEncoded(alg, e.Name())
				if !e.Type().IsRegular() || !blob.Supported(d) || !strings.HasPrefix(e.Name(), prefix.Name()) {
					continue // not ours: leave foreign files alone
				}
				fi, err := e.Info()
				if errors.Is(err, fs.ErrNotExist) {
					continue // deleted while walking
				}
				if err != nil {
					return fmt.Errorf("walk blobs: %w", err)
				}
				if err := fn(blob.Info{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// NewUpload implements blob.Store.
func (s *Store) NewUpload(_ context.Context) (blob.Upload, error) {
	return s.newUpload(digest.SHA256)
}

func (s *Store) newUpload(alg digest.Algorithm) (*upload, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("new upload id: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	dir := filepath.Join(s.root, uploadsDir, id)
	if err := os.Mkdir(dir, 0o750); err != nil {
		return nil, fmt.Errorf("new upload: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, dataFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("new upload: %w", err)
	}
	return &upload{store: s, id: id, dir: dir, f: f, alg: alg, h: alg.Hash()}, nil
}

// ResumeUpload implements blob.Store.
func (s *Store) ResumeUpload(_ context.Context, id string) (blob.Upload, error) {
	if !validUploadID(id) {
		return nil, fmt.Errorf("%w: %q", blob.ErrUploadNotFound, id)
	}
	dir := filepath.Join(s.root, uploadsDir, id)
	f, err := os.OpenFile(filepath.Join(dir, dataFile), os.O_WRONLY|os.O_APPEND, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", blob.ErrUploadNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("resume upload %s: %w", id, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("resume upload %s: %w", id, err)
	}
	u := &upload{store: s, id: id, dir: dir, f: f, size: fi.Size(), alg: digest.SHA256}
	u.loadState()
	return u, nil
}

// WalkUploads implements blob.Store.
func (s *Store) WalkUploads(ctx context.Context, fn func(blob.UploadInfo) error) error {
	entries, err := os.ReadDir(filepath.Join(s.root, uploadsDir))
	if err != nil {
		return fmt.Errorf("walk uploads: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.IsDir() || !validUploadID(e.Name()) {
			continue
		}
		info := blob.UploadInfo{ID: e.Name()}
		fi, err := os.Stat(filepath.Join(s.root, uploadsDir, e.Name(), dataFile))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// A crash between creating the directory and its data file:
			// report the directory's age so the upload can be expired.
			di, derr := e.Info()
			if derr != nil {
				continue
			}
			info.ModTime = di.ModTime()
		case err != nil:
			return fmt.Errorf("walk uploads: %w", err)
		default:
			info.Size, info.ModTime = fi.Size(), fi.ModTime()
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// StatUpload implements blob.Store.
func (s *Store) StatUpload(_ context.Context, id string) (blob.UploadInfo, error) {
	if !validUploadID(id) {
		return blob.UploadInfo{}, fmt.Errorf("%w: %q", blob.ErrUploadNotFound, id)
	}
	dir := filepath.Join(s.root, uploadsDir, id)
	info := blob.UploadInfo{ID: id}
	fi, err := os.Stat(filepath.Join(dir, dataFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Half-created by a crash, as in WalkUploads: the directory's age.
		di, derr := os.Stat(dir)
		if errors.Is(derr, fs.ErrNotExist) {
			return blob.UploadInfo{}, fmt.Errorf("%w: %s", blob.ErrUploadNotFound, id)
		}
		if derr != nil {
			return blob.UploadInfo{}, fmt.Errorf("stat upload %s: %w", id, derr)
		}
		info.ModTime = di.ModTime()
	case err != nil:
		return blob.UploadInfo{}, fmt.Errorf("stat upload %s: %w", id, err)
	default:
		info.Size, info.ModTime = fi.Size(), fi.ModTime()
	}
	return info, nil
}

// RemoveUpload implements blob.Store.
func (s *Store) RemoveUpload(_ context.Context, id string) error {
	if !validUploadID(id) {
		return nil
	}
	if err := os.RemoveAll(filepath.Join(s.root, uploadsDir, id)); err != nil {
		return fmt.Errorf("remove upload %s: %w", id, err)
	}
	return nil
}

func validUploadID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func notFound(d digest.Digest, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", blob.ErrNotFound, d)
	}
	return fmt.Errorf("blob %s: %w", d, err)
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// touch marks a blob as just written; a blob committed from a long-lived
// upload would otherwise carry the time of its first chunk.
func touch(p string) error {
	now := time.Now()
	return os.Chtimes(p, now, now)
}
