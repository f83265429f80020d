package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	. "berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/auth/postgres"
	"berth.dev/berth/internal/auth/sqlite"
	"berth.dev/berth/internal/testpeers"
)

// testClock is a clock the test moves, shared by the replicas it runs.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// replica is a Service over st, as one berth process sharing st with
// others would run it.
func replica(t *testing.T, st Store, clock *testClock) *Service {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.BcryptCost = bcrypt.MinCost
	cfg.Clock = clock.Now
	s, err := New(context.Background(), st, key, nil, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sessionUser is who svc says cookie c's session belongs to ("": nobody).
func sessionUser(svc *Service, c *http.Cookie) string {
	if p := svc.SessionPrincipal(sessionRequest(c)); p != nil {
		return p.Name
	}
	return ""
}

func startSession(t *testing.T, svc *Service, name, password string) *http.Cookie {
	t.Helper()
	c, err := svc.StartSession(context.Background(), sessionRequest(nil), name, password)
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return c
}

// TestSessionsAcrossReplicas runs two Services (two replicas, each with
// its own connection pool) over one PostgreSQL database, as berth behind a
// load balancer: a login on A opens the UI on B with the same CSRF token,
// a logout on B ends the session on A, a use on one keeps it alive on the
// other, and a password change, disabling or deleting the account on A
// end its sessions on B at once, before B has heard of the change.
func TestSessionsAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	url := testpeers.Postgres(t)
	open := func() Store {
		st, err := postgres.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	clock := &testClock{now: time.Now()}
	a := replica(t, open(), clock)
	for _, name := range []string{"ann", "pat", "dis", "del"} {
		if _, err := a.CreateUser(ctx, name, name+"-password-1", false, nil); err != nil {
			t.Fatal(err)
		}
	}
	// B starts after the users exist and reloads nothing afterwards:
	// without a listener its snapshot never hears of A's changes, the
	// worst case of a notification in flight.
	b := replica(t, open(), clock)

	c := startSession(t, a, "ann", "ann-password-1")
	if got := sessionUser(b, c); got != "ann" {
		t.Fatalf("a session started on A identifies %q on B", got)
	}
	token := a.CSRFToken(sessionRequest(c))
	if token == "" || b.CSRFToken(sessionRequest(c)) != token || !b.ValidCSRF(sessionRequest(c), token) {
		t.Errorf("the CSRF token differs between replicas: A %q, B %q", token, b.CSRFToken(sessionRequest(c)))
	}

	// Used on B, the session is not idle on A either.
	clock.advance(SessionIdle - 10*time.Minute)
	if got := sessionUser(b, c); got != "ann" {
		t.Fatalf("after %s the session identifies %q on B", SessionIdle-10*time.Minute, got)
	}
	clock.advance(SessionIdle - 10*time.Minute)
	if got := sessionUser(a, c); got != "ann" {
		t.Errorf("a session used on B within the idle time ended on A: %q", got)
	}

	b.EndSession(sessionRequest(c))
	if got := sessionUser(a, c); got != "" {
		t.Errorf("after logging out on B the cookie identifies %q on A", got)
	}
	if got := sessionUser(b, c); got != "" {
		t.Errorf("after logging out on B the cookie identifies %q on B", got)
	}

	newPassword, yes := "pat-password-2", true
	for _, tc := range []struct {
		name, what string
		change     func() error
	}{
		{"pat", "a password change", func() error {
			_, err := a.UpdateUser(ctx, "pat", UserChange{Password: &newPassword})
			return err
		}},
		{"dis", "disabling the user", func() error {
			_, err := a.UpdateUser(ctx, "dis", UserChange{Disabled: &yes})
			return err
		}},
		{"del", "deleting the user", func() error { return a.DeleteUser(ctx, "del") }},
	} {
		c := startSession(t, a, tc.name, tc.name+"-password-1")
		if got := sessionUser(b, c); got != tc.name {
			t.Fatalf("before %s the session identifies %q on B", tc.what, got)
		}
		if err := tc.change(); err != nil {
			t.Fatal(err)
		}
		if got := sessionUser(b, c); got != "" {
			t.Errorf("after %s on A, B (not reloaded) still lets the session in as %q", tc.what, got)
		}
	}
}

// TestSessionsSurviveARestart: a session started before the process
// stops opens the UI after it starts again over the same database, with
// the same CSRF token; a logout after the restart still ends it.
func TestSessionsSurviveARestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	clock := &testClock{now: time.Now()}
	start := func() (*Service, func()) {
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		return replica(t, st, clock), func() { st.Close() }
	}
	svc, stop := start()
	if _, err := svc.CreateUser(ctx, "ann", "ann-password-1", false, nil); err != nil {
		t.Fatal(err)
	}
	c := startSession(t, svc, "ann", "ann-password-1")
	token := svc.CSRFToken(sessionRequest(c))
	stop()

	svc, stop = start()
	if got := sessionUser(svc, c); got != "ann" {
		t.Fatalf("after a restart the session identifies %q", got)
	}
	if got := svc.CSRFToken(sessionRequest(c)); got != token || token == "" {
		t.Errorf("after a restart the CSRF token is %q, was %q", got, token)
	}
	svc.EndSession(sessionRequest(c))
	stop()

	svc, stop = start()
	defer stop()
	if got := sessionUser(svc, c); got != "" {
		t.Errorf("a session ended before a restart identifies %q after it", got)
	}
}

// touchCounter counts the writes of sessions' last-seen times.
type touchCounter struct {
	Store
	touches atomic.Int32
}

func (s *touchCounter) TouchSession(ctx context.Context, hash string, at time.Time) error {
	s.touches.Add(1)
	return s.Store.TouchSession(ctx, hash, at)
}

// TestSessionTouchesAreRare: requests a minute apart or closer write the
// session's last-seen time once, not each; the writes that are made keep
// the session from going idle.
func TestSessionTouchesAreRare(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	counter := &touchCounter{Store: st}
	clock := &testClock{now: time.Now()}
	svc := replica(t, counter, clock)
	if _, err := svc.CreateUser(ctx, "ann", "ann-password-1", false, nil); err != nil {
		t.Fatal(err)
	}
	c := startSession(t, svc, "ann", "ann-password-1")
	for range 20 {
		clock.advance(2 * time.Second)
		if got := sessionUser(svc, c); got != "ann" {
			t.Fatalf("session identifies %q", got)
		}
	}
	if n := counter.touches.Load(); n != 0 {
		t.Errorf("20 requests within a minute of the login wrote the session %d times, want 0", n)
	}
	// Each step is within the idle time of the last write but not of the
	// login: the session lives on only if the touches were stored.
	for i := range 3 {
		clock.advance(SessionIdle - time.Minute)
		if got := sessionUser(svc, c); got != "ann" {
			t.Fatalf("step %d: a session in use went idle: %q", i, got)
		}
	}
	if n := counter.touches.Load(); n != 3 {
		t.Errorf("3 requests hours apart wrote the session %d times, want 3", n)
	}
	clock.advance(SessionIdle + time.Minute)
	if got := sessionUser(svc, c); got != "" {
		t.Errorf("an idle session lived on: %q", got)
	}
}

// TestSessionsPerAccountLimit: an account's 33rd login ends its oldest
// session, and only that one.
func TestSessionsPerAccountLimit(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clock := &testClock{now: time.Now()}
	svc := replica(t, st, clock)
	if _, err := svc.CreateUser(ctx, "ann", "ann-password-1", false, nil); err != nil {
		t.Fatal(err)
	}
	var cookies []*http.Cookie
	for range 33 {
		clock.advance(time.Second)
		cookies = append(cookies, startSession(t, svc, "ann", "ann-password-1"))
	}
	if got := sessionUser(svc, cookies[0]); got != "" {
		t.Errorf("the oldest of 33 sessions lived on: %q", got)
	}
	for i, c := range cookies[1:] {
		if got := sessionUser(svc, c); got != "ann" {
			t.Errorf("session %d of 33 ended: %q", i+2, got)
		}
	}
}

// brokenSessions is a store that cannot write sessions.
type brokenSessions struct{ Store }

func (brokenSessions) CreateSession(context.Context, Session, SessionLimits) error {
	return errors.New("disk I/O error")
}

// TestSessionNotStored: a right password whose session cannot be stored
// gets ErrSessionUnavailable (the UI answers 503), not a cookie that
// would open nothing, nor the store's error text.
func TestSessionNotStored(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := replica(t, brokenSessions{st}, &testClock{now: time.Now()})
	if _, err := svc.CreateUser(ctx, "ann", "ann-password-1", false, nil); err != nil {
		t.Fatal(err)
	}
	c, err := svc.StartSession(ctx, sessionRequest(nil), "ann", "ann-password-1")
	if !errors.Is(err, ErrSessionUnavailable) || c != nil {
		t.Fatalf("StartSession = %v, %v; want no cookie and ErrSessionUnavailable", c, err)
	}
	if strings.Contains(err.Error(), "disk") {
		t.Errorf("the store's error reaches the user: %v", err)
	}
}
