package postgres_test

import (
	"context"
	"testing"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/reports/postgres"
	"berth.dev/berth/internal/reports/reportstest"
	"berth.dev/berth/internal/testpeers"
)

func TestSuite(t *testing.T) {
	reportstest.Run(t, func(t testing.TB) (reports.Store, func() reports.Store) {
		url := testpeers.Postgres(t)
		open := func() reports.Store {
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

// A scan's error may quote bytes from an image; PostgreSQL's TEXT refuses
// a NUL, so the state must still be recorded (the NUL replaced).
func TestErrorWithNUL(t *testing.T) {
	ctx := context.Background()
	s, err := postgres.Open(ctx, testpeers.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := digest.FromString("img")
	if err := s.SetScan(ctx, d, reports.Scan{Status: reports.Failed, Error: "layer 1: bad name \"a\x00b\""}); err != nil {
		t.Fatalf("SetScan with a NUL in the error: %v", err)
	}
	rec, err := s.Get(ctx, d, false)
	if err != nil || rec.Scan.Status != reports.Failed || rec.Scan.Error != "layer 1: bad name \"a\uFFFDb\"" {
		t.Errorf("record %+v, %v", rec, err)
	}
}
