package match

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/internal/inventory"
)

var osvToInventory = map[string]inventory.Ecosystem{"Go": inventory.Go, "PyPI": inventory.PyPI, "npm": inventory.NPM, "Maven": inventory.Maven}

// benchInventory builds n packages, every one named by some record, so
// each lookup returns records to evaluate: the worst case for matching.
func benchInventory(src *memSource, n int) inventory.Inventory {
	keys := make([]string, 0, len(src.byKey))
	for k := range src.byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var inv inventory.Inventory
	for _, k := range keys {
		if len(inv.Packages) == n {
			break
		}
		eco, name, _ := strings.Cut(k, "\x00")
		ver := "1.0.0"
		if eco == "Go" {
			ver = "v1.0.0"
		}
		inv.Packages = append(inv.Packages, inventory.Package{Ecosystem: osvToInventory[eco], Name: name, Version: ver, PURL: k})
	}
	return inv
}

// BenchmarkMatch1000 matches 1,000 packages against every OSV record in
// vulndata (target: under 20 ms per Match).
func BenchmarkMatch1000(b *testing.B) {
	src := osvSource(b)
	inv := benchInventory(src, 1000)
	if len(inv.Packages) != 1000 {
		b.Fatalf("only %d packages", len(inv.Packages))
	}
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		// A fresh Matcher each time, as one `berth scan` has: its memo of
		// matched packages would answer every later iteration
		// (BenchmarkMatch1000Remembered measures that).
		r, err := New(src).Match(ctx, inv)
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Findings) == 0 {
			b.Fatal("no findings")
		}
	}
	// On a shared machine wall time includes waiting for a core; the
	// process's CPU time per match is the figure that does not.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMatch1000Remembered matches an inventory whose packages the
// Matcher has matched before (a server re-matching stored images that
// share their base packages against one database).
func BenchmarkMatch1000Remembered(b *testing.B) {
	src := osvSource(b)
	inv := benchInventory(src, 1000)
	m := New(src)
	ctx := context.Background()
	if _, err := m.Match(ctx, inv); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Match(ctx, inv); err != nil {
			b.Fatal(err)
		}
	}
}
