package vulndb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DefaultMaxAge is the age past which a DB is reported stale.
const DefaultMaxAge = 7 * 24 * time.Hour

// DefaultDir is $BERTH_DB_DIR, or berth/db in the user's cache directory.
func DefaultDir() (string, error) {
	if d := os.Getenv("BERTH_DB_DIR"); d != "" {
		return d, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("vulnerability database directory: %w (set BERTH_DB_DIR or --db-dir)", err)
	}
	return filepath.Join(cache, "berth", "db"), nil
}

// Staleness returns the warning a scan should print about the DB in dir, or
// "" when the DB exists and is younger than maxAge.
func Staleness(dir string, maxAge time.Duration, now time.Time) string {
	db, err := Open(dir)
	if err != nil {
		if errors.Is(err, ErrNoDB) {
			return fmt.Sprintf("no vulnerability database in %s: run 'berth db update'", dir)
		}
		return fmt.Sprintf("vulnerability database unusable: %v", err)
	}
	defer db.Close()
	return db.StaleWarning(maxAge, now)
}

// StaleWarning returns a warning when the DB is older than maxAge, else "".
func (db *DB) StaleWarning(maxAge time.Duration, now time.Time) string {
	age := db.Age(now)
	if age <= maxAge {
		return ""
	}
	return fmt.Sprintf("vulnerability database is %s old (last updated %s): run 'berth db update'",
		FormatAge(age), db.info.UpdatedAt.Format(time.RFC3339))
}

// FormatAge writes an age the way a person reads it: "9 days", "5h0m0s",
// "42s".
func FormatAge(age time.Duration) string {
	switch {
	case age >= 48*time.Hour:
		return fmt.Sprintf("%d days", age/(24*time.Hour))
	case age >= time.Hour:
		return age.Round(time.Minute).String()
	default:
		return age.Round(time.Second).String()
	}
}

// Workspace is a DB directory locked for one writer (an update or an
// import). Readers are never blocked: they open the current file, and the
// writer builds a new one beside it and renames it into place.
type Workspace struct {
	dir  string
	lock *bolt.DB
}

// lockName is the writer lock. It is a tiny bbolt file because bbolt already
// carries a portable exclusive file lock with a timeout.
const lockName = "update.lock"

// OpenWorkspace creates dir if needed, checks it is writable and takes the
// writer lock, waiting at most wait for another writer to finish.
func OpenWorkspace(dir string, wait time.Duration) (*Workspace, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("vulnerability database directory: %w", err)
	}
	probe, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return nil, fmt.Errorf("vulnerability database directory %s is not writable: %w", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	lock, err := bolt.Open(filepath.Join(dir, lockName), 0o644, &bolt.Options{Timeout: wait})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("vulnerability database %s: another update is running", dir)
		}
		return nil, fmt.Errorf("vulnerability database lock: %w", err)
	}
	w := &Workspace{dir: dir, lock: lock}
	w.removeLeftovers()
	return w, nil
}

// Close releases the writer lock.
func (w *Workspace) Close() error { return w.lock.Close() }

const tempPrefix = ".build-"

// TempPath returns a fresh path in the directory for a file to be installed
// later; on one filesystem with the DB, so the install is a rename.
func (w *Workspace) TempPath() (string, error) {
	f, err := os.CreateTemp(w.dir, tempPrefix+"*.db")
	if err != nil {
		return "", err
	}
	name := f.Name()
	f.Close()
	// The builder wants to create the file itself.
	return name, os.Remove(name)
}

// removeLeftovers deletes what an interrupted writer left behind; the lock
// guarantees none is still running.
func (w *Workspace) removeLeftovers() {
	entries, _ := os.ReadDir(w.dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			os.Remove(filepath.Join(w.dir, e.Name()))
		}
	}
}

// Install checks the finished DB file at path and makes it the current DB:
// the file is synced, renamed over the old one and the directory synced, so
// a crash leaves either the old DB or the new, never a mix. Processes that
// have the old DB open keep reading it.
func (w *Workspace) Install(path string) (*Info, error) {
	db, err := OpenFile(path)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	info := db.Info()
	db.Close()
	if err := syncFile(path); err != nil {
		os.Remove(path)
		return nil, err
	}
	if err := os.Rename(path, Path(w.dir)); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("install vulnerability database: %w", err)
	}
	// Windows cannot sync a directory; there the rename is as durable as
	// the filesystem makes it.
	if err := syncFile(w.dir); err != nil && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("install vulnerability database: %w", err)
	}
	return &info, nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
