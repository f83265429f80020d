package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	. "berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/auth/sqlite"
	"berth.dev/berth/internal/auth/token"
	"berth.dev/berth/internal/registry/access"
)

// BenchmarkAuthCheck is what auth adds to a registry request: verifying
// the credentials (a cached token or a cached Basic login) and deciding
// one permission. The issue's bound is 50 µs per request.
func BenchmarkAuthCheck(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "meta.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg := DefaultConfig()
	cfg.BcryptCost = bcrypt.MinCost
	svc, err := New(ctx, st, key, nil, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := svc.Bootstrap(ctx, "admin-password"); err != nil {
		b.Fatal(err)
	}
	if _, err := svc.CreateProject(ctx, "team-a", false, "admin"); err != nil {
		b.Fatal(err)
	}
	dev, err := svc.CreateUser(ctx, "dev", "dev-password", false, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.PutMember(ctx, "team-a", "dev", Developer); err != nil {
		b.Fatal(err)
	}
	tok, _, err := svc.Tokens().Issue("dev", dev.ID, []token.Scope{{Type: token.TypeRepository, Name: "team-a/app", Actions: []string{"pull", "push"}}},
		time.Now())
	if err != nil {
		b.Fatal(err)
	}
	req := access.Request{Repository: "team-a/app", Action: access.Pull}
	for _, tc := range []struct{ name, header string }{
		{"token", "Bearer " + tok},
		{"basic", basicHeader("dev", "dev-password")[1]},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/v2/team-a/app/manifests/v1", nil)
			r.Header.Set("Authorization", tc.header)
			check := func() {
				sub, err := svc.Authenticate(r)
				if err == nil {
					err = svc.Authorize(ctx, sub, req)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			check() // the first use verifies and caches
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				check()
			}
		})
	}
}

// BenchmarkSessionPrincipal is what a web UI request's session cookie
// costs now that sessions are read from the store (SQLite here) on every
// request rather than from memory.
func BenchmarkSessionPrincipal(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "meta.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg := DefaultConfig()
	cfg.BcryptCost = bcrypt.MinCost
	svc, err := New(ctx, st, key, nil, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.CreateUser(ctx, "dev", "dev-password", false, nil); err != nil {
		b.Fatal(err)
	}
	c, err := svc.StartSession(ctx, sessionRequest(nil), "dev", "dev-password")
	if err != nil {
		b.Fatal(err)
	}
	r := sessionRequest(c)
	b.ReportAllocs()
	for b.Loop() {
		if svc.SessionPrincipal(r) == nil {
			b.Fatal("no session")
		}
	}
}
