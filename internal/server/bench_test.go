package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkManifestGet measures a manifest GET through the whole handler
// (routing, logging, metrics, auth, registry, audit), with auth off and
// on. The issue asks that auth cost under 10% of throughput; compare the
// sub-benchmarks' ns/op (run with -cpu to vary parallelism).
func BenchmarkManifestGet(b *testing.B) {
	for _, mode := range []string{"auth=off", "auth=token", "auth=basic"} {
		b.Run(mode, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Data = b.TempDir()
			cfg.Auth.Disabled = mode == "auth=off"
			cfg.Auth.AdminPassword = testAdminPassword
			s, err := New(context.Background(), cfg, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			srv := httptest.NewServer(s)
			a := &authServer{t: &testing.T{}, s: s, url: srv.URL}
			var creds []string
			if mode != "auth=off" {
				creds = adminCreds
			}
			if r := a.push("team-a/app", "v1", makeImage("bench"), creds); r.status != http.StatusCreated {
				b.Fatalf("push: %d %s", r.status, r.body)
			}
			switch mode {
			case "auth=token":
				creds = a.token(adminCreds, "repository:team-a/app:pull")
			case "auth=basic":
				creds = adminCreds
			}
			srv.Close()
			req := httptest.NewRequest("GET", "/v2/team-a/app/manifests/v1", nil)
			req.RemoteAddr = "127.0.0.1:40000"
			req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
			if creds != nil {
				req.Header.Set(creds[0], creds[1])
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					w := httptest.NewRecorder()
					s.ServeHTTP(w, req.Clone(req.Context()))
					if w.Code != http.StatusOK {
						b.Errorf("GET = %d %s", w.Code, w.Body)
						return
					}
					io.Copy(io.Discard, w.Body)
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}

// BenchmarkManifestGetHTTP is BenchmarkManifestGet over loopback HTTP, so
// that reading the request (a bearer token is some 600 bytes of header)
// counts too.
func BenchmarkManifestGetHTTP(b *testing.B) {
	for _, mode := range []string{"auth=off", "auth=token"} {
		b.Run(mode, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Data = b.TempDir()
			cfg.Auth.Disabled = mode == "auth=off"
			cfg.Auth.AdminPassword = testAdminPassword
			s, err := New(context.Background(), cfg, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			srv := httptest.NewServer(s)
			defer srv.Close()
			a := &authServer{t: &testing.T{}, s: s, url: srv.URL}
			var creds []string
			if mode != "auth=off" {
				creds = adminCreds
			}
			if r := a.push("team-a/app", "v1", makeImage("bench"), creds); r.status != http.StatusCreated {
				b.Fatalf("push: %d %s", r.status, r.body)
			}
			if mode == "auth=token" {
				creds = a.token(adminCreds, "repository:team-a/app:pull")
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("GET", srv.URL+"/v2/team-a/app/manifests/v1", nil)
					req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
					if creds != nil {
						req.Header.Set(creds[0], creds[1])
					}
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("GET = %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
