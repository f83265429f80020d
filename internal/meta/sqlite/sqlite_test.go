package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/meta/metatest"
	"berth.dev/berth/internal/meta/sqlite"
)

func factory(t testing.TB) (meta.Store, func() meta.Store) {
	path := filepath.Join(t.TempDir(), "meta.db")
	open := func() meta.Store {
		s, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return open(), open
}

func TestSuite(t *testing.T) { metatest.Run(t, factory) }

func BenchmarkSuite(b *testing.B) { metatest.Bench(b, factory) }

func TestRejectsPathsSQLiteWouldMisread(t *testing.T) {
	for _, p := range []string{"/tmp/a?mode=ro", "/tmp/a#b"} {
		if _, err := sqlite.Open(context.Background(), p); err == nil {
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, "PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if _, err := sqlite.Open(ctx, path); err == nil {
		t.Error("Open accepted a database from a newer berth")
	}
}
