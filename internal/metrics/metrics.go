// Package metrics is a small Prometheus registry: counter and histogram
// vectors with fixed label names, gauges, the Go runtime and process series,
// and the text exposition format 0.0.4.
//
// It replaces github.com/prometheus/client_golang, whose package
// initialisation (with procfs, client_model, common and runtime/metrics)
// cost every berth command, not only `berth serve`, some milliseconds at
// start-up. Nothing here runs before a Registry is made, runtime and process
// figures are read only while a scrape is written, and there is no global
// state.
package metrics

import (
	"compress/gzip"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// ContentType is the media type of the text exposition format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// A Registry holds metric families and writes them in the text format. Its
// methods are safe for concurrent use. A name registered twice panics.
type Registry struct {
	mu   sync.Mutex
	fams []*family // sorted by name
	bufs sync.Pool // of *[]byte, for ServeHTTP
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// family is one metric name: its HELP and TYPE lines, then samples that
// write appends.
type family struct {
	name, help, typ string
	write           func(b []byte, s *scrape) []byte
}

// scrape holds what the families of one exposition share, read lazily (one
// runtime.ReadMemStats per scrape, not one per series).
type scrape struct {
	mem   *runtime.MemStats
	pages *[2]uint64 // /proc/self/statm: virtual and resident pages
}

func (r *Registry) register(f *family) {
	mustValidName(f.name)
	r.mu.Lock()
	defer r.mu.Unlock()
	i, found := slices.BinarySearchFunc(r.fams, f.name, func(g *family, name string) int {
		return strings.Compare(g.name, name)
	})
	if found {
		panic("metrics: " + f.name + " registered twice")
	}
	r.fams = slices.Insert(r.fams, i, f)
}

// AppendText appends the exposition of every family, sorted by name, to b.
func (r *Registry) AppendText(b []byte) []byte {
	r.mu.Lock()
	fams := slices.Clone(r.fams)
	r.mu.Unlock()
	var s scrape
	for _, f := range fams {
		start := len(b)
		b = append(b, "# HELP "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = appendEscaped(b, f.help, false)
		b = append(b, "\n# TYPE "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = append(b, f.typ...)
		b = append(b, '\n')
		n := len(b)
		if b = f.write(b, &s); len(b) == n {
			b = b[:start] // no samples (a vector not used yet): no family, as in client_golang
		}
	}
	return b
}

// ServeHTTP serves the exposition, gzipped when the client accepts it
// (Prometheus asks for gzip).
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	bp, _ := r.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := r.AppendText((*bp)[:0])
	h := w.Header()
	h.Set("Content-Type", ContentType)
	if acceptsGzip(req.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
		zw := gzip.NewWriter(w)
		zw.Write(b)
		zw.Close()
	} else {
		h.Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	}
	if cap(b) <= 1<<20 {
		*bp = b
		r.bufs.Put(bp)
	}
}

// acceptsGzip reports whether an Accept-Encoding header lists gzip with a
// non-zero weight.
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		for p := range strings.SplitSeq(params, ";") {
			if k, v, _ := strings.Cut(strings.TrimSpace(p), "="); strings.EqualFold(k, "q") {
				q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				return err == nil && q > 0
			}
		}
		return true
	}
	return false
}

// appendEscaped appends s escaped for a HELP line (backslash and newline) or,
// with quote, for a label value (also the double quote). Invalid UTF-8
// becomes U+FFFD, since the format is UTF-8.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		case c < utf8.RuneSelf:
			b = append(b, c)
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, s[i:i+n]...)
			}
			i += n
			continue
		}
		i++
	}
	return b
}

// appendFloat formats a sample value as client_golang does.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case f == 1:
		return append(b, '1')
	case f == 0:
		return append(b, '0')
	case f == -1:
		return append(b, "-1"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, +1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// appendSample appends one line: name, then {pairs} unless pairs is empty,
// then the value.
func appendSample(b []byte, name, pairs string, v float64) []byte {
	b = append(b, name...)
	if pairs != "" {
		b = append(b, '{')
		b = append(b, pairs...)
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendFloat(b, v)
	return append(b, '\n')
}

// mustValidName panics unless name matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func mustValidName(name string) {
	if !validName(name, true) {
		panic("metrics: invalid metric name " + strconv.Quote(name))
	}
}

// mustValidLabels panics unless every label name matches
// [a-zA-Z_][a-zA-Z0-9_]*, is not reserved (__*) and is unique.
func mustValidLabels(labels []string) {
	for i, l := range labels {
		if !validName(l, false) || strings.HasPrefix(l, "__") || slices.Contains(labels[:i], l) {
			panic("metrics: invalid or repeated label name " + strconv.Quote(l))
		}
	}
}

func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
			i > 0 && c >= '0' && c <= '9' || colon && c == ':'
		if !ok {
			return false
		}
	}
	return true
}

// appendPairs appends label pairs, name="value" joined by commas.
func appendPairs(b []byte, names, values []string) []byte {
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, n...)
		b = append(b, `="`...)
		b = appendEscaped(b, values[i], true)
		b = append(b, '"')
	}
	return b
}

// pairsString is appendPairs as a string.
func pairsString(names, values []string) string { return string(appendPairs(nil, names, values)) }
