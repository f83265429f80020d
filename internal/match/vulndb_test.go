package match

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/vulndb"
	vulndbupdate "berth.dev/berth/internal/vulndb/update"
)

// The local vulnerability DB is what berth matches against in production.
var _ Source = (*vulndb.DB)(nil)

// realDB imports all of vulndata (OSV feed, Debian tracker, Alpine secdb)
// through the real update path into a DB under dir.
func realDB(tb testing.TB, dir string) *vulndb.DB {
	tb.Helper()
	abs := vulndata(tb)
	_, err := vulndbupdate.Run(context.Background(), vulndbupdate.Options{
		Dir: dir,
		Sources: []string{
			filepath.Join(abs, "osv"),
			vulndbupdate.PrefixDebianTracker + filepath.Join(abs, "debian-tracker"),
			vulndbupdate.PrefixAlpineSecDB + filepath.Join(abs, "alpine-secdb"),
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	db, err := vulndb.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// TestAgainstLocalDB matches through the real DB the cases the unit tests
// check against hand-converted records: the converters and the matcher
// must agree on ecosystems, names and versions.
func TestAgainstLocalDB(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: imports the whole fixture DB (scripts/test.sh, as CI runs, does not pass -short)")
	}
	db := realDB(t, t.TempDir())
	m := New(db)
	tests := []struct {
		name    string
		inv     inventory.Inventory
		want    []string // primary ids
		records string   // a record one of the findings must list
	}{
		{"npm", inventory.Inventory{Packages: []inventory.Package{{Ecosystem: inventory.NPM, Name: "lodash", Version: "4.17.15"}}},
			[]string{"CVE-2020-28500", "CVE-2020-8203"}, "GHSA-p6mc-m468-83gw"},
		{"PyPI normalised", inventory.Inventory{Packages: []inventory.Package{{Ecosystem: inventory.PyPI, Name: "IDNA", Version: "3.3"}}},
			[]string{"CVE-2024-3651"}, "PYSEC-2024-60"},
		{"Debian 11 source package", inventory.Inventory{
			Distro:   &inventory.Distro{ID: "debian", VersionID: "11"},
			Packages: []inventory.Package{{Ecosystem: inventory.Deb, Name: "libssl1.1", Version: "1.1.1n-0+deb11u3", SourceName: "openssl"}},
		}, nil, "DSA-5343-1"},
		{"Alpine 3.10 origin package", inventory.Inventory{
			Distro:   &inventory.Distro{ID: "alpine", VersionID: "3.10.3"},
			Packages: []inventory.Package{{Ecosystem: inventory.APK, Name: "busybox", Version: "1.30.1-r1", SourceName: "busybox"}},
		}, []string{"CVE-2019-5747"}, "ALPINE-CVE-2019-5747"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := m.Match(context.Background(), tc.inv)
			if err != nil {
				t.Fatal(err)
			}
			var ids, recs []string
			for _, f := range r.Findings {
				ids = append(ids, f.ID)
				recs = append(recs, f.Records...)
			}
			slices.Sort(ids)
			if tc.want != nil && !slices.Equal(ids, tc.want) {
				t.Errorf("ids %v, want %v", ids, tc.want)
			}
			if !slices.Contains(recs, tc.records) {
				t.Errorf("records %v lack %s", recs, tc.records)
			}
		})
	}
}

// BenchmarkMatch1000LocalDB is BenchmarkMatch1000 through the real DB:
// every lookup decodes its records from bbolt.
func BenchmarkMatch1000LocalDB(b *testing.B) {
	inv := benchInventory(osvSource(b), 1000)
	db := realDB(b, b.TempDir())
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		r, err := New(db).Match(ctx, inv) // fresh, as one berth scan's
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Findings) == 0 {
			b.Fatal("no findings")
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}
