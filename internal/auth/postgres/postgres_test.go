package postgres_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"golang.org/x/crypto/bcrypt"

	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/auth/authtest"
	"berth.dev/berth/internal/auth/postgres"
	metapg "berth.dev/berth/internal/meta/postgres"
	"berth.dev/berth/internal/pgdb"
	"berth.dev/berth/internal/testpeers"
)

func TestSuite(t *testing.T) {
	authtest.Run(t, func(t testing.TB) auth.Store {
		s, err := postgres.Open(context.Background(), testpeers.Postgres(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// The auth tables live beside the meta store's in one database and one
// pool, each with its own schema version, opened in either order.
func TestBesideTheMetaStore(t *testing.T) {
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, testpeers.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for range 2 {
		a, err := postgres.New(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		m, err := metapg.New(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		// The second round finds alice from the first.
		if err := a.CreateUser(ctx, auth.User{ID: "alice-id", Name: "alice"}); err != nil && !errors.Is(err, auth.ErrExists) {
			t.Fatal(err)
		}
		if err := m.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		a.Close()
		m.Close()
	}
	if err := pool.Ping(ctx); err != nil {
		t.Errorf("closing the stores closed the shared pool: %v", err)
	}
}

// Replicas starting together on one empty database create the first
// administrator once: one of them generates its password, the others
// start without error and know the account.
func TestBootstrapOnce(t *testing.T) {
	ctx := context.Background()
	url := testpeers.Postgres(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const replicas = 4
	services := make([]*auth.Service, replicas)
	for i := range services {
		st, err := postgres.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		cfg := auth.DefaultConfig()
		cfg.BcryptCost = bcrypt.MinCost
		cfg.InitialPasswordFile = filepath.Join(t.TempDir(), "initial-password")
		if services[i], err = auth.New(ctx, st, key, nil, cfg, nil); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	generated := make([]string, replicas)
	errs := make([]error, replicas)
	for i, s := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			generated[i], _, errs[i] = s.Bootstrap(ctx, "")
		}()
	}
	wg.Wait()
	var passwords []string
	for i := range services {
		if errs[i] != nil {
			t.Errorf("replica %d: Bootstrap: %v", i, errs[i])
		}
		if generated[i] != "" {
			passwords = append(passwords, generated[i])
		}
	}
	if len(passwords) != 1 {
		t.Fatalf("%d replicas generated a first password, want exactly 1", len(passwords))
	}
	for i, s := range services {
		if _, err := s.User(auth.InitialAdmin); err != nil {
			t.Errorf("replica %d does not know the first administrator: %v", i, err)
		}
		r := httptest.NewRequest("GET", "/v2/", nil)
		r.SetBasicAuth(auth.InitialAdmin, passwords[0])
		if sub, err := s.Authenticate(r); err != nil || sub.Name != auth.InitialAdmin {
			t.Errorf("replica %d: the generated password logs in as %q, %v", i, sub.Name, err)
		}
	}
}

// A change to what authorization reads is announced when it commits; a
// refresh token, a lockout or a web session is not (authorization never
// caches them).
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
	heard := func() string {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		n, err := listener.WaitForNotification(wctx)
		if err != nil {
			return ""
		}
		return n.Payload
	}
	if err := s.CreateUser(ctx, auth.User{ID: "u1", Name: "alice", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got := heard(); got != "users" {
		t.Errorf("user created: heard %q, want users", got)
	}
	if err := s.CreateRobot(ctx, auth.Robot{ID: "r1", Name: "robot$ci", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got := heard(); got != "robots" {
		t.Errorf("robot created: heard %q, want robots", got)
	}
	if err := s.PutLockout(ctx, auth.Lockout{AccountID: "u1", Level: 1, Until: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got := heard(); got != "" {
		t.Errorf("a lockout was announced: %q", got)
	}
	if err := s.CreateSession(ctx, auth.Session{Hash: "h", AccountID: "u1", AccountName: "alice", CreatedAt: time.Now(), LastSeen: time.Now()},
		auth.SessionLimits{PerAccount: 1, Total: 1}); err != nil {
		t.Fatal(err)
	}
	if got := heard(); got != "" {
		t.Errorf("a web session was announced: %q", got)
	}
}
