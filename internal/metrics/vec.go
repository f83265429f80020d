package metrics

import (
	"encoding/binary"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// A Counter only goes up. Whole increments (the usual case) are one atomic
// add; fractional ones a compare-and-swap loop.
type Counter struct {
	ints atomic.Uint64
	bits atomic.Uint64 // float64 bits of the fractional part
}

// Inc adds one.
func (c *Counter) Inc() { c.ints.Add(1) }

// Add adds v, which must not be negative.
func (c *Counter) Add(v float64) {
	if v < 0 {
		panic("metrics: counter cannot decrease")
	}
	if u := uint64(v); v < 1<<63 && float64(u) == v {
		c.ints.Add(u)
		return
	}
	addFloat(&c.bits, v)
}

// Value returns the current count.
func (c *Counter) Value() float64 {
	return float64(c.ints.Load()) + math.Float64frombits(c.bits.Load())
}

// A Gauge goes up and down.
type Gauge struct{ bits atomic.Uint64 }

// Set sets the gauge to v.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Add adds v (which may be negative).
func (g *Gauge) Add(v float64) { addFloat(&g.bits, v) }

// Inc adds one.
func (g *Gauge) Inc() { addFloat(&g.bits, 1) }

// Dec subtracts one.
func (g *Gauge) Dec() { addFloat(&g.bits, -1) }

// Value returns the gauge's value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

func addFloat(bits *atomic.Uint64, v float64) {
	for {
		old := bits.Load()
		if bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// A Histogram counts observations into fixed buckets. Each bucket holds its
// own count (not cumulative); the exposition accumulates them and derives
// _count from the same loads, so the +Inf bucket always equals _count.
type Histogram struct {
	upper  []float64       // shared by the vector's series
	counts []atomic.Uint64 // len(upper)+1; the last is above every bound
	sum    atomic.Uint64   // float64 bits
}

// Observe records v.
func (h *Histogram) Observe(v float64) {
	i, n := 0, len(h.upper)
	if n <= 32 {
		for i < n && !(v <= h.upper[i]) {
			i++
		}
	} else {
		// The first bound >= v; NaN sorts above every bound.
		hi := n
		for i < hi {
			m := int(uint(i+hi) >> 1)
			if v <= h.upper[m] {
				hi = m
			} else {
				i = m + 1
			}
		}
		if math.IsNaN(v) {
			i = n
		}
	}
	h.counts[i].Add(1)
	addFloat(&h.sum, v)
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Sum returns the sum of the observations.
func (h *Histogram) Sum() float64 { return math.Float64frombits(h.sum.Load()) }

// A CounterVec is counters that share a name and label names.
type CounterVec struct{ x index[Counter] }

// WithLabelValues returns the counter for the values, given in the order
// the label names were, creating it on first use. Finding an existing
// counter does not allocate or lock.
func (v *CounterVec) WithLabelValues(values ...string) *Counter { return v.x.get(values) }

// A HistogramVec is histograms that share a name, label names and buckets.
type HistogramVec struct{ x index[Histogram] }

// WithLabelValues returns the histogram for the values, as
// CounterVec.WithLabelValues does.
func (v *HistogramVec) WithLabelValues(values ...string) *Histogram { return v.x.get(values) }

// NewCounterVec registers a counter vector; with no labels it holds one
// series, WithLabelValues().
func (r *Registry) NewCounterVec(name, help string, labels ...string) *CounterVec {
	v := &CounterVec{}
	v.x.setLabels(labels)
	r.register(&family{name: name, help: help, typ: "counter", write: func(b []byte, _ *scrape) []byte {
		for _, e := range v.x.series() {
			b = appendSample(b, name, e.pairs, e.v.Value())
		}
		return b
	}})
	return v
}

// GaugeVec is a gauge per combination of label values.
type GaugeVec struct{ x index[Gauge] }

// WithLabelValues returns the gauge for the values, as
// CounterVec.WithLabelValues does.
func (v *GaugeVec) WithLabelValues(values ...string) *Gauge { return v.x.get(values) }

// NewGaugeVec registers a gauge vector.
func (r *Registry) NewGaugeVec(name, help string, labels ...string) *GaugeVec {
	v := &GaugeVec{}
	v.x.setLabels(labels)
	r.register(&family{name: name, help: help, typ: "gauge", write: func(b []byte, _ *scrape) []byte {
		for _, e := range v.x.series() {
			b = appendSample(b, name, e.pairs, e.v.Value())
		}
		return b
	}})
	return v
}

// NewGauge registers a gauge with no labels.
func (r *Registry) NewGauge(name, help string) *Gauge {
	g := &Gauge{}
	r.register(&family{name: name, help: help, typ: "gauge", write: func(b []byte, _ *scrape) []byte {
		return appendSample(b, name, "", g.Value())
	}})
	return g
}

// NewHistogramVec registers a histogram vector with the given bucket upper
// bounds, which must increase; +Inf is implied.
func (r *Registry) NewHistogramVec(name, help string, buckets []float64, labels ...string) *HistogramVec {
	if slices.Contains(labels, "le") {
		panic("metrics: histogram " + name + " cannot have the label le")
	}
	upper := slices.Clone(buckets)
	if n := len(upper); n > 0 && math.IsInf(upper[n-1], +1) {
		upper = upper[:n-1]
	}
	les := make([]string, len(upper))
	for i, u := range upper {
		if math.IsNaN(u) || math.IsInf(u, 0) || i > 0 && u <= upper[i-1] {
			panic("metrics: histogram " + name + ": buckets must increase")
		}
		les[i] = string(appendFloat(nil, u))
	}
	v := &HistogramVec{}
	v.x.setLabels(labels)
	v.x.init = func(h *Histogram) {
		h.upper = upper
		h.counts = make([]atomic.Uint64, len(upper)+1)
	}
	bucket, sum, count := name+"_bucket", name+"_sum", name+"_count"
	r.register(&family{name: name, help: help, typ: "histogram", write: func(b []byte, _ *scrape) []byte {
		for _, e := range v.x.series() {
			h := &e.v
			var acc uint64
			for i := range h.counts {
				acc += h.counts[i].Load()
				b = append(b, bucket...)
				b = append(b, '{')
				if e.pairs != "" {
					b = append(b, e.pairs...)
					b = append(b, ',')
				}
				b = append(b, `le="`...)
				if i < len(les) {
					b = append(b, les[i]...)
				} else {
					b = append(b, "+Inf"...)
				}
				b = append(b, `"} `...)
				b = strconv.AppendUint(b, acc, 10)
				b = append(b, '\n')
			}
			b = appendSample(b, sum, e.pairs, h.Sum())
			b = appendSample(b, count, e.pairs, float64(acc))
		}
		return b
	}})
	return v
}

// index maps label values to series. Lookups read an immutable map through
// an atomic pointer, so the hot path takes no lock (an RWMutex's reader
// count is itself a contended cache line) and, keying the map with a
// string(bytes) conversion of a stack buffer, allocates nothing. New series
// go into a locked map; the read map is replaced by a copy of it once the
// misses since the last copy reach its size, so creating n series costs
// O(n) copying in all, as in sync.Map (which would box every key).
type index[T any] struct {
	names []string // label names, sorted: the exposition's order
	perm  []int    // names[i] is the perm[i]-th label given
	init  func(*T)

	read atomic.Pointer[map[string]*entry[T]]

	mu     sync.Mutex
	all    map[string]*entry[T]
	sorted []*entry[T] // by values, in names order
	misses int
}

type entry[T any] struct {
	v      T
	values []string // in names order
	pairs  string   // name="value",... escaped
}

func (x *index[T]) setLabels(labels []string) {
	mustValidLabels(labels)
	x.perm = make([]int, len(labels))
	for i := range x.perm {
		x.perm[i] = i
	}
	slices.SortFunc(x.perm, func(a, b int) int { return strings.Compare(labels[a], labels[b]) })
	x.names = make([]string, len(labels))
	for i, p := range x.perm {
		x.names[i] = labels[p]
	}
}

func (x *index[T]) get(values []string) *T {
	if len(values) != len(x.perm) {
		panic("metrics: " + strconv.Itoa(len(values)) + " label values for " + strconv.Itoa(len(x.perm)) + " labels")
	}
	// The key: each value preceded by its length, so no two lists of
	// values share one.
	var buf [128]byte
	key := buf[:0]
	for _, v := range values {
		key = binary.AppendUvarint(key, uint64(len(v)))
		key = append(key, v...)
	}
	if m := x.read.Load(); m != nil {
		if e := (*m)[string(key)]; e != nil {
			return &e.v
		}
	}
	return x.add(key, values)
}

func (x *index[T]) add(key []byte, values []string) *T {
	x.mu.Lock()
	defer x.mu.Unlock()
	e := x.all[string(key)]
	if e == nil {
		e = &entry[T]{values: make([]string, len(values))}
		for i, p := range x.perm {
			e.values[i] = strings.Clone(values[p])
		}
		e.pairs = pairsString(x.names, e.values)
		if x.init != nil {
			x.init(&e.v)
		}
		if x.all == nil {
			x.all = map[string]*entry[T]{}
		}
		x.all[string(key)] = e
		i, _ := slices.BinarySearchFunc(x.sorted, e.values, func(e *entry[T], v []string) int {
			return slices.Compare(e.values, v)
		})
		x.sorted = slices.Insert(x.sorted, i, e)
	}
	if x.misses++; x.misses >= len(x.all) {
		m := maps.Clone(x.all)
		x.read.Store(&m)
		x.misses = 0
	}
	return &e.v
}

// series returns the series sorted by label values.
func (x *index[T]) series() []*entry[T] {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.sorted)
}
