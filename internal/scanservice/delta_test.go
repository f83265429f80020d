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
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/vulndb/live"
)

// A delta re-match (only the packages whose lookup keys an update changed
// are matched again) must store exactly the report a full match stores.
// These tests build random inventories and databases through the real
// update path (feed → vulndb → live.Change), apply random changes, and
// compare every stored report with a full match against the same
// database, encoded and decoded by the store's codec.

// deltaPool is what random inventories and feeds draw from.
type deltaPkg struct {
	inv     inventory.Ecosystem
	name    string // binary package name for deb
	source  string // deb source package
	osvEco  []string
	version string
}

func deltaPool(r *rand.Rand) []deltaPkg {
	var pool []deltaPkg
	for i := range 24 {
		src := fmt.Sprintf("src%d", i/2) // two binaries per source
		pool = append(pool, deltaPkg{inv: inventory.Deb, name: fmt.Sprintf("lib%d", i), source: src,
			osvEco: []string{"Debian:11", "Debian:12"}, version: fmt.Sprintf("1.%d-1", r.IntN(3))})
	}
	for _, e := range []struct {
		inv inventory.Ecosystem
		eco string
	}{{inventory.NPM, "npm"}, {inventory.PyPI, "PyPI"}, {inventory.Go, "Go"}} {
		for i := range 16 {
			name := fmt.Sprintf("%s-Pkg_%d", e.eco, i) // PyPI names normalise
			if e.eco == "Go" {
				name = fmt.Sprintf("example.com/m%d", i)
			}
			pool = append(pool, deltaPkg{inv: e.inv, name: name, osvEco: []string{e.eco}, version: fmt.Sprintf("1.%d.0", r.IntN(3))})
		}
	}
	return pool
}

// deltaInventory draws an image: a distro (or none), some OS and language
// packages, some found twice, some without a purl differing only in
// architecture, some Python packages the OS installed.
func deltaInventory(r *rand.Rand, pool []deltaPkg) inventory.Inventory {
	inv := inventory.Inventory{OS: "linux", Architecture: "amd64"}
	switch r.IntN(5) {
	case 0:
	case 1:
		inv.Distro = &inventory.Distro{ID: "debian", VersionID: "12"}
	default:
		inv.Distro = &inventory.Distro{ID: "debian", VersionID: "11"}
	}
	for range 3 + r.IntN(25) {
		p := pool[r.IntN(len(pool))]
		pk := inventory.Package{Ecosystem: p.inv, Name: p.name, Version: p.version, Analyzer: "test",
			Locations: []string{fmt.Sprintf("/app/%d/lock", r.IntN(3))}}
		if r.IntN(4) == 0 {
			pk.Version = fmt.Sprintf("1.%d.0", r.IntN(3)) // another version than the pool's
		}
		switch {
		case p.inv == inventory.Deb:
			pk.SourceName, pk.SourceVersion, pk.Arch = p.source, pk.Version, "amd64"
			pk.Locations = []string{"/var/lib/dpkg/status"}
			if r.IntN(3) > 0 {
				pk.PURL = "pkg:deb/debian/" + p.name + "@" + pk.Version + "?arch=amd64"
			} else if r.IntN(2) == 0 {
				// The same package for another architecture, without a
				// purl: two packages under one report key.
				twin := pk
				twin.Arch = "i386"
				inv.Packages = append(inv.Packages, twin)
			}
		case p.inv == inventory.PyPI && r.IntN(3) == 0:
			pk.Locations = []string{"/usr/lib/python3/dist-packages/" + p.name + ".egg-info"}
			pk.PURL = "pkg:pypi/" + p.name + "@" + pk.Version
		default:
			pk.PURL = "pkg:" + string(p.inv) + "/" + p.name + "@" + pk.Version
		}
		inv.Packages = append(inv.Packages, pk)
		if r.IntN(6) == 0 {
			again := pk
			again.Locations = []string{"/other/place"}
			inv.Packages = append(inv.Packages, again)
		}
	}
	return inv
}

// deltaFeed is a feed: per package index and OSV ecosystem, its records.
type deltaFeed map[[2]int][]osv.Vulnerability

