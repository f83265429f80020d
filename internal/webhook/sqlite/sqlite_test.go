package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	metasqlite "berth.dev/berth/internal/meta/sqlite"
	"berth.dev/berth/internal/webhook"
	"berth.dev/berth/internal/webhook/sqlite"
	"berth.dev/berth/internal/webhook/webhooktest"
)

func TestSuite(t *testing.T) {
	webhooktest.Run(t, func(t testing.TB) webhook.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "meta.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestReopenBesideTheMetaStore keeps the webhook tables in the meta store's
// database: hooks, secrets and the delivery log survive closing both, and
// each component keeps its own schema version.
func TestReopenBesideTheMetaStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	m, err := metasqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Create(ctx, webhooktest.NewHook("p7", "team-a", "https://r.example/hook"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, webhook.Attempt{HookID: h.ID, DeliveryID: "d", EventID: "e",
		EventType: webhook.TypeScanCompleted, Attempt: 1, At: time.Now(), StatusCode: 204}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	m.Close()

	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err = metasqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got, secret, err := s.Secret(ctx, "p7", h.ID)
	if err != nil || got.URL != h.URL || secret != "s3cret" {
		t.Errorf("after reopening: %+v, %v", got, err)
	}
	if log, err := s.Attempts(ctx, h.ID, webhook.Page{}); err != nil || len(log) != 1 || log[0].StatusCode != 204 {
		t.Errorf("log after reopening: %+v, %v", log, err)
	}
}
