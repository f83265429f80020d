package vulndb_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"berth.dev/berth/internal/testpeers"
	"berth.dev/berth/internal/vulndb"
	"berth.dev/berth/internal/vulndb/fetch"
	"berth.dev/berth/internal/vulndb/source"
	"berth.dev/berth/internal/vulndb/source/alpine"
	"berth.dev/berth/internal/vulndb/source/debian"
	"berth.dev/berth/internal/vulndb/source/osvfeed"
	"berth.dev/berth/internal/vulndb/vulndbtest"
)

func vulndataSources(tb testing.TB) []source.Source {
	vulndata := testpeers.Shared(tb, "vulndata")
	return []source.Source{
		osvfeed.New(filepath.Join(vulndata, "osv")),
		debian.New(filepath.Join(vulndata, "debian-tracker")),
		alpine.New(filepath.Join(vulndata, "alpine-secdb")),
	}
}

// importAll builds a DB from every source in the shared fixture.
func importAll(tb testing.TB, dir string) *vulndb.Info {
	ws, err := vulndb.OpenWorkspace(dir, time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	defer ws.Close()
	tmp, err := ws.TempPath()
	if err != nil {
		tb.Fatal(err)
	}
	b, err := vulndb.NewBuilder(tmp)
	if err != nil {
		tb.Fatal(err)
	}
	f := fetch.New(filepath.Join(dir, "cache"))
	for _, s := range vulndataSources(tb) {
		if err := s.Load(context.Background(), f, b.Sink(s.Name())); err != nil {
			b.Abort()
			tb.Fatal(err)
		}
	}
	if _, err := b.Finish(time.Now()); err != nil {
		tb.Fatal(err)
	}
	info, err := ws.Install(tmp)
	if err != nil {
		tb.Fatal(err)
	}
	return info
}

// BenchmarkImport imports all of the shared vulndata (OSV Go, PyPI, npm,
// Maven; Debian DSA and DLA lists; Alpine secdb) into a new DB.
func BenchmarkImport(b *testing.B) {
	vulndataSources(b)
	for b.Loop() {
		importAll(b, b.TempDir())
	}
}

type pkgRef struct{ eco, name string }

// inventory returns n lookups like a scanned image's: every (ecosystem,
// name) the fixture has records for, up to a third of n, the rest packages
// it knows nothing about, as most of an image's packages are.
func inventory(tb testing.TB, n int) []pkgRef {
	tb.Helper()
	var hits []pkgRef
	seen := map[pkgRef]bool{}
	for _, s := range vulndataSources(tb) {
		c, _, err := vulndbtest.Load(context.Background(), s, tb.TempDir(), 0)
		if err != nil {
			tb.Fatal(err)
		}
		for _, v := range c.Records {
			for _, a := range v.Affected {
				p := pkgRef{a.Package.Ecosystem, a.Package.Name}
				if !seen[p] {
					seen[p] = true
					hits = append(hits, p)
				}
			}
		}
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].eco+hits[i].name < hits[j].eco+hits[j].name })
	// Spread the hits over the ecosystems instead of taking the first few.
	var out []pkgRef
	step := max(1, len(hits)/(n/3))
	for i := 0; i < len(hits) && len(out) < n/3; i += step {
		out = append(out, hits[i])
	}
	for i := 0; len(out) < n; i++ {
		out = append(out, pkgRef{"Debian:11", fmt.Sprintf("libunknown%d", i)})
	}
	return out
}

// BenchmarkVulnerabilities matches a 1,000-package inventory against the
// whole fixture DB: one op is all 1,000 lookups, decoding included.
func BenchmarkVulnerabilities(b *testing.B) {
	dir := b.TempDir()
	importAll(b, dir)
	db := open(b, dir)
	inv := inventory(b, 1000)
	ctx := context.Background()
	b.ResetTimer()
	var recs int
	for b.Loop() {
		recs = 0
		for _, p := range inv {
			vs, err := db.Vulnerabilities(ctx, p.eco, p.name)
			if err != nil {
				b.Fatal(err)
			}
			recs += len(vs)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(inv)), "ns/lookup")
	b.ReportMetric(float64(recs), "records/op")
}

// BenchmarkVulnerabilitiesHeaviest looks up the package with the most
// records in the fixture, the worst case for decoding.
func BenchmarkVulnerabilitiesHeaviest(b *testing.B) {
	dir := b.TempDir()
	importAll(b, dir)
	db := open(b, dir)
	ctx := context.Background()
	var heaviest pkgRef
	most := 0
	for _, p := range inventory(b, 30000) {
		vs, err := db.Vulnerabilities(ctx, p.eco, p.name)
		if err != nil {
			b.Fatal(err)
		}
		if len(vs) > most {
			heaviest, most = p, len(vs)
		}
	}
	b.Logf("heaviest: %s %s with %d records", heaviest.eco, heaviest.name, most)
	b.ReportMetric(float64(most), "records")
	b.ResetTimer()
	for b.Loop() {
		if _, err := db.Vulnerabilities(ctx, heaviest.eco, heaviest.name); err != nil {
			b.Fatal(err)
		}
	}
}
