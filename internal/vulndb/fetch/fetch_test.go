package fetch_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"berth.dev/berth/internal/vulndb/fetch"
	"berth.dev/berth/internal/vulndb/source"
)

const body = "ecosystem\nlist\n"

func sha256Header(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func TestConditionalRequests(t *testing.T) {
	var hits, conditional atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("If-Modified-Since") == "Mon, 01 Jan 2024 00:00:00 GMT" {
			conditional.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
		w.Write([]byte(body))
	}))
	defer srv.Close()
	cache := t.TempDir()
	ctx := context.Background()

	c := fetch.New(cache)
	p, err := c.Fetch(ctx, srv.URL+"/ecosystems.txt")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != body || !c.Changed() {
		t.Fatalf("first fetch: %q changed=%v", b, c.Changed())
	}

	c2 := fetch.New(cache)
	p2, err := c2.Fetch(ctx, srv.URL+"/ecosystems.txt")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p2); string(b) != body || c2.Changed() || conditional.Load() != 1 {
		t.Fatalf("second fetch: %q changed=%v conditional=%d", b, c2.Changed(), conditional.Load())
	}

	// A cached file that no longer matches its entry is fetched again in full.
	os.WriteFile(p2, []byte("tampered"), 0o644)
	c3 := fetch.New(cache)
	p3, err := c3.Fetch(ctx, srv.URL+"/ecosystems.txt")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p3); string(b) != body || !c3.Changed() {
		t.Fatalf("after tampering: %q changed=%v", b, c3.Changed())
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
		is      error
	}{
		{"server error", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "database on fire", http.StatusInternalServerError)
		}, `500 Internal Server Error: "database on fire"`, nil},
		{"not found", http.NotFound, "not found", source.ErrNotFound},
		{"truncated", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("short"))
		}, "", nil},
		{"digest mismatch", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Repr-Digest", "sha-256=:"+sha256Header("something else")+":")
			w.Write([]byte(body))
		}, "sha256 mismatch", nil},
		{"malformed digest", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Digest", "SHA-256=???")
			w.Write([]byte(body))
		}, "malformed sha-256", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			cache := t.TempDir()
			_, err := fetch.New(cache).Fetch(context.Background(), srv.URL+"/x")
			if err == nil {
				t.Fatal("Fetch succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.is)
			}
			// Nothing half-downloaded stays in the cache.
			entries, _ := os.ReadDir(cache)
			if len(entries) != 0 {
				t.Errorf("cache holds %d entries after a failure", len(entries))
			}
		})
	}
}

func TestPublishedDigestAccepted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Digest", "md5=abc, SHA-256="+sha256Header(body))
		w.Write([]byte(body))
	}))
	defer srv.Close()
	if _, err := fetch.New(t.TempDir()).Fetch(context.Background(), srv.URL+"/x"); err != nil {
		t.Fatal(err)
	}
}

func TestTimeouts(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	tests := map[string]http.HandlerFunc{
		"no headers": func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		},
		"body stalls": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			w.Write([]byte("some"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
		},
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			start := time.Now()
			_, err := fetch.New(t.TempDir(), fetch.WithTimeout(100*time.Millisecond)).Fetch(context.Background(), srv.URL+"/x")
			if err == nil || !strings.Contains(err.Error(), "timed out") {
				t.Fatalf("err = %v, want a timeout", err)
			}
			if time.Since(start) > 20*time.Second {
				t.Fatalf("gave up only after %v", time.Since(start))
			}
		})
	}
}

// A slow but steady body is not a hang: the deadline moves with the data.
func TestSlowBodyIsNotATimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 6; i++ {
			w.Write([]byte("chunk"))
			w.(http.Flusher).Flush()
			time.Sleep(40 * time.Millisecond)
		}
	}))
	defer srv.Close()
	p, err := fetch.New(t.TempDir(), fetch.WithTimeout(time.Second)).Fetch(context.Background(), srv.URL+"/x")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); len(b) != 30 {
		t.Errorf("got %d bytes, want 30", len(b))
	}
}

func TestLocalFiles(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "all.zip")
	os.WriteFile(f, []byte("zip"), 0o644)
	c := fetch.New(t.TempDir())
	for _, loc := range []string{f, "file://" + f} {
		p, err := c.Fetch(context.Background(), loc)
		if err != nil || p != f {
			t.Errorf("Fetch(%s) = %s, %v", loc, p, err)
		}
	}
	if _, err := c.Fetch(context.Background(), filepath.Join(dir, "missing")); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("missing file: err = %v, want ErrNotFound", err)
	}
}

func TestPrune(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"`+r.URL.Path+`"`)
		w.Write([]byte(r.URL.Path))
	}))
	defer srv.Close()
	cache := t.TempDir()
	ctx := context.Background()
	c := fetch.New(cache)
	for _, p := range []string{"/a", "/b"} {
		if _, err := c.Fetch(ctx, srv.URL+p); err != nil {
			t.Fatal(err)
		}
	}
	c2 := fetch.New(cache)
	kept, err := c2.Fetch(ctx, srv.URL+"/a")
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Prune(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(cache)
	if len(entries) != 2 { // /a's data and its validators
		t.Errorf("cache holds %d files after pruning, want 2", len(entries))
	}
	if b, err := os.ReadFile(kept); err != nil || string(b) != "/a" {
		t.Errorf("kept file: %q, %v", b, err)
	}
}

// TestProgress: a download is announced with its size and every byte of
// its body is counted; a 304 downloads nothing and announces nothing.
func TestProgress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		w.Write([]byte(body))
	}))
	defer srv.Close()
	var announced []string
	var sizes []int64
	var counted int64
	progress := fetch.WithProgress(func(url string, size int64) func(int64) {
		announced, sizes = append(announced, url), append(sizes, size)
		return func(n int64) { counted += n }
	})
	cache := t.TempDir()
	if _, err := fetch.New(cache, progress).Fetch(context.Background(), srv.URL+"/all.zip"); err != nil {
		t.Fatal(err)
	}
	if len(announced) != 1 || announced[0] != srv.URL+"/all.zip" || sizes[0] != int64(len(body)) || counted != int64(len(body)) {
		t.Errorf("announced %v sizes %v counted %d, want one download of %d bytes", announced, sizes, counted, len(body))
	}
	if _, err := fetch.New(cache, progress).Fetch(context.Background(), srv.URL+"/all.zip"); err != nil {
		t.Fatal(err)
	}
	if len(announced) != 1 || counted != int64(len(body)) {
		t.Errorf("a 304 was announced: %v, %d bytes", announced, counted)
	}
}
