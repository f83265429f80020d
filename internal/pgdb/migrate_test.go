package pgdb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"berth.dev/berth/internal/pgdb"
)

// A migration interrupted halfway (the process killed, the connection
// lost) leaves the schema as it was: nothing of it applied, its version
// not recorded; the next start applies it whole.
func TestMigrationInterruptedHalfway(t *testing.T) {
	ps := pools(t, 1)
	pool := ps[0]
	first := []string{`CREATE TABLE widgets (id BIGINT PRIMARY KEY)`}
	if err := pgdb.Migrate(context.Background(), pool, "widgets", first); err != nil {
		t.Fatal(err)
	}
	second := append(first, `
CREATE TABLE widget_parts (id BIGINT PRIMARY KEY);
ALTER TABLE widgets ADD COLUMN name TEXT;
SELECT pg_sleep(30);
ALTER TABLE widgets ADD COLUMN size BIGINT;`)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pgdb.Migrate(ctx, pool, "widgets", second) }()
	// Interrupt once the migration is in its sleep, halfway.
	for deadline := time.Now().Add(30 * time.Second); ; {
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE query LIKE '%pg_sleep(30)%' AND state = 'active' AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the migration never reached its middle")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("an interrupted migration reported success")
	}
	var version int
	if err := pool.QueryRow(context.Background(), "SELECT version FROM schema_versions WHERE component = 'widgets'").Scan(&version); err != nil || version != 1 {
		t.Errorf("version after the interruption: %d, %v; want 1", version, err)
	}
	var parts, name bool
	if err := pool.QueryRow(context.Background(), `SELECT
		EXISTS (SELECT 1 FROM information_schema.tables WHERE table_name = 'widget_parts'),
		EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'widgets' AND column_name = 'name')`).Scan(&parts, &name); err != nil {
		t.Fatal(err)
	}
	if parts || name {
		t.Errorf("half a migration stayed: table widget_parts %v, column name %v", parts, name)
	}
	quick := append(first, `
CREATE TABLE widget_parts (id BIGINT PRIMARY KEY);
ALTER TABLE widgets ADD COLUMN name TEXT;
ALTER TABLE widgets ADD COLUMN size BIGINT;`)
	if err := pgdb.Migrate(context.Background(), pool, "widgets", quick); err != nil {
		t.Fatalf("the next start's migration: %v", err)
	}
	if _, err := pool.Exec(context.Background(), "INSERT INTO widgets (id, name, size) VALUES (1, 'a', 2)"); err != nil {
		t.Errorf("the migrated schema: %v", err)
	}
	if err := pgdb.Migrate(context.Background(), pool, "widgets", quick[:1]); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("an older berth on the newer schema: %v, want a refusal", err)
	}
}
