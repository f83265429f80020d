package postgres_test

import (
	"context"
	"errors"
	"testing"

	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/auth/authtest"
	"berth.dev/berth/internal/auth/postgres"
	metapg "berth.dev/berth/internal/meta/postgres"
	"berth.dev/berth/internal/pgdb"
	"berth.dev/berth/internal/testpeers"
)

func TestSuite(t *testing.T) {
	authtest.Run(t, func(t testing.TB) auth.Store {
		s, err := postgres.Open(context.Background(), testpeers.Postgres(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// The auth tables live beside the meta store's in one database and one
// pool, each with its own schema version, opened in either order.
func TestBesideTheMetaStore(t *testing.T) {
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, testpeers.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for range 2 {
		a, err := postgres.New(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		m, err := metapg.New(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		// The second round finds alice from the first.
		if err := a.CreateUser(ctx, auth.User{ID: "alice-id", Name: "alice"}); err != nil && !errors.Is(err, auth.ErrExists) {
			t.Fatal(err)
		}
		if err := m.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		a.Close()
		m.Close()
	}
	if err := pool.Ping(ctx); err != nil {
		t.Errorf("closing the stores closed the shared pool: %v", err)
	}
}
