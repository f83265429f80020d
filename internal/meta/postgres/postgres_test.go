package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/meta/metatest"
	"berth.dev/berth/internal/meta/postgres"
	"berth.dev/berth/internal/testpeers"
)

func factory(t testing.TB) (meta.Store, func() meta.Store) {
	url := testpeers.Postgres(t)
	open := func() meta.Store {
		s, err := postgres.Open(context.Background(), url)
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

// Replicas starting together migrate once: the others wait on the lock and
// find the schema current.
func TestConcurrentMigrations(t *testing.T) {
	url := testpeers.Postgres(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.Open(context.Background(), url)
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("concurrent start: %v", err)
		}
	}
}

// A database a newer berth migrated is refused with a clear error, not
// written with an older schema's idea of it.
func TestRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	url := testpeers.Postgres(t)
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "UPDATE schema_versions SET version = 999 WHERE component = 'meta'"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	_, err = postgres.Open(ctx, url)
	if err == nil || !strings.Contains(err.Error(), "newer than this berth") {
		t.Errorf("Open of a newer schema: err = %v", err)
	}
}

// Wrong credentials fail Open, naming the problem and not the password.
func TestWrongCredentialsFailAtOpen(t *testing.T) {
	url := testpeers.Postgres(t)
	bad := strings.Replace(url, "postgres://berth@", "postgres://nobody:s3cret-pw@", 1)
	_, err := postgres.Open(context.Background(), bad)
	if err == nil {
		t.Fatal("Open with an unknown role succeeded")
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("error shows the password: %v", err)
	}
	if !strings.Contains(err.Error(), "nobody") {
		t.Errorf("error does not say which role failed: %v", err)
	}
}
