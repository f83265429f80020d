package metrics

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parse reads an exposition with the Prometheus text parser, failing the
// test on any error.
func parse(t testing.TB, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, text)
	}
	return fams
}

func text(r *Registry) string { return string(r.AppendText(nil)) }

// labels returns a metric's labels as a map.
func labels(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// find returns the metric of a family whose labels are want.
func find(t testing.TB, f *dto.MetricFamily, want map[string]string) *dto.Metric {
	t.Helper()
	for _, m := range f.GetMetric() {
		if fmt.Sprint(labels(m)) == fmt.Sprint(want) {
			return m
		}
	}
	t.Fatalf("%s has no series %v", f.GetName(), want)
	return nil
}

func TestExposition(t *testing.T) {
	r := NewRegistry()
	req := r.NewCounterVec("app_requests_total", "Requests.", "route", "method", "code")
	dur := r.NewHistogramVec("app_duration_seconds", "Durations.", []float64{.1, 1}, "route")
	g := r.NewGauge("app_in_flight", "In flight.")
	r.NewCounterVec("app_unused_total", "Never used: no family.", "x")
	req.WithLabelValues("blob", "GET", "200").Inc()
	req.WithLabelValues("blob", "GET", "200").Add(2)
	req.WithLabelValues("manifest", "PUT", "201").Add(0.5)
	dur.WithLabelValues("blob").Observe(0.05)
	dur.WithLabelValues("blob").Observe(0.5)
	dur.WithLabelValues("blob").Observe(5)
	g.Inc()
	g.Inc()
	g.Dec()

	want := `# HELP app_duration_seconds Durations.
# TYPE app_duration_seconds histogram
app_duration_seconds_bucket{route="blob",le="0.1"} 1
app_duration_seconds_bucket{route="blob",le="1"} 2
app_duration_seconds_bucket{route="blob",le="+Inf"} 3
app_duration_seconds_sum{route="blob"} 5.55
app_duration_seconds_count{route="blob"} 3
# HELP app_in_flight In flight.
# TYPE app_in_flight gauge
app_in_flight 1
# HELP app_requests_total Requests.
# TYPE app_requests_total counter
app_requests_total{code="200",method="GET",route="blob"} 3
app_requests_total{code="201",method="PUT",route="manifest"} 0.5
`
	got := text(r)
	if got != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", got, want)
	}
	fams := parse(t, got)
	if len(fams) != 3 {
		t.Errorf("%d families, want 3", len(fams))
	}
	h := find(t, fams["app_duration_seconds"], map[string]string{"route": "blob"}).GetHistogram()
	if h.GetSampleCount() != 3 || h.GetSampleSum() != 5.55 {
		t.Errorf("histogram count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
	}
	if v := find(t, fams["app_requests_total"], map[string]string{"route": "blob", "method": "GET", "code": "200"}).GetCounter().GetValue(); v != 3 {
		t.Errorf("counter = %v, want 3", v)
	}
	if fams["app_in_flight"].GetType() != dto.MetricType_GAUGE {
		t.Errorf("app_in_flight type %v", fams["app_in_flight"].GetType())
	}
}

func TestEscaping(t *testing.T) {
	for _, tc := range []struct {
		name, value, wantValue string // wantValue: as written between the quotes
		parsed                 string
	}{
		{"plain", "blob", `blob`, "blob"},
		{"backslash", `a\b`, `a\\b`, `a\b`},
		{"quote", `say "hi"`, `say \"hi\"`, `say "hi"`},
		{"newline", "one\ntwo", `one\ntwo`, "one\ntwo"},
		{"all three", "\\\"\n", `\\\"\n`, "\\\"\n"},
		{"unicode", "dépôt ✓", "dépôt ✓", "dépôt ✓"},
		{"invalid utf-8", "a\xffb", "a\uFFFDb", "a\uFFFDb"},
		{"empty", "", ``, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry()
			r.NewCounterVec("x_total", "X.", "v").WithLabelValues(tc.value).Inc()
			got := text(r)
			if line := `x_total{v="` + tc.wantValue + `"} 1` + "\n"; !strings.Contains(got, line) {
				t.Errorf("exposition:\n%s\nlacks %q", got, line)
			}
			m := parse(t, got)["x_total"].GetMetric()
			if len(m) != 1 || labels(m[0])["v"] != tc.parsed {
				t.Errorf("parsed %v, want v=%q", m, tc.parsed)
			}
		})
	}
	for _, tc := range []struct{ help, want string }{
		{"Plain.", "Plain."},
		{`C:\path`, `C:\\path`},
		{"two\nlines", `two\nlines`},
		{`"quoted"`, `"quoted"`}, // quotes are not escaped in HELP
	} {
		r := NewRegistry()
		r.NewGauge("g", tc.help)
		got := text(r)
		if !strings.HasPrefix(got, "# HELP g "+tc.want+"\n") {
			t.Errorf("HELP %q written as:\n%s", tc.help, got)
		}
		if h := parse(t, got)["g"].GetHelp(); h != tc.help {
			t.Errorf("HELP %q parsed back as %q", tc.help, h)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		buckets []float64
		obs     []float64
		want    []uint64 // cumulative, the last for +Inf
		sum     float64
	}{
		{"none", []float64{1, 2}, nil, []uint64{0, 0, 0}, 0},
		{"on the bounds", []float64{1, 2}, []float64{1, 2}, []uint64{1, 2, 2}, 3},
		{"above all", []float64{1, 2}, []float64{3, 100}, []uint64{0, 0, 2}, 103},
		{"below all", []float64{1, 2}, []float64{-5, 0}, []uint64{2, 2, 2}, -5},
		{"+Inf given", []float64{1, math.Inf(1)}, []float64{0.5, 7}, []uint64{1, 2}, 7.5},
		{"no buckets", nil, []float64{1, 2}, []uint64{2}, 3},
		{"many buckets (binary search)", linear(0, 1, 50), []float64{0, 0.5, 10, 49, 49.5, 50}, append(cumulative(50, map[int]uint64{0: 1, 1: 1, 10: 1, 49: 1}), 6), 159},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry()
			h := r.NewHistogramVec("h", "H.", tc.buckets).WithLabelValues()
			for _, v := range tc.obs {
				h.Observe(v)
			}
			fams := parse(t, text(r))
			if len(tc.obs) == 0 {
				// A histogram looked up but not observed is still a series.
				if fams["h"] == nil {
					t.Fatal("no family")
				}
			}
			ph := fams["h"].GetMetric()[0].GetHistogram()
			var got []uint64
			for _, b := range ph.GetBucket() {
				got = append(got, b.GetCumulativeCount())
			}
			// The parser keeps +Inf as a bucket of its own.
			if !slices.Equal(got, tc.want) {
				t.Errorf("buckets %v, want %v", got, tc.want)
			}
			if n := got[len(got)-1]; n != ph.GetSampleCount() || n != uint64(len(tc.obs)) {
				t.Errorf("+Inf = %d, _count = %d, observations %d", n, ph.GetSampleCount(), len(tc.obs))
			}
			if ph.GetSampleSum() != tc.sum {
				t.Errorf("_sum = %v, want %v", ph.GetSampleSum(), tc.sum)
			}
		})
	}
	r := NewRegistry()
	h := r.NewHistogramVec("h", "H.", []float64{1}).WithLabelValues()
	h.Observe(math.NaN())
	if !strings.Contains(text(r), `h_bucket{le="+Inf"} 1`) || !strings.Contains(text(r), `h_bucket{le="1"} 0`) {
		t.Errorf("NaN not counted above every bound:\n%s", text(r))
	}
}

