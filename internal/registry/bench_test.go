package registry_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/registry"
)

// The hot paths, through the handler without the network: what berth adds
// per request on top of net/http. bench/registry.sh measures end to end
// against distribution's registry.

// discard is a ResponseWriter that keeps nothing, so benchmarks measure the
// registry rather than a recorder's buffer.
type discard struct {
	h      http.Header
	status int
}

func (d *discard) Header() http.Header                 { return d.h }
func (d *discard) WriteHeader(code int)                { d.status = code }
func (d *discard) Write(p []byte) (int, error)         { return len(p), nil }
func (d *discard) ReadFrom(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }

func benchEnv(b *testing.B) *env {
	t := &testing.T{}
	e := &env{t: t, dir: b.TempDir(), events: &recordedEvents{}}
	e.open()
	b.Cleanup(func() { e.srv.Close(); e.meta.Close() })
	return e
}

func benchGet(b *testing.B, e *env, path string, wantStatus int) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest("GET", path, nil)
		w := &discard{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			e.reg.ServeHTTP(w, req)
			if w.status != wantStatus {
				b.Errorf("GET %s = %d", path, w.status)
				return
			}
		}
	})
}

func BenchmarkManifestGet(b *testing.B) {
	e := benchEnv(b)
	img := newImage("bench")
	e.pushImage("bench/app", "latest", img)
	b.Run("ByTag", func(b *testing.B) { benchGet(b, e, "/v2/bench/app/manifests/latest", http.StatusOK) })
	b.Run("ByDigest", func(b *testing.B) { benchGet(b, e, "/v2/bench/app/manifests/"+img.digest.String(), http.StatusOK) })
}

func BenchmarkManifestGetUncached(b *testing.B) {
	t := &testing.T{}
	e := &env{t: t, dir: b.TempDir(), events: &recordedEvents{}}
	e.open(func(o *registry.Options) { o.CacheSize = -1 })
	b.Cleanup(func() { e.srv.Close(); e.meta.Close() })
	img := newImage("bench")
	e.pushImage("bench/app", "latest", img)
	b.Run("ByTag", func(b *testing.B) { benchGet(b, e, "/v2/bench/app/manifests/latest", http.StatusOK) })
	b.Run("ByDigest", func(b *testing.B) { benchGet(b, e, "/v2/bench/app/manifests/"+img.digest.String(), http.StatusOK) })
}

func BenchmarkBlobGet(b *testing.B) {
	e := benchEnv(b)
	for _, size := range []int{32 << 10, 4 << 20} {
		d := e.pushBlob("bench/app", bytes.Repeat([]byte("b"), size))
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			benchGet(b, e, "/v2/bench/app/blobs/"+d.String(), http.StatusOK)
		})
	}
	d := e.pushBlob("bench/app", []byte("head"))
	b.Run("Head", func(b *testing.B) {
		b.ReportAllocs()
		req := httptest.NewRequest("HEAD", "/v2/bench/app/blobs/"+d.String(), nil)
		w := &discard{h: http.Header{}}
		for b.Loop() {
			clear(w.h)
			e.reg.ServeHTTP(w, req)
		}
	})
}

func BenchmarkBlobUpload(b *testing.B) {
	e := benchEnv(b)
	for _, size := range []int{32 << 10, 4 << 20} {
		content := bytes.Repeat([]byte("u"), size)
		b.Run(fmt.Sprintf("Monolithic/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				c := append([]byte(fmt.Sprintf("%09d", i)), content[9:]...)
				req := httptest.NewRequest("POST", "/v2/bench/app/blobs/uploads/?digest="+digest.FromBytes(c).String(), bytes.NewReader(c))
				w := &discard{h: http.Header{}}
				e.reg.ServeHTTP(w, req)
				if w.status != http.StatusCreated {
					b.Fatalf("upload = %d", w.status)
				}
			}
		})
		b.Run(fmt.Sprintf("PostPatchPut/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				c := append([]byte(fmt.Sprintf("%09d", i)), content[9:]...)
				w := &discard{h: http.Header{}}
				e.reg.ServeHTTP(w, httptest.NewRequest("POST", "/v2/bench/app/blobs/uploads/", nil))
				loc := w.h.Get("Location")
				w = &discard{h: http.Header{}}
				e.reg.ServeHTTP(w, httptest.NewRequest("PATCH", loc, bytes.NewReader(c)))
				w = &discard{h: http.Header{}}
				e.reg.ServeHTTP(w, httptest.NewRequest("PUT", loc+"?digest="+digest.FromBytes(c).String(), nil))
				if w.status != http.StatusCreated {
					b.Fatalf("upload = %d", w.status)
				}
			}
		})
	}
}
