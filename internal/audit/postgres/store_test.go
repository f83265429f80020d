package postgres_test

import (
	"context"
	"testing"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/audit/audittest"
	"berth.dev/berth/internal/audit/postgres"
	"berth.dev/berth/internal/testpeers"
)

func factory(t testing.TB) (audit.Store, func() audit.Store) {
	url := testpeers.Postgres(t)
	open := func() audit.Store {
		s, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return open(), open
}

func TestSuite(t *testing.T) { audittest.Run(t, factory) }
