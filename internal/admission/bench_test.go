package admission

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"berth.dev/berth/internal/policy"
	"berth.dev/berth/internal/policy/policytest"
)

// podReview is a pod whose containers use images.
func podReview(images []string) []byte {
	var cs []string
	for i, im := range images {
		cs = append(cs, fmt.Sprintf(`{"name":"c%d","image":%q}`, i, im))
	}
	return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"b","kind":{"group":"","version":"v1","kind":"Pod"},` +
		`"operation":"CREATE","object":{"spec":{"containers":[` + strings.Join(cs, ",") + `]}}}}`)
}

// signedImages pushes n images, each signed by every key, and returns the
// policy requiring all the keys.
func signedImages(b *testing.B, n int, keys []policytest.Key) (*policytest.Registry, []string, *policy.Policy) {
	reg := policytest.NewRegistry(b, nil)
	var images []string
	for i := range n {
		tag := fmt.Sprintf("v%d", i)
		tgt := reg.Push(b, "team/app", tag, tag)
		for j, k := range keys {
			policytest.SignTarget(b, reg.Store, tgt, k, j%2 == 1, nil)
		}
		images = append(images, reg.Host+"/team/app:"+tag)
	}
	var doc strings.Builder
	doc.WriteString("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: three}\nspec:\n  signers:\n    keys:\n")
	for _, k := range keys {
		fmt.Fprintf(&doc, "    - name: %s\n      data: |\n%s\n", k.Name, k.Indented(8))
	}
	p, err := policy.Parse("bench.yaml", []byte(doc.String()), policy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return reg, images, p
}

// BenchmarkColdPod8x3 decides a pod of 8 containers, each image signed by
// the 3 keys the policy requires (tag scheme and bundles alternating),
// against a loopback registry, with nothing cached: one op is one review.
func BenchmarkColdPod8x3(b *testing.B) {
	keys := []policytest.Key{policytest.NewKey(b, "ci"), policytest.NewKey(b, "scan"), policytest.NewKey(b, "release")}
	_, images, p := signedImages(b, 8, keys)
	body := podReview(images)
	b.ResetTimer()
	for b.Loop() {
		h := handlerFor(p, Options{}) // a cold cache every time
		req := httptest.NewRequest("POST", "/validate", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if !strings.Contains(w.Body.String(), `"allowed":true`) {
			b.Fatalf("not allowed: %s", w.Body)
		}
	}
}

// BenchmarkCachedDecision8Clients: 8 clients at once send a one-container
// pod review over loopback HTTP to a webhook whose decision is cached;
// reports p50 and p99 latency per review.
func BenchmarkCachedDecision8Clients(b *testing.B) {
	keys := []policytest.Key{policytest.NewKey(b, "ci")}
	_, images, p := signedImages(b, 1, keys)
	srv := httptest.NewServer(handlerFor(p, Options{}))
	b.Cleanup(srv.Close)
	body := podReview(images)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	post := func() {
		resp, err := client.Post(srv.URL+"/validate", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if !strings.Contains(buf.String(), `"allowed":true`) {
			b.Fatalf("%s", buf.String())
		}
	}
	post() // warm the cache
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	var wg sync.WaitGroup
	per := (b.N + 7) / 8
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, per)
			for range per {
				start := time.Now()
				post()
				local = append(local, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
