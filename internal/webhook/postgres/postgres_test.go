package postgres_test

import (
	"context"
	"testing"

	"berth.dev/berth/internal/testpeers"
	"berth.dev/berth/internal/webhook"
	"berth.dev/berth/internal/webhook/postgres"
	"berth.dev/berth/internal/webhook/webhooktest"
)

func TestSuite(t *testing.T) {
	webhooktest.Run(t, func(t testing.TB) webhook.Store {
		s, err := postgres.Open(context.Background(), testpeers.Postgres(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
