package auth_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/audit/audittest"
	auditsqlite "berth.dev/berth/internal/audit/sqlite"
	. "berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/auth/sqlite"
	"berth.dev/berth/internal/auth/token"
	"berth.dev/berth/internal/blob/filesystem"
	metasqlite "berth.dev/berth/internal/meta/sqlite"
	"berth.dev/berth/internal/registry"
)

// rig is a registry authorized by a Service, with the token endpoint, on a
// loopback server.
type rig struct {
	t     *testing.T
	svc   *Service
	srv   *httptest.Server
	log   *audit.Log
	audit *auditsqlite.Store
	key   *ecdsa.PrivateKey

	mu  sync.Mutex
	now time.Time // the service's clock
}

const adminPassword = "admin-password"

func newRig(t *testing.T, adjust ...func(*Config)) *rig { return buildRig(t, true, adjust...) }

// newUnauditedRig is a rig whose service records no audit entries, for
// floods of a hundred thousand logins whose entries would only cost time.
func newUnauditedRig(t *testing.T, adjust ...func(*Config)) *rig {
	return buildRig(t, false, adjust...)
}

func buildRig(t *testing.T, audited bool, adjust ...func(*Config)) *rig {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "meta.db")
	blobs, err := filesystem.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := metasqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	as, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { as.Close() })
	st, err := auditsqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := audittest.Key(t)
	log, err := audit.Open(ctx, st, key, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	r := &rig{t: t, log: log, audit: st, key: key, now: time.Now()}
	cfg := DefaultConfig()
	cfg.BcryptCost = bcrypt.MinCost
	cfg.Clock = r.clock
	for _, a := range adjust {
		a(&cfg)
	}
	svcLog := log
	if !audited {
		svcLog = nil
	}
	svc, err := New(ctx, as, key, svcLog, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.svc = svc
	if _, _, err := svc.Bootstrap(ctx, adminPassword); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Options{Blobs: blobs, Meta: ms, Authorizer: svc})
	if err != nil {
		t.Fatal(err)
	}
	tokens := svc.TokenHandler()
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == TokenPath {
			tokens.ServeHTTP(w, req)
			return
		}
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *rig) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	r.now = r.now.Add(d)
	r.mu.Unlock()
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (p reply) code() string {
	var b struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	json.Unmarshal([]byte(p.body), &b)
	if len(b.Errors) == 0 {
		return ""
	}
	return b.Errors[0].Code
}

// do sends a request; headers come in name, value pairs.
func (r *rig) do(method, path string, body []byte, headers ...string) reply {
	r.t.Helper()
	req, err := http.NewRequest(method, r.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func (r *rig) expect(p reply, status int, code, what string) reply {
	r.t.Helper()
	if p.status != status || (code != "" && p.code() != code) {
		r.t.Errorf("%s: %d %s %s, want %d %s", what, p.status, p.code(), strings.TrimSpace(p.body), status, code)
	}
	return p
}

func basicHeader(user, pass string) []string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return []string{"Authorization", req.Header.Get("Authorization")}
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// token fetches a token with GET /token; user "" is anonymous.
func (r *rig) token(user, pass string, scopes ...string) (string, []token.Scope) {
	r.t.Helper()
	q := url.Values{"service": {"berth"}, "scope": scopes}
	var h []string
	if user != "" {
		h = basicHeader(user, pass)
	}
	p := r.do("GET", TokenPath+"?"+q.Encode(), nil, h...)
	if p.status != http.StatusOK {
		r.t.Fatalf("token for %s %v: %d %s", user, scopes, p.status, p.body)
	}
	var resp struct {
		Token string `json:"token"`
		Scope string `json:"scope"`
	}
	json.Unmarshal([]byte(p.body), &resp)
	granted, err := token.ParseScopes([]string{resp.Scope})
	if err != nil {
		r.t.Fatal(err)
	}
	return resp.Token, granted
}

func (r *rig) token2(user, pass string, scopes ...string) string {
	tok, _ := r.token(user, pass, scopes...)
	return tok
}

func (r *rig) user(name, project string, role Role) {
	r.t.Helper()
	ctx := context.Background()
	if _, err := r.svc.CreateUser(ctx, name, name+"-password", false, nil); err != nil {
		r.t.Fatal(err)
	}
	if project != "" {
		if _, err := r.svc.PutMember(ctx, project, name, role); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *rig) project(name string, public bool) {
	r.t.Helper()
	if _, err := r.svc.CreateProject(context.Background(), name, public, "admin"); err != nil {
		r.t.Fatal(err)
	}
}

// image is a minimal OCI image.
type image struct{ config, layer, manifest []byte }

func newImage(seed string) image {
	config := []byte(`{"architecture":"amd64","os":"linux","seed":"` + seed + `"}`)
	layer := []byte("layer " + seed)
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		digest.FromBytes(config), len(config), digest.FromBytes(layer), len(layer))
	return image{config, layer, []byte(manifest)}
}

// push uploads img to repo:tag with the given auth headers and returns
// the manifest PUT's reply.
func (r *rig) push(repo, tag string, img image, h ...string) reply {
	r.t.Helper()
	for _, b := range [][]byte{img.config, img.layer} {
		p := r.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), b, h...)
		if p.status != http.StatusCreated {
			return p
		}
	}
	return r.do("PUT", "/v2/"+repo+"/manifests/"+tag, img.manifest, append(h, "Content-Type", "application/vnd.oci.image.manifest.v1+json")...)
}

