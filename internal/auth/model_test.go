package auth

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tableText is the permission table written out a second time, by hand,
// as it appears in docs/auth.md; the test holds the code to it cell by
// cell. Columns: projectAdmin maintainer developer guest limitedGuest.
const tableText = `
pull            x x x x x
push            x x x . .
delete          x x . . .
list            x x x x .
catalog         x x x x .
members.read    x x x x .
members.manage  x . . . .
project.manage  x . . . .
robots.manage   x . . . .
audit.read      x x x x .
stage.approve   x x . . .
`

func TestPermissionTable(t *testing.T) {
	rows := map[Action]bool{}
	for _, line := range strings.Split(strings.TrimSpace(tableText), "\n") {
		f := strings.Fields(line)
		action := Action(f[0])
		rows[action] = true
		if len(f) != 1+len(Roles) {
			t.Fatalf("row %q has %d cells", line, len(f)-1)
		}
		for i, role := range Roles {
			if want := f[i+1] == "x"; Permits(role, action) != want {
				t.Errorf("Permits(%s, %s) = %v, want %v", role, action, !want, want)
			}
		}
	}
	for _, a := range Actions {
		if !rows[a] {
			t.Errorf("action %s is not in the written table", a)
		}
	}
	if len(rows) != len(Actions) {
		t.Errorf("the written table has %d actions, the code %d", len(rows), len(Actions))
	}
	if Permits("owner", Pull) || Permits(ProjectAdmin, "fly") {
		t.Error("unknown roles or actions are permitted")
	}
	for _, a := range Actions {
		want := a == Pull || a == ListTags || a == Catalog
		if PublicPermits(a) != want {
			t.Errorf("PublicPermits(%s) = %v", a, !want)
		}
	}
}

func TestProjectOf(t *testing.T) {
	for repo, want := range map[string]string{
		"team-a/app":      "team-a",
		"team-a/sub/app":  "team-a",
		"alpine":          DefaultProject,
		"library/alpine":  "library",
		"a.b_c--d/e":      "a.b_c--d",
		"conformance/one": "conformance",
	} {
		if got := ProjectOf(repo); got != want {
			t.Errorf("ProjectOf(%s) = %s, want %s", repo, got, want)
		}
	}
}

