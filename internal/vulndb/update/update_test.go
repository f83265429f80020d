package update_test

import (
	"archive/zip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/testpeers"
	"berth.dev/berth/internal/vulndb"
	"berth.dev/berth/internal/vulndb/source/alpine"
	"berth.dev/berth/internal/vulndb/source/debian"
	"berth.dev/berth/internal/vulndb/source/nodejs"
	"berth.dev/berth/internal/vulndb/source/osvfeed"
	"berth.dev/berth/internal/vulndb/update"
	"berth.dev/berth/internal/vulndb/vulndbtest"
)

// upstreamSources are --source specs for every feed in the fixture, served
// by srv laid out as upstream serves them.
func upstreamSources(srv *vulndbtest.Server) []string {
	return []string{
		srv.URL + "/osv",
		"debian-tracker:" + srv.URL + "/debian-tracker",
		"alpine-secdb:" + srv.URL + "/alpine-secdb",
		"nodejs-wg:" + srv.URL + "/nodejs-security-wg/vuln.zip",
	}
}

func lookup(t *testing.T, db *vulndb.DB, eco, name string) []string {
	t.Helper()
	vs, err := db.Vulnerabilities(context.Background(), eco, name)
	if err != nil {
		t.Fatalf("%s %s: %v", eco, name, err)
	}
	var ids []string
	for _, v := range vs {
		ids = append(ids, v.ID)
	}
	return ids
}

func TestUpdateOverHTTP(t *testing.T) {
	vulndata := testpeers.Shared(t, "vulndata")
	srv := vulndbtest.NewServer(t, vulndata)
	dir := t.TempDir()
	ctx := context.Background()
	t1 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

	info, err := update.Run(ctx, update.Options{Dir: dir, Sources: upstreamSources(srv), Now: func() time.Time { return t1 }})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Sources) != 4 || info.Records < 17000 {
		t.Errorf("info: %d sources, %d records", len(info.Sources), info.Records)
	}
	for _, eco := range []string{"Go", "PyPI", "npm", "Maven", "Debian:11", "Debian:10", "Alpine:v3.10"} {
		if info.Ecosystems[eco] == 0 {
			t.Errorf("no records for %s", eco)
		}
	}

	db, err := vulndb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	known := []struct{ eco, name, id string }{
		{"Go", "golang.org/x/text", "GHSA-69ch-w2m2-3vjp"},
		{"Go", "golang.org/x/net/http2", "GHSA-4v7x-pqxf-cx7m"},
		{"PyPI", "Requests", "GHSA-9wx4-h78v-vm56"},
		{"PyPI", "JW_Util", "PYSEC-2020-341"},
		{"npm", "lodash", "GHSA-29mw-wpgm-hmr9"},
		{"Debian:11", "xorg-server", "DSA-5380-1"},
		{"Debian:10", "xorg-server", "DLA-3372-1"},
		{"Alpine:v3.10", "ansible", "ALPINE-CVE-2019-10206"},
		{"npm", "bassmaster", "NSWG-ECO-1"},
	}
	for _, k := range known {
		if ids := lookup(t, db, k.eco, k.name); !slices.Contains(ids, k.id) {
			t.Errorf("%s %s: %v lacks %s", k.eco, k.name, ids, k.id)
		}
	}
	if !db.Info().UpdatedAt.Equal(t1) || db.StaleWarning(vulndb.DefaultMaxAge, t1.Add(time.Hour)) != "" {
		t.Errorf("updated at %v", db.Info().UpdatedAt)
	}

}

