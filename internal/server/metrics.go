package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	prom "berth.dev/berth/internal/metrics"
)

// metrics are the server's Prometheus series, in a registry of their own
// (no global state), with the Go runtime and process series.
type metrics struct {
	reg             *prom.Registry
	requests        *prom.CounterVec
	duration        *prom.HistogramVec
	bytesIn         *prom.CounterVec
	bytesOut        *prom.CounterVec
	uploadsInFlight *prom.Gauge
	gcRuns          *prom.CounterVec
	gcDeleted       *prom.CounterVec
	connsOpen       *prom.Gauge
	connsRefused    *prom.Counter
	uploadsExpired  *prom.Counter
}

func newMetrics() *metrics {
	reg := prom.NewRegistry()
	reg.RegisterGo()
	reg.RegisterProcess()
	return &metrics{
		reg: reg,
		requests: reg.NewCounterVec("berth_http_requests_total",
			"HTTP requests served, by route, method and status code.",
			"route", "method", "code"),
		duration: reg.NewHistogramVec("berth_http_request_duration_seconds",
			"Time to serve HTTP requests, by route, method and status code.",
			[]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
			"route", "method", "code"),
		bytesIn: reg.NewCounterVec("berth_http_request_bytes_total",
			"Request body bytes received, by route.", "route"),
		bytesOut: reg.NewCounterVec("berth_http_response_bytes_total",
			"Response body bytes sent, by route.", "route"),
		uploadsInFlight: reg.NewGauge("berth_uploads_in_flight",
			"Requests currently sending blob content."),
		gcRuns: reg.NewCounterVec("berth_gc_runs_total",
			"Garbage collection runs, by result.", "result"),
		gcDeleted: reg.NewCounterVec("berth_gc_deleted_total",
			"Objects garbage collection deleted, by kind.", "kind"),
		connsOpen: reg.NewGauge("berth_connections_open",
			"Client connections open."),
		connsRefused: reg.NewCounterVec("berth_connections_refused_total",
			"Client connections closed at once because their address had its share (limits.max_connections_per_ip).").WithLabelValues(),
		uploadsExpired: reg.NewCounterVec("berth_upload_sessions_expired_total",
			"Idle upload sessions removed by the expiry timer.").WithLabelValues(),
	}
}

func (m *metrics) handler() http.Handler { return m.reg }

// statusText avoids formatting the common status codes on every request.
var statusText = func() map[int]string {
	t := map[int]string{}
	for _, c := range []int{200, 201, 202, 204, 206, 304, 400, 401, 403, 404, 405, 413, 416, 429, 500, 503} {
		t[c] = strconv.Itoa(c)
	}
	return t
}()

func codeLabel(c int) string {
	if s, ok := statusText[c]; ok {
		return s
	}
	return strconv.Itoa(c)
}

// observe records one finished request.
func (m *metrics) observe(route, method string, status int, in, out int64, d time.Duration) {
	code := codeLabel(status)
	method = methodLabel(method)
	m.requests.WithLabelValues(route, method, code).Inc()
	m.duration.WithLabelValues(route, method, code).Observe(d.Seconds())
	if in > 0 {
		m.bytesIn.WithLabelValues(route).Add(float64(in))
	}
	if out > 0 {
		m.bytesOut.WithLabelValues(route).Add(float64(out))
	}
}

// methodLabel keeps the label to the methods HTTP defines: net/http
// accepts any token as a method, and each new one a client sent would
// otherwise be a new series for as long as the process runs.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// recorder wraps a ResponseWriter to learn the status and bytes written,
// passing ReadFrom through so that blob downloads keep using sendfile.
type recorder struct {
	http.ResponseWriter
	status  int
	written int64
	// beforeHeader, if set, runs once before the status is written.
	beforeHeader func(http.Header)
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.header()
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) header() {
	if w.beforeHeader != nil {
		w.beforeHeader(w.ResponseWriter.Header())
		w.beforeHeader = nil
	}
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.header()
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.written += int64(n)
	return n, err
}

func (w *recorder) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.header()
		w.status = http.StatusOK
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err := rf.ReadFrom(r)
		w.written += n
		return n, err
	}
	n, err := io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	w.written += n
	return n, err
}

func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("hijacking not supported")
}

// Unwrap lets http.ResponseController reach the connection.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingBody counts request body bytes read.
type countingBody struct {
	io.ReadCloser
	n   int64
	eof bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}
