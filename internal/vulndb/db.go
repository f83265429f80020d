// Package vulndb is berth's local vulnerability database: OSV records from
// every source, indexed by (ecosystem, package name) in one bbolt file that
// an update builds aside and swaps in whole.
//
// The file holds three buckets: "records" maps an id to the full record
// (zstd-compressed JSON); "index" maps Key(ecosystem, name) to the records
// affecting that package, pre-encoded (see codec.go) and trimmed to what
// matching and a report line need; "meta" holds the Info of the update that
// built it.
package vulndb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	bolt "go.etcd.io/bbolt"

	"berth.dev/berth/internal/osv"
)

// SchemaVersion is the layout of the DB file this code reads and writes.
const SchemaVersion = 1

// FileName is the DB file inside the DB directory.
const FileName = "vuln.db"

var (
	bucketMeta    = []byte("meta")
	bucketIndex   = []byte("index")
	bucketRecords = []byte("records")
	keyInfo       = []byte("info")
)

// ErrNoDB means the DB directory holds no database yet.
var ErrNoDB = errors.New("no vulnerability database")

// Info describes a DB: when it was built and from what.
type Info struct {
	SchemaVersion int `json:"schema_version"`
	// UpdatedAt is when the update that built the DB succeeded.
	UpdatedAt time.Time `json:"updated_at"`
	// Records is the number of distinct records indexed.
	Records int `json:"records"`
	// Packages is the number of (ecosystem, name) index keys.
	Packages int `json:"packages"`
	// Ecosystems counts records per ecosystem ("Debian:11": 3400).
	Ecosystems map[string]int `json:"ecosystems"`
	Sources    []SourceInfo   `json:"sources"`
}

// SourceInfo is what one source contributed.
type SourceInfo struct {
	Name    string `json:"name"`
	Records int    `json:"records"`
	// Duplicates are records whose id another source (or another zip of
	// the same feed) had already given.
	Duplicates int `json:"duplicates,omitempty"`
	// Skipped counts records that were not imported at all.
	Skipped int `json:"skipped,omitempty"`
	// Reasons says why records, or some of their affected entries, were
	// left out.
	Reasons []SkipReason `json:"reasons,omitempty"`
}

// SkipReason counts records left out (wholly or in part) for one reason.
type SkipReason struct {
	Reason   string   `json:"reason"`
	Count    int      `json:"count"`
	Examples []string `json:"examples,omitempty"`
}

// DB is an open database. It is safe for concurrent use. A DB keeps
// answering from the file it opened even after an update replaced it.
type DB struct {
	bdb  *bolt.DB
	zdec *zstd.Decoder
	info Info

	// postings caches decoded lookups (key → []*osv.Vulnerability, nil
	// for a key without records), up to maxCachedPostings keys: the
	// server re-matches thousands of stored inventories against one DB,
	// and images share most of their packages. The file never changes
	// under an open DB, and callers never modify returned records.
	postings sync.Map
	cached   atomic.Int64
}

// maxCachedPostings bounds the lookups a DB keeps decoded; once reached,
// further keys are decoded on every lookup (the first keys are the base
// packages most images share).
const maxCachedPostings = 1 << 15

// Path returns the DB file inside dir.
func Path(dir string) string { return filepath.Join(dir, FileName) }

// Open opens the DB in dir for reading.
func Open(dir string) (*DB, error) { return OpenFile(Path(dir)) }

// OpenFile opens a DB file for reading.
func OpenFile(path string) (*DB, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w at %s: run 'berth db update'", ErrNoDB, path)
		}
		return nil, fmt.Errorf("vulnerability database: %w", err)
	}
	bdb, err := bolt.Open(path, 0o444, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open vulnerability database %s: %w", path, err)
	}
	db := &DB{bdb: bdb}
	if err := bdb.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || tx.Bucket(bucketIndex) == nil || tx.Bucket(bucketRecords) == nil {
			return errors.New("not a berth vulnerability database")
		}
		raw := meta.Get(keyInfo)
		if raw == nil {
			return errors.New("database was never finished")
		}
		if err := json.Unmarshal(raw, &db.info); err != nil {
			return fmt.Errorf("database info: %w", err)
		}
		if db.info.SchemaVersion != SchemaVersion {
			return fmt.Errorf("database schema %d, this berth reads %d: run 'berth db update'", db.info.SchemaVersion, SchemaVersion)
		}
		return nil
	}); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("open vulnerability database %s: %w", path, err)
	}
	db.zdec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0))
	if err != nil {
		bdb.Close()
		return nil, err
	}
	return db, nil
}