// An unchanged upstream costs only 304s, and still counts as an update.
func TestNotModifiedUpdate(t *testing.T) {
	feed := smallFeed(t, "X-1")
	os.WriteFile(filepath.Join(feed, "ecosystems.txt"), []byte("npm\n"), 0o644)
	srv := vulndbtest.NewServer(t, feed)
	dir := t.TempDir()
	ctx := context.Background()
	t1 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	t2 := t1.Add(24 * time.Hour)
	if _, err := update.Run(ctx, update.Options{Dir: dir, Sources: []string{srv.URL}, Now: func() time.Time { return t1 }}); err != nil {
		t.Fatal(err)
	}
	before, _ := srv.Counts()
	if _, err := update.Run(ctx, update.Options{Dir: dir, Sources: []string{srv.URL}, Now: func() time.Time { return t2 }}); err != nil {
		t.Fatal(err)
	}
	after, notModified := srv.Counts()
	if after-before != 2 || notModified != 2 {
		t.Errorf("second update: %d requests, %d were 304; want 2 and 2", after-before, notModified)
	}
	db, err := vulndb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if !db.Info().UpdatedAt.Equal(t2) || db.Info().Records != 1 {
		t.Errorf("after a 304 update: %v, %d records", db.Info().UpdatedAt, db.Info().Records)
	}
}

// smallFeed writes an OSV folder holding one npm record.
func smallFeed(t *testing.T, id string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "npm"), 0o755)
	f, err := os.Create(filepath.Join(dir, "npm", "all.zip"))
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	w, _ := zw.Create(id + ".json")
	w.Write([]byte(`{"id":"` + id + `","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.1"}]}]}]}`))
	zw.Close()
	f.Close()
	return dir
}

// previousDB installs a DB with one known record and opens it.
func previousDB(t *testing.T) (string, *vulndb.DB) {
	t.Helper()
	dir := t.TempDir()
	if _, err := update.Run(context.Background(), update.Options{Dir: dir, Sources: []string{smallFeed(t, "OLD-1")}}); err != nil {
		t.Fatal(err)
	}
	db, err := vulndb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return dir, db
}

// checkPrevious asserts that the DB in dir, and the handle opened before the
// failed update, still answer with the old data, and nothing was left behind.
func checkPrevious(t *testing.T, dir string, old *vulndb.DB) {
	t.Helper()
	if ids := lookup(t, old, "npm", "left-pad"); !slices.Equal(ids, []string{"OLD-1"}) {
		t.Errorf("old handle: %v", ids)
	}
	db, err := vulndb.Open(dir)
	if err != nil {
		t.Fatalf("previous DB unusable: %v", err)
	}
	defer db.Close()
	if ids := lookup(t, db, "npm", "left-pad"); !slices.Equal(ids, []string{"OLD-1"}) {
		t.Errorf("reopened DB: %v, want the previous OLD-1", ids)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".build-") {
			t.Errorf("left behind %s", e.Name())
		}
	}
}

func TestFailedUpdatesKeepThePreviousDB(t *testing.T) {
	vulndata := testpeers.Shared(t, "vulndata")
	t.Run("server error", func(t *testing.T) {
		dir, old := previousDB(t)
		srv := vulndbtest.NewServer(t, vulndata)
		srv.SetMode(vulndbtest.Fail)
		_, err := update.Run(context.Background(), update.Options{Dir: dir, Sources: upstreamSources(srv)})
		if err == nil || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "previous database kept") {
			t.Fatalf("err = %v", err)
		}
		checkPrevious(t, dir, old)
	})
	t.Run("hanging source", func(t *testing.T) {
		dir, old := previousDB(t)
		srv := vulndbtest.NewServer(t, vulndata)
		srv.SetMode(vulndbtest.Hang)
		_, err := update.Run(context.Background(), update.Options{Dir: dir, Sources: upstreamSources(srv), Timeout: 100 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Fatalf("err = %v, want a timeout", err)
		}
		checkPrevious(t, dir, old)
	})
	t.Run("interrupted", func(t *testing.T) {
		dir, old := previousDB(t)
		srv := vulndbtest.NewServer(t, vulndata)
		// The Go records load; the update is stopped while the next zip
		// downloads.
		srv.HangOn(func(p string) bool { return p == "/osv/Maven/all.zip" })
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-srv.Hanging()
			cancel()
		}()
		_, err := update.Run(ctx, update.Options{Dir: dir, Sources: upstreamSources(srv)})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		checkPrevious(t, dir, old)
	})
	t.Run("corrupt download", func(t *testing.T) {
		dir, old := previousDB(t)
		feed := t.TempDir()
		os.WriteFile(filepath.Join(feed, "ecosystems.txt"), []byte("npm\n"), 0o644)
		os.MkdirAll(filepath.Join(feed, "npm"), 0o755)
		os.WriteFile(filepath.Join(feed, "npm", "all.zip"), []byte("PK\x03\x04 this is not the rest of a zip"), 0o644)
		srv := vulndbtest.NewServer(t, feed)
		_, err := update.Run(context.Background(), update.Options{Dir: dir, Sources: []string{srv.URL}})
		if err == nil || !strings.Contains(err.Error(), "zip") {
			t.Fatalf("err = %v, want a zip error", err)
		}
		checkPrevious(t, dir, old)
	})
}

func TestUpdateIntoUnwritableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	_, err := update.Run(context.Background(), update.Options{Dir: filepath.Join(file, "db"), Sources: []string{smallFeed(t, "X-1")}})
	if err == nil || !strings.Contains(err.Error(), "vulnerability database directory") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseSource(t *testing.T) {
	abs, _ := filepath.Abs("feed")
	tests := []struct {
		spec, want string
	}{
		{"https://mirror.example/osv", (&osvfeed.Source{Base: "https://mirror.example/osv"}).Name()},
		{"osv:", osvfeed.New(osvfeed.DefaultBase).Name()},
		{"osv:/srv/osv", osvfeed.New("/srv/osv").Name()},
		{"feed", osvfeed.New(abs).Name()},
		{"file:///srv/osv", osvfeed.New("file:///srv/osv").Name()},
		{"debian-tracker:", debian.New(debian.DefaultBase).Name()},
		{"debian-tracker:/srv/tracker", debian.New("/srv/tracker").Name()},
		{"alpine-secdb:", alpine.New(alpine.DefaultBase).Name()},
		{"alpine-secdb:https://secdb.example", alpine.New("https://secdb.example").Name()},
		{"nodejs-wg:/srv/vuln.zip", nodejs.New("/srv/vuln.zip").Name()},
	}
	for _, tt := range tests {
		s, err := update.ParseSource(tt.spec)
		if err != nil {
			t.Errorf("ParseSource(%q): %v", tt.spec, err)
			continue
		}
		if s.Name() != tt.want {
			t.Errorf("ParseSource(%q) = %s, want %s", tt.spec, s.Name(), tt.want)
		}
	}
	limited, err := update.ParseSource("https://mirror.example/osv#npm, PyPI")
	if err != nil {
		t.Fatal(err)
	}
	if f := limited.(*osvfeed.Source); f.Base != "https://mirror.example/osv" || strings.Join(f.Ecosystems, "|") != "npm|PyPI" {
		t.Errorf("limited feed: %+v", f)
	}
	for _, bad := range []string{"", "ftp://x/y", "oci://reg/db:1", "nodejs-wg:", "osv:#", "/srv/osv#,"} {
		if _, err := update.ParseSource(bad); err == nil {
			t.Errorf("ParseSource(%q) succeeded", bad)
		}
	}
	_, err = update.Run(context.Background(), update.Options{Dir: t.TempDir(), Sources: []string{"oci://127.0.0.1:1/db:1", "osv:"}})
	if err == nil || !strings.Contains(err.Error(), "cannot be mixed") {
		t.Errorf("oci:// mixed with a feed: err = %v", err)
	}
}

// The records a lookup returns are the ones the source gave, trimmed to the
// package: a record round-trips through update, DB and lookup intact.
func TestRecordSurvivesTheRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := update.Run(context.Background(), update.Options{Dir: dir, Sources: []string{smallFeed(t, "RT-1")}}); err != nil {
		t.Fatal(err)
	}
	db, err := vulndb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	vs, _ := db.Vulnerabilities(context.Background(), "npm", "left-pad")
	want := osv.Event{Fixed: "1.0.1"}
	if len(vs) != 1 || vs[0].Affected[0].Ranges[0].Events[1] != want {
		t.Fatalf("got %+v", vs)
	}
}
