package postgres_test

import (
	"context"
	"testing"

	"berth.dev/berth/internal/policy"
	"berth.dev/berth/internal/policy/policystoretest"
	"berth.dev/berth/internal/policy/postgres"
	"berth.dev/berth/internal/testpeers"
)

func TestSuite(t *testing.T) {
	policystoretest.Run(t, func(t testing.TB) (policy.Store, func() policy.Store) {
		url := testpeers.Postgres(t)
		open := func() policy.Store {
			s, err := postgres.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return open(), open
	})
}
