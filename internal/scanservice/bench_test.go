package scanservice

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/backend"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/jobs"
	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/testpeers"
)

// The re-match benchmark stores 10,000 reports of synthetic but realistic
// images (a Debian 11 base of 90 packages drawn mostly from a shared pool,
// and 60 language packages from npm, PyPI and Go pools), against a
// database of one advisory per pooled package, then updates the database
// so that 1% of the pooled packages get a new advisory, and measures from
// the update's start until every affected report is re-matched and stored
// through the job queue. "all" re-matches every stored report.
//
//	go test -run XXX -bench RematchAfterUpdate -benchtime 3x ./internal/scanservice
//
// It runs on the embedded stores (SQLite reports and job queue); with
// BERTH_BENCH_POSTGRES=1 the reports and the queue are a fresh database's
// on the PostgreSQL server at $BERTH_TEST_POSTGRES, as a server with a
// postgres:// storage.meta keeps them.
const (
	benchImages   = 10_000
	benchDebPool  = 400  // Debian source packages images draw from
	benchLangPool = 6000 // language packages per ecosystem
	// benchPostgresEnv set to 1 runs the benchmark on PostgreSQL.
	benchPostgresEnv = "BERTH_BENCH_POSTGRES"
)

// benchMeta is the storage.meta the benchmark's stores are chosen by: a
// database of its own on the test PostgreSQL server when asked, dropped
// when the benchmark ends, so runs never see each other's rows.
func benchMeta(b *testing.B) string {
	switch v := os.Getenv(benchPostgresEnv); v {
	case "":
		return backend.SQLite
	case "1":
		return testpeers.Postgres(b)
	default:
		b.Fatalf("%s=%q: want 1 or unset", benchPostgresEnv, v)
		return ""
	}
}

type pooled struct {
	eco      string // OSV ecosystem
	name     string
	version  string
	deb      bool
	invEco   inventory.Ecosystem
	affected bool // the first database has an advisory fixed above it
}

func benchPool(r *rand.Rand) []pooled {
	var pool []pooled
	for i := range benchDebPool {
		pool = append(pool, pooled{eco: "Debian:11", name: fmt.Sprintf("deb-src-%d", i), version: fmt.Sprintf("1.%d-1+deb11u1", i%7),
			deb: true, invEco: inventory.Deb, affected: r.IntN(4) == 0})
	}
	for _, e := range []struct {
		eco string
		inv inventory.Ecosystem
	}{{"npm", inventory.NPM}, {"PyPI", inventory.PyPI}, {"Go", inventory.Go}} {
		for i := range benchLangPool {
			name := fmt.Sprintf("%s-pkg-%d", e.eco, i)
			if e.eco == "Go" {
				name = fmt.Sprintf("example.com/mod%d", i)
			}
			pool = append(pool, pooled{eco: e.eco, name: name, version: fmt.Sprintf("1.%d.%d", i%9, i%5), invEco: e.inv,
				affected: r.IntN(5) == 0})
		}
	}
	return pool
}

// benchInventory draws one image: 70 of the 90 Debian packages from the
// first 120 of the pool (a shared base), the rest and the language
// packages anywhere.
func benchInventory(r *rand.Rand, pool []pooled) inventory.Inventory {
	inv := inventory.Inventory{Distro: &inventory.Distro{ID: "debian", VersionID: "11"}, OS: "linux", Architecture: "amd64"}
	seen := map[int]bool{}
	add := func(i int) {
		if seen[i] {
			return
		}
		seen[i] = true
		p := pool[i]
		pk := inventory.Package{Ecosystem: p.invEco, Name: p.name, Version: p.version, Analyzer: "bench",
			Locations: []string{"/var/lib/dpkg/status"}, Licenses: []string{"MIT"}}
		if p.deb {
			pk.SourceName, pk.SourceVersion, pk.Arch = p.name, p.version, "amd64"
			pk.PURL = "pkg:deb/debian/" + p.name + "@" + p.version + "?arch=amd64&distro=debian-11"
		} else {
			pk.Locations = []string{"/app/lockfile"}
			pk.PURL = "pkg:" + string(p.invEco) + "/" + p.name + "@" + p.version
		}
		inv.Packages = append(inv.Packages, pk)
	}
	for len(seen) < 70 {
		add(r.IntN(120))
	}
	for len(seen) < 90 {
		add(r.IntN(benchDebPool))
	}
	for len(seen) < 150 {
		add(benchDebPool + r.IntN(len(pool)-benchDebPool))
	}
	return inv
}