func TestValidation(t *testing.T) {
	for name, ok := range map[string]bool{"alice": true, "a.b-c_d": true, "0": true, "": false, "Alice": false,
		"robot$x": false, "-a": false, strings.Repeat("a", 65): false, "a b": false} {
		if (ValidateUserName(name) == nil) != ok {
			t.Errorf("ValidateUserName(%q) ok = %v", name, !ok)
		}
	}
	for name, ok := range map[string]bool{"team-a": true, "a__b": true, "a.b": true, "a/b": false, "-a": false,
		"a-": false, "..": false, "A": false, "": false, "a___b": false} {
		if (ValidateProjectName(name) == nil) != ok {
			t.Errorf("ValidateProjectName(%q) ok = %v", name, !ok)
		}
	}
	got, err := ParseCIDRs([]string{"10.0.0.0/8", " 192.0.2.7 ", "", "2001:db8::1/32"})
	if err != nil || len(got) != 3 || got[1].String() != "192.0.2.7/32" || got[2].String() != "2001:db8::/32" {
		t.Errorf("ParseCIDRs = %v, %v", got, err)
	}
	if _, err := ParseCIDRs([]string{"10.0.0.0/40"}); err == nil {
		t.Error("a /40 IPv4 prefix parsed")
	}
	if !allowedFrom(nil, netip.MustParseAddr("1.2.3.4")) || allowedFrom(got, netip.MustParseAddr("1.2.3.4")) ||
		!allowedFrom(got, netip.MustParseAddr("::ffff:10.1.2.3")) {
		t.Error("allowedFrom")
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		remote string
		xff    []string
		want   string
	}{
		{"192.0.2.1:1000", nil, "192.0.2.1"},
		{"192.0.2.1:1000", []string{"203.0.113.9"}, "192.0.2.1"}, // untrusted peer: header ignored
		{"10.0.0.2:1000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"10.0.0.2:1000", []string{"198.51.100.1, 203.0.113.9, 10.0.0.3"}, "203.0.113.9"}, // nearest untrusted hop
		{"10.0.0.2:1000", []string{"198.51.100.1", "203.0.113.9"}, "203.0.113.9"},
		{"10.0.0.2:1000", []string{"garbage, 203.0.113.9"}, "203.0.113.9"},
		{"10.0.0.2:1000", []string{"203.0.113.9, garbage"}, "10.0.0.2"},
		{"10.0.0.2:1000", []string{"10.0.0.3"}, "10.0.0.3"},
		{"[::ffff:192.0.2.1]:1000", nil, "192.0.2.1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := clientAddr(r, trusted).String(); got != tc.want {
			t.Errorf("clientAddr(%s, %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

func TestRealm(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	r := httptest.NewRequest("GET", "http://registry.example:5000/v2/", nil)
	r.RemoteAddr = "192.0.2.1:1"
	r.Header.Set("X-Forwarded-Proto", "https")
	if got := realmFor(r, trusted); got != "http://registry.example:5000/token" {
		t.Errorf("realm from an untrusted peer = %s", got)
	}
	r.RemoteAddr = "10.0.0.1:1"
	r.Header.Set("X-Forwarded-Host", "berth.example")
	if got := realmFor(r, trusted); got != "https://berth.example/token" {
		t.Errorf("realm behind a trusted proxy = %s", got)
	}
	r.Header.Set("X-Forwarded-Host", "evil.example/path")
	if got := realmFor(r, trusted); got != "https://registry.example:5000/token" {
		t.Errorf("realm with a malformed forwarded host = %s", got)
	}
}

func TestSameOrigin(t *testing.T) {
	proxy := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	direct := httptest.NewRequest("POST", "http://registry.example:5000/api/v1/users", nil)
	direct.RemoteAddr = "192.0.2.1:1234"
	proxied := httptest.NewRequest("POST", "http://internal:5000/api/v1/users", nil)
	proxied.RemoteAddr = "10.1.2.3:1234"
	proxied.Header.Set("X-Forwarded-Proto", "https")
	proxied.Header.Set("X-Forwarded-Host", "registry.example")
	for _, tc := range []struct {
		name   string
		cfg    Config
		r      *http.Request
		origin string
		want   bool
	}{
		{"own origin", Config{}, direct, "http://registry.example:5000", true},
		{"own origin, any case", Config{}, direct, "HTTP://REGISTRY.example:5000", true},
		{"another scheme", Config{}, direct, "https://registry.example:5000", false},
		{"another port", Config{}, direct, "http://registry.example:5001", false},
		{"another host", Config{}, direct, "http://evil.example:5000", false},
		{"opaque", Config{}, direct, "null", false},
		{"with a path", Config{}, direct, "http://registry.example:5000/x", false},
		{"with a user", Config{}, direct, "http://u@registry.example:5000", false},
		{"behind a trusted proxy", Config{TrustedProxies: proxy}, proxied, "https://registry.example", true},
		{"default port", Config{TrustedProxies: proxy}, proxied, "https://registry.example:443", true},
		{"the proxy's headers, untrusted", Config{}, proxied, "https://registry.example", false},
		{"the configured realm", Config{Realm: "https://berth.example/token"}, direct, "https://berth.example", true},
		{"not the realm", Config{Realm: "https://berth.example/token"}, direct, "https://evil.example", false},
	} {
		if got := (&Service{cfg: tc.cfg}).SameOrigin(tc.r, tc.origin); got != tc.want {
			t.Errorf("%s: SameOrigin(%q) = %v, want %v", tc.name, tc.origin, got, tc.want)
		}
	}
}

func TestLoginLimiter(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	newL := func() *loginLimiter { return newLoginLimiter(5*time.Minute, 3, 5, 0, time.Minute) }
	failN := func(l *loginLimiter, n int, id, name, ip string, at time.Time) *Lockout {
		var lo *Lockout
		for range n {
			lo = l.fail(id, name, ip, at)
		}
		return lo
	}

	t.Run("lockouts back off and cap", func(t *testing.T) {
		l := newL()
		now := t0
		want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 64}
		for i, minutes := range want {
			if w, _ := l.check("u1", "alice", "ip"+strconv.Itoa(i), now); w != 0 {
				t.Fatalf("lockout %d: throttled before the failures: %v", i+1, w)
			}
			// Each failure from another address: the account is what is
			// locked, not the address.
			var lo *Lockout
			for j := range 3 {
				lo = l.fail("u1", "alice", fmt.Sprintf("ip%d-%d", i, j), now)
			}
			if lo == nil || lo.AccountID != "u1" || lo.Level != i+1 || lo.Until != now.Add(minutes*time.Minute) {
				t.Fatalf("lockout %d = %+v, want level %d until +%dm", i+1, lo, i+1, minutes)
			}
			if w, _ := l.check("u1", "alice", "elsewhere", now); w != minutes*time.Minute {
				t.Errorf("lockout %d: wait %v, want %dm", i+1, w, minutes)
			}
			if w, _ := l.check("u2", "bob", "elsewhere", now); w != 0 {
				t.Errorf("another account throttled: %v", w)
			}
			now = now.Add(minutes * time.Minute)
		}
		if !l.succeed("u1", "alice") {
			t.Error("succeed did not report the lockout on record")
		}
		if lo := failN(l, 3, "u1", "alice", "ip", now); lo == nil || lo.Level != 1 || lo.Until != now.Add(time.Minute) {
			t.Errorf("after a success the backoff starts over: %+v", lo)
		}
		// A day after the lockout ends, the next one is the first again.
		now = now.Add(time.Minute + levelMemory + time.Second)
		failN(l, 2, "u1", "alice", "ip", now)
		if lo := l.fail("u1", "alice", "ip", now); lo == nil || lo.Level != 1 {
			t.Errorf("after a quiet day: %+v", lo)
		}
	})

	t.Run("only failures within the window count", func(t *testing.T) {
		l := newL()
		l.fail("u1", "alice", "ip1", t0)
		l.fail("u1", "alice", "ip1", t0.Add(3*time.Minute))
		if lo := l.fail("u1", "alice", "ip1", t0.Add(6*time.Minute)); lo != nil {
			t.Errorf("locked by failures spread over more than the window: %+v", lo)
		}
		if l.succeed("u1", "alice") {
			t.Error("succeed reported a lockout that never was")
		}
	})

	t.Run("addresses", func(t *testing.T) {
		l := newL()
		for i := range 5 {
			l.fail("", fmt.Sprintf("name%d", i), "ip1", t0.Add(time.Duration(i)*time.Second))
		}
		if w, _ := l.check("u9", "carol", "ip1", t0.Add(10*time.Second)); w != 5*time.Minute-10*time.Second {
			t.Errorf("address wait = %v, want until its oldest failure leaves the window", w)
		}
		if w, _ := l.check("u9", "carol", "ip1", t0.Add(5*time.Minute)); w != 0 {
			t.Errorf("address still throttled after the window: %v", w)
		}
		// A refresh token names no account: the address alone is limited.
		l.fail("", "", "ip3", t0)
		if l.names.len() != 5 || l.accounts.len() != 0 {
			t.Errorf("tables hold %d names and %d accounts, want 5 and 0", l.names.len(), l.accounts.len())
		}
	})

	t.Run("invented names answer like real ones", func(t *testing.T) {
		l := newL()
		real, invented := failN(l, 3, "u1", "alice", "ip1", t0), failN(l, 3, "", "nobody", "ip2", t0)
		if real == nil || invented == nil || real.Until != invented.Until || invented.AccountID != "" {
			t.Errorf("lockouts differ: real %+v, invented %+v", real, invented)
		}
	})

	t.Run("global", func(t *testing.T) {
		l := newLoginLimiter(5*time.Minute, 3, 5, 10, time.Minute)
		for i := range 10 {
			if _, g := l.check("", "x", "ip", t0); g != 0 {
				t.Fatalf("global throttle after %d failures", i)
			}
			l.fail("", fmt.Sprintf("n%d", i), fmt.Sprintf("ip%d", i), t0)
		}
		w, g := l.check("", "x", "ip", t0)
		if w != 0 || g <= 0 || g > 5*time.Minute {
			t.Errorf("wait %v, global wait %v; want only the global one, until the failures leave the window", w, g)
		}
		if _, g := l.check("", "x", "ip", t0.Add(5*time.Minute+time.Second)); g != 0 {
			t.Errorf("global throttle after the window: %v", g)
		}
		// Failures spread over the window leave it one by one.
		r := newFailureRing(5 * time.Minute)
		for _, at := range []time.Duration{0, 2 * time.Minute, 4 * time.Minute} {
			r.add(t0.Add(at))
		}
		if w := r.wait(3, t0.Add(4*time.Minute)); w <= 0 || w > time.Minute {
			t.Errorf("three failures: wait %v, want until the first leaves the window (about 1m)", w)
		}
		if w := r.wait(3, t0.Add(5*time.Minute+5*time.Second)); w != 0 {
			t.Errorf("after the first left the window: wait %v", w)
		}
		if w := r.wait(2, t0.Add(5*time.Minute+5*time.Second)); w <= 0 || w > 2*time.Minute {
			t.Errorf("two failures left, limit 2: wait %v, want about 2m", w)
		}
	})

	t.Run("restored lockouts", func(t *testing.T) {
		l := newL()
		l.restore([]Lockout{{AccountID: "u1", Level: 3, Until: t0.Add(4 * time.Minute)}})
		if w, _ := l.check("u1", "alice", "ip", t0); w != 4*time.Minute {
			t.Errorf("restored lockout: wait %v", w)
		}
		if lo := failN(l, 3, "u1", "alice", "ip", t0.Add(5*time.Minute)); lo == nil || lo.Level != 4 || lo.Until != t0.Add(13*time.Minute) {
			t.Errorf("the backoff did not continue from the restored level: %+v", lo)
		}
	})

	t.Run("off", func(t *testing.T) {
		off := newLoginLimiter(0, 1, 1, 1, time.Minute)
		off.fail("a", "a", "b", t0)
		if w, g := off.check("a", "a", "b", t0); w != 0 || g != 0 {
			t.Error("a zero window throttles")
		}
	})
}

// TestLoginLimiterWhenFull fills the tables past their bound with invented
// names from distinct addresses, as an attacker would to switch limiting
// off: the tables stay bounded, the newest entries are kept, and a real
// account's state, and the address of a guesser, are still limited.
func TestLoginLimiterWhenFull(t *testing.T) {
	l := newLoginLimiter(5*time.Minute, 10, 50, 0, time.Minute)
	t0 := time.Unix(1_000_000, 0)
	failN := func(n int, id, name, ip string, at time.Time) {
		for range n {
			l.fail(id, name, ip, at)
		}
	}
	failN(5, "u-admin", "admin", "203.0.113.1", t0) // halfway to a lockout
	for i := range maxTrackedKeys + 1 {
		l.fail("", fmt.Sprintf("robot$x%d", i), netip.AddrFrom4([4]byte{127, byte(i >> 16), byte(i >> 8), byte(i)}).String(), t0.Add(time.Second))
	}
	if l.names.len() != maxTrackedKeys || l.ips.len() != maxTrackedKeys {
		t.Errorf("tables hold %d names and %d addresses, want the bound %d", l.names.len(), l.ips.len(), maxTrackedKeys)
	}
	if l.names.get("robot$x0") != nil || l.names.get(fmt.Sprintf("robot$x%d", maxTrackedKeys)) == nil {
		t.Error("a full table kept the oldest name instead of the newest")
	}
	// The real account kept its five failures: five more lock it out.
	failN(5, "u-admin", "admin", "198.51.100.7", t0.Add(2*time.Second))
	if w, _ := l.check("u-admin", "admin", "198.51.100.8", t0.Add(2*time.Second)); w != time.Minute {
		t.Errorf("real account after the flood: wait %v, want the 1m lockout", w)
	}
	// A new address is tracked although the table is full.
	failN(50, "", "guess", "192.0.2.9", t0.Add(3*time.Second))
	if w, _ := l.check("", "other", "192.0.2.9", t0.Add(3*time.Second)); w == 0 {
		t.Error("a guessing address goes unlimited once the table is full")
	}
}

func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"203.0.113.9", "198.51.100.1, 10.0.0.3", "garbage", "", "::1, 10.0.0.2", " , ,"} {
		f.Add("10.0.0.2:1000", s)
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		got := clientAddr(r, trusted)
		peer := remoteAddr(r)
		// An untrusted peer is the client whatever it sends; a trusted
		// one may name another address, which must then be real.
		if !inPrefixes(trusted, peer) && got != peer {
			t.Errorf("untrusted peer %s became %s via %q", peer, got, xff)
		}
		if inPrefixes(trusted, peer) && !got.IsValid() {
			t.Errorf("invalid address from %q", xff)
		}
	})
}
