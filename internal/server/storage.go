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

	"berth.dev/berth/internal/blob/filesystem"
	"berth.dev/berth/internal/meta/sqlite"
)

// ErrDataDirInUse means another berth process holds the data directory.
var ErrDataDirInUse = errors.New("data directory is in use by another berth process")

// Storage is an opened data directory: its lock, blob store and meta store.
// Layout:
//
//	<data>/berth.lock   flock held while open; holds the owner's PID
//	<data>/meta.db      SQLite metadata (plus -wal and -shm)
//	<data>/blobs/       content-addressed blobs and unfinished uploads
//	<data>/audit-anchors.log  the audit log's signed tips (security.go)
type Storage struct {
	Dir   string
	Blobs *filesystem.Store
	Meta  *sqlite.Store
	lock  *os.File
}

// OpenStorage locks and opens a data directory, creating it if needed. The
// lock is exclusive: a second server, or `berth gc`/`berth fsck` while a
// server runs, gets ErrDataDirInUse naming the holder's PID.
func OpenStorage(ctx context.Context, dir string) (*Storage, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	blobs, err := filesystem.New(filepath.Join(dir, "blobs"))
	if err != nil {
		unlock(lock)
		return nil, err
	}
	ms, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		unlock(lock)
		return nil, err
	}
	return &Storage{Dir: dir, Blobs: blobs, Meta: ms, lock: lock}, nil
}

// Close closes the stores and releases the lock.
func (s *Storage) Close() error {
	err := s.Meta.Close()
	return errors.Join(err, unlock(s.lock))
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