func linear(start, width float64, n int) []float64 {
	b := make([]float64, n)
	for i := range b {
		b[i] = start + width*float64(i)
	}
	return b
}

// cumulative returns n cumulative counts from per-bucket ones.
func cumulative(n int, per map[int]uint64) []uint64 {
	out := make([]uint64, n)
	var acc uint64
	for i := range out {
		acc += per[i]
		out[i] = acc
	}
	return out
}

func TestConcurrentObservations(t *testing.T) {
	r := NewRegistry()
	req := r.NewCounterVec("c_total", "C.", "route", "code")
	bytesIn := r.NewCounterVec("b_total", "B.", "route")
	dur := r.NewHistogramVec("d_seconds", "D.", []float64{.001, .01, .1}, "route")
	g := r.NewGauge("g", "G.")
	routes := []string{"blob", "manifest", "tags", "upload"}
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				route := routes[(w+i)%len(routes)]
				g.Inc()
				req.WithLabelValues(route, "200").Inc()
				bytesIn.WithLabelValues(route).Add(1.5)
				dur.WithLabelValues(route).Observe(float64(i%4) * .005) // 0, .005, .01, .015
				if i%100 == 0 {
					text(r) // scrapes race with observations
				}
				g.Dec()
			}
		})
	}
	wg.Wait()
	fams := parse(t, text(r))
	per := float64(workers * each / len(routes))
	for _, route := range routes {
		if v := find(t, fams["c_total"], map[string]string{"route": route, "code": "200"}).GetCounter().GetValue(); v != per {
			t.Errorf("c_total{%s} = %v, want %v", route, v, per)
		}
		if v := find(t, fams["b_total"], map[string]string{"route": route}).GetCounter().GetValue(); v != 1.5*per {
			t.Errorf("b_total{%s} = %v, want %v", route, v, 1.5*per)
		}
		h := find(t, fams["d_seconds"], map[string]string{"route": route}).GetHistogram()
		var got []uint64
		for _, b := range h.GetBucket() {
			got = append(got, b.GetCumulativeCount())
		}
		if want := []uint64{uint64(per / 4), uint64(per * 3 / 4), uint64(per), uint64(per)}; !slices.Equal(got, want) {
			t.Errorf("d_seconds{%s} buckets %v, want %v", route, got, want)
		}
		if h.GetSampleCount() != uint64(per) || math.Abs(h.GetSampleSum()-per*.0075) > 1e-9 {
			t.Errorf("d_seconds{%s} count %d sum %v", route, h.GetSampleCount(), h.GetSampleSum())
		}
	}
	if g.Value() != 0 {
		t.Errorf("gauge = %v after as many Dec as Inc", g.Value())
	}
}

