package scan

import (
	"archive/zip"
	"context"
	"encoding/json"
	"io"
	"slices"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/report"
	"berth.dev/berth/internal/report/table"
	"berth.dev/berth/internal/vulndb"
)

// BenchmarkScanKitchenSinkWarm is `berth scan` of kitchen-sink with a warm
// layer cache, end to end as the command runs it: open the DB, open the
// archive, inventory from the cache, match, filter, write the table
// (target: under 100 ms).
func BenchmarkScanKitchenSinkWarm(b *testing.B) {
	dbDir, cacheDir, _ := fixture(b)
	img := "oci-archive:" + kitchenSink(b)
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		e, closeDB, err := newEngine(dbDir, cacheDir)
		if err != nil {
			b.Fatal(err)
		}
		r, err := e.Scan(ctx, img, image.Options{})
		if err != nil {
			b.Fatal(err)
		}
		shown := match.Filter{}.Apply(r)
		if err := report.EncodeReport(io.Discard, "table", shown, report.Options{Table: &table.Options{}}); err != nil {
			b.Fatal(err)
		}
		closeDB()
		if len(shown.Findings) == 0 {
			b.Fatal("no findings")
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// BenchmarkRematch1000 rematches a stored inventory of 1,000 packages, each
// named by some record of the DB (the worst case: every lookup returns
// records to evaluate), as the server does for every stored image after a
// DB update (target: under 20 ms). internal/match's BenchmarkMatch1000LocalDB
// measures the matcher alone on the same kind of inventory.
func BenchmarkRematch1000(b *testing.B) {
	dbDir, _, _ := fixture(b)
	db, err := vulndb.Open(dbDir)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	stored := &match.Report{SchemaVersion: match.ReportSchemaVersion, Inventory: recordNamedInventory(b, 1000)}
	e := &Engine{Matcher: match.New(db), Logger: quiet}
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		r, err := e.Rematch(ctx, stored)
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Findings) == 0 {
			b.Fatal("no findings")
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// cpuTime is the process's CPU time: on a shared machine wall time also
// counts waiting for a core, CPU time does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// recordNamedInventory builds n packages from the packages the vulndata
// OSV records name, in name order, at a version below most fixes.
func recordNamedInventory(tb testing.TB, n int) inventory.Inventory {
	ecos := map[string]inventory.Ecosystem{"Go": inventory.Go, "PyPI": inventory.PyPI, "npm": inventory.NPM, "Maven": inventory.Maven}
	type key struct{ eco, name string }
	seen := map[key]bool{}
	var keys []key
	for dir := range ecos {
		zr, err := zip.OpenReader(vulndata(tb, "osv", dir, "all.zip"))
		if err != nil {
			tb.Fatal(err)
		}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				tb.Fatal(err)
			}
			var v osv.Vulnerability
			err = json.NewDecoder(rc).Decode(&v)
			rc.Close()
			if err != nil {
				continue
			}
			for _, a := range v.Affected {
				k := key{a.Package.Ecosystem, a.Package.Name}
				if _, ok := ecos[k.eco]; ok && !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
		zr.Close()
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.name != b.name {
			if a.name < b.name {
				return -1
			}
			return 1
		}
		if a.eco < b.eco {
			return -1
		}
		return 1
	})
	var inv inventory.Inventory
	for _, k := range keys[:min(n, len(keys))] {
		ver := "1.0.0"
		if k.eco == "Go" {
			ver = "v1.0.0"
		}
		eco := ecos[k.eco]
		inv.Packages = append(inv.Packages, inventory.Package{Ecosystem: eco, Name: k.name, Version: ver,
			PURL: "pkg:" + string(eco) + "/" + k.name + "@" + ver, Locations: []string{"/app/lock"}})
	}
	if len(inv.Packages) < n {
		tb.Fatalf("only %d packages named by records", len(inv.Packages))
	}
	return inv
}
