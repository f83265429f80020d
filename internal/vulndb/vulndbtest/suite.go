package vulndbtest

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/testpeers"
	"berth.dev/berth/internal/vulndb/fetch"
	"berth.dev/berth/internal/vulndb/source"
)

// Harness describes one source to the suite.
type Harness struct {
	// Fixture is the folder served as the upstream, laid out as the real
	// upstream serves it: a slash-separated path inside the shared fixtures
	// (testpeers.Shared), such as "vulndata/osv". The suite fails when it
	// is absent.
	Fixture string
	// New returns the source reading from base, a URL or a local folder.
	New func(base string) source.Source
	// MinRecords is the least number of records the fixture must yield.
	MinRecords int
	// Known are records the fixture is known to hold.
	Known []Known
}

// Known is a record the source must produce.
type Known struct {
	ID        string
	Alias     string // one of the record's aliases ("" to not check)
	Ecosystem string
	Package   string
	Fixed     string // a fixed version of that package ("" to not check)
}

// Collector is a source.Sink that keeps everything.
type Collector struct {
	mu      sync.Mutex
	Records map[string]*osv.Vulnerability
	Skipped map[string]int // reason → count
}

// NewCollector returns an empty Collector.
func NewCollector() *Collector {
	return &Collector{Records: map[string]*osv.Vulnerability{}, Skipped: map[string]int{}}
}

// Add implements source.Sink.
func (c *Collector) Add(v *osv.Vulnerability) error {
	c.mu.Lock()
	c.Records[v.ID] = v
	c.mu.Unlock()
	return nil
}

// Skip implements source.Sink.
func (c *Collector) Skip(_, reason string) {
	c.mu.Lock()
	c.Skipped[reason]++
	c.mu.Unlock()
}

// Load runs a source with a fresh fetch client caching in cacheDir.
func Load(ctx context.Context, s source.Source, cacheDir string, timeout time.Duration) (*Collector, *fetch.Client, error) {
	c := NewCollector()
	f := fetch.New(cacheDir, fetch.WithTimeout(timeout))
	err := s.Load(ctx, f, c)
	return c, f, err
}

// Run is the contract every source meets.
func Run(t *testing.T, h Harness) {
	h.Fixture = testpeers.Shared(t, filepath.FromSlash(h.Fixture))
	ctx := context.Background()

	// Loading a large fixture is the slow part (much more so under -race):
	// the subtests share the first load's result.
	var viaHTTP *Collector
	t.Run("HTTP", func(t *testing.T) {
		srv := NewServer(t, h.Fixture)
		cache := t.TempDir()
		got, f, err := Load(ctx, h.New(srv.URL), cache, 5*time.Second)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		viaHTTP = got
		if !f.Changed() {
			t.Error("first load reported no change")
		}
		checkRecords(t, got, h)

		// The second load asks conditionally and reuses every file.
		before, _ := srv.Counts()
		again, f2, err := Load(ctx, h.New(srv.URL), cache, 5*time.Second)
		if err != nil {
			t.Fatalf("second Load: %v", err)
		}
		after, notModified := srv.Counts()
		if notModified != after-before || notModified == 0 {
			t.Errorf("second load: %d requests, %d answered 304; want all 304", after-before, notModified)
		}
		if f2.Changed() {
			t.Error("second load reported a change")
		}
		if len(again.Records) != len(got.Records) {
			t.Errorf("second load gave %d records, first %d", len(again.Records), len(got.Records))
		}
	})

	t.Run("LocalFolder", func(t *testing.T) {
		if viaHTTP == nil {
			// Not a skip: under -run without the HTTP subtest this one
			// would otherwise pass by testing nothing.
			t.Fatal("compares with the HTTP subtest's load, which failed or did not run")
		}
		local, _, err := Load(ctx, h.New(h.Fixture), t.TempDir(), 5*time.Second)
		if err != nil {
			t.Fatalf("Load from folder: %v", err)
		}
		if len(local.Records) != len(viaHTTP.Records) {
			t.Errorf("folder gave %d records, HTTP %d", len(local.Records), len(viaHTTP.Records))
		}
	})

	t.Run("ServerError", func(t *testing.T) {
		srv := NewServer(t, h.Fixture)
		srv.SetMode(Fail)
		_, _, err := Load(ctx, h.New(srv.URL), t.TempDir(), 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), "500") {
			t.Fatalf("Load from a failing server: err = %v, want one naming the 500", err)
		}
	})

	t.Run("Hang", func(t *testing.T) {
		srv := NewServer(t, h.Fixture)
		srv.SetMode(Hang)
		done := make(chan error, 1)
		go func() {
			_, _, err := Load(ctx, h.New(srv.URL), t.TempDir(), 100*time.Millisecond)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "timed out") {
				t.Fatalf("Load from a hanging server: err = %v, want a timeout", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Load from a hanging server did not give up")
		}
	})

	t.Run("Canceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, _, err := Load(cctx, h.New(h.Fixture), t.TempDir(), 5*time.Second)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Load with a canceled context: err = %v, want context.Canceled", err)
		}
	})

	t.Run("MissingUpstream", func(t *testing.T) {
		_, _, err := Load(ctx, h.New(filepath.Join(t.TempDir(), "nothing")), t.TempDir(), 5*time.Second)
		if err == nil {
			t.Fatal("Load from a missing folder succeeded")
		}
	})
}

func checkRecords(t *testing.T, c *Collector, h Harness) {
	t.Helper()
	if len(c.Records) < h.MinRecords {
		t.Errorf("got %d records, want at least %d", len(c.Records), h.MinRecords)
	}
	for id, v := range c.Records {
		if id == "" || v.ID != id {
			t.Errorf("record with id %q filed as %q", v.ID, id)
		}
		if len(v.Affected) == 0 {
			t.Errorf("%s: no affected entries", id)
		}
		for _, a := range v.Affected {
			if a.Package.Ecosystem == "" || a.Package.Name == "" {
				t.Errorf("%s: affected entry without ecosystem or name: %+v", id, a.Package)
			}
		}
	}
	for _, k := range h.Known {
		v := c.Records[k.ID]
		if v == nil {
			t.Errorf("known record %s missing", k.ID)
			continue
		}
		if k.Alias != "" && !slices.Contains(v.Aliases, k.Alias) {
			t.Errorf("%s: aliases %v lack %s", k.ID, v.Aliases, k.Alias)
		}
		if !hasPackage(v, k) {
			t.Errorf("%s: no affected entry %s %s fixed %q in %+v", k.ID, k.Ecosystem, k.Package, k.Fixed, v.Affected)
		}
	}
}

func hasPackage(v *osv.Vulnerability, k Known) bool {
	for _, a := range v.Affected {
		if a.Package.Ecosystem != k.Ecosystem || a.Package.Name != k.Package {
			continue
		}
		if k.Fixed == "" {
			return true
		}
		for _, r := range a.Ranges {
			for _, e := range r.Events {
				if e.Fixed == k.Fixed {
					return true
				}
			}
		}
	}
	return false
}

// Bench measures loading the fixture from a local folder.
func Bench(b *testing.B, h Harness) {
	h.Fixture = testpeers.Shared(b, filepath.FromSlash(h.Fixture))
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := Load(ctx, h.New(h.Fixture), b.TempDir(), 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}