func TestSeriesOrder(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounterVec("z_total", "Z.", "b", "a")
	r.NewGauge("a_gauge", "A.")
	for _, v := range [][2]string{{"2", "x"}, {"1", "y"}, {"1", "x"}, {"10", "a"}, {"1 0", "a"}} {
		c.WithLabelValues(v[0], v[1]).Inc()
	}
	// Values that share a key when joined naively stay apart.
	c.WithLabelValues("ab", "c").Inc()
	c.WithLabelValues("a", "bc").Inc()
	got := text(r)
	want := `# HELP a_gauge A.
# TYPE a_gauge gauge
a_gauge 0
# HELP z_total Z.
# TYPE z_total counter
z_total{a="a",b="1 0"} 1
z_total{a="a",b="10"} 1
z_total{a="bc",b="a"} 1
z_total{a="c",b="ab"} 1
z_total{a="x",b="1"} 1
z_total{a="x",b="2"} 1
z_total{a="y",b="1"} 1
`
	if got != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", got, want)
	}
	if again := text(r); again != got {
		t.Errorf("a second scrape differs:\n%s", again)
	}
}

func TestInvalidDefinitions(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func(r *Registry)
	}{
		{"empty name", func(r *Registry) { r.NewGauge("", "h") }},
		{"name with a dash", func(r *Registry) { r.NewGauge("a-b", "h") }},
		{"name starting with a digit", func(r *Registry) { r.NewGauge("1a", "h") }},
		{"label with a colon", func(r *Registry) { r.NewCounterVec("a", "h", "x:y") }},
		{"reserved label", func(r *Registry) { r.NewCounterVec("a", "h", "__x") }},
		{"repeated label", func(r *Registry) { r.NewCounterVec("a", "h", "x", "x") }},
		{"le on a histogram", func(r *Registry) { r.NewHistogramVec("a", "h", []float64{1}, "le") }},
		{"unsorted buckets", func(r *Registry) { r.NewHistogramVec("a", "h", []float64{2, 1}) }},
		{"NaN bucket", func(r *Registry) { r.NewHistogramVec("a", "h", []float64{math.NaN()}) }},
		{"registered twice", func(r *Registry) { r.NewGauge("a", "h"); r.NewCounterVec("a", "h") }},
		{"wrong value count", func(r *Registry) { r.NewCounterVec("a", "h", "x").WithLabelValues("1", "2") }},
		{"negative counter add", func(r *Registry) { r.NewCounterVec("a", "h").WithLabelValues().Add(-1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tc.f(NewRegistry())
		})
	}
	// Valid names for contrast.
	r := NewRegistry()
	r.NewCounterVec("ns:sub_total", "h", "_x", "Y9")
	r.NewGauge("_g", "h")
}

