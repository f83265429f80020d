package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/auth/authtest"
	"berth.dev/berth/internal/auth/sqlite"
	metasqlite "berth.dev/berth/internal/meta/sqlite"
)

func TestSuite(t *testing.T) {
	authtest.Run(t, func(t testing.TB) auth.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "meta.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestBesideTheMetaStore opens the auth tables in the meta store's
// database, in both orders, and reopens them: each keeps its own schema
// version.
func TestBesideTheMetaStore(t *testing.T) {
	ctx := context.Background()
	for _, authFirst := range []bool{true, false} {
		path := filepath.Join(t.TempDir(), "meta.db")
		openMeta := func() *metasqlite.Store {
			m, err := metasqlite.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		openAuth := func() *sqlite.Store {
			a, err := sqlite.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
		var m *metasqlite.Store
		var a *sqlite.Store
		if authFirst {
			a, m = openAuth(), openMeta()
		} else {
			m, a = openMeta(), openAuth()
		}
		if err := a.CreateUser(ctx, auth.User{ID: "u-alice", Name: "alice"}); err != nil {
			t.Fatal(err)
		}
		a.Close()
		m.Close()
		a, m = openAuth(), openMeta()
		if _, err := a.User(ctx, "alice"); err != nil {
			t.Errorf("after reopening: %v", err)
		}
		a.Close()
		m.Close()
	}
}
