package auth_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"berth.dev/berth/internal/audit/audittest"
	. "berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/auth/sqlite"
	"berth.dev/berth/internal/registry/access"
)

// floodInventedNames tries n invented robot names (no hashing: robot
// secrets are cheap to check) from n distinct loopback addresses, through
// the service's real login path, and returns how many were refused as
// bad credentials and how many throttled.
func floodInventedNames(t *testing.T, svc *Service, n int) (bad, throttled int) {
	t.Helper()
	for i := range n {
		req := httptest.NewRequest("GET", "/v2/", nil)
		// From 127.1.0.0 on, clear of the test client's 127.0.0.1.
		req.RemoteAddr = netip.AddrFrom4([4]byte{127, 1 + byte(i>>16), byte(i >> 8), byte(i)}).String() + ":40000"
		req.SetBasicAuth(RobotPrefix+"invented"+strconv.Itoa(i), "bsr_guess")
		_, err := svc.Authenticate(req)
		switch err.(type) {
		case *access.Challenge:
			bad++
		case *access.Throttle:
			throttled++
		default:
			t.Fatalf("invented name %d: %v", i, err)
		}
	}
	return bad, throttled
}

// TestFullLimiterStillLimits is the attack of issue 10 item 2: 100,001
// failed logins for invented names from distinct addresses, then 200 wrong
// guesses of a real user's password from one address. The tables are full,
// yet the guesses get 429 after the account's limit, and so does the right
// password until the lockout ends. The global limit is off here, to show
// that the per-account limit holds on its own.
func TestFullLimiterStillLimits(t *testing.T) {
	r := newUnauditedRig(t, func(c *Config) { c.MaxFailuresGlobal = 0 })
	if bad, throttled := floodInventedNames(t, r.svc, 100_001); bad != 100_001 || throttled != 0 {
		t.Fatalf("flood: %d refused, %d throttled; want every invented name refused as bad credentials", bad, throttled)
	}
	accounts, names, addresses := LimiterSizes(r.svc)
	if names > 100_000 || addresses > 100_000 || accounts != 0 {
		t.Errorf("limiter holds %d accounts, %d names, %d addresses: not bounded", accounts, names, addresses)
	}
	limit := DefaultConfig().MaxFailuresPerAccount
	statuses := map[int]int{}
	for i := range 200 {
		p := r.do("GET", "/v2/", nil, basicHeader("admin", "guess-"+strconv.Itoa(i))...)
		statuses[p.status]++
		if want := map[bool]int{true: 401, false: 429}[i < limit]; p.status != want {
			t.Fatalf("wrong guess %d: %d %s, want %d", i+1, p.status, p.body, want)
		}
	}
	p := r.expect(r.do("GET", "/v2/", nil, basicHeader("admin", adminPassword)...), 429, "TOOMANYREQUESTS", "the right password while locked out")
	if p.header.Get("Retry-After") != "60" {
		t.Errorf("Retry-After = %q, want 60", p.header.Get("Retry-After"))
	}
	r.advance(time.Minute + time.Second)
	r.expect(r.do("GET", "/v2/", nil, basicHeader("admin", adminPassword)...), 200, "", "the right password after the lockout")
}

// TestGlobalLimit floods invented names with the default settings: past
// the global limit every login that needs a password check gets 429, a
// login verified before the flood still works, and everything recovers
// once the failures leave the window.
func TestGlobalLimit(t *testing.T) {
	r := newUnauditedRig(t)
	r.user("dev", "", "")
	r.expect(r.do("GET", "/v2/", nil, basicHeader("admin", adminPassword)...), 200, "", "admin logs in before the flood")
	global := DefaultConfig().MaxFailuresGlobal
	bad, throttled := floodInventedNames(t, r.svc, 100_001)
	if bad != global || throttled != 100_001-global {
		t.Errorf("flood: %d refused, %d throttled; want the first %d refused and the rest throttled", bad, throttled, global)
	}
	r.expect(r.do("GET", "/v2/", nil, basicHeader("dev", "dev-password")...), 429, "TOOMANYREQUESTS", "a fresh login during the flood")
	r.expect(r.do("GET", "/v2/", nil, basicHeader("dev", "wrong-password")...), 429, "TOOMANYREQUESTS", "a guess during the flood")
	r.expect(r.do("GET", "/v2/", nil, basicHeader("admin", adminPassword)...), 200, "", "a login verified before the flood")
	r.advance(DefaultConfig().FailureWindow + time.Second)
	r.expect(r.do("GET", "/v2/", nil, basicHeader("dev", "dev-password")...), 200, "", "a fresh login after the window")
}

// TestLockoutSurvivesRestartUntilUnlocked locks the administrator out,
// restarts the service over the same store (still locked: a restart must
// not free an attacker's target), clears it as `berth admin unlock` does,
// and restarts again: the administrator gets in.
func TestLockoutSurvivesRestartUntilUnlocked(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	start := func() *Service {
		cfg := DefaultConfig()
		cfg.BcryptCost = bcrypt.MinCost
		cfg.Clock = func() time.Time { return now }
		svc, err := New(ctx, st, audittest.Key(t), nil, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.Bootstrap(ctx, adminPassword); err != nil {
			t.Fatal(err)
		}
		return svc
	}
	login := func(svc *Service, password string) error {
		req := httptest.NewRequest("GET", "/v2/", nil)
		req.SetBasicAuth("admin", password)
		_, err := svc.Authenticate(req)
		return err
	}
	svc := start()
	for range DefaultConfig().MaxFailuresPerAccount {
		login(svc, "guess")
	}
	var th *access.Throttle
	if err := login(start(), adminPassword); !errors.As(err, &th) || th.RetryAfter != time.Minute {
		t.Fatalf("after a restart: %v, want the 1m lockout", err)
	}
	if _, err := Unlock(ctx, st, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unlock of a missing user: %v", err)
	}
	lo, err := Unlock(ctx, st, "admin")
	if err != nil || lo.Level != 1 || !lo.Until.Equal(now.Add(time.Minute)) {
		t.Fatalf("unlock = %+v, %v", lo, err)
	}
	if _, err := Unlock(ctx, st, "admin"); !errors.Is(err, ErrNotLocked) {
		t.Errorf("second unlock: %v, want not locked out", err)
	}
	if err := login(start(), adminPassword); err != nil {
		t.Errorf("after unlock and restart: %v", err)
	}
	// A success clears the stored lockout too: lock, wait it out, log in.
	svc = start()
	for range DefaultConfig().MaxFailuresPerAccount {
		login(svc, "guess")
	}
	now = now.Add(time.Minute)
	if err := login(svc, adminPassword); err != nil {
		t.Fatal(err)
	}
	if ls, _ := st.Lockouts(ctx); len(ls) != 0 {
		t.Errorf("lockouts after a successful login: %+v", ls)
	}
}
