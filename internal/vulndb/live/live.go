// Package live keeps the vulnerability database of a running server: it
// opens the newest database in its directory, updates it from the
// configured sources on request, swaps the new one in for new readers while
// readers of the old one finish with it, and says what changed between the
// two (vulndb.Compare), so that only the stored inventories an update can
// affect are re-matched.
//
// An update that fails or is interrupted leaves the database that was
// answering in place (internal/vulndb/update builds aside and renames).
package live

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/vulndb"
	"berth.dev/berth/internal/vulndb/update"
)

// Config says where the database lives and where updates come from.
type Config struct {
	Dir string
	// Sources are `berth db update --source` specs (oci:// included);
	// update.DefaultSources when empty.
	Sources    []string
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Digests computes the sha256 digest of every database file opened
	// or built (Generation.Digest): replicas sharing one database compare
	// theirs with the published one's (internal/vulndb/shared).
	Digests bool
}

// Generation is one opened database with its matcher. Acquire one, use it
// for one scan or re-match, Release it.
type Generation struct {
	DB      *vulndb.DB
	Matcher *match.Matcher
	Info    vulndb.Info
	// Digest is the sha256 digest of the database file ("sha256:hex"),
	// when Config.Digests is set or the file was installed by digest.
	Digest  string
	refs    atomic.Int64
	retired atomic.Bool
	closed  sync.Once
}

// Release gives the generation back; the last release of a replaced
// generation closes its file.
func (g *Generation) Release() {
	if g.refs.Add(-1) == 0 && g.retired.Load() {
		g.close()
	}
}

func (g *Generation) close() { g.closed.Do(func() { g.DB.Close() }) }

// DB is the server's live database.
type DB struct {
	cfg Config
	log *slog.Logger

	mu  sync.Mutex // guards cur's replacement and serialises updates
	cur atomic.Pointer[Generation]

	statusMu sync.Mutex
	status   Status
}

