package postgres_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/pgdb"
	"berth.dev/berth/internal/testpeers"
	"berth.dev/berth/internal/vulndb"
	"berth.dev/berth/internal/vulndb/live"
	"berth.dev/berth/internal/vulndb/shared"
	"berth.dev/berth/internal/vulndb/shared/postgres"
)

// writeFeed writes an OSV feed folder holding one npm record per id, each
// affecting the package of that name below 2.0.0.
func writeFeed(t *testing.T, dir string, ids ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "npm"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ecosystems.txt"), []byte("npm\n"), 0o644)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, id := range ids {
		v := osv.Vulnerability{ID: id, Modified: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			Affected: []osv.Affected{{Package: osv.Package{Ecosystem: "npm", Name: "pkg-" + id},
				Ranges: []osv.Range{{Type: osv.RangeSemver, Events: []osv.Event{{Introduced: "0"}, {Fixed: "2.0.0"}}}}}}}
		w, _ := zw.Create(id + ".json")
		json.NewEncoder(w).Encode(v)
	}
	zw.Close()
	if err := os.WriteFile(filepath.Join(dir, "npm", "all.zip"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replica is one server's live database and its syncer.
type replica struct {
	dir  string
	feed string
	db   *live.DB
	sync *shared.Replica
}

func newReplica(t *testing.T, store shared.Store) *replica {
	t.Helper()
	r := &replica{dir: t.TempDir(), feed: t.TempDir()}
	var err error
	if r.db, err = live.Open(live.Config{Dir: r.dir, Sources: []string{r.feed}, Digests: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.db.Close() })
	r.sync = shared.NewReplica(store, r.db, nil)
	return r
}

// update builds a database of ids on r and publishes it.
func (r *replica) update(t *testing.T, ids ...string) *live.Change {
	t.Helper()
	writeFeed(t, r.feed, ids...)
	ch, err := r.sync.Update(context.Background(), r.db.Update)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// has reports whether r's live database holds the record id.
func (r *replica) has(t *testing.T, id string) bool {
	t.Helper()
	g := r.db.Acquire()
	if g == nil {
		return false
	}
	defer g.Release()
	v, err := g.DB.Vulnerability(context.Background(), id)
	return err == nil && v != nil
}

func open(t *testing.T) (*postgres.Store, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, testpeers.Postgres(t)) // a database of the test's own
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s, err := postgres.New(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	// Small chunks: the test's databases span many.
	s.ChunkSize = 4096
	return s, pool
}

func count(t *testing.T, pool *pgxpool.Pool, query string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A database one replica updated is published (announced with its
// digest), installed by another replica byte for byte, and replaced by
// the next publication, of which only the newest is kept.
func TestPublishFetchRoundTrip(t *testing.T) {
	ctx := context.Background()
	store, pool := open(t)
	a, b := newReplica(t, store), newReplica(t, store)

	if _, err := store.Latest(ctx); err != shared.ErrNone {
		t.Fatalf("Latest of an empty store: %v", err)
	}
	// Nothing published: B's sync leaves it as it is.
	if err := b.sync.Sync(ctx); err != nil || b.db.Digest() != "" {
		t.Fatalf("sync with nothing published: %v, digest %q", err, b.db.Digest())
	}

	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN "+postgres.ChangesChannel); err != nil {
		t.Fatal(err)
	}

	a.update(t, "VULN-1")
	first := a.db.Digest()
	p, err := store.Latest(ctx)
	if err != nil || p.Digest != first || !strings.HasPrefix(first, "sha256:") {
		t.Fatalf("Latest %+v, %v; A has %s", p, err, first)
	}
	if st, _ := os.Stat(vulndb.Path(a.dir)); st == nil || st.Size() != p.Size {
		t.Errorf("published size %d, file %v", p.Size, st)
	}
	if n := count(t, pool, "SELECT count(*) FROM vulndb_chunks"); n < 2 {
		t.Errorf("%d chunks: the file was not split", n)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	n, err := conn.WaitForNotification(wctx)
	cancel()
	if err != nil || n.Payload != first {
		t.Errorf("notification %+v, %v; want %s", n, err, first)
	}

	if err := b.sync.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if b.db.Digest() != first || !b.has(t, "VULN-1") {
		t.Fatalf("B after sync: digest %s (want %s)", b.db.Digest(), first)
	}
	fa, _ := os.ReadFile(vulndb.Path(a.dir))
	fb, _ := os.ReadFile(vulndb.Path(b.dir))
	if !bytes.Equal(fa, fb) {
		t.Error("B's file differs from A's")
	}

	// B updates next: it starts from A's database, and only its own is
	// kept.
	b.update(t, "VULN-1", "VULN-2")
	second := b.db.Digest()
	if second == first {
		t.Fatal("the second update has the first's digest")
	}
	if n := count(t, pool, "SELECT count(*) FROM vulndb_published"); n != 1 {
		t.Errorf("%d published databases kept", n)
	}
	if n := count(t, pool, "SELECT count(DISTINCT digest) FROM vulndb_chunks"); n != 1 {
		t.Errorf("chunks of %d databases kept", n)
	}
	if _, err := store.Fetch(ctx, first, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), shared.ErrGone.Error()) {
		t.Errorf("fetch of the replaced database: %v", err)
	}
	if err := a.sync.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if a.db.Digest() != second || !a.has(t, "VULN-2") {
		t.Errorf("A after sync: %s, want %s", a.db.Digest(), second)
	}

	// An update on a replica that missed the last publication starts
	// from it: its change is measured from the published database.
	b.update(t, "VULN-1", "VULN-2", "VULN-3")
	published, err := store.Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ch := a.update(t, "VULN-1", "VULN-2", "VULN-3", "VULN-4")
	if !ch.From.Equal(published.UpdatedAt) || ch.Added != 1 || ch.KeysChanged != 1 {
		t.Errorf("A's update changed %+v; want it measured from %s (one record added)", ch, published.UpdatedAt)
	}
}

// A damaged chunk is found by its digest: the fetch fails saying so, and
// the replica keeps answering from the database it had, leaving no file
// behind.
func TestDamagedChunkKeepsTheOldDatabase(t *testing.T) {
	ctx := context.Background()
	store, pool := open(t)
	a, b := newReplica(t, store), newReplica(t, store)
	a.update(t, "VULN-1")
	if err := b.sync.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	old := b.db.Digest()
	a.update(t, "VULN-1", "VULN-2")
	if _, err := pool.Exec(ctx, `UPDATE vulndb_chunks SET data = set_byte(data, 100, (get_byte(data, 100) + 1) % 256)
		WHERE seq = 1`); err != nil {
		t.Fatal(err)
	}
	_, err := store.Fetch(ctx, a.db.Digest(), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("fetch of a damaged database: %v", err)
	}
	err = b.sync.Sync(ctx)
	if err == nil || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), "previous database kept") {
		t.Errorf("sync to a damaged database: %v", err)
	}
	if b.db.Digest() != old || !b.has(t, "VULN-1") || b.has(t, "VULN-2") {
		t.Errorf("B after the failed sync: %s, want %s", b.db.Digest(), old)
	}
	entries, _ := os.ReadDir(b.dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".build-") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// Content that is not what the publication claims (a short file, another
// digest) publishes nothing: the database published before stays.
func TestPublishChecksTheContent(t *testing.T) {
	ctx := context.Background()
	store, _ := open(t)
	a := newReplica(t, store)
	a.update(t, "VULN-1")
	before, err := store.Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("not the database")
	for _, tc := range []struct {
		name string
		p    shared.Published
		want string
	}{
		{"wrong digest", shared.Published{Digest: "sha256:" + strings.Repeat("0", 64), Size: int64(len(content))}, "has digest"},
		{"short", shared.Published{Digest: before.Digest, Size: int64(len(content)) + 1}, "bytes, not"},
	} {
		err := store.Publish(ctx, tc.p, bytes.NewReader(content))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if p, err := store.Latest(ctx); err != nil || p.Digest != before.Digest {
			t.Errorf("%s: latest %+v, %v", tc.name, p, err)
		}
	}
}
