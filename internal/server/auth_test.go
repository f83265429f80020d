package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/audit"
	auditsqlite "berth.dev/berth/internal/audit/sqlite"
	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/auth/token"
)

const testAdminPassword = "test-admin-password"

// syncBuffer is a log sink shared by the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// authServer is a server with auth on, behind httptest.
type authServer struct {
	t    *testing.T
	s    *Server
	url  string
	logs *syncBuffer
}

func startAuthServer(t *testing.T, adjust ...func(*Config)) *authServer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Data = t.TempDir()
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.Auth.AdminPassword = testAdminPassword
	for _, a := range adjust {
		a(&cfg)
	}
	logs := &syncBuffer{}
	s, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(func() { srv.Close(); s.Close() })
	return &authServer{t: t, s: s, url: srv.URL, logs: logs}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (a *authServer) do(method, path string, body []byte, headers ...string) answer {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+path, bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func basicAuth(user, pass string) []string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return []string{"Authorization", req.Header.Get("Authorization")}
}

var adminCreds = basicAuth("admin", testAdminPassword)

// token gets a registry token as user for scopes, as docker would.
func (a *authServer) token(creds []string, scopes ...string) []string {
	a.t.Helper()
	q := url.Values{"service": {"berth"}, "scope": scopes}
	r := a.do("GET", "/token?"+q.Encode(), nil, creds...)
	if r.status != http.StatusOK {
		a.t.Fatalf("token %v: %d %s", scopes, r.status, r.body)
	}
	var resp struct{ Token string }
	json.Unmarshal([]byte(r.body), &resp)
	return []string{"Authorization", "Bearer " + resp.Token}
}

func (a *authServer) api(creds []string, method, path string, body any) answer {
	a.t.Helper()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	return a.do(method, "/api/v1"+path, raw, append(creds, "Content-Type", "application/json")...)
}

// testImage is a minimal OCI image.
type testImage struct{ config, layer, manifest []byte }

func makeImage(seed string) testImage {
	config := []byte(`{"architecture":"amd64","os":"linux","seed":"` + seed + `"}`)
	layer := []byte("layer " + seed)
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		digest.FromBytes(config), len(config), digest.FromBytes(layer), len(layer))
	return testImage{config, layer, []byte(manifest)}
}

func (img testImage) digest() string { return digest.FromBytes(img.manifest).String() }

// push uploads img and answers with the manifest PUT's (or the first
// failing blob's) answer.
func (a *authServer) push(repo, tag string, img testImage, creds []string) answer {
	a.t.Helper()
	for _, b := range [][]byte{img.config, img.layer} {
		r := a.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), b, creds...)
		if r.status != http.StatusCreated {
			return r
		}
	}
	return a.do("PUT", "/v2/"+repo+"/manifests/"+tag, img.manifest, append(creds, "Content-Type", "application/vnd.oci.image.manifest.v1+json")...)
}

