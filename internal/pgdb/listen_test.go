package pgdb_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"berth.dev/berth/internal/pgdb"
)

// After a commit is acknowledged, a Sync on any listener returns only
// once that commit's notification has been delivered and settled: every
// time, not usually.
func TestSyncDeliversWhatCommittedBefore(t *testing.T) {
	ps := pools(t, 2)
	writer, listening := ps[0], ps[1]
	var mu sync.Mutex
	var heard []string
	var settled atomic.Int64
	l := &pgdb.Listener{
		Channels: []string{"berth_test"},
		Notify: func(_, payload string) {
			mu.Lock()
			heard = append(heard, payload)
			mu.Unlock()
		},
		Settle: func(context.Context) error { settled.Add(1); return nil },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := l.Sync(ctx); !errors.Is(err, pgdb.ErrNotListening) {
		t.Errorf("Sync before listening: %v, want ErrNotListening", err)
	}
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx, listening) }()
	for l.Sync(ctx) != nil {
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 300 {
		want := fmt.Sprint("change ", i)
		if _, err := writer.Exec(ctx, "SELECT pg_notify('berth_test', $1)", want); err != nil {
			t.Fatal(err)
		}
		before := settled.Load()
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		got := heard[len(heard)-1]
		mu.Unlock()
		if got != want {
			t.Fatalf("Sync returned before %q was delivered (last heard %q)", want, got)
		}
		if settled.Load() == before {
			t.Fatalf("Sync returned before the change was settled")
		}
	}
	// Syncs waiting together share a query, and all return.
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Sync(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	cancel()
	<-done
	if err := l.Sync(context.Background()); !errors.Is(err, pgdb.ErrNotListening) {
		t.Errorf("Sync after the listener stopped: %v, want ErrNotListening", err)
	}
}

// A listener whose session is killed says so, fails Syncs meanwhile, and
// listens again.
func TestListenerReconnects(t *testing.T) {
	ps := pools(t, 2)
	admin, listening := ps[0], ps[1]
	states := make(chan bool, 16)
	l := &pgdb.Listener{Channels: []string{"berth_test"}, Listening: func(on bool) { states <- on }, Retry: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx, listening) }()
	defer func() { cancel(); <-done }()
	expect := func(want bool) {
		t.Helper()
		select {
		case got := <-states:
			if got != want {
				t.Fatalf("listening = %v, want %v", got, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no change to listening = %v", want)
		}
	}
	expect(true)
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE (query LIKE 'LISTEN%' OR query = 'SELECT 1')
		AND pid <> pg_backend_pid() AND datname = current_database()`); err != nil {
		t.Fatal(err)
	}
	expect(false)
	expect(true)
	if err := l.Sync(ctx); err != nil {
		t.Errorf("Sync after reconnecting: %v", err)
	}
}
