package live

import (
	"archive/zip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/vulndb"
)

// writeFeed lays out an OSV feed folder holding recs under npm.
func writeFeed(t *testing.T, dir string, recs ...osv.Vulnerability) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "npm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ecosystems.txt"), []byte("npm\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "npm", "all.zip"))
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, r := range recs {
		w, err := zw.Create(r.ID + ".json")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.NewEncoder(w).Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func npmRec(id, name, fixed string) osv.Vulnerability {
	return osv.Vulnerability{ID: id, Modified: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Affected: []osv.Affected{{
		Package: osv.Package{Ecosystem: "npm", Name: name},
		Ranges:  []osv.Range{{Type: osv.RangeSemver, Events: []osv.Event{{Introduced: "0"}, {Fixed: fixed}}}},
	}}}
}

func TestUpdateSwapsAndSaysWhatChanged(t *testing.T) {
	feed := t.TempDir()
	writeFeed(t, feed, npmRec("GHSA-a", "lodash", "4.17.21"), npmRec("GHSA-b", "minimist", "1.2.6"))
	d, err := Open(Config{Dir: t.TempDir(), Sources: []string{feed}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Acquire() != nil || d.Status().Ready {
		t.Fatal("a new directory has a database")
	}
	ctx := context.Background()
	first, err := d.Update(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !first.First || d.Status().Info.Records != 2 {
		t.Errorf("first update: %+v, status %+v", first, d.Status())
	}
	held := d.Acquire()
	defer held.Release()

	writeFeed(t, feed, npmRec("GHSA-a", "lodash", "4.17.21"), npmRec("GHSA-b", "minimist", "1.2.8"), npmRec("GHSA-c", "qs", "6.10.3"))
	ch, err := d.Update(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{vulndb.Key("npm", "minimist"), vulndb.Key("npm", "qs")}
	if ch.First || !slices.Equal(ch.Keys, want) || ch.Added != 1 || ch.Changed != 1 || ch.Removed != 0 {
		t.Errorf("second update: %+v, want keys %q", ch, want)
	}
	// The reader of the old generation still reads it; new readers get the new one.
	if recs, err := held.DB.Vulnerabilities(ctx, "npm", "qs"); err != nil || len(recs) != 0 {
		t.Errorf("old generation: qs %v, %v", recs, err)
	}
	cur := d.Acquire()
	if recs, err := cur.DB.Vulnerabilities(ctx, "npm", "qs"); err != nil || len(recs) != 1 {
		t.Errorf("new generation: qs %v, %v", recs, err)
	}
	cur.Release()

	// A broken source fails the update and keeps the database answering.
	os.Remove(filepath.Join(feed, "npm", "all.zip"))
	os.WriteFile(filepath.Join(feed, "npm", "all.zip"), []byte("not a zip"), 0o644)
	if _, err := d.Update(ctx); err == nil {
		t.Fatal("an update from a corrupt feed succeeded")
	}
	st := d.Status()
	if st.LastError == "" || st.Info.Records != 3 || st.Updating {
		t.Errorf("status after a failed update: %+v", st)
	}
	g := d.Acquire()
	if recs, err := g.DB.Vulnerabilities(ctx, "npm", "qs"); err != nil || len(recs) != 1 {
		t.Errorf("after a failed update: qs %v, %v", recs, err)
	}
	g.Release()

	// A restarted server opens the newest database.
	again, err := Open(Config{Dir: d.cfg.Dir, Sources: []string{feed}})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if st := again.Status(); !st.Ready || st.Info.Records != 3 {
		t.Errorf("reopened: %+v", st)
	}
}

func TestConcurrentReadersAcrossUpdates(t *testing.T) {
	feed := t.TempDir()
	writeFeed(t, feed, npmRec("GHSA-a", "lodash", "4.17.21"))
	d, err := Open(Config{Dir: t.TempDir(), Sources: []string{feed}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if _, err := d.Update(ctx); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				g := d.Acquire()
				if _, err := g.DB.Vulnerabilities(ctx, "npm", "lodash"); err != nil {
					errs <- err
					g.Release()
					return
				}
				g.Release()
			}
		}()
	}
	for i := range 5 {
		writeFeed(t, feed, npmRec("GHSA-a", "lodash", "4.17.21"), npmRec("GHSA-x", "x", "1.0."+string(rune('0'+i))))
		if _, err := d.Update(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a reader failed across updates: %v", err)
	}
}