// Close releases the file.
func (db *DB) Close() error {
	db.zdec.Close()
	return db.bdb.Close()
}

// Info describes the DB.
func (db *DB) Info() Info { return db.info }

// HasEcosystem reports whether the DB holds records for ecosystem
// ("Debian:12", "Ubuntu:22.04:LTS"), so a matcher can tell a distro
// release it has no feed for from one without vulnerabilities.
func (db *DB) HasEcosystem(ecosystem string) bool {
	return db.info.Ecosystems[NormalizeEcosystem(ecosystem)] > 0
}

// Age is how long ago the DB's last successful update was.
func (db *DB) Age(now time.Time) time.Duration { return now.Sub(db.info.UpdatedAt) }

// Vulnerabilities returns the records that affect the package name in
// ecosystem ("npm", "PyPI", "Debian:12", "Alpine:v3.19", …). Names are
// normalised as at import (PEP 503 for PyPI). Each record carries all its
// fields except Details, and only the affected entries of this package,
// their ecosystem as looked up (NormalizeEcosystem); Vulnerability(id) has
// the full record as the source gave it.
func (db *DB) Vulnerabilities(ctx context.Context, ecosystem, name string) ([]*osv.Vulnerability, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k := Key(ecosystem, name)
	if v, ok := db.postings.Load(k); ok {
		return v.([]*osv.Vulnerability), nil
	}
	key := []byte(k)
	var out []*osv.Vulnerability
	err := db.bdb.View(func(tx *bolt.Tx) error {
		val := tx.Bucket(bucketIndex).Get(key)
		if val == nil {
			return nil
		}
		var err error
		out, err = decodeRecords(val)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("vulnerabilities of %s %s: %w", ecosystem, name, err)
	}
	if db.cached.Load() < maxCachedPostings {
		if _, loaded := db.postings.LoadOrStore(k, out); !loaded {
			db.cached.Add(1)
		}
	}
	return out, nil
}

// Vulnerability returns the full record with the given id, or nil when the
// DB has none.
func (db *DB) Vulnerability(ctx context.Context, id string) (*osv.Vulnerability, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var v *osv.Vulnerability
	err := db.bdb.View(func(tx *bolt.Tx) error {
		blob := tx.Bucket(bucketRecords).Get([]byte(id))
		if blob == nil {
			return nil
		}
		raw, err := db.zdec.DecodeAll(blob, nil)
		if err != nil {
			return err
		}
		v = new(osv.Vulnerability)
		return json.Unmarshal(raw, v)
	})
	if err != nil {
		return nil, fmt.Errorf("vulnerability %s: %w", id, err)
	}
	return v, nil
}

// Size is the number of bytes WriteTo writes.
func (db *DB) Size() int64 {
	var n int64
	db.bdb.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// WriteTo writes a copy of the DB file to w. An installed DB file is never
// changed in place (updates replace it), so the copy is consistent with
// Size and Info.
func (db *DB) WriteTo(w io.Writer) (int64, error) {
	var n int64
	err := db.bdb.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Check walks the whole file and reports any inconsistency in it.
func (db *DB) Check() error {
	return db.bdb.View(func(tx *bolt.Tx) error {
		var first error
		// The checker goroutine sends every problem it finds; drain them
		// all so it can finish.
		for err := range tx.Check() {
			if first == nil {
				first = fmt.Errorf("vulnerability database is damaged: %w", err)
			}
		}
		return first
	})
}
