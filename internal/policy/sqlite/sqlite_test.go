package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"berth.dev/berth/internal/policy"
	"berth.dev/berth/internal/policy/policystoretest"
	"berth.dev/berth/internal/policy/sqlite"
)

func TestSuite(t *testing.T) {
	policystoretest.Run(t, func(t testing.TB) (policy.Store, func() policy.Store) {
		path := filepath.Join(t.TempDir(), "meta.db")
		open := func() policy.Store {
			s, err := sqlite.Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return open(), open
	})
}
