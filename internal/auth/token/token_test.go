package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newService(t testing.TB, key *ecdsa.PrivateKey, service string) *Service {
	t.Helper()
	s, err := New(key, "berth", service, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseScopes(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []Scope
		err  string
	}{
		{in: []string{"repository:team-a/app:pull,push"}, want: []Scope{{"repository", "team-a/app", []string{"pull", "push"}}}},
		{in: []string{"repository:a:pull repository:b/c:*", "registry:catalog:*"}, want: []Scope{
			{"repository", "a", []string{"pull"}}, {"repository", "b/c", []string{"*"}}, {"registry", "catalog", []string{"*"}}}},
		{in: []string{"repository(plugin):vieux/sshfs:pull"}, want: []Scope{{"repository(plugin)", "vieux/sshfs", []string{"pull"}}}},
		{in: []string{"repository:a:pull,pull"}, want: []Scope{{"repository", "a", []string{"pull"}}}},
		{in: []string{"", "  "}, want: nil},
		{in: []string{"repository:team-a/../team-b/app:pull"}, err: "invalid repository name"},
		{in: []string{"repository:team-a/%2e%2e/app:pull"}, err: "invalid repository name"},
		{in: []string{"repository:team-a//app:pull"}, err: "invalid repository name"},
		{in: []string{"repository:Team-A/app:pull"}, err: "invalid repository name"},
		{in: []string{"repository::pull"}, err: "invalid repository name"},
		{in: []string{"repository:team-a/app"}, err: "want type:name:actions"},
		{in: []string{"pull"}, err: "want type:name:actions"},
		{in: []string{"repository:a:pull;push"}, err: "invalid action"},
		{in: []string{"repository:a:"}, err: "invalid action"},
		{in: []string{"REPO:a:pull"}, err: "invalid resource type"},
		{in: []string{"registry:everything:*"}, err: "the registry resource"},
		{in: []string{strings.Repeat("repository:a:pull ", maxScopes+1)}, err: "more than"},
	} {
		got, err := ParseScopes(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseScopes(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseScopes(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestIssueAndVerify(t *testing.T) {
	key := newKey(t)
	s := newService(t, key, "berth.example")
	now := time.Now()
	tok, exp, err := s.Issue("alice", "acct-1", []Scope{
		{TypeRepository, "team-a/app", []string{ActionPull, ActionPush}},
		{TypeRepository, "team-b/lib", []string{ActionAll}},
		{TypeRegistry, CatalogName, []string{ActionAll}},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(5 * time.Minute)) {
		t.Errorf("expires = %v", exp)
	}
	g, err := s.Verify(tok, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if g.Subject != "alice" || g.Account != "acct-1" || !g.Catalog {
		t.Errorf("grant = %+v", g)
	}
	for _, tc := range []struct {
		repo string
		want ActionSet
		ok   bool
	}{
		{"team-a/app", CanPull, true},
		{"team-a/app", CanPull | CanPush, true},
		{"team-a/app", CanDelete, false},
		{"team-b/lib", CanPull | CanPush | CanDelete, true},
		{"team-a/other", CanPull, false},
		{"team-a", CanPull, false},
	} {
		if got := g.Allows(tc.repo, tc.want); got != tc.ok {
			t.Errorf("Allows(%s, %b) = %v", tc.repo, tc.want, got)
		}
	}
	// The header carries the key id in libtrust's format.
	header, _, _ := strings.Cut(tok, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(header)
	if !regexp.MustCompile(`"kid":"([A-Z2-7]{4}:){11}[A-Z2-7]{4}"`).Match(raw) || !strings.Contains(string(raw), `"alg":"ES256"`) {
		t.Errorf("header = %s", raw)
	}
	// Cached: the same grant comes back, until it expires.
	if again, err := s.Verify(tok, now.Add(2*time.Minute)); err != nil || again != g {
		t.Errorf("cached verify = %p, %v; want %p", again, err, g)
	}
	if _, err := s.Verify(tok, exp); !errors.Is(err, ErrInvalid) {
		t.Errorf("cached token after expiry: err = %v", err)
	}
}

// TestVerifyRefuses covers the bad input of the issue: forged signatures,
// alg none, algorithm confusion, expiry, another service, garbage.
func TestVerifyRefuses(t *testing.T) {
	key := newKey(t)
	s := newService(t, key, "berth")
	now := time.Now()
	access := []Scope{{TypeRepository, "team-a/app", []string{ActionPull}}}
	claims := func(mod func(*Claims)) *Claims {
		c := &Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "berth", Subject: "alice", Audience: jwt.ClaimStrings{"berth"},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)), IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now)},
			Access: access}
		if mod != nil {
			mod(c)
		}
		return c
	}
	sign := func(method jwt.SigningMethod, k any, kid string, c *Claims) string {
		tok := jwt.NewWithClaims(method, c)
		tok.Header["kid"] = kid
		out, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	other := newKey(t)
	otherKid, _ := KeyID(&other.PublicKey)
	pubDER := elliptic.MarshalCompressed(elliptic.P256(), key.X, key.Y)
	none := sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, s.kid, claims(nil))
	longer := newService(t, key, "berth")
	longer.ttl = 10 * time.Minute
	expired, _, _ := longer.Issue("alice", "acct-1", access, now.Add(-20*time.Minute))
	otherService, _, _ := newService(t, key, "elsewhere").Issue("alice", "acct-1", access, now)
	for name, tok := range map[string]string{
		"forged with another key, our kid":  sign(jwt.SigningMethodES256, other, s.kid, claims(nil)),
		"forged with another key, its kid":  sign(jwt.SigningMethodES256, other, otherKid, claims(nil)),
		"alg none":                          none,
		"alg none with the signature cut":   strings.TrimSuffix(none, "."),
		"HS256 keyed with the public key":   sign(jwt.SigningMethodHS256, pubDER, s.kid, claims(nil)),
		"expired":                           expired,
		"expired within the library leeway": sign(jwt.SigningMethodES256, key, s.kid, claims(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Second)) })),
		"no expiry":                         sign(jwt.SigningMethodES256, key, s.kid, claims(func(c *Claims) { c.ExpiresAt = nil })),
		"not yet valid":                     sign(jwt.SigningMethodES256, key, s.kid, claims(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) })),
		"issued in the future":              sign(jwt.SigningMethodES256, key, s.kid, claims(func(c *Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) })),
		"another service (aud)":             otherService,
		"no audience":                       sign(jwt.SigningMethodES256, key, s.kid, claims(func(c *Claims) { c.Audience = nil })),
		"another issuer":                    sign(jwt.SigningMethodES256, key, s.kid, claims(func(c *Claims) { c.Issuer = "mallory" })),
		"garbage":                           "not.a.token",
		"empty":                             "",
		"huge":                              strings.Repeat("a", maxTokenLength+1),
	} {
		if g, err := s.Verify(tok, now); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Verify = %+v, %v; want ErrInvalid", name, g, err)
		}
	}
}

