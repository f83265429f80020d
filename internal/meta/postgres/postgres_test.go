package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/meta/metatest"
	"berth.dev/berth/internal/meta/postgres"
	"berth.dev/berth/internal/registry/event"
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

// Every registry change is announced on ChangesChannel when it commits,
// with what a replica's cache must forget; a change that fails announces
// nothing.
func TestChangesAreAnnounced(t *testing.T) {
	ctx := context.Background()
	url := testpeers.Postgres(t)
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	listener, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN "+postgres.ChangesChannel); err != nil {
		t.Fatal(err)
	}
	next := func() (event.Event, bool) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n, err := listener.WaitForNotification(wctx)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return postgres.DecodeChange(n.Payload)
	}
	content := []byte(`{"schemaVersion":2}`)
	config := digest.FromString("config")
	m := &meta.Manifest{Digest: digest.FromBytes(content), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Content: content, References: []meta.Reference{{Digest: config, Kind: meta.RefBlob}}}
	// Refused (the config is not linked yet): no announcement.
	if err := s.PutManifest(ctx, "team/app", m, []string{"v1"}); err == nil {
		t.Fatal("PutManifest without its config succeeded")
	}
	if err := s.LinkBlob(ctx, "team/app", config, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.PutManifest(ctx, "team/app", m, []string{"v1"}); err != nil {
		t.Fatal(err)
	}
	if e, all := next(); all || e.Kind != event.ManifestPushed || e.Repository != "team/app" || e.Digest != m.Digest ||
		!slices.Equal(e.Tags, []string{"v1"}) {
		t.Errorf("push announced as %+v (all %v)", e, all)
	}
	if _, err := s.DeleteTag(ctx, "team/app", "v1"); err != nil {
		t.Fatal(err)
	}
	if e, all := next(); all || e.Kind != event.TagDeleted || !slices.Equal(e.Tags, []string{"v1"}) {
		t.Errorf("tag deletion announced as %+v (all %v)", e, all)
	}
	// A referrer (a signature) carries its subject, pushed and deleted:
	// it changes what another replica's pull-time policy decides on the
	// subject.
	sigContent := []byte(`{"schemaVersion":2,"subject":{}}`)
	sig := &meta.Manifest{Digest: digest.FromBytes(sigContent), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Content: sigContent, Subject: m.Digest, References: []meta.Reference{{Digest: config, Kind: meta.RefBlob}}}
	if err := s.PutManifest(ctx, "team/app", sig, nil); err != nil {
		t.Fatal(err)
	}
	if e, all := next(); all || e.Kind != event.ManifestPushed || e.Subject != m.Digest {
		t.Errorf("referrer push announced as %+v (all %v)", e, all)
	}
	if _, err := s.DeleteManifest(ctx, "team/app", sig.Digest); err != nil {
		t.Fatal(err)
	}
	if e, all := next(); all || e.Kind != event.ManifestDeleted || e.Digest != sig.Digest || e.Subject != m.Digest {
		t.Errorf("referrer deletion announced as %+v (all %v)", e, all)
	}
	// A change too large for a notification says to forget everything.
	many := make([]string, 400)
	for i := range many {
		many[i] = fmt.Sprintf("tag-with-a-long-name-%04d", i)
	}
	if err := s.PutManifest(ctx, "team/app", m, many); err != nil {
		t.Fatal(err)
	}
	if _, all := next(); !all {
		t.Error("a push of 400 tags was announced in full, past PostgreSQL's payload limit")
	}
}