// randomRecord makes a record for pool[i] in ecosystem eco: a fix at
// some version or none, a rating or a CVSS vector (sometimes one that
// does not parse, which warns), aliases from a small set so that
// records merge into one finding, sometimes withdrawn.
func randomRecord(r *rand.Rand, pool []deltaPkg, i int, eco string, n int) osv.Vulnerability {
	p := pool[i]
	name := p.name
	if p.inv == inventory.Deb {
		name = p.source
	}
	v := osv.Vulnerability{ID: fmt.Sprintf("TEST-%d-%d-%d", i, n, r.IntN(1000)), Modified: time.Date(2026, 1, 1+r.IntN(20), 0, 0, 0, 0, time.UTC),
		Summary: fmt.Sprintf("flaw %d in %s", r.IntN(100), name)}
	if r.IntN(2) == 0 {
		v.Aliases = []string{fmt.Sprintf("CVE-2026-%d", r.IntN(8))}
	}
	events := []osv.Event{{Introduced: "0"}}
	if r.IntN(3) > 0 {
		fixed := fmt.Sprintf("1.%d.0", 1+r.IntN(3))
		if p.inv == inventory.Deb {
			fixed = fmt.Sprintf("1.%d-1", 1+r.IntN(3))
		}
		events = append(events, osv.Event{Fixed: fixed})
	}
	v.Affected = []osv.Affected{{Package: osv.Package{Ecosystem: eco, Name: name},
		Ranges: []osv.Range{{Type: osv.RangeEcosystem, Events: events}}}}
	switch r.IntN(4) {
	case 0:
		v.DatabaseSpecific = json.RawMessage(fmt.Sprintf(`{"severity":%q}`, []string{"LOW", "MODERATE", "HIGH", "CRITICAL"}[r.IntN(4)]))
	case 1:
		v.Severity = []osv.Severity{{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}
	case 2:
		v.Severity = []osv.Severity{{Type: "CVSS_V3", Score: "CVSS:3.1/broken"}}
	}
	if r.IntN(12) == 0 {
		v.Withdrawn = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	}
	return v
}

// change applies random changes to f: records added, changed and
// removed for a few packages, and now and then a whole release dropped
// or brought back (the database's coverage of it changes).
func (f deltaFeed) change(r *rand.Rand, pool []deltaPkg, n int) {
	for range 1 + r.IntN(6) {
		i := r.IntN(len(pool))
		eco := pool[i].osvEco[r.IntN(len(pool[i].osvEco))]
		k := [2]int{i, slices.Index(pool[i].osvEco, eco)}
		switch recs := f[k]; {
		case len(recs) > 0 && r.IntN(3) == 0:
			f[k] = recs[:len(recs)-1]
		case len(recs) > 0 && r.IntN(2) == 0:
			recs[r.IntN(len(recs))] = randomRecord(r, pool, i, eco, n)
		default:
			f[k] = append(recs, randomRecord(r, pool, i, eco, n))
		}
	}
	if r.IntN(5) == 0 {
		// Debian 12 goes (or, when it had gone, comes back).
		gone := true
		for k, recs := range f {
			if pool[k[0]].inv == inventory.Deb && k[1] == 1 && len(recs) > 0 {
				gone = false
				f[k] = nil
			}
		}
		if gone {
			for i := range pool {
				if pool[i].inv == inventory.Deb && r.IntN(2) == 0 {
					f[[2]int{i, 1}] = []osv.Vulnerability{randomRecord(r, pool, i, "Debian:12", n)}
				}
			}
		}
	}
}

func (f deltaFeed) write(t testing.TB, dir string, pool []deltaPkg) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	byEco := map[string][]osv.Vulnerability{}
	for k, recs := range f {
		eco := pool[k[0]].osvEco[k[1]]
		byEco[eco] = append(byEco[eco], recs...)
	}
	var ecos []byte
	for _, eco := range slices.Sorted(func(yield func(string) bool) {
		for eco := range byEco {
			if !yield(eco) {
				return
			}
		}
	}) {
		recs := byEco[eco]
		if len(recs) == 0 {
			continue
		}
		slices.SortFunc(recs, func(a, b osv.Vulnerability) int { return cmpString(a.ID, b.ID) })
		ecos = append(ecos, eco+"\n"...)
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for i, rec := range recs {
			w, err := zw.Create(fmt.Sprintf("%s-%d.json", rec.ID, i))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.NewEncoder(w).Encode(rec); err != nil {
				t.Fatal(err)
			}
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, eco), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, eco, "all.zip"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ecosystems.txt"), ecos, 0o644); err != nil {
		t.Fatal(err)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkDelta runs rounds of random database updates over random stored
// reports; after each, it re-matches a random part of the reports (the
// others fall behind, and are matched in full when they next are) with
// the update's changed keys, and compares each stored report, summary
// and vulnerability index with a full match's. It returns how many
// re-matches were deltas.
func checkDelta(t testing.TB, seed uint64, images, rounds int) int {
	h := newHarness(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 7))
	pool := deltaPool(r)
	feed := deltaFeed{}
	known := map[string]bool{}
	for range 3 {
		feed.change(r, pool, 0)
	}
	for i := range pool {
		if r.IntN(3) == 0 {
			k := [2]int{i, r.IntN(len(pool[i].osvEco))}
			feed[k] = append(feed[k], randomRecord(r, pool, i, pool[i].osvEco[k[1]], 0))
		}
	}
	feed.write(t, h.feed, pool)
	if _, err := h.db.Update(ctx); err != nil {
		t.Fatal(err)
	}
	codec, err := reports.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()
	gen := h.db.Acquire()
	var ds []digest.Digest
	for i := range images {
		inv := deltaInventory(r, pool)
		rep, err := h.svc.engine(gen).Match(ctx, &inv)
		if err != nil {
			t.Fatal(err)
		}
		d := digest.FromString(fmt.Sprintf("delta-%d-%d", seed, i))
		if err := h.reports.Put(ctx, d, reports.Scan{Status: reports.Done, DBUpdatedAt: gen.Info.UpdatedAt}, rep, lookupKeys(rep.Inventory), -1); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	gen.Release()
	deltas := 0
	for round := 1; round <= rounds; round++ {
		feed.change(r, pool, round)
		feed.write(t, h.feed, pool)
		ch, err := h.db.Update(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Every report, not only those Affected finds: a delta must be
		// right for a report the update did not touch too.
		var some []digest.Digest
		for _, d := range ds {
			if r.IntN(4) > 0 {
				some = append(some, d)
			}
		}
		n, err := h.svc.rematch(ctx, RematchArgs{DBUpdatedAt: ch.To, From: ch.From, Keys: deltaKeys(ch.Keys)}, some)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		deltas += n
		gen := h.db.Acquire()
		for _, d := range some {
			compareWithFull(t, h, codec, gen, d, fmt.Sprintf("seed %d round %d", seed, round), known)
		}
		gen.Release()
	}
	return deltas
}

// compareWithFull checks the stored report of d against a full match of
// its inventory against gen, as the store would keep it, and the
// vulnerability index: d is indexed under exactly the ids of the full
// match among known, which gathers every id found so far (so an id a
// re-match dropped is checked to be gone).
func compareWithFull(t testing.TB, h *harness, codec *reports.Codec, gen *live.Generation, d digest.Digest, what string, known map[string]bool) {
	t.Helper()
	ctx := context.Background()
	rec, err := h.reports.Get(ctx, d, true)
	if err != nil {
		t.Fatal(err)
	}
	full, err := h.svc.engine(gen).Match(ctx, &rec.Report.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	full.MatchedAt = rec.Report.MatchedAt // the one field that is the time of matching
	inv, rest, _, img, err := codec.Encode(full)
	if err != nil {
		t.Fatal(err)
	}
	want, err := codec.DecodeReport(inv, rest, img)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rec.Report, want) {
		got, _ := json.MarshalIndent(rec.Report.Findings, "", " ")
		exp, _ := json.MarshalIndent(want.Findings, "", " ")
		t.Fatalf("%s: %s: stored report differs from a full match\nwarnings %q\nwant     %q\nfindings %s\nwant     %s",
			what, d, rec.Report.Warnings, want.Warnings, got, exp)
	}
	if sum := reports.Summarize(full); rec.Summary != sum {
		t.Fatalf("%s: %s: summary %+v, a full match's %+v", what, d, rec.Summary, sum)
	}
	has := map[string]bool{}
	for _, id := range reports.FindingIDs(full) {
		has[id], known[id] = true, true
	}
	for id := range known {
		vuln, err := h.reports.Vulnerable(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(vuln, d) != has[id] {
			t.Fatalf("%s: %s indexed under %s: %t, a full match's findings name it: %t", what, d, id, !has[id], has[id])
		}
	}
}

// TestDeltaRematchEqualsFullMatch is the property over fixed seeds.
func TestDeltaRematchEqualsFullMatch(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			deltas := checkDelta(t, seed, 40, 6)
			t.Logf("%d delta re-matches", deltas)
			if deltas == 0 {
				t.Fatal("no re-match was a delta: the test proves nothing")
			}
		})
	}
}

// FuzzDeltaRematch searches seeds for a delta that differs from a full
// match (go test -fuzz FuzzDeltaRematch ./internal/scanservice).
func FuzzDeltaRematch(f *testing.F) {
	f.Add(uint64(5))
	f.Fuzz(func(t *testing.T, seed uint64) {
		checkDelta(t, seed, 12, 3)
	})
}