func TestCounterValues(t *testing.T) {
	var c Counter
	c.Inc()
	c.Add(2)
	c.Add(0.25)
	c.Add(1 << 62)
	c.Add(math.Ldexp(1, 70)) // beyond uint64: the float part
	if want := 3.25 + (1 << 62) + math.Ldexp(1, 70); c.Value() != want {
		t.Errorf("counter = %v, want %v", c.Value(), want)
	}
	var g Gauge
	g.Set(5)
	g.Add(-7.5)
	if g.Value() != -2.5 {
		t.Errorf("gauge = %v", g.Value())
	}
}

func TestServeHTTP(t *testing.T) {
	r := NewRegistry()
	r.NewCounterVec("c_total", "C.", "x").WithLabelValues("1").Inc()
	for _, tc := range []struct {
		accept string
		gzip   bool
	}{
		{"", false},
		{"gzip", true},
		{"deflate, GZIP;q=0.5", true},
		{"gzip;q=0", false},
		{"gzip; q=0.000", false},
		{"identity", false},
	} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		if tc.accept != "" {
			req.Header.Set("Accept-Encoding", tc.accept)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if ct := w.Header().Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		body := w.Body.Bytes()
		if gz := w.Header().Get("Content-Encoding") == "gzip"; gz != tc.gzip {
			t.Errorf("Accept-Encoding %q: gzip = %v", tc.accept, gz)
		} else if gz {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if string(body) != text(r) {
			t.Errorf("Accept-Encoding %q: body %q", tc.accept, body)
		}
	}
}

func TestRuntimeAndProcess(t *testing.T) {
	r := NewRegistry()
	r.RegisterGo()
	r.RegisterProcess()
	runtime.GC()
	fams := parse(t, text(r))
	value := func(name string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil || len(f.GetMetric()) != 1 {
			t.Fatalf("no single series %s", name)
		}
		m := f.GetMetric()[0]
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_SUMMARY:
			return float64(m.GetSummary().GetSampleCount())
		}
		return m.GetGauge().GetValue()
	}
	for _, name := range []string{"go_goroutines", "go_threads", "go_memstats_alloc_bytes", "go_memstats_heap_inuse_bytes",
		"go_memstats_sys_bytes", "go_memstats_alloc_bytes_total", "go_sched_gomaxprocs_threads", "go_gc_duration_seconds"} {
		if v := value(name); !(v > 0) {
			t.Errorf("%s = %v", name, v)
		}
	}
	if v := find(t, fams["go_info"], map[string]string{"version": runtime.Version()}).GetGauge().GetValue(); v != 1 {
		t.Errorf("go_info = %v", v)
	}
	if runtime.GOOS != "linux" {
		return
	}
	for _, name := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
		"process_open_fds", "process_max_fds", "process_virtual_memory_max_bytes"} {
		if v := value(name); !(v > 0) {
			t.Errorf("%s = %v", name, v)
		}
	}
	if rss, vms := value("process_resident_memory_bytes"), value("process_virtual_memory_bytes"); rss > vms {
		t.Errorf("resident %v > virtual %v", rss, vms)
	}
	// The test binary started within the last few minutes.
	start := value("process_start_time_seconds")
	if now := float64(time.Now().Unix()); start > now+1 || start < now-600 {
		t.Errorf("process_start_time_seconds = %v, now %v", start, now)
	}
	// Opening a file shows in process_open_fds.
	before := value("process_open_fds")
	f, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fams = parse(t, text(r))
	if after := value("process_open_fds"); after != before+1 {
		t.Errorf("process_open_fds %v, then %v with one more file open", before, after)
	}
}