// TestFirstStartPrintsTheAdminPasswordOnce starts a fresh data directory
// the way a failed start does (the server never serves: its port is
// taken): the generated password is not printed but kept, 0600, in
// <data>/initial-admin-password, and the next start, which serves, says
// where it is. A start that serves prints it once, after it serves; the
// file goes when the password is changed.
func TestFirstStartPrintsTheAdminPasswordOnce(t *testing.T) {
	type record struct{ Level, Msg, User, Password string }
	start := func(data string) (*Server, *syncBuffer) {
		cfg := DefaultConfig()
		cfg.Data = data
		logs := &syncBuffer{}
		s, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return s, logs
	}
	// serve runs s on a loopback port until stop, which waits for Serve
	// to return (and so for everything it logs).
	serve := func(s *Server) (*authServer, func()) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx, ln) }()
		return &authServer{t: t, s: s, url: "http://" + ln.Addr().String()}, func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	records := func(logs *syncBuffer) (passwords []record, all string) {
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec record
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Password != "" {
				passwords = append(passwords, rec)
			}
		}
		return passwords, logs.String()
	}
	kept := func(data string) string {
		t.Helper()
		fi, err := os.Stat(InitialPasswordPath(data))
		if err != nil {
			t.Fatalf("the generated password is not kept: %v", err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", fi.Name(), fi.Mode().Perm())
		}
		raw, _ := os.ReadFile(InitialPasswordPath(data))
		return strings.TrimSpace(string(raw))
	}

	t.Run("a start that never serves", func(t *testing.T) {
		data := t.TempDir()
		s, logs := start(data)
		s.Close()
		if pw, all := records(logs); len(pw) != 0 || !strings.Contains(all, InitialPasswordPath(data)) {
			t.Errorf("a start that did not serve printed %v, or did not say where the password is:\n%s", pw, all)
		}
		password := kept(data)
		s, logs = start(data)
		a, stop := serve(s)
		a.expect(a.do("GET", "/v2/", nil, basicAuth("admin", password)...), 200, "the kept password")
		stop()
		if pw, all := records(logs); len(pw) != 0 || !strings.Contains(all, "still has its generated password, kept in "+InitialPasswordPath(data)) {
			t.Errorf("the next start printed %v, or did not say where the password is:\n%s", pw, all)
		}
	})

	t.Run("a start that serves", func(t *testing.T) {
		data := t.TempDir()
		s, logs := start(data)
		a, stop := serve(s)
		password := kept(data)
		a.expect(a.do("GET", "/v2/", nil), 401, "anonymous /v2/")
		a.expect(a.do("GET", "/v2/", nil, basicAuth("admin", password)...), 200, "the printed password")
		stop()
		pw, all := records(logs)
		if len(pw) != 1 || pw[0].Password != password || pw[0].Level != "WARN" || pw[0].User != "admin" || !strings.Contains(pw[0].Msg, "only this once") {
			t.Fatalf("password records %+v, want one WARN with the kept password", pw)
		}
		if strings.Index(all, pw[0].Msg) < strings.Index(all, "berth serving") {
			t.Error("the password was printed before the server was serving")
		}
		s, logs = start(data)
		a, stop = serve(s)
		r := a.api(basicAuth("admin", password), "PATCH", "/users/admin", map[string]any{"password": "a-new-admin-password"})
		a.expect(r, 200, "change the password")
		stop()
		if strings.Contains(logs.String(), password) {
			t.Errorf("the password was printed again:\n%s", logs)
		}
		if _, err := os.Stat(InitialPasswordPath(data)); !os.IsNotExist(err) {
			t.Errorf("the kept password outlived its change: %v", err)
		}
		s, logs = start(data)
		_, stop = serve(s)
		stop()
		if strings.Contains(logs.String(), "generated password") {
			t.Errorf("a start after the change still speaks of a generated password:\n%s", logs)
		}
	})
}

func (a *authServer) expect(r answer, status int, what string) answer {
	a.t.Helper()
	if r.status != status {
		a.t.Errorf("%s: %d %s, want %d", what, r.status, strings.TrimSpace(r.body), status)
	}
	return r
}

func TestAdminPasswordFromTheEnvironment(t *testing.T) {
	a := startAuthServer(t)
	if strings.Contains(a.logs.String(), testAdminPassword) {
		t.Error("a chosen password was logged")
	}
	if !strings.Contains(a.logs.String(), "from "+AdminPasswordEnv) {
		t.Errorf("logs do not say where the password came from:\n%s", a.logs)
	}
	if _, err := os.Stat(InitialPasswordPath(a.s.cfg.Data)); !os.IsNotExist(err) {
		t.Errorf("a chosen password was written to a file: %v", err)
	}
	a.expect(a.do("GET", "/v2/", nil, adminCreds...), 200, "the chosen password")
	p := a.expect(a.do("GET", "/v2/", nil), 401, "anonymous")
	if got, want := p.header.Get("WWW-Authenticate"), `Bearer realm="`+a.url+`/token",service="berth"`; got != want {
		t.Errorf("challenge = %q, want %q", got, want)
	}
	a.expect(a.api(adminCreds, "GET", "/me", nil), 200, "admin API")
	a.expect(a.do("GET", "/api/v1/openapi.json", nil), 200, "OpenAPI document")
}

