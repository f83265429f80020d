package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/match"
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

// A report stored, re-matched or deleted is announced on ChangesChannel
// with its digest when it commits; a scan's state alone is not.
func TestReportChangesAreAnnounced(t *testing.T) {
	ctx := context.Background()
	url := testpeers.Postgres(t)
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	listener, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN "+postgres.ChangesChannel); err != nil {
		t.Fatal(err)
	}
	next := func(what string) string {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n, err := listener.WaitForNotification(wctx)
		if err != nil {
			t.Fatalf("%s: no notification: %v", what, err)
		}
		return n.Payload
	}
	d := digest.FromString("img")
	if err := s.MarkPending(ctx, d, time.Now()); err != nil {
		t.Fatal(err)
	}
	r := &match.Report{SchemaVersion: match.ReportSchemaVersion, MatchedAt: time.Now().UTC(), Findings: []match.Finding{}}
	if err := s.Put(ctx, d, reports.Scan{Status: reports.Done}, r, nil, -1); err != nil {
		t.Fatal(err)
	}
	// The first notification is the report's: marking it pending said
	// nothing.
	if p := next("stored"); p != d.String() {
		t.Errorf("stored report announced as %q", p)
	}
	if err := s.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if p := next("deleted"); p != d.String() {
		t.Errorf("deleted report announced as %q", p)
	}
}