// The hot path: finding an existing series and updating it allocates
// nothing.
func TestNoAllocations(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounterVec("c_total", "C.", "route", "method", "code")
	h := r.NewHistogramVec("h_seconds", "H.", []float64{.1, 1}, "route", "method", "code")
	g := r.NewGauge("g", "G.")
	route, method, code := "manifest", strings.Clone("GET"), "200"
	c.WithLabelValues(route, method, code).Inc()
	h.WithLabelValues(route, method, code).Observe(1)
	if n := testing.AllocsPerRun(1000, func() {
		c.WithLabelValues(route, method, code).Inc()
		c.WithLabelValues(route, method, code).Add(12)
		h.WithLabelValues(route, method, code).Observe(.3)
		g.Inc()
		g.Dec()
	}); n != 0 {
		t.Errorf("%v allocations per update", n)
	}
}

func BenchmarkCounterVec(b *testing.B) {
	r := NewRegistry()
	c := r.NewCounterVec("c_total", "C.", "route", "method", "code")
	c.WithLabelValues("manifest", "GET", "200").Inc()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.WithLabelValues("manifest", "GET", "200").Inc()
		}
	})
}

func BenchmarkHistogramVec(b *testing.B) {
	r := NewRegistry()
	h := r.NewHistogramVec("h_seconds", "H.", []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}, "route", "method", "code")
	h.WithLabelValues("manifest", "GET", "200").Observe(1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.WithLabelValues("manifest", "GET", "200").Observe(.0003)
		}
	})
}

func BenchmarkScrape(b *testing.B) {
	r := NewRegistry()
	r.RegisterGo()
	r.RegisterProcess()
	h := r.NewHistogramVec("h_seconds", "H.", []float64{.001, .01, .1, 1}, "route", "code")
	for i := range 50 {
		h.WithLabelValues(fmt.Sprint("route", i%10), fmt.Sprint(200+i/10)).Observe(.05)
	}
	b.ReportAllocs()
	buf := []byte(nil)
	for b.Loop() {
		buf = r.AppendText(buf[:0])
	}
}

func TestGaugeVec(t *testing.T) {
	r := NewRegistry()
	v := r.NewGaugeVec("app_queue_jobs", "Jobs by state.", "state")
	v.WithLabelValues("available").Set(4)
	v.WithLabelValues("running").Set(2)
	v.WithLabelValues("available").Add(-1)
	want := `# HELP app_queue_jobs Jobs by state.
# TYPE app_queue_jobs gauge
app_queue_jobs{state="available"} 3
app_queue_jobs{state="running"} 2
`
	if got := text(r); got != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", got, want)
	}
	fams := parse(t, text(r))
	if fams["app_queue_jobs"].GetType() != dto.MetricType_GAUGE {
		t.Errorf("type %v", fams["app_queue_jobs"].GetType())
	}
}
