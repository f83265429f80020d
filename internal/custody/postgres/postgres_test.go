package postgres_test

import (
	"context"
	"testing"

	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/custody/custodystoretest"
	"berth.dev/berth/internal/custody/postgres"
	"berth.dev/berth/internal/testpeers"
)

// Each opening is a replica with a pool of its own on one database.
func TestSuite(t *testing.T) {
	custodystoretest.Run(t, func(t testing.TB) (custody.Store, func() custody.Store) {
		url := testpeers.Postgres(t)
		open := func() custody.Store {
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