func TestAnonymousAndPublicProjects(t *testing.T) {
	r := newRig(t)
	admin := basicHeader("admin", adminPassword)
	r.project("team-a", false)
	r.expect(r.push("library/base", "v1", newImage("base"), admin...), 201, "", "admin pushes to library")
	r.expect(r.push("team-a/app", "v1", newImage("app"), admin...), 201, "", "admin pushes to team-a")

	p := r.expect(r.do("GET", "/v2/", nil), 401, "UNAUTHORIZED", "anonymous /v2/")
	wantRealm := `Bearer realm="` + r.srv.URL + `/token",service="berth"`
	if got := p.header.Get("WWW-Authenticate"); got != wantRealm {
		t.Errorf("challenge = %q, want %q", got, wantRealm)
	}
	// Public: pulled without credentials, and with an anonymous token.
	r.expect(r.do("GET", "/v2/library/base/manifests/v1", nil), 200, "", "anonymous pull from a public project")
	r.expect(r.do("GET", "/v2/library/base/tags/list", nil), 200, "", "anonymous tag list of a public project")
	tok, granted := r.token("", "", "repository:library/base:pull,push", "repository:team-a/app:pull")
	if len(granted) != 1 || granted[0].String() != "repository:library/base:pull" {
		t.Errorf("anonymous grant = %v, want only pull on library/base", granted)
	}
	r.expect(r.do("GET", "/v2/", nil, bearer(tok)...), 200, "", "/v2/ with an anonymous token")
	r.expect(r.do("GET", "/v2/library/base/manifests/v1", nil, bearer(tok)...), 200, "", "pull with an anonymous token")
	// Private: a challenge naming the scope, with and without the token.
	for _, h := range [][]string{nil, bearer(tok)} {
		p := r.expect(r.do("GET", "/v2/team-a/app/manifests/v1", nil, h...), 401, "UNAUTHORIZED", "anonymous pull from a private project")
		if got := p.header.Get("WWW-Authenticate"); !strings.Contains(got, `scope="repository:team-a/app:pull"`) {
			t.Errorf("challenge = %q", got)
		}
		r.expect(r.push("library/base", "v2", newImage("x"), h...), 401, "UNAUTHORIZED", "anonymous push to a public project")
	}
	// The catalog: an anonymous caller sees public repositories only.
	anonCatalog, _ := r.token("", "", "registry:catalog:*")
	p = r.expect(r.do("GET", "/v2/_catalog", nil, bearer(anonCatalog)...), 200, "", "anonymous catalog")
	if !strings.Contains(p.body, `"repositories":["library/base"]`) {
		t.Errorf("anonymous catalog = %s", p.body)
	}
	r.expect(r.do("GET", "/v2/_catalog", nil), 401, "UNAUTHORIZED", "catalog without any token")
}

