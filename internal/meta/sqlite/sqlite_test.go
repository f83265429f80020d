package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

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

// A database from before berth recorded which layers a manifest's
// repository held migrates with the best answer it has: a layer the
// repository links now was present (its manifest kept the link alive).
func TestMigrationMarksPresentReferences(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	config, linked, sparse := digest.FromString("config"), digest.FromString("linked layer"), digest.FromString("sparse layer")
	stmts := []string{sqlite.Migrations[0], "PRAGMA user_version = 1",
		"INSERT INTO repositories (id, name, created_at) VALUES (1, 'r', 0)",
		"INSERT INTO manifests (repository_id, digest, media_type, artifact_type, size, content, pushed_at) VALUES (1, 'sha256:m', 'x/y', '', 2, x'7b7d', 0)"}
	for _, d := range []digest.Digest{config, linked} {
		stmts = append(stmts,
			"INSERT INTO blobs (digest, size, last_used) VALUES ('"+d.String()+"', 1, 0)",
			"INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES (1, '"+d.String()+"', 0)")
	}
	for d, kind := range map[digest.Digest]meta.RefKind{config: meta.RefBlob, linked: meta.RefLayer, sparse: meta.RefLayer} {
		stmts = append(stmts, fmt.Sprintf("INSERT INTO manifest_references (repository_id, manifest, digest, kind) VALUES (1, 'sha256:m', '%s', %d)", d, kind))
	}
	for _, q := range stmts {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	present := map[digest.Digest]bool{}
	if err := s.WalkManifests(ctx, func(_ string, m *meta.Manifest) error {
		for _, r := range m.References {
			present[r.Digest] = r.Present
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[digest.Digest]bool{config: true, linked: true, sparse: false}
	if !maps.Equal(present, want) {
		t.Errorf("present after migration = %v, want %v", present, want)
	}
}
