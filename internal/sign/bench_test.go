package sign

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"berth.dev/berth/internal/sign/store"
)

// BenchmarkVerifyThreeSignatures verifies an image signed by three keys
// over a loopback registry: resolve the tag, read the signature manifest
// and payloads, verify all three. "cold" builds a new registry client each
// time, as one `berth verify` run does; "warm" reuses one, as the server
// does.
func BenchmarkVerifyThreeSignatures(b *testing.B) {
	ctx := context.Background()
	reg := newTestRegistry(b, true)
	img := reg.image(b, "bench/app", "v1", "bench")
	ks := []testKey{newTestKey(b, "a"), newTestKey(b, "b"), newTestKey(b, "c")}
	for _, k := range ks {
		if _, err := Sign(ctx, reg.store, img, k.key, SignOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	trust := trustOf(3, ks...)
	ref, err := name.ParseReference(reg.host+"/bench/app:v1", name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	verify := func(st store.Reader) error {
		t, err := Resolve(ctx, st, ref)
		if err != nil {
			return err
		}
		res, err := Verify(ctx, st, t, trust, VerifyOptions{})
		if err != nil {
			return err
		}
		if len(res.Verified) != 3 {
			return fmt.Errorf("verified %d signatures", len(res.Verified))
		}
		return nil
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			st, err := store.NewRemote(ref.Context().Registry)
			if err != nil {
				b.Fatal(err)
			}
			if err := verify(st); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		for b.Loop() {
			if err := verify(reg.store); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// requestLog records the requests a registry handler serves, as
// "METHOD /path" lines.
type requestLog struct {
	mu   sync.Mutex
	reqs []string
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, r.Method+" "+r.URL.Path)
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (l *requestLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.reqs
	l.reqs = nil
	return r
}

// BenchmarkSignReferrers signs with --referrers over a loopback registry
// with the referrers API ("api") and without it ("tag-schema", where the
// referrer is listed in the sha256-<hex> index), one signer at a time. It
// reports the registry requests one signature takes.
func BenchmarkSignReferrers(b *testing.B) {
	ctx := context.Background()
	for _, bc := range []struct {
		name         string
		referrersAPI bool
	}{{"api", true}, {"tag-schema", false}} {
		b.Run(bc.name, func(b *testing.B) {
			var log requestLog
			reg := newWrappedTestRegistry(b, bc.referrersAPI, log.wrap)
			img := reg.image(b, "bench/app", "v1", "bench")
			k := newTestKey(b, "bench")
			log.take()
			n := 0
			for b.Loop() {
				if _, err := Sign(ctx, reg.store, img, k.key, SignOptions{Referrers: true}); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(len(log.take()))/float64(n), "requests/op")
		})
	}
}
