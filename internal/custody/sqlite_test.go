package custody_test

import (
	"context"
	"path/filepath"
	"testing"

	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/custody/custodystoretest"
)

// The SQLite store runs the suite with each opening of meta.db as
// another process would open it.
func TestSQLiteStoreSuite(t *testing.T) {
	custodystoretest.Run(t, func(t testing.TB) (custody.Store, func() custody.Store) {
		path := filepath.Join(t.TempDir(), "meta.db")
		open := func() custody.Store {
			s, err := custody.OpenSQLite(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return open(), open
	})
}