func TestIsolationOfPrivateProjects(t *testing.T) {
	r := newRig(t)
	admin := basicHeader("admin", adminPassword)
	r.project("team-a", false)
	r.project("team-b", false)
	r.user("olga", "team-b", Developer)
	r.expect(r.push("team-a/app", "v1", newImage("app"), admin...), 201, "", "push")
	olga := basicHeader("olga", "olga-password")
	// Exists-but-forbidden and does-not-exist answer alike, byte for byte.
	for _, path := range []string{"/manifests/v1", "/tags/list", "/blobs/" + digest.FromBytes(newImage("app").layer).String()} {
		exists := r.expect(r.do("GET", "/v2/team-a/app"+path, nil, olga...), 403, "DENIED", "non-member reads "+path)
		missingRepo := r.do("GET", "/v2/team-a/nothing"+path, nil, olga...)
		missingProject := r.do("GET", "/v2/team-z/app"+path, nil, olga...)
		if exists.body != missingRepo.body || exists.body != missingProject.body || missingProject.status != 403 {
			t.Errorf("%s: answers differ:\n%d %s\n%d %s\n%d %s", path, exists.status, exists.body,
				missingRepo.status, missingRepo.body, missingProject.status, missingProject.body)
		}
	}
	pushA := r.expect(r.push("team-a/mine", "v1", newImage("o"), olga...), 403, "DENIED", "non-member pushes")
	pushZ := r.expect(r.push("team-z/mine", "v1", newImage("o"), olga...), 403, "DENIED", "push to a missing project")
	if !strings.Contains(pushZ.body, "project team-z") || strings.Replace(pushA.body, "team-a", "team-z", 1) != pushZ.body {
		t.Errorf("push denials must name the project and not tell missing from forbidden:\n%s\n%s", pushA.body, pushZ.body)
	}
	// The catalog hides team-a, whatever the token asked.
	tok, _ := r.token("olga", "olga-password", "registry:catalog:*", "repository:team-a/app:pull")
	p := r.expect(r.do("GET", "/v2/_catalog", nil, bearer(tok)...), 200, "", "olga's catalog")
	if strings.Contains(p.body, "team-a") {
		t.Errorf("catalog leaks a private project: %s", p.body)
	}
}

