package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/backend"
	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/meta"
)

// ErrDataDirInUse means another berth process holds the data directory.
var ErrDataDirInUse = errors.New("data directory is in use by another berth process")

// Storage is an opened data directory and the backends chosen by the
// storage settings (internal/backend). Layout of an embedded one:
//
//	<data>/berth.lock   flock held while open; holds the owner's PID
//	<data>/meta.db      SQLite metadata (plus -wal and -shm)
//	<data>/blobs/       content-addressed blobs and unfinished uploads
//	<data>/audit-anchors.log  the audit log's signed tips (security.go)
//
// With storage.meta on PostgreSQL the data directory keeps only what is
// local to a replica (layer cache, TLS files, vulnerability database, its
// audit anchor file) and is not locked: the shared state is the
// database's and the bucket's, which replicas share.
type Storage struct {
	Dir      string
	Blobs    blob.Store
	Meta     meta.Store
	Backends *backend.Set
	lock     *os.File // nil when the directory holds no shared state
}

// OpenStorage locks and opens an embedded data directory (SQLite, files),
// creating it if needed. The lock is exclusive: a second server, or
// `berth gc`/`berth fsck` while a server runs, gets ErrDataDirInUse naming
// the holder's PID.
func OpenStorage(ctx context.Context, dir string) (*Storage, error) {
	return OpenBackends(ctx, backend.Config{Dir: dir})
}

// OpenBackends opens the data directory bc.Dir and the backends bc names,
// locking the directory when it holds the metadata (SQLite).
func OpenBackends(ctx context.Context, bc backend.Config) (*Storage, error) {
	if err := bc.Check(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(bc.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	var lock *os.File
	if !bc.SharedMeta() {
		var err error
		if lock, err = lockDir(bc.Dir); err != nil {
			return nil, err
		}
	}
	set, err := backend.Open(ctx, bc)
	if err != nil {
		if lock != nil {
			unlock(lock)
		}
		return nil, err
	}
	return &Storage{Dir: bc.Dir, Blobs: set.Blobs, Meta: set.Meta, Backends: set, lock: lock}, nil
}

// Close closes the stores and releases the lock.
func (s *Storage) Close() error {
	err := s.Backends.Close()
	if s.lock != nil {
		err = errors.Join(err, unlock(s.lock))
	}
	return err
}

func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "berth.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := ""
		if raw, rerr := os.ReadFile(path); rerr == nil && len(raw) > 0 {
			holder = " (pid " + strings.TrimSpace(string(raw)) + ")"
		}
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s%s", ErrDataDirInUse, dir, holder)
		}
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	// The PID is informational, for the error above; the flock is the lock
	// and dies with the process, so a kill -9 leaves nothing stale.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

func unlock(f *os.File) error {
	// Closing the descriptor releases the flock.
	return f.Close()
}
