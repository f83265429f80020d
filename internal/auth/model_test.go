package auth

import (
	"net/http/httptest"
	"net/netip"
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

func TestLoginLimiter(t *testing.T) {
	l := newLoginLimiter(time.Minute, 3, 5)
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if w := l.check("alice", "ip1", t0); w != 0 {
			t.Fatalf("attempt %d throttled", i)
		}
		l.fail("alice", "ip1", t0.Add(time.Duration(i)*time.Second))
	}
	if w := l.check("alice", "ip2", t0.Add(3*time.Second)); w != 57*time.Second {
		t.Errorf("account wait = %v, want 57s (until the first failure leaves the window)", w)
	}
	if w := l.check("bob", "ip1", t0.Add(3*time.Second)); w != 0 {
		t.Errorf("another account from the same address throttled before the address limit: %v", w)
	}
	if w := l.check("alice", "ip1", t0.Add(61*time.Second)); w != 0 {
		t.Errorf("still throttled after the window: %v", w)
	}
	for i := range 2 {
		l.fail("bob"+string(rune('a'+i)), "ip1", t0.Add(10*time.Second))
	}
	if w := l.check("carol", "ip1", t0.Add(10*time.Second)); w == 0 {
		t.Error("address not throttled after 5 failures across accounts")
	}
	l.succeed("alice")
	if w := l.check("alice", "ip9", t0.Add(4*time.Second)); w != 0 {
		t.Errorf("account still throttled after a success: %v", w)
	}
	l.fail("", "ip3", t0)
	if len(l.accounts[""]) != 0 {
		t.Error("an empty account name was tracked")
	}
	off := newLoginLimiter(0, 1, 1)
	off.fail("a", "b", t0)
	if off.check("a", "b", t0) != 0 {
		t.Error("a zero window throttles")
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