func TestTokens(t *testing.T) {
	r := newRig(t)
	admin := basicHeader("admin", adminPassword)
	r.project("team-a", false)
	r.project("team-b", false)
	r.user("dev", "team-a", Developer)
	r.user("gus", "team-a", Guest)
	r.expect(r.push("team-a/app", "v1", newImage("app"), admin...), 201, "", "push")
	r.expect(r.push("team-b/lib", "v1", newImage("lib"), admin...), 201, "", "push")

	// Asking too much is trimmed, never an error.
	_, granted := r.token("gus", "gus-password", "repository:team-a/app:pull,push,delete", "repository:team-b/lib:*", "repository(plugin):x/y:pull")
	if len(granted) != 1 || granted[0].String() != "repository:team-a/app:pull" {
		t.Errorf("guest grant = %v", granted)
	}
	_, granted = r.token("admin", adminPassword, "repository:team-b/lib:*")
	if len(granted) != 1 || granted[0].String() != "repository:team-b/lib:pull,push,delete" {
		t.Errorf("admin grant for * = %v", granted)
	}
	tok, _ := r.token("dev", "dev-password", "repository:team-a/app:pull,push")
	r.expect(r.do("GET", "/v2/team-a/app/manifests/v1", nil, bearer(tok)...), 200, "", "pull within scope")
	r.expect(r.push("team-a/app", "v2", newImage("v2"), bearer(tok)...), 201, "", "push within scope")
	// A token for one repository does not open another, even one the
	// account may read: a new token is needed (401, insufficient scope).
	p := r.expect(r.do("GET", "/v2/team-a/other/tags/list", nil, bearer(tok)...), 401, "UNAUTHORIZED", "scope naming another repository")
	if got := p.header.Get("WWW-Authenticate"); !strings.Contains(got, `scope="repository:team-a/other:pull"`) || !strings.Contains(got, `error="insufficient_scope"`) {
		t.Errorf("challenge = %q", got)
	}
	// A token never widens the account: delete was not granted.
	r.expect(r.do("DELETE", "/v2/team-a/app/manifests/v2", nil, bearer(tok)...), 403, "DENIED", "developer deletes with a token")
	// Tokens end with the account.
	if _, err := r.svc.UpdateUser(context.Background(), "dev", UserChange{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	r.expect(r.do("GET", "/v2/team-a/app/manifests/v1", nil, bearer(tok)...), 401, "UNAUTHORIZED", "token of a disabled user")
	// Expiry.
	tok, _ = r.token("gus", "gus-password", "repository:team-a/app:pull")
	r.advance(DefaultConfig().TokenTTL + time.Second)
	r.expect(r.do("GET", "/v2/team-a/app/manifests/v1", nil, bearer(tok)...), 401, "UNAUTHORIZED", "expired token")
	// Another service's token, a forged one, and alg none.
	other, err := token.New(r.key, "berth", "elsewhere", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, _, _ := other.Issue("admin", "", []token.Scope{{Type: "repository", Name: "team-a/app", Actions: []string{"pull"}}}, r.clock())
	forgedKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forger, _ := token.New(forgedKey, "berth", "berth", time.Minute)
	forged, _, _ := forger.Issue("admin", "", []token.Scope{{Type: "repository", Name: "team-a/app", Actions: []string{"pull"}}}, r.clock())
	for name, tok := range map[string]string{"another service": elsewhere, "forged": forged,
		"alg none": "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhZG1pbiIsImF1ZCI6ImJlcnRoIiwiYWNjZXNzIjpbXX0."} {
		p := r.expect(r.do("GET", "/v2/team-a/app/manifests/v1", nil, bearer(tok)...), 401, "UNAUTHORIZED", name)
		if !strings.Contains(p.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: challenge = %q", name, p.header.Get("WWW-Authenticate"))
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestTokenEndpoint(t *testing.T) {
	r := newRig(t)
	r.project("team-a", false)
	r.user("dev", "team-a", Developer)
	form := func(v url.Values) reply {
		return r.do("POST", TokenPath, []byte(v.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	}
	var got struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int    `json:"expires_in"`
		Scope        string `json:"scope"`
	}
	p := r.expect(form(url.Values{"grant_type": {"password"}, "username": {"dev"}, "password": {"dev-password"}, "client_id": {"oras"},
		"service": {"berth"}, "scope": {"repository:team-a/app:pull,push repository:team-b/x:pull"}, "access_type": {"offline"}}), 200, "", "password grant")
	json.Unmarshal([]byte(p.body), &got)
	if got.AccessToken == "" || !strings.HasPrefix(got.RefreshToken, "brt_") || got.ExpiresIn != 300 || got.Scope != "repository:team-a/app:pull,push" {
		t.Errorf("password grant = %s", p.body)
	}
	if p.header.Get("Cache-Control") != "no-store" {
		t.Error("token response may be cached")
	}
	refresh := got.RefreshToken
	p = r.expect(form(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "service": {"berth"},
		"scope": {"repository:team-a/app:pull"}}), 200, "", "refresh grant")
	json.Unmarshal([]byte(p.body), &got)
	r.expect(r.do("GET", "/v2/team-a/app/tags/list", nil, bearer(got.AccessToken)...), 404, "NAME_UNKNOWN", "refreshed token works")
	p = r.expect(r.do("GET", TokenPath+"?offline_token=true&service=berth", nil, basicHeader("dev", "dev-password")...), 200, "", "GET offline token")
	if !strings.Contains(p.body, `"refresh_token":"brt_`) {
		t.Errorf("GET with offline_token = %s", p.body)
	}
	// A new password ends refresh tokens.
	if _, err := r.svc.UpdateUser(context.Background(), "dev", UserChange{Password: ptr("another-password")}); err != nil {
		t.Fatal(err)
	}
	r.expect(form(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}), 401, "UNAUTHORIZED", "refresh token after a password change")
	for name, v := range map[string]url.Values{
		"bad password":      {"grant_type": {"password"}, "username": {"dev"}, "password": {"dev-password"}},
		"unknown user":      {"grant_type": {"password"}, "username": {"nobody"}, "password": {"x"}},
		"unknown refresh":   {"grant_type": {"refresh_token"}, "refresh_token": {"brt_nothing"}},
		"robot as password": {"grant_type": {"password"}, "username": {"robot$none"}, "password": {"bsr_x"}},
	} {
		r.expect(form(v), 401, "UNAUTHORIZED", name)
	}
	for name, v := range map[string]url.Values{
		"grant type":    {"grant_type": {"client_credentials"}},
		"other service": {"grant_type": {"password"}, "username": {"dev"}, "password": {"another-password"}, "service": {"elsewhere"}},
		"dotted scope":  {"grant_type": {"password"}, "username": {"dev"}, "password": {"another-password"}, "scope": {"repository:team-a/../team-b/x:pull"}},
		"encoded scope": {"grant_type": {"password"}, "username": {"dev"}, "password": {"another-password"}, "scope": {"repository:team-a%2f..%2fteam-b:pull"}},
	} {
		r.expect(form(v), 400, "", name)
	}
	r.expect(r.do("GET", TokenPath+"?scope=repository:team-a/..:pull", nil), 400, "DENIED", "GET with a dotted scope")
	r.expect(r.do("GET", TokenPath, nil, "Authorization", "Bearer abc"), 401, "UNAUTHORIZED", "GET with a bearer token")
	r.expect(r.do("DELETE", TokenPath, nil), 405, "UNSUPPORTED", "DELETE /token")
	r.expect(r.do("POST", TokenPath, bytes.Repeat([]byte("a=b&"), 64<<10), "Content-Type", "application/x-www-form-urlencoded"), 400, "", "huge form")
}

func TestRobots(t *testing.T) {
	r := newRig(t)
	admin := basicHeader("admin", adminPassword)
	r.project("team-a", false)
	r.project("team-b", false)
	r.expect(r.push("team-a/app", "v1", newImage("a"), admin...), 201, "", "push")
	r.expect(r.push("team-b/app", "v1", newImage("b"), admin...), 201, "", "push")
	ctx := context.Background()
	robot, secret, err := r.svc.CreateRobot(ctx, RobotSpec{Name: "ci", ExpiresAt: r.clock().Add(time.Hour),
		Permissions: []RobotPermission{{Project: "team-a", Actions: []Action{Pull, Push}}}}, "admin")
	if err != nil {
		t.Fatal(err)
	}
	creds := basicHeader(robot.Name, secret)
	r.expect(r.do("GET", "/v2/team-a/app/manifests/v1", nil, creds...), 200, "", "robot pulls in scope")
	r.expect(r.push("team-a/app", "v2", newImage("ci"), creds...), 201, "", "robot pushes in scope")
	r.expect(r.do("DELETE", "/v2/team-a/app/manifests/v2", nil, creds...), 403, "DENIED", "robot deletes beyond its actions")
	r.expect(r.do("GET", "/v2/team-b/app/manifests/v1", nil, creds...), 403, "DENIED", "robot pulls beyond its projects")
	r.expect(r.do("GET", "/v2/team-a/app/tags/list", nil, creds...), 403, "DENIED", "robot lists without the list action")
	r.expect(r.push("team-new/app", "v1", newImage("n"), creds...), 403, "DENIED", "robot creates a project")
	r.expect(r.do("GET", "/v2/team-a/app/manifests/v1", nil, basicHeader(robot.Name, secret+"x")...), 401, "UNAUTHORIZED", "wrong secret")
	_, granted := r.token(robot.Name, secret, "repository:team-a/app:*", "repository:team-b/app:pull")
	if len(granted) != 1 || granted[0].String() != "repository:team-a/app:pull,push" {
		t.Errorf("robot grant = %v", granted)
	}
	tok, _ := r.token(robot.Name, secret, "repository:team-a/app:pull")
	// Expiry ends it, secret and tokens alike.
	r.advance(2 * time.Hour)
	r.expect(r.do("GET", "/v2/team-a/app/manifests/v1", nil, creds...), 401, "UNAUTHORIZED", "expired robot")
	r.expect(r.do("GET", "/v2/team-a/app/manifests/v1", nil, bearer(tok)...), 401, "UNAUTHORIZED", "expired robot's token")
	// Revocation ends a live one at once.
	live, secret2, err := r.svc.CreateRobot(ctx, RobotSpec{Name: "live",
		Permissions: []RobotPermission{{Project: "team-a", Actions: []Action{Pull}}}}, "admin")
	if err != nil {
		t.Fatal(err)
	}
	tok, _ = r.token(live.Name, secret2, "repository:team-a/app:pull")
	r.expect(r.do("GET", "/v2/team-a/app/manifests/v1", nil, bearer(tok)...), 200, "", "live robot's token")
	if _, err := r.svc.RevokeRobot(ctx, live.Name); err != nil {
		t.Fatal(err)
	}
	r.expect(r.do("GET", "/v2/team-a/app/manifests/v1", nil, bearer(tok)...), 401, "UNAUTHORIZED", "revoked robot's token")
	r.expect(r.do("GET", "/v2/team-a/app/manifests/v1", nil, basicHeader(live.Name, secret2)...), 401, "UNAUTHORIZED", "revoked robot's secret")
}

func TestSourceAddresses(t *testing.T) {
	r := newRig(t, func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	ctx := context.Background()
	r.project("team-a", false)
	if _, err := r.svc.CreateUser(ctx, "ci", "ci-password", false, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.PutMember(ctx, "team-a", "ci", Developer); err != nil {
		t.Fatal(err)
	}
	ci := basicHeader("ci", "ci-password")
	// The test client is on loopback, which is trusted as a proxy here.
	r.expect(r.do("GET", "/v2/team-a/app/tags/list", nil, append(ci, "X-Forwarded-For", "10.1.2.3")...), 404, "NAME_UNKNOWN", "allowed address")
	p := r.expect(r.do("GET", "/v2/team-a/app/tags/list", nil, append(ci, "X-Forwarded-For", "192.0.2.1")...), 403, "DENIED", "address outside the CIDR")
	if !strings.Contains(p.body, "not allowed") {
		t.Errorf("denial = %s", p.body)
	}
	r.expect(r.do("GET", "/v2/team-a/app/tags/list", nil, ci...), 403, "DENIED", "loopback itself, outside the CIDR")
	q := url.Values{"scope": {"repository:team-a/app:pull"}}
	r.expect(r.do("GET", TokenPath+"?"+q.Encode(), nil, append(ci, "X-Forwarded-For", "192.0.2.1")...), 403, "DENIED", "token from outside the CIDR")
	p = r.expect(r.do("GET", TokenPath+"?"+q.Encode(), nil, append(ci, "X-Forwarded-For", "10.1.9.9")...), 200, "", "token from inside")
	var resp struct{ Token string }
	json.Unmarshal([]byte(p.body), &resp)
	r.expect(r.do("GET", "/v2/team-a/app/tags/list", nil, append(bearer(resp.Token), "X-Forwarded-For", "192.0.2.1")...), 403, "DENIED", "token used from outside")

	// Without trusted proxies the header is the client's to forge, so it
	// is ignored.
	plain := newRig(t)
	if _, err := plain.svc.CreateUser(ctx, "ci", "ci-password", false, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}); err != nil {
		t.Fatal(err)
	}
	plain.expect(plain.do("GET", "/v2/", nil, append(ci, "X-Forwarded-For", "10.1.2.3")...), 403, "DENIED", "forged X-Forwarded-For")
}

func TestLoginFlood(t *testing.T) {
	r := newRig(t, func(c *Config) { c.MaxFailuresPerAccount = 5 })
	for range 5 {
		r.expect(r.do("GET", "/v2/", nil, basicHeader("admin", "guess")...), 401, "UNAUTHORIZED", "wrong password")
	}
	p := r.expect(r.do("GET", "/v2/", nil, basicHeader("admin", adminPassword)...), 429, "TOOMANYREQUESTS", "right password during a flood")
	if p.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	p = r.expect(r.do("GET", TokenPath, nil, basicHeader("admin", adminPassword)...), 429, "TOOMANYREQUESTS", "token endpoint during a flood")
	if p.header.Get("Retry-After") != "60" {
		t.Errorf("Retry-After = %q, want 60 (the first lockout)", p.header.Get("Retry-After"))
	}
	r.advance(time.Minute + time.Second)
	r.expect(r.do("GET", "/v2/", nil, basicHeader("admin", adminPassword)...), 200, "", "after the window")
	// Every failure is in the audit log.
	r.log.Flush(context.Background())
	failed, _ := r.audit.Query(context.Background(), audit.Filter{Action: audit.ActionLogin, Result: audit.Failure})
	throttled, _ := r.audit.Query(context.Background(), audit.Filter{Action: audit.ActionLogin, Result: audit.Denied})
	if len(failed) != 5 || len(throttled) != 2 {
		t.Errorf("audit: %d failed and %d throttled logins, want 5 and 2", len(failed), len(throttled))
	}
}

func TestProjectCreationOnPush(t *testing.T) {
	r := newRig(t)
	r.user("dev", "", "")
	r.expect(r.push("fresh/app", "v1", newImage("f"), basicHeader("dev", "dev-password")...), 403, "DENIED", "user pushes to a missing project")
	tok, granted := r.token("admin", adminPassword, "repository:fresh/app:pull,push")
	if len(granted) != 1 || granted[0].String() != "repository:fresh/app:pull,push" {
		t.Errorf("admin's grant on a missing project = %v", granted)
	}
	r.expect(r.push("fresh/app", "v1", newImage("f"), bearer(tok)...), 201, "", "admin pushes to a missing project")
	p, err := r.svc.Project("fresh")
	if err != nil || p.Public || p.CreatedBy != "admin" {
		t.Errorf("created project = %+v, %v; want private, by admin", p, err)
	}
	if m := r.svc.Members("fresh"); len(m) != 1 || m[0].User != "admin" || m[0].Role != ProjectAdmin {
		t.Errorf("members = %+v", m)
	}
	open := newRig(t, func(c *Config) { c.AutoCreateProjects = true })
	open.user("dev", "", "")
	open.expect(open.push("devs/app", "v1", newImage("d"), basicHeader("dev", "dev-password")...), 201, "", "auto-creation open to users")
	if m := open.svc.Members("devs"); len(m) != 1 || m[0].User != "dev" || m[0].Role != ProjectAdmin {
		t.Errorf("members = %+v", m)
	}
}

func TestMountNeedsPullOnTheSource(t *testing.T) {
	r := newRig(t)
	admin := basicHeader("admin", adminPassword)
	r.project("team-a", false)
	r.project("team-b", false)
	r.user("bob", "team-b", Developer)
	img := newImage("secret")
	r.expect(r.push("team-a/app", "v1", img, admin...), 201, "", "push")
	layer := digest.FromBytes(img.layer).String()
	bob := basicHeader("bob", "bob-password")
	for _, q := range []string{"?mount=" + layer + "&from=team-a/app", "?mount=" + layer} {
		r.expect(r.do("POST", "/v2/team-b/app/blobs/uploads/"+q, nil, bob...), 202, "", "mount from an unreadable repository "+q)
	}
	// The source is checked against the account, not the token's scope:
	// Bob's token for team-b cannot mount from team-a, the admin's can.
	tok, _ := r.token("bob", "bob-password", "repository:team-b/app:push", "repository:team-a/app:pull")
	r.expect(r.do("POST", "/v2/team-b/app/blobs/uploads/?mount="+layer+"&from=team-a/app", nil, bearer(tok)...), 202, "", "bob's token naming the source")
	r.expect(r.do("POST", "/v2/team-b/app/blobs/uploads/?mount="+layer, nil, bearer(tok)...), 202, "", "bob's anonymous mount")
	tok, _ = r.token("admin", adminPassword, "repository:team-b/app:push")
	r.expect(r.do("POST", "/v2/team-b/app/blobs/uploads/?mount="+layer+"&from=team-a/app", nil, bearer(tok)...), 201, "", "admin's token without the source scope")
	r.expect(r.do("POST", "/v2/team-b/other/blobs/uploads/?mount="+layer, nil, bearer(r.token2("admin", adminPassword, "repository:team-b/other:push"))...), 201, "", "admin's anonymous mount")
}

func TestBadCredentialsInput(t *testing.T) {
	r := newRig(t)
	for name, h := range map[string][]string{
		"unknown scheme":   {"Authorization", "Digest abc"},
		"broken basic":     {"Authorization", "Basic !!!"},
		"basic no colon":   {"Authorization", "Basic YWRtaW4="},
		"empty bearer":     {"Authorization", "Bearer "},
		"huge header":      {"Authorization", "Bearer " + strings.Repeat("a", MaxAuthorizationHeader)},
		"robot no secret":  basicHeader("robot$x", ""),
		"user no password": basicHeader("admin", ""),
	} {
		r.expect(r.do("GET", "/v2/", nil, h...), 401, "UNAUTHORIZED", name)
	}
	for _, path := range []string{"/v2/team-a/../library/x/manifests/v1", "/v2/team-a%2f..%2flibrary/x/manifests/v1", "/v2/%2e%2e/x/tags/list"} {
		p := r.do("GET", path, nil, basicHeader("admin", adminPassword)...)
		if p.status != 400 && p.status != 404 {
			t.Errorf("%s = %d %s", path, p.status, p.body)
		}
	}
}

func TestBootstrap(t *testing.T) {
	r := newRig(t)
	if got, created, err := r.svc.Bootstrap(context.Background(), ""); err != nil || got != "" || created {
		t.Errorf("second bootstrap = %q, %v, %v; want nothing", got, created, err)
	}
	lib, err := r.svc.Project(DefaultProject)
	if err != nil || !lib.Public {
		t.Errorf("library = %+v, %v", lib, err)
	}
	if u, _ := r.svc.User("admin"); !u.Admin {
		t.Error("admin is not an administrator")
	}
	fresh := newRig(t)
	fresh.svc.DeleteUser(context.Background(), "admin") // refused: the last admin
	if _, err := fresh.svc.User("admin"); err != nil {
		t.Error("the last administrator was deleted")
	}
}

func TestGeneratedAdminPassword(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg := DefaultConfig()
	cfg.BcryptCost = bcrypt.MinCost
	svc, err := New(ctx, s, key, nil, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	pw, created, err := svc.Bootstrap(ctx, "")
	if err != nil || len(pw) < 20 || !created {
		t.Fatalf("generated password %q, %v", pw, err)
	}
	req := httptest.NewRequest("GET", "/v2/", nil)
	req.SetBasicAuth("admin", pw)
	if sub, err := svc.Authenticate(req); err != nil || sub.Name != "admin" {
		t.Errorf("generated password does not log in: %v", err)
	}
}

// TestKeptInitialPassword: a generated first password is kept in a file
// (0600) until the administrator's password changes; a file that cannot be
// written fails the bootstrap before any account exists.
func TestKeptInitialPassword(t *testing.T) {
	ctx := context.Background()
	start := func(file string) (*Service, string, error) {
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		cfg := DefaultConfig()
		cfg.BcryptCost = bcrypt.MinCost
		cfg.InitialPasswordFile = file
		svc, err := New(ctx, st, audittest.Key(t), nil, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		pw, _, err := svc.Bootstrap(ctx, "")
		return svc, pw, err
	}
	file := filepath.Join(t.TempDir(), "initial-admin-password")
	svc, pw, err := start(file)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(file)
	fi, _ := os.Stat(file)
	if err != nil || string(raw) != pw+"\n" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kept %q (%v, mode %v), want the generated password, 0600", raw, err, fi.Mode().Perm())
	}
	if _, err := svc.UpdateUser(ctx, "admin", UserChange{Disabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("a change other than the password removed the kept password: %v", err)
	}
	if _, err := svc.UpdateUser(ctx, "admin", UserChange{Password: ptr("a-new-password")}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("the kept password outlived its change: %v", err)
	}
	svc, _, err = start(filepath.Join(t.TempDir(), "missing-dir", "initial-admin-password"))
	if err == nil || len(svc.Users()) != 0 {
		t.Errorf("bootstrap with an unwritable file = %v, users %+v; want an error and no account", err, svc.Users())
	}
}

// TestConcurrentProjectCreation has two users race to create one project
// by pushing: one wins and owns it, the other is refused, never let into
// the winner's project.
func TestConcurrentProjectCreation(t *testing.T) {
	r := newRig(t, func(c *Config) { c.AutoCreateProjects = true })
	r.user("ann", "", "")
	r.user("ben", "", "")
	var wg sync.WaitGroup
	status := map[string]int{}
	var mu sync.Mutex
	for _, who := range []string{"ann", "ben"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", r.srv.URL+"/v2/race/app/blobs/uploads/", nil)
			req.SetBasicAuth(who, who+"-password")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			status[who] = resp.StatusCode
			mu.Unlock()
		}()
	}
	wg.Wait()
	members := r.svc.Members("race")
	if len(members) != 1 {
		t.Fatalf("members = %+v", members)
	}
	owner := members[0].User
	for who, st := range status {
		if want := map[bool]int{true: 202, false: 403}[who == owner]; st != want {
			t.Errorf("%s (owner %s) got %d, want %d", who, owner, st, want)
		}
	}
}
