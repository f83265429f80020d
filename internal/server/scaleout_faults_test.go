package server

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/auth/token"
	"berth.dev/berth/internal/testpeers"
)

// s3Proxy stands between berth and the S3 server: it counts requests by
// method and can answer 500 instead of forwarding.
type s3Proxy struct {
	srv     *httptest.Server
	mu      sync.Mutex
	counts  map[string]int
	failing bool
}

func newS3Proxy(t *testing.T, endpoint string) *s3Proxy {
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &s3Proxy{counts: map[string]int{}}
	// The Host header stays the proxy's: requests are signed for it.
	rp := httputil.NewSingleHostReverseProxy(target)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.counts[r.Method]++
		failing := p.failing
		p.mu.Unlock()
		if failing {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected</Message></Error>`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *s3Proxy) take() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.counts
	p.counts = map[string]int{}
	return c
}

func (p *s3Proxy) fail(on bool) {
	p.mu.Lock()
	p.failing = on
	p.mu.Unlock()
}

// proxiedBackends is sharedBackends with the database and the bucket
// reached through proxies the test controls.
func proxiedBackends(t *testing.T) (func(*Config), *testpeers.Proxy, *s3Proxy) {
	t.Helper()
	db := testpeers.Postgres(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	pg := testpeers.NewProxy(t, u.Host)
	srv, bucket := testpeers.Bucket(t)
	s3 := newS3Proxy(t, srv.Endpoint)
	key := filepath.Join(t.TempDir(), "signing-key.pem")
	if _, _, err := token.LoadOrCreateKey(key); err != nil {
		t.Fatal(err)
	}
	return func(c *Config) {
		c.Storage = StorageConfig{Meta: testpeers.PostgresVia(t, db, pg),
			Blobs:       "s3://" + bucket + "?endpoint=" + s3.srv.URL + "&region=us-east-1",
			S3AccessKey: srv.AccessKey, S3SecretKey: srv.SecretKey}
		c.Auth.SigningKey = key
	}, pg, s3
}

// Blob HEADs are answered from the database: no request reaches S3,
// however many there are; a GET is one S3 GET and no HEAD.
func TestBlobHeadsNeverAskS3(t *testing.T) {
	backends, _, s3 := proxiedBackends(t)
	a := startAuthServer(t, backends)
	img := makeImage("heads")
	a.expect(a.push("team/app", "v1", img, adminCreds), 201, "push")
	tok := a.token(adminCreds, "repository:team/app:pull")
	s3.take()
	for range 50 {
		for _, b := range [][]byte{img.config, img.layer} {
			r := a.expect(a.do("HEAD", "/v2/team/app/blobs/"+digest.FromBytes(b).String(), nil, tok...), 200, "blob HEAD")
			if r.header.Get("Content-Length") != fmt.Sprint(len(b)) {
				t.Fatalf("HEAD says %s bytes, want %d", r.header.Get("Content-Length"), len(b))
			}
		}
	}
	if got := s3.take(); len(got) != 0 {
		t.Errorf("100 blob HEADs made S3 requests: %v", got)
	}
	r := a.expect(a.do("GET", "/v2/team/app/blobs/"+digest.FromBytes(img.layer).String(), nil, tok...), 200, "blob GET")
	if r.body != string(img.layer) {
		t.Errorf("GET served %q", r.body)
	}
	if got := s3.take(); got["GET"] != 1 || len(got) != 1 {
		t.Errorf("one blob GET made S3 requests %v, want one GET", got)
	}
	a.expect(a.do("HEAD", "/v2/team/app/blobs/"+digest.FromString("absent").String(), nil, tok...), 404, "HEAD of an absent blob")
}

// With storage.redirect a blob GET is a redirect to a presigned URL that
// serves the content without credentials; the redirect is given only to
// a caller who may pull.
func TestBlobDownloadsRedirectToS3(t *testing.T) {
	shared := sharedBackends(t)
	a := startAuthServer(t, shared, func(c *Config) { c.Storage.Redirect = true })
	img := makeImage("redirected")
	a.expect(a.push("team/app", "v1", img, adminCreds), 201, "push")
	path := "/v2/team/app/blobs/" + digest.FromBytes(img.layer).String()
	a.expect(a.do("GET", path, nil), 401, "anonymous GET of a private blob")
	tok := a.token(adminCreds, "repository:team/app:pull")
	req, _ := http.NewRequest("GET", a.url+path, nil)
	req.Header.Set(tok[0], tok[1])
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("blob GET: %d, want 307", resp.StatusCode)
	}
	if !strings.Contains(loc, "X-Amz-Signature=") {
		t.Fatalf("redirect to %q, want a presigned URL", loc)
	}
	resp, err = http.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != string(img.layer) {
		t.Errorf("the presigned URL answered %d %q", resp.StatusCode, body)
	}
	// HEAD is still answered by berth, from the database.
	a.expect(a.do("HEAD", path, nil, tok...), 200, "blob HEAD")
	cfg := DefaultConfig()
	cfg.Storage.Redirect = true
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "storage.redirect") {
		t.Errorf("redirect with file blobs: %v", err)
	}
}

// S3 failing answers 503 with Retry-After, never 500; an upload that met
// the failure is resumed from where it stood once S3 is back.
func TestS3FailuresAnswer503AndUploadsResume(t *testing.T) {
	backends, _, s3 := proxiedBackends(t)
	a := startAuthServer(t, backends)
	img := makeImage("before the failure")
	a.expect(a.push("team/app", "v1", img, adminCreds), 201, "push")
	tok := a.token(adminCreds, "repository:team/app:pull,push")

	start := a.expect(a.do("POST", "/v2/team/app/blobs/uploads/", nil, tok...), 202, "start an upload")
	loc := start.header.Get("Location")
	content := []byte(strings.Repeat("0123456789", 1000))
	a.expect(a.do("PATCH", loc, content[:4000], append(tok, "Content-Type", "application/octet-stream",
		"Content-Range", "0-3999")...), 202, "first chunk")

	s3.fail(true)
	r := a.do("GET", "/v2/team/app/blobs/"+digest.FromBytes(img.layer).String(), nil, tok...)
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Errorf("blob GET while S3 fails: %d (Retry-After %q) %s, want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
	}
	r = a.do("PATCH", loc, content[4000:], append(tok, "Content-Type", "application/octet-stream", "Content-Range", "4000-9999")...)
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Errorf("chunk while S3 fails: %d %s, want 503 with Retry-After", r.status, r.body)
	}
	s3.fail(false)

	// The upload stands where it stood before the failure.
	st := a.expect(a.do("GET", loc, nil, tok...), 204, "upload status")
	if st.header.Get("Range") != "0-3999" {
		t.Fatalf("upload range after the failure: %q, want 0-3999", st.header.Get("Range"))
	}
	a.expect(a.do("PATCH", loc, content[4000:], append(tok, "Content-Type", "application/octet-stream",
		"Content-Range", "4000-9999")...), 202, "the chunk again")
	d := digest.FromBytes(content)
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	a.expect(a.do("PUT", loc+sep+"digest="+d.String(), nil, tok...), 201, "commit")
	got := a.expect(a.do("GET", "/v2/team/app/blobs/"+d.String(), nil, tok...), 200, "the resumed blob")
	if got.body != string(content) {
		t.Error("the resumed blob's content differs")
	}
}

// PostgreSQL out of reach (restarted, a lost network): requests get 503
// with Retry-After, and once it is back berth serves again on its own.
func TestDatabaseOutageAnswers503ThenRecovers(t *testing.T) {
	backends, pg, _ := proxiedBackends(t)
	a := startAuthServer(t, backends)
	img := makeImage("outage")
	a.expect(a.push("team/app", "v1", img, adminCreds), 201, "push")
	tok := a.token(adminCreds, "repository:team/app:pull")
	manifest := func() answer {
		return a.do("GET", "/v2/team/app/manifests/v1", nil, append(tok, "Accept", "application/vnd.oci.image.manifest.v1+json")...)
	}
	a.expect(manifest(), 200, "pull before")

	pg.Cut()
	for _, r := range []answer{manifest(), a.do("GET", "/v2/team/app/tags/list", nil, tok...),
		a.push("team/app", "v2", makeImage("during"), adminCreds), a.do("GET", "/token?service=berth", nil, adminCreds...)} {
		if r.status != 503 || r.header.Get("Retry-After") == "" {
			t.Errorf("while the database is out of reach: %d (Retry-After %q) %s, want 503 with Retry-After",
				r.status, r.header.Get("Retry-After"), r.body)
		}
	}
	if r := a.do("GET", "/readyz", nil); r.status != 503 {
		t.Errorf("/readyz while the database is out of reach: %d", r.status)
	}
	pg.Restore()
	// Reconnecting takes a retry interval or two.
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := manifest()
		if r.status == 200 {
			break
		}
		if r.status != 503 {
			t.Fatalf("while reconnecting: %d %s, want 503 until served", r.status, r.body)
		}
		if time.Now().After(deadline) {
			t.Fatal("berth did not serve again within a minute of the database's return")
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.expect(a.push("team/app", "v2", makeImage("after"), adminCreds), 201, "push after")
}
