package pgdb_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"berth.dev/berth/internal/pgdb"
	"berth.dev/berth/internal/testpeers"
)

func pools(t *testing.T, n int) []*pgxpool.Pool {
	url := testpeers.Postgres(t)
	var out []*pgxpool.Pool
	for range n {
		p, err := pgdb.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		out = append(out, p)
	}
	return out
}

// Exclusive work from several replicas never overlaps.
func TestExclusiveNeverOverlaps(t *testing.T) {
	ps := pools(t, 3)
	var inside, most, runs atomic.Int32
	var wg sync.WaitGroup
	for i := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := pgdb.Exclusive(context.Background(), ps[i%3], pgdb.LockGC, func(context.Context) error {
				n := inside.Add(1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(20 * time.Millisecond)
				inside.Add(-1)
				runs.Add(1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if runs.Load() != 9 || most.Load() != 1 {
		t.Errorf("%d runs, at most %d at once; want 9 runs, one at a time", runs.Load(), most.Load())
	}
}

// One replica leads; when its session dies (as with kill -9 or a lost
// network) another takes over, and the first stops its work.
func TestLeadMovesWhenTheLeaderDies(t *testing.T) {
	ps := pools(t, 3)
	admin := ps[2]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type lead struct {
		mu      sync.Mutex
		leading bool
		stopped int
	}
	leads := make([]*lead, 2)
	var wg sync.WaitGroup
	for i := range leads {
		l := &lead{}
		leads[i] = l
		wg.Add(1)
		go func() {
			defer wg.Done()
			pgdb.Lead(ctx, ps[i], pgdb.LockRelay, 50*time.Millisecond, func(ctx context.Context) {
				<-ctx.Done()
				l.mu.Lock()
				l.stopped++
				l.mu.Unlock()
			}, func(on bool) {
				l.mu.Lock()
				l.leading = on
				l.mu.Unlock()
			})
		}()
	}
	leaders := func() (n, which int) {
		for i, l := range leads {
			l.mu.Lock()
			if l.leading {
				n, which = n+1, i
			}
			l.mu.Unlock()
		}
		return n, which
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !ok(); {
			if time.Now().After(deadline) {
				t.Fatalf("waited 30s for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("a leader", func() bool { n, _ := leaders(); return n == 1 })
	_, first := leaders()
	// Terminate the session holding the lock.
	var pid int32
	if err := admin.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND classid = $1 AND objid = $2`, int64(0x6c656164), int64(pgdb.LockRelay)).Scan(&pid); err != nil {
		t.Fatalf("find the lock's session: %v", err)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	waitFor("the first leader to stop", func() bool {
		leads[first].mu.Lock()
		defer leads[first].mu.Unlock()
		return leads[first].stopped == 1
	})
	waitFor("the other replica to lead", func() bool { n, w := leaders(); return n == 1 && w != first })
	cancel()
	wg.Wait()
}