func TestCacheStaysBounded(t *testing.T) {
	c := newCache(8)
	future := time.Now().Add(time.Hour)
	for i := range 100 {
		c.put(strings.Repeat("x", i), &Grant{Expires: future})
	}
	if n := len(c.entries); n > 8 {
		t.Errorf("cache holds %d entries, bound 8", n)
	}
	c.put("expired", &Grant{Expires: time.Now().Add(-time.Second)})
	if c.get("expired") == nil {
		t.Error("the newest entry was evicted")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth", "signing-key.pem")
	k1, created, err := LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateKey = %v, created %v", err, created)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	k2, created, err := LoadOrCreateKey(path)
	if err != nil || created || !k1.Equal(k2) {
		t.Errorf("second LoadOrCreateKey = created %v, %v, same key %v", created, err, k1.Equal(k2))
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	for name, content := range map[string]string{
		"not PEM":      "hello",
		"RSA block":    "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
		"broken PKCS8": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	} {
		os.WriteFile(bad, []byte(content), 0o600)
		if _, _, err := LoadOrCreateKey(bad); err == nil {
			t.Errorf("%s: a damaged key file was accepted (or replaced)", name)
		}
	}
}

func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{"repository:team-a/app:pull,push", "registry:catalog:*", "repository(plugin):a/b:pull",
		"repository:a/../b:pull", "x:y:z", "::", "repository:a:b:c:pull"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		scopes, err := ParseScopes([]string{s})
		if err != nil {
			return
		}
		for _, sc := range scopes {
			if sc.Type == TypeRepository && !ValidRepository(sc.Name) {
				t.Errorf("accepted repository name %q", sc.Name)
			}
			if strings.Contains(sc.Name, "..") || len(sc.Actions) == 0 {
				t.Errorf("accepted scope %+v", sc)
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	key := newKey(f)
	s := newService(f, key, "berth")
	good, _, _ := s.Issue("alice", "acct-1", []Scope{{TypeRepository, "a", []string{ActionPull}}}, time.Now())
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		g, err := s.Verify(tok, time.Now())
		if err == nil && tok != good {
			// Only a token this key signed verifies; a mutation that
			// still verifies would have to be a signature forgery.
			parts := strings.Split(tok, ".")
			goodParts := strings.Split(good, ".")
			if len(parts) != 3 || parts[0] != goodParts[0] || parts[1] != goodParts[1] {
				t.Errorf("verified a token with other content: %q → %+v", tok, g)
			}
		}
	})
}
