package ui

import (
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// The page benchmarks of issue 13: a repository of 1,000 tags and a
// registry of 10,000 stored reports (100 repositories of 100 images, each
// report with 20 findings, all naming CVE-2024-0001), filled once per run
// of the benchmark binary. See docs/benchmarks.md.
var (
	benchOnce sync.Once
	bench     *fixture
	benchArt  digest.Digest
	benchDir  string
)

func benchFixture(b *testing.B) *fixture {
	benchOnce.Do(func() {
		// The fixture outlives the benchmark that builds it; TestMain
		// removes its folder.
		var err error
		if benchDir, err = os.MkdirTemp("", "berth-ui-bench-"); err != nil {
			b.Fatal(err)
		}
		f := newFixture(&longLived{b})
		start := time.Now().Add(-time.Hour)
		for i := range 1000 {
			d := f.push(b, "big/app", fmt.Sprintf("v%04d", i), fmt.Sprintf("big-%d", i), start.Add(time.Duration(i)*time.Second))
			f.report(b, d, fmt.Sprintf("big-%d", i), 20)
			if i == 0 {
				benchArt = d
			}
		}
		for r := range 90 {
			for i := range 100 {
				seed := fmt.Sprintf("fleet-%d-%d", r, i)
				d := f.push(b, fmt.Sprintf("fleet/svc%02d", r), fmt.Sprintf("v%d", i), seed, start)
				f.report(b, d, seed, 20)
			}
		}
		bench = f
	})
	return bench
}

// longLived hands the fixture a folder that stays for the whole run.
type longLived struct{ *testing.B }

func (l *longLived) TempDir() string { return benchDir }
func (l *longLived) Cleanup(func())  {}

func benchPage(b *testing.B, path string) {
	f := benchFixture(b)
	b.ResetTimer()
	for b.Loop() {
		if code, body := f.get(b, path); code != http.StatusOK {
			b.Fatalf("GET %s: %d\n%.300s", path, code, body)
		}
	}
}

func BenchmarkRepositoryPage1000Tags(b *testing.B) {
	benchPage(b, "/ui/projects/big/repositories/app")
}

func BenchmarkRepositoryPage1000TagsBySeverity(b *testing.B) {
	benchPage(b, "/ui/projects/big/repositories/app?sort=-severity&page=7")
}

func BenchmarkProjectPage100Repositories(b *testing.B) {
	benchPage(b, "/ui/projects/fleet")
}

func BenchmarkArtifactPage(b *testing.B) {
	benchFixture(b)
	benchPage(b, "/ui/projects/big/repositories/app/artifacts/"+benchArt.String())
}

func BenchmarkVulnerabilitySearch10000Reports(b *testing.B) {
	benchPage(b, "/ui/vulnerabilities?id=CVE-2024-0001")
}
