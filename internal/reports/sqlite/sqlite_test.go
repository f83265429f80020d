package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/reports/reportstest"
)

func TestSuite(t *testing.T) {
	reportstest.Run(t, func(t testing.TB) (reports.Store, func() reports.Store) {
		path := filepath.Join(t.TempDir(), "meta.db")
		open := func() reports.Store {
			s, err := Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return open(), open
	})
}
