package audit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func testKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signed(t *testing.T, key *ecdsa.PrivateKey, seq int64) Checkpoint {
	t.Helper()
	cp, err := signCheckpoint(key, kindAnchor, Checkpoint{Seq: seq, Hash: fmt.Sprintf("%064x", seq), Time: time.Unix(0, seq)})
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// TestLastAnchorReadsBackwards finds the last good line of files whose
// lines straddle the 64 KiB chunks it reads, behind damaged and forged
// lines, without reading the file from the start.
func TestLastAnchorReadsBackwards(t *testing.T) {
	key, other := testKey(t), testKey(t)
	line := func(cp Checkpoint) string {
		b, _ := json.Marshal(cp)
		return string(b) + "\n"
	}
	var many strings.Builder
	for seq := int64(1); seq <= 2000; seq++ { // ~460 KiB: several chunks
		many.WriteString(line(signed(t, key, seq)))
	}
	for _, tc := range []struct {
		name    string
		content string
		want    int64 // 0: none
	}{
		{"empty", "", 0},
		{"one line", line(signed(t, key, 7)), 7},
		{"no final newline", strings.TrimSuffix(line(signed(t, key, 7)), "\n"), 7},
		{"many lines", many.String(), 2000},
		{"torn tail", many.String() + `{"seq":2001,"hash":"ab`, 2000},
		{"forged tail", many.String() + line(signed(t, other, 5000)), 2000},
		{"garbage longer than a chunk after the last line", line(signed(t, key, 3)) + strings.Repeat("x", 100<<10) + "\n", 3},
		{"line across a chunk boundary", strings.Repeat("y", (64<<10)-100) + "\n" + line(signed(t, key, 9)), 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), AnchorFileName)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			cp, ok, err := lastAnchor(path, &key.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == 0 && ok:
				t.Errorf("found %d in a file without a good line", cp.Seq)
			case tc.want != 0 && (!ok || cp.Seq != tc.want):
				t.Errorf("last anchor = %d (%v), want %d", cp.Seq, ok, tc.want)
			}
		})
	}
	if _, ok, err := lastAnchor(filepath.Join(t.TempDir(), "missing"), &key.PublicKey); ok || err != nil {
		t.Errorf("missing file: %v, %v", ok, err)
	}
}

func TestAnchorFileIsCreatedPrivateAndNarrowed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, AnchorFileName)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	af, err := openAnchorFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer af.close()
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := openAnchorFile(dir); err == nil {
		t.Error("a directory was accepted as the anchor file")
	}
}

func TestHTTPSink(t *testing.T) {
	key := testKey(t)
	cp := signed(t, key, 42)
	var got []byte
	status := http.StatusNoContent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s with %q", r.Method, r.Header.Get("Content-Type"))
		}
		got, _ = io.ReadAll(r.Body)
		w.WriteHeader(status)
	}))
	defer srv.Close()
	if err := (HTTPSink{URL: srv.URL}).Send(context.Background(), cp); err != nil {
		t.Fatal(err)
	}
	var back Checkpoint
	if err := json.Unmarshal(got, &back); err != nil || back.Seq != 42 || back.Hash != cp.Hash || checkSignature(&key.PublicKey, kindAnchor, back) != nil {
		t.Errorf("the sink received %s (%v), which is not the signed anchor", got, err)
	}
	status = http.StatusInternalServerError
	withPassword := strings.Replace(srv.URL, "http://", "http://user:s3cret@", 1)
	err := (HTTPSink{URL: withPassword}).Send(context.Background(), cp)
	if err == nil || !strings.Contains(err.Error(), "500") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a 500 from the sink: %v (want an error without the password)", err)
	}
}

// flakySink fails its first calls, blocks while hold is set, and records
// what it accepted.
type flakySink struct {
	mu    sync.Mutex
	fails int
	got   []int64
	hold  chan struct{}
}

func (s *flakySink) Send(ctx context.Context, cp Checkpoint) error {
	if s.hold != nil {
		select {
		case <-s.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails > 0 {
		s.fails--
		return errors.New("sink down")
	}
	s.got = append(s.got, cp.Seq)
	return nil
}

// TestSinkRetriesAndNeverBlocks: a sink that fails gets the newest
// anchor once it answers; one that hangs holds up neither Record nor
// Flush, and Close only for a bounded time.
func TestSinkRetriesAndNeverBlocks(t *testing.T) {
	ctx := context.Background()
	t.Run("retries", func(t *testing.T) {
		sink := &flakySink{fails: 1}
		s := newSinkSender(sink, func(string, ...any) {})
		key := testKey(t)
		s.offer(signed(t, key, 1))
		// The first attempt fails; a newer anchor arrives during the
		// back-off and is the one delivered.
		for {
			sink.mu.Lock()
			failed := sink.fails == 0
			sink.mu.Unlock()
			if failed {
				break
			}
			time.Sleep(time.Millisecond)
		}
		s.offer(signed(t, key, 2))
		for {
			sink.mu.Lock()
			n := len(sink.got)
			sink.mu.Unlock()
			if n > 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		s.close()
		if fmt.Sprint(sink.got) != "[2]" {
			t.Errorf("delivered %v, want [2]", sink.got)
		}
	})
	t.Run("hanging sink", func(t *testing.T) {
		sink := &flakySink{hold: make(chan struct{})}
		store := &memStore{}
		l, err := Open(ctx, store, testKey(t), Options{Sink: sink})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			if err := l.Record(Entry{Actor: "a", Action: ActionPush, Detail: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
			if i%10 == 0 {
				if err := l.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if len(store.entries) != 100 {
			t.Errorf("stored %d entries, want 100", len(store.entries))
		}
	})
}

// memStore is the least Store for tests of the Log's plumbing.
type memStore struct {
	mu      sync.Mutex
	entries []Entry
	anchor  Checkpoint
}

func (m *memStore) Append(_ context.Context, es []Entry, a Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = append(m.entries, es...)
	m.anchor = a
	return nil
}
func (m *memStore) Sync(context.Context) error { return nil }
func (m *memStore) Last(context.Context) (Entry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.entries) == 0 {
		return Entry{}, false, nil
	}
	return m.entries[len(m.entries)-1], true, nil
}
func (m *memStore) LastBefore(context.Context, time.Time) (Entry, bool, error) {
	return Entry{}, false, nil
}
func (m *memStore) Query(context.Context, Filter) ([]Entry, error) { return nil, nil }
func (m *memStore) Walk(_ context.Context, fn func(Entry) error) error {
	for _, e := range m.entries {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}
func (m *memStore) Anchor(context.Context) (Checkpoint, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.anchor, m.anchor.Seq > 0, nil
}
func (m *memStore) Pruned(context.Context) (Checkpoint, bool, error) { return Checkpoint{}, false, nil }
func (m *memStore) Prune(context.Context, Checkpoint) (int64, error) { return 0, nil }
