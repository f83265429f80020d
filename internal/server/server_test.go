package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// testConfig is for tests of the server's plumbing, which talk to the
// registry anonymously; auth_test.go covers the server with auth on.
func testConfig(t *testing.T) Config {
	c := DefaultConfig()
	c.Data = t.TempDir()
	c.ShutdownTimeout = 10 * time.Second
	c.Auth.Disabled = true
	return c
}

func TestDataDirectoryLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	first, err := OpenStorage(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenStorage(ctx, dir)
	if !errors.Is(err, ErrDataDirInUse) || !strings.Contains(err.Error(), "pid ") {
		t.Fatalf("second OpenStorage: err = %v, want ErrDataDirInUse naming the pid", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := OpenStorage(ctx, dir)
	if err != nil {
		t.Fatalf("OpenStorage after Close: %v", err)
	}
	again.Close()
}

func TestEndpoints(t *testing.T) {
	s, err := New(context.Background(), testConfig(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(s)
	defer srv.Close()
	get := func(path string, headers ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, p := range []string{"/healthz", "/readyz", "/v2/"} {
		if resp, body := get(p); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d %s", p, resp.StatusCode, body)
		}
	}
	if resp, _ := get("/elsewhere"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /elsewhere = %d", resp.StatusCode)
	}
	// The path is not cleaned before the registry sees it.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(srv.URL + "/v2/a/../b/manifests/latest")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET /v2/a/../b/manifests/latest = %d, want 400", resp.StatusCode)
	}

	// Request ids: honoured when sane, generated otherwise.
	resp, _ = get("/v2/", "X-Request-Id", "abc-123")
	if got := resp.Header.Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("X-Request-Id = %q, want the client's", got)
	}
	for _, bad := range []string{"", "with space", "quote\"", strings.Repeat("x", 200)} {
		resp, _ = get("/v2/", "X-Request-Id", bad)
		if got := resp.Header.Get("X-Request-Id"); got == "" || got == bad {
			t.Errorf("X-Request-Id %q answered with %q", bad, got)
		}
	}

	// A push and a pull show up in the metrics.
	blob := []byte("metric me")
	d := digest.FromBytes(blob)
	presp, err := http.Post(srv.URL+"/v2/r/blobs/uploads/?digest="+d.String(), "application/octet-stream", bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	presp.Body.Close()
	get("/v2/r/blobs/" + d.String())
	for _, odd := range []string{"FROB", "XYZZY"} {
		req, _ := http.NewRequest(odd, srv.URL+"/v2/", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	mresp, metrics := get("/metrics")
	if ct := mresp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("/metrics Content-Type = %q", ct)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	if _, err := parser.TextToMetricFamilies(strings.NewReader(metrics)); err != nil {
		t.Errorf("/metrics does not parse: %v", err)
	}
	for _, want := range []string{
		`berth_http_requests_total{code="201",method="POST",route="upload_start"} 1`,
		`berth_http_requests_total{code="200",method="GET",route="blob"} 1`,
		`berth_http_request_bytes_total{route="upload_start"} 9`,
		`berth_http_response_bytes_total{route="blob"} 9`,
		`berth_uploads_in_flight 0`,
		`berth_http_request_duration_seconds_bucket{code="200",method="GET",route="blob",le="+Inf"} 1`,
		`berth_http_request_duration_seconds_count{code="200",method="GET",route="blob"} 1`,
		"# TYPE berth_http_request_duration_seconds histogram\n",
		"# TYPE berth_http_requests_total counter\n",
		"# TYPE berth_uploads_in_flight gauge\n",
		"\ngo_goroutines ",
		"\nprocess_resident_memory_bytes ",
		`method="other",route="base"} 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Methods a client makes up are one series, not one each.
	for _, odd := range []string{"FROB", "XYZZY"} {
		if strings.Contains(metrics, `method="`+odd+`"`) {
			t.Errorf("metrics have a series for the method %s", odd)
		}
	}
	// Garbage collection on demand, counted.
	if _, err := s.CollectGarbage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, metrics = get("/metrics"); !strings.Contains(metrics, `berth_gc_runs_total{result="ok"} 1`) {
		t.Errorf("metrics lack the gc run")
	}
}

// SIGTERM (a cancelled context) lets an upload in flight finish before the
// server stops, and readiness turns off first.
func TestGracefulShutdownFinishesUploads(t *testing.T) {
	cfg := testConfig(t)
	s, err := New(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()

	resp, err := http.Post(base+"/v2/r/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	content := bytes.Repeat([]byte("slow"), 1<<16)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PATCH", base+loc, pr)
	req.ContentLength = int64(len(content))
	result := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("PATCH: %v", err)
			result <- nil
			return
		}
		resp.Body.Close()
		result <- resp
	}()
	pw.Write(content[:1000]) // the request is now in flight
	for s.metricsUploadsInFlight() != 1 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	for s.ready.Load() {
		time.Sleep(5 * time.Millisecond)
	}
	pw.Write(content[1000:])
	pw.Close()
	if resp := <-result; resp == nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("the in-flight upload did not finish: %v", resp)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// The data directory is released.
	st, err := OpenStorage(context.Background(), cfg.Data)
	if err != nil {
		t.Fatalf("data directory still held: %v", err)
	}
	st.Close()
}

// metricsUploadsInFlight reads the gauge tests wait on from the exposition.
func (s *Server) metricsUploadsInFlight() float64 {
	const name = "\nberth_uploads_in_flight "
	text := string(s.metrics.reg.AppendText(nil))
	i := strings.Index(text, name)
	if i < 0 {
		return -1
	}
	line, _, _ := strings.Cut(text[i+len(name):], "\n")
	v, err := strconv.ParseFloat(line, 64)
	if err != nil {
		return -1
	}
	return v
}

// BenchmarkObserve measures the per-request metrics cost for a series that
// already exists (the steady state), serially and from all CPUs at once.
func BenchmarkObserve(b *testing.B) {
	m := newMetrics()
	m.observe("manifest", "GET", 200, 0, 1234, 300*time.Microsecond)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.observe("manifest", "GET", 200, 0, 1234, 300*time.Microsecond)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.observe("manifest", "GET", 200, 0, 1234, 300*time.Microsecond)
			}
		})
	})
}