// writeBenchFeed writes an OSV feed with one advisory per affected pooled
// package, plus one more for each package of extra.
func writeBenchFeed(b *testing.B, dir string, pool []pooled, extra map[int]bool) {
	byEco := map[string][]osv.Vulnerability{}
	for i, p := range pool {
		mk := func(id string) osv.Vulnerability {
			return osv.Vulnerability{ID: id, Modified: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Summary: "flaw in " + p.name,
				Affected: []osv.Affected{{Package: osv.Package{Ecosystem: p.eco, Name: p.name},
					Ranges: []osv.Range{{Type: osv.RangeEcosystem, Events: []osv.Event{{Introduced: "0"}, {Fixed: "99.0"}}}}}},
				DatabaseSpecific: json.RawMessage(`{"severity":"HIGH"}`)}
		}
		if p.affected {
			byEco[p.eco] = append(byEco[p.eco], mk(fmt.Sprintf("BENCH-%d", i)))
		}
		if extra[i] {
			byEco[p.eco] = append(byEco[p.eco], mk(fmt.Sprintf("BENCH-NEW-%d", i)))
		}
	}
	var ecos []byte
	for eco, recs := range byEco {
		ecos = append(ecos, eco+"\n"...)
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for _, r := range recs {
			w, _ := zw.Create(r.ID + ".json")
			json.NewEncoder(w).Encode(r)
		}
		zw.Close()
		os.MkdirAll(filepath.Join(dir, eco), 0o755)
		if err := os.WriteFile(filepath.Join(dir, eco, "all.zip"), buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "ecosystems.txt"), ecos, 0o644); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkRematchAfterUpdate(b *testing.B) {
	for _, share := range []struct {
		name    string
		percent int
	}{{"1pct", 1}, {"all", 100}} {
		b.Run(share.name, func(b *testing.B) {
			// The server's polling and retries: the tests' 20 ms polls
			// delay the next job after each one ends (river fetches when a
			// slot frees, but no sooner than 20 ms after its last fetch)
			// and cost CPU.
			h := newHarnessOn(b, benchMeta(b), func(c *jobs.Config) { c.PollInterval, c.RetryBase, c.RetryMax = 0, 0, 0 })
			ctx := context.Background()
			r := rand.New(rand.NewPCG(1, 2))
			pool := benchPool(r)
			os.MkdirAll(h.feed, 0o755)
			writeBenchFeed(b, h.feed, pool, nil)
			if _, err := h.db.Update(ctx); err != nil {
				b.Fatal(err)
			}
			gen := h.db.Acquire()
			engine := h.svc.engine(gen)
			for i := range benchImages {
				inv := benchInventory(r, pool)
				rep, err := engine.Match(ctx, &inv)
				if err != nil {
					b.Fatal(err)
				}
				d := digest.FromString(fmt.Sprint("image", i))
				if err := h.reports.Put(ctx, d, reports.Scan{Status: reports.Done, DBUpdatedAt: gen.Info.UpdatedAt}, rep, lookupKeys(rep.Inventory), -1); err != nil {
					b.Fatal(err)
				}
			}
			gen.Release()
			runtime.GC()
			b.ResetTimer()
			var affected, keys int
			var updating, rematching, indexing, cpu time.Duration
			for n := range b.N {
				b.StopTimer()
				extra := map[int]bool{}
				for len(extra) < len(pool)*share.percent/100 {
					extra[r.IntN(len(pool))] = true
				}
				if n%2 == 1 && share.percent < 100 {
					extra = nil // back to the first database: the same keys change again
				}
				writeBenchFeed(b, h.feed, pool, extra)
				b.StartTimer()
				start := time.Now()
				cpuStart := cpuTime(b)
				ch, err := h.svc.UpdateDB(ctx)
				if err != nil {
					b.Fatal(err)
				}
				updated := time.Now()
				updating += updated.Sub(start)
				if share.percent == 100 {
					// Every report, whatever changed.
					var all []digest.Digest
					var after digest.Digest
					for {
						page, err := h.reports.Digests(ctx, after, 1000)
						if err != nil {
							b.Fatal(err)
						}
						if len(page) == 0 {
							break
						}
						all = append(all, page...)
						after = page[len(page)-1]
					}
					if err := h.svc.queueRematch(ctx, all, RematchArgs{}); err != nil {
						b.Fatal(err)
					}
				}
				// Re-matched: every report and its notices stored. The
				// vulnerability index catches up after (IndexArgs).
				h.waitKind(RematchArgs{}.Kind())
				rematched := time.Now()
				rematching += rematched.Sub(updated)
				h.waitIdle()
				indexing += time.Since(rematched)
				// CPU time too: on a machine shared with other builds it
				// says more than the wall time.
				cpu += cpuTime(b) - cpuStart
				keys = ch.KeysChanged
				aff, _ := h.reports.Affected(ctx, ch.Keys)
				affected = len(aff)
			}
			b.ReportMetric(float64(updating.Milliseconds())/float64(b.N), "update-ms/op")
			b.ReportMetric(float64(rematching.Milliseconds())/float64(b.N), "rematch-ms/op")
			b.ReportMetric(float64(indexing.Milliseconds())/float64(b.N), "index-ms/op")
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(affected), "reports-affected")
			b.ReportMetric(float64(keys), "keys-changed")
		})
	}
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