func TestNoAuthSaysSoLoudly(t *testing.T) {
	a := startAuthServer(t, func(c *Config) { c.Auth.Disabled = true })
	if !strings.Contains(a.logs.String(), "level=WARN msg=\"AUTHENTICATION IS DISABLED") {
		t.Errorf("no loud warning:\n%s", a.logs)
	}
	a.expect(a.push("team-a/app", "v1", makeImage("open"), nil), 201, "anonymous push with auth off")
	a.expect(a.do("GET", "/token", nil), 404, "no token endpoint")
	a.expect(a.do("GET", "/api/v1/users", nil), 404, "no admin API")
}

func TestOversizedAuthorization(t *testing.T) {
	a := startAuthServer(t)
	huge := "Bearer " + strings.Repeat("a", auth.MaxAuthorizationHeader)
	for _, path := range []string{"/v2/", "/token", "/api/v1/me"} {
		r := a.expect(a.do("GET", path, nil, "Authorization", huge), 431, "oversized Authorization on "+path)
		if !strings.Contains(r.body, "Authorization header longer than") {
			t.Errorf("431 body = %s", r.body)
		}
	}
	// Past the server's header bound, Go answers 431 itself.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.s.Serve(ctx, ln)
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/v2/", nil)
	req.Header.Set("X-Filler", strings.Repeat("b", 2*maxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("huge headers = %d, want 431", resp.StatusCode)
	}
}

func TestAuditOfRegistryRequests(t *testing.T) {
	a := startAuthServer(t)
	img := makeImage("audited")
	a.expect(a.push("team-a/app", "v1", img, adminCreds), 201, "admin push")
	a.expect(a.api(adminCreds, "POST", "/users", map[string]any{"name": "olga", "password": "olga-password"}), 201, "create olga")
	olga := basicAuth("olga", "olga-password")
	tok := a.token(adminCreds, "repository:team-a/app:pull,delete")
	a.expect(a.do("HEAD", "/v2/team-a/app/manifests/v1", nil, tok...), 200, "head")
	a.expect(a.do("GET", "/v2/team-a/app/manifests/v1", nil, tok...), 200, "pull by tag")
	a.expect(a.do("GET", "/v2/team-a/app/blobs/"+digest.FromBytes(img.layer).String(), nil, tok...), 200, "blob pull")
	a.expect(a.do("GET", "/v2/team-a/app/manifests/v1", nil, olga...), 403, "olga pulls")
	a.expect(a.do("GET", "/v2/team-a/app/tags/list", nil, olga...), 403, "olga lists tags")
	a.expect(a.do("DELETE", "/v2/team-a/app/manifests/"+img.digest(), nil, tok...), 202, "delete")

	var page struct{ Entries []audit.Entry }
	r := a.expect(a.api(adminCreds, "GET", "/audit?project=team-a", nil), 200, "query")
	json.Unmarshal([]byte(r.body), &page)
	var got []string
	for i := len(page.Entries) - 1; i >= 0; i-- {
		e := page.Entries[i]
		got = append(got, strings.TrimSpace(fmt.Sprintf("%s %s %s %s %s %s", e.Actor, e.Action, e.Result, e.Repository, e.Digest, e.Detail)))
		if e.SourceIP != "127.0.0.1" {
			t.Errorf("entry %d from %q", e.Seq, e.SourceIP)
		}
	}
	d := img.digest()
	want := []string{
		"admin project.create success   created by the first push",
		"admin push success team-a/app " + d + " tag v1",
		"admin pull success team-a/app " + d + " tag v1",
		"olga pull denied team-a/app  GET manifest tag v1",
		"olga list denied team-a/app  GET tags",
		"admin delete success team-a/app " + d,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit entries:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var rep struct {
		OK      bool
		Entries int
	}
	json.Unmarshal([]byte(a.expect(a.api(adminCreds, "GET", "/audit/verify", nil), 200, "verify").body), &rep)
	if !rep.OK || rep.Entries < len(want) {
		t.Errorf("verify = %+v", rep)
	}
}

// TestAuditSurvivesShutdown stops the server right after a burst of pulls
// and finds every one of them stored.
func TestAuditSurvivesShutdown(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Data = t.TempDir()
	cfg.Auth.AdminPassword = testAdminPassword
	s, err := New(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	a := &authServer{t: t, s: s, url: srv.URL}
	a.expect(a.push("library/base", "v1", makeImage("base"), adminCreds), 201, "push")
	const pulls = 300
	for range pulls {
		a.expect(a.do("GET", "/v2/library/base/manifests/v1", nil), 200, "anonymous pull")
	}
	srv.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := auditsqlite.Open(context.Background(), filepath.Join(cfg.Data, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.Query(context.Background(), audit.Filter{Action: audit.ActionPull, Limit: audit.MaxLimit})
	stored := int64(0)
	for _, e := range got {
		stored += max(e.Count, 1) // identical pulls arriving together are counted in one entry
	}
	if err != nil || stored != pulls {
		t.Errorf("stored %d pulls, made %d (%v)", stored, pulls, err)
	}
	key, err := token.LoadKey(SigningKeyPath(cfg.Data))
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := audit.Verify(context.Background(), st, &key.PublicKey); err != nil || !rep.OK() {
		t.Errorf("verify after shutdown: %+v, %v", rep, err)
	}
}

func TestSelfSignedTLS(t *testing.T) {
	data := t.TempDir()
	serve := func() (string, *x509.Certificate, func()) {
		cfg := DefaultConfig()
		cfg.Data = data
		cfg.Addr = "127.0.0.1:0"
		cfg.TLS.SelfSigned = true
		cfg.Auth.AdminPassword = testAdminPassword
		s, err := New(context.Background(), cfg, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx, ln) }()
		cert, err := readCert(SelfSignedCertPath(data))
		if err != nil {
			t.Fatal(err)
		}
		return "https://" + ln.Addr().String(), cert, func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	base, cert, stop := serve()
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, err := client.Get(base + "/v2/")
	if err != nil {
		t.Fatalf("a client trusting the written certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `realm="https://`) {
		t.Errorf("GET /v2/ over TLS = %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
	if resp, err := http.Get(strings.Replace(base, "https", "http", 1) + "/v2/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP on the TLS port = %d, want Go's 400", resp.StatusCode)
		}
	}
	stop()
	_, again, stop := serve()
	stop()
	if again.SerialNumber.Cmp(cert.SerialNumber) != 0 {
		t.Error("the certificate was regenerated on restart")
	}
	fi, err := os.Stat(filepath.Join(data, "tls", "key.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v", fi, err)
	}
}

func TestSelfSignedNames(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	now := time.Now()
	if made, err := ensureSelfSigned(cert, key, "registry.example:5000", now); err != nil || !made {
		t.Fatalf("first = %v, %v", made, err)
	}
	c, _ := readCert(cert)
	if !strings.Contains(strings.Join(c.DNSNames, ","), "registry.example") || len(c.IPAddresses) < 2 {
		t.Errorf("names = %v %v", c.DNSNames, c.IPAddresses)
	}
	if made, _ := ensureSelfSigned(cert, key, "registry.example:5000", now); made {
		t.Error("regenerated a valid certificate")
	}
	if made, _ := ensureSelfSigned(cert, key, "192.0.2.7:5000", now); !made {
		t.Error("kept a certificate that does not name the new address")
	}
	if made, _ := ensureSelfSigned(cert, key, "192.0.2.7:5000", now.Add(selfSignedLife)); !made {
		t.Error("kept an expiring certificate")
	}
	os.WriteFile(cert, []byte("garbage"), 0o644)
	if _, err := ensureSelfSigned(cert, key, "192.0.2.7:5000", now); err == nil {
		t.Error("overwrote a file that is not a certificate without a word")
	}
}

func TestPlainHTTPOffLoopbackRefused(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Data = t.TempDir()
	cfg.Addr = "0.0.0.0:5000"
	_, err := New(context.Background(), cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "--insecure-http") {
		t.Errorf("New on 0.0.0.0 over HTTP: %v", err)
	}
}

// TestPermissionMatrix drives every role (and a system administrator)
// through every action, in a project where the user has the role and in
// one where it has none, through the real handler, and expects exactly
// what the permission table says.
func TestPermissionMatrix(t *testing.T) {
	master := masterKeyFile(t)
	a := startAuthServer(t, func(c *Config) { c.Keys.MasterKey = "file:" + master })
	// Every project has a stage people approve, for stage.approve's probe.
	stage := func(project string) {
		a.expect(a.api(adminCreds, "POST", "/projects/"+project+"/keys", map[string]any{"purpose": "staging"}), 201, "staging key in "+project)
		a.expect(a.api(adminCreds, "PUT", "/projects/"+project+"/stages/staging", map[string]any{"key": "staging"}), 200, "staging rule in "+project)
	}
	roles := append([]auth.Role{}, auth.Roles...)
	const sysadmin = auth.Role("system-admin")
	roles = append(roles, sysadmin)
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "other"}), 201, "create other")
	stage("other")
	a.expect(a.api(adminCreds, "POST", "/users", map[string]any{"name": "spare", "password": "spare-password"}), 201, "create spare")
	type subject struct {
		role          auth.Role
		creds         []string
		own           string
		del, otherDel testImage
	}
	var subjects []subject
	for i, role := range roles {
		name, project := fmt.Sprintf("u%d", i), fmt.Sprintf("own%d", i)
		a.expect(a.api(adminCreds, "POST", "/users", map[string]any{"name": name, "password": name + "-password", "admin": role == sysadmin}), 201, "create "+name)
		a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": project}), 201, "create "+project)
		stage(project)
		if role != sysadmin {
			a.expect(a.api(adminCreds, "PUT", "/projects/"+project+"/members/"+name, map[string]any{"role": role}), 200, "member "+name)
		}
		sub := subject{role: role, creds: basicAuth(name, name+"-password"), own: project,
			del: makeImage("del-own-" + name), otherDel: makeImage("del-other-" + name)}
		a.expect(a.push(project+"/app", "v1", makeImage("v1-"+name), adminCreds), 201, "seed")
		a.expect(a.push(project+"/app", "del", sub.del, adminCreds), 201, "seed")
		a.expect(a.push("other/app", "del-"+name, sub.otherDel, adminCreds), 201, "seed")
		subjects = append(subjects, sub)
	}
	a.expect(a.push("other/app", "v1", makeImage("v1-other"), adminCreds), 201, "seed")

	// Each action returns whether it was allowed, failing on any answer
	// that is neither a clear yes nor the expected refusal.
	type probe func(s subject, project string, del testImage) bool
	registryStatus := func(r answer, ok int, what string) bool {
		switch {
		case r.status == ok:
			return true
		case r.status == http.StatusForbidden && strings.Contains(r.body, `"DENIED"`):
			return false
		}
		t.Errorf("%s: unexpected %d %s", what, r.status, r.body)
		return false
	}
	apiStatus := func(r answer, ok int, project, own, what string) bool {
		switch {
		case r.status == ok:
			return true
		case project == own && r.status == http.StatusForbidden:
			return false
		case project != own && r.status == http.StatusNotFound:
			return false // a project you are not in is not there
		}
		t.Errorf("%s: unexpected %d %s", what, r.status, r.body)
		return false
	}
	probes := map[auth.Action]probe{
		auth.Pull: func(s subject, p string, _ testImage) bool {
			tok := a.token(s.creds, "repository:"+p+"/app:pull")
			return registryStatus(a.do("GET", "/v2/"+p+"/app/manifests/v1", nil, tok...), 200, "pull "+p)
		},
		auth.Push: func(s subject, p string, _ testImage) bool {
			tok := a.token(s.creds, "repository:"+p+"/app:pull,push")
			return registryStatus(a.push(p+"/app", "pushed-"+string(s.role), makeImage("push-"+p+string(s.role)), tok), 201, "push "+p)
		},
		auth.Delete: func(s subject, p string, del testImage) bool {
			tok := a.token(s.creds, "repository:"+p+"/app:delete")
			return registryStatus(a.do("DELETE", "/v2/"+p+"/app/manifests/"+del.digest(), nil, tok...), 202, "delete "+p)
		},
		auth.ListTags: func(s subject, p string, _ testImage) bool {
			tok := a.token(s.creds, "repository:"+p+"/app:pull")
			return registryStatus(a.do("GET", "/v2/"+p+"/app/tags/list", nil, tok...), 200, "tags "+p)
		},
		auth.Catalog: func(s subject, p string, _ testImage) bool {
			tok := a.token(s.creds, "registry:catalog:*")
			r := a.do("GET", "/v2/_catalog", nil, tok...)
			if r.status != 200 {
				t.Errorf("catalog: %d %s", r.status, r.body)
			}
			return strings.Contains(r.body, `"`+p+`/app"`)
		},
		auth.ReadMembers: func(s subject, p string, _ testImage) bool {
			return apiStatus(a.api(s.creds, "GET", "/projects/"+p+"/members", nil), 200, p, s.own, "members "+p)
		},
		auth.ManageMembers: func(s subject, p string, _ testImage) bool {
			return apiStatus(a.api(s.creds, "PUT", "/projects/"+p+"/members/spare", map[string]any{"role": "guest"}), 200, p, s.own, "add member "+p)
		},
		auth.ManageProject: func(s subject, p string, _ testImage) bool {
			return apiStatus(a.api(s.creds, "PATCH", "/projects/"+p, map[string]any{"public": false}), 200, p, s.own, "settings "+p)
		},
		auth.ManageRobots: func(s subject, p string, _ testImage) bool {
			body := map[string]any{"name": "r-" + strings.ToLower(string(s.role)) + "-" + p,
				"permissions": []map[string]any{{"project": p, "actions": []string{"pull"}}}}
			r := a.api(s.creds, "POST", "/robots", body)
			if r.status == http.StatusForbidden {
				return false // robot creation answers 403 for any project it may not manage
			}
			return apiStatus(r, 201, p, s.own, "robot "+p)
		},
		auth.ReadAudit: func(s subject, p string, _ testImage) bool {
			return apiStatus(a.api(s.creds, "GET", "/audit?project="+p, nil), 200, p, s.own, "audit "+p)
		},
		auth.ApproveStage: func(s subject, p string, _ testImage) bool {
			return apiStatus(a.api(s.creds, "POST", "/projects/"+p+"/repositories/app/artifacts/v1/approvals/staging", nil), 200, p, s.own, "approve "+p)
		},
	}
	for _, action := range auth.Actions {
		if probes[action] == nil {
			t.Fatalf("no probe for action %s", action)
		}
	}
	for _, s := range subjects {
		for _, action := range auth.Actions {
			for _, where := range []string{"own", "other"} {
				project, del := s.own, s.del
				if where == "other" {
					project, del = "other", s.otherDel
				}
				want := s.role == sysadmin || (where == "own" && auth.Permits(s.role, action))
				if got := probes[action](s, project, del); got != want {
					t.Errorf("%s × %s × %s project: allowed %v, the table says %v", s.role, action, where, got, want)
				}
			}
		}
	}
}