// Status is what GET /api/v1/vulndb shows.
type Status struct {
	// Sources are the configured sources.
	Sources []string `json:"sources"`
	// Ready is set once a database is open.
	Ready bool `json:"ready"`
	// Info describes the database answering now.
	Info *vulndb.Info `json:"database,omitempty"`
	// Digest is the sha256 digest of its file, when known (replicas
	// sharing a database: every replica answers the same one).
	Digest string `json:"digest,omitempty"`
	// Updating is set while an update runs.
	Updating      bool      `json:"updating"`
	LastAttemptAt time.Time `json:"last_attempt_at,omitzero"`
	LastSuccessAt time.Time `json:"last_success_at,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	// LastChange says what the last successful update changed.
	LastChange *Change `json:"last_change,omitempty"`
}

// Change is what one update changed.
type Change struct {
	From, To time.Time // the UpdatedAt of the old and new database
	// Keys are the lookup keys whose records changed; nil when there was
	// no database before (everything is new).
	Keys                    []string `json:"-"`
	KeysChanged             int      `json:"keys_changed"`
	Added, Changed, Removed int
	// Coverage lists the ecosystems (as vulndb normalises them) that have
	// records in one database and none in the other: a package of such an
	// ecosystem is matched, or reported unmatchable, differently even
	// where none of its keys changed.
	Coverage []string `json:"coverage,omitempty"`
	// First is set when there was no database before.
	First bool `json:"first,omitempty"`
}

// Open opens the database in cfg.Dir if there is one; a server without a
// database yet is not an error (its first update makes one).
func Open(cfg Config) (*DB, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &DB{cfg: cfg, log: log}
	d.status.Sources = cfg.Sources
	if len(d.status.Sources) == 0 {
		d.status.Sources = update.DefaultSources
	}
	db, err := vulndb.Open(cfg.Dir)
	switch {
	case errors.Is(err, vulndb.ErrNoDB):
		return d, nil
	case err != nil:
		// A damaged file is replaced by the next update; until then the
		// server scans nothing rather than refusing to start.
		log.Error("vulnerability database unusable until the next update", "error", err)
		d.status.LastError = err.Error()
		return d, nil
	}
	var sum string
	if cfg.Digests {
		if sum, err = fileDigest(vulndb.Path(cfg.Dir)); err != nil {
			db.Close()
			return nil, err
		}
	}
	d.install(db, sum)
	return d, nil
}

// fileDigest is the sha256 digest of the file at path.
func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("digest of the vulnerability database: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("digest of the vulnerability database: %w", err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func (d *DB) install(db *vulndb.DB, sum string) *Generation {
	g := &Generation{DB: db, Matcher: match.New(db), Info: db.Info(), Digest: sum}
	g.refs.Store(1) // the DB's own reference, dropped when replaced
	old := d.cur.Swap(g)
	info := g.Info
	d.statusMu.Lock()
	d.status.Ready, d.status.Info, d.status.Digest = true, &info, sum
	d.statusMu.Unlock()
	if old != nil {
		old.retired.Store(true)
		old.Release()
	}
	return g
}

// Acquire returns the current generation, or nil when there is no
// database yet. Release it when done.
func (d *DB) Acquire() *Generation {
	for {
		g := d.cur.Load()
		if g == nil {
			return nil
		}
		if n := g.refs.Add(1); n > 1 {
			return g
		}
		// It was retired and closed between the load and the add: undo and
		// take the new one.
		g.refs.Add(-1)
	}
}

// Status returns the database's state.
func (d *DB) Status() Status {
	d.statusMu.Lock()
	defer d.statusMu.Unlock()
	s := d.status
	return s
}

// Update fetches the sources, builds a new database and swaps it in, and
// says what changed. Updates are serialised; the old database answers
// until the new one is in place, and stays if the update fails.
func (d *DB) Update(ctx context.Context) (*Change, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setStatus(func(s *Status) { s.Updating, s.LastAttemptAt = true, time.Now().UTC() })
	ch, err := d.update(ctx)
	d.setStatus(func(s *Status) {
		s.Updating = false
		if err != nil {
			s.LastError = err.Error()
			return
		}
		s.LastError, s.LastSuccessAt, s.LastChange = "", time.Now().UTC(), ch
	})
	return ch, err
}

func (d *DB) setStatus(f func(*Status)) {
	d.statusMu.Lock()
	f(&d.status)
	d.statusMu.Unlock()
}

func (d *DB) update(ctx context.Context) (*Change, error) {
	start := time.Now()
	if _, err := update.Run(ctx, update.Options{Dir: d.cfg.Dir, Sources: d.cfg.Sources, HTTPClient: d.cfg.HTTPClient,
		Logger: d.log.With("component", "vulndb")}); err != nil {
		return nil, err
	}
	// Updates are serialised (d.mu), so the file is the one just built.
	var sum string
	if d.cfg.Digests {
		var err error
		if sum, err = fileDigest(vulndb.Path(d.cfg.Dir)); err != nil {
			return nil, err
		}
	}
	db, err := vulndb.Open(d.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("open the updated vulnerability database: %w", err)
	}
	ch := &Change{To: db.Info().UpdatedAt}
	old := d.Acquire()
	if old == nil {
		ch.First = true
	} else {
		diff, err := vulndb.Compare(ctx, old.DB, db)
		old.Release()
		if err != nil {
			db.Close()
			return nil, err
		}
		ch.From = old.Info.UpdatedAt
		ch.Keys, ch.KeysChanged = diff.Keys, len(diff.Keys)
		ch.Coverage = coverageChange(old.Info.Ecosystems, db.Info().Ecosystems)
		ch.Added, ch.Changed, ch.Removed = diff.Added, diff.Changed, diff.Removed
	}
	d.install(db, sum)
	d.log.Info("vulnerability database updated", "records", db.Info().Records, "keys_changed", ch.KeysChanged,
		"added", ch.Added, "changed", ch.Changed, "removed", ch.Removed, "took", time.Since(start).Round(time.Millisecond))
	return ch, nil
}

// coverageChange lists the ecosystems with records in exactly one of a
// and b, sorted.
func coverageChange(a, b map[string]int) []string {
	var out []string
	for eco, n := range a {
		if n > 0 && b[eco] == 0 {
			out = append(out, eco)
		}
	}
	for eco, n := range b {
		if n > 0 && a[eco] == 0 {
			out = append(out, eco)
		}
	}
	slices.Sort(out)
	return out
}

// Digest returns the digest of the database answering now ("" when there
// is none, or it is not known).
func (d *DB) Digest() string {
	if g := d.cur.Load(); g != nil {
		return g.Digest
	}
	return ""
}

// Install makes a database file built elsewhere (by another replica) the
// live one, as an update would: fill writes the file (a temporary file
// beside the database), which must have digest want and be a database
// this berth reads; it is then renamed into place and swapped in for new
// readers. Anything else (a failed or interrupted fill, another digest, a
// damaged file) leaves the database that was answering in place. Nothing
// is done when the live database already has digest want.
//
// The returned change is nil when nothing was installed; its Keys are
// not computed (the replica that built the database queued the
// re-matches).
func (d *DB) Install(ctx context.Context, want string, fill func(context.Context, io.Writer) error) (*Change, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.Digest() == want {
		return nil, nil
	}
	ws, err := vulndb.OpenWorkspace(d.cfg.Dir, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer ws.Close()
	tmp, err := ws.TempPath()
	if err != nil {
		return nil, fmt.Errorf("vulnerability database directory: %w", err)
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("vulnerability database directory: %w", err)
	}
	h := sha256.New()
	err = fill(ctx, io.MultiWriter(f, h))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Checked here too, whatever fill checked: what is installed is
		// exactly the file asked for.
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != want {
			err = fmt.Errorf("vulnerability database %s arrived with digest %s", want, got)
		}
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("install vulnerability database %s, previous database kept: %w", want, err)
	}
	info, err := ws.Install(tmp)
	if err != nil {
		return nil, fmt.Errorf("install vulnerability database %s: %w", want, err)
	}
	db, err := vulndb.Open(d.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("open the installed vulnerability database: %w", err)
	}
	ch := &Change{To: info.UpdatedAt}
	if old := d.cur.Load(); old == nil {
		ch.First = true
	} else {
		ch.From = old.Info.UpdatedAt
	}
	d.install(db, want)
	d.log.Info("vulnerability database installed", "digest", want, "updated_at", info.UpdatedAt, "records", info.Records)
	return ch, nil
}

// WithFile calls fn with the database answering now and the path of its
// file, which no update or install replaces until fn returns (to publish
// the file). fn is not called when there is no database.
func (d *DB) WithFile(fn func(g *Generation, path string) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.cur.Load()
	if g == nil {
		return errors.New("no vulnerability database")
	}
	return fn(g, vulndb.Path(d.cfg.Dir))
}

// Close closes the current database once its readers are done.
func (d *DB) Close() error {
	if g := d.cur.Swap(nil); g != nil {
		g.retired.Store(true)
		g.Release()
	}
	return nil
}
