package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"berth.dev/berth/internal/blob/filesystem"
	metasqlite "berth.dev/berth/internal/meta/sqlite"
	"berth.dev/berth/internal/registry"
	"berth.dev/berth/internal/sign/store"
	"berth.dev/berth/internal/sign/store/storetest"
)

// TestInProcessBerthRegistry runs the store suite against berth's own
// registry handler reached in process, as the server's scan stage signs.
func TestInProcessBerthRegistry(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, string) {
		dir := t.TempDir()
		m, err := metasqlite.Open(context.Background(), filepath.Join(dir, "meta.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		b, err := filesystem.New(filepath.Join(dir, "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		reg, err := registry.New(registry.Options{Blobs: b, Meta: m, CacheSize: -1})
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.NewInProcess(reg, "registry.internal")
		if err != nil {
			t.Fatal(err)
		}
		return st, "team/app"
	})
}
