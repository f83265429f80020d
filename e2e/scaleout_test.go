package e2e

import (
	"archive/zip"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/testpeers"
)

// deployment is berth scaled out: replicas sharing one PostgreSQL
// database and one S3 bucket (the servers scripts/services.sh starts),
// configured as an operator would, through the environment.
type deployment struct {
	env []string
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	db := testpeers.Postgres(t)
	srv, bucket := testpeers.Bucket(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "signing-key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &deployment{env: []string{
		"BERTH_STORAGE_META=" + db,
		"BERTH_STORAGE_BLOBS=s3://" + bucket + "?endpoint=" + url.QueryEscape(srv.Endpoint) + "&region=us-east-1",
		"AWS_ACCESS_KEY_ID=" + srv.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + srv.SecretKey,
		"BERTH_AUTH_SIGNING_KEY=" + keyFile,
	}}
}

// replica starts one more replica, on its own port and data directory.
func (d *deployment) replica(t *testing.T, extraArgs ...string) *server {
	t.Helper()
	return launchBerthEnv(t, freeAddr(t), t.TempDir(), adminPassword, d.env, extraArgs...)
}

// Push through one replica, pull through the other, with crane and
// skopeo: the image and every blob arrive whole.
func TestScaleOutPushPull(t *testing.T) {
	crane := testpeers.Tool(t, "crane")
	skopeo := testpeers.Tool(t, "skopeo")
	dep := newDeployment(t)
	r1, r2 := dep.replica(t), dep.replica(t)
	env := []string{"HOME=" + t.TempDir()}
	for _, r := range []*server{r1, r2} {
		run(t, env, crane, "auth", "login", r.Addr, "-u", "admin", "-p", r.Password)
	}

	layout := untar(t, testpeers.Shared(t, "images", "kitchen-sink.oci.tar"))
	run(t, env, crane, "push", "--insecure", layout, r1.Addr+"/team-a/kitchen-sink:latest")
	if got := strings.TrimSpace(run(t, env, crane, "digest", "--insecure", r2.Addr+"/team-a/kitchen-sink:latest")); got != kitchenSinkDigest {
		t.Fatalf("digest through replica 2 = %s, want %s", got, kitchenSinkDigest)
	}
	pulled := filepath.Join(t.TempDir(), "pulled")
	run(t, env, crane, "pull", "--insecure", "--format=oci", r2.Addr+"/team-a/kitchen-sink:latest", pulled)
	if want, got := blobSet(t, layout), blobSet(t, pulled); !slices.Equal(want, got) {
		t.Errorf("blobs pulled through replica 2 differ from those pushed through replica 1:\npushed %v\npulled %v", want, got)
	}

	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	creds := "admin:" + r1.Password
	archive := testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar")
	run(t, env, skopeo, "--policy", policy, "copy", "--dest-tls-verify=false", "--dest-creds", creds,
		"oci-archive:"+archive+":latest", "docker://"+r2.Addr+"/library/debian:bookworm")
	if got := strings.TrimSpace(run(t, env, skopeo, "inspect", "--tls-verify=false", "--creds", creds, "--format", "{{.Digest}}",
		"docker://"+r1.Addr+"/library/debian:bookworm")); got != minbaseDigest {
		t.Fatalf("skopeo inspect through replica 1 = %s, want %s", got, minbaseDigest)
	}
	back := filepath.Join(t.TempDir(), "back.oci.tar")
	run(t, env, skopeo, "--policy", policy, "copy", "--src-tls-verify=false", "--src-creds", creds,
		"docker://"+r1.Addr+"/team-a/kitchen-sink:latest", "oci-archive:"+back+":latest")
	if want, got := blobSet(t, layout), blobSet(t, untar(t, back)); !slices.Equal(want, got) {
		t.Errorf("skopeo's copy through replica 1 differs from the push")
	}

	// berth gc and fsck run against the shared stores while the replicas
	// serve (no data directory of theirs to lock): nothing referenced is
	// collected, and everything checks.
	offline := append([]string{"BERTH_DATA=" + t.TempDir()}, dep.env...)
	run(t, offline, berthBin, "gc")
	out := run(t, offline, berthBin, "fsck")
	if !strings.Contains(out, " 0 problems") {
		t.Errorf("fsck of the shared stores: %s", out)
	}
	if got := strings.TrimSpace(run(t, env, crane, "digest", "--insecure", r2.Addr+"/library/debian:bookworm")); got != minbaseDigest {
		t.Errorf("after gc: %s", got)
	}
}

// httpClient talks to replicas as a registry client with a bearer token.
type httpClient struct {
	t     *testing.T
	token string
}

func (c *httpClient) do(method, rawURL string, body []byte, header ...string) *http.Response {
	c.t.Helper()
	req, err := http.NewRequest(method, rawURL, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

func (c *httpClient) expect(resp *http.Response, status int, what string) *http.Response {
	c.t.Helper()
	if resp.StatusCode != status {
		b, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("%s: %d %s, want %d", what, resp.StatusCode, b, status)
	}
	return resp
}

// tokenFrom asks s's token endpoint for a token with scope.
func tokenFrom(t *testing.T, s *server, scope string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.Addr+"/token?service=berth&scope="+url.QueryEscape(scope), nil)
	req.SetBasicAuth("admin", s.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.Token == "" {
		t.Fatalf("token from %s: %d %v", s.Addr, resp.StatusCode, err)
	}
	return tok.Token
}

// An upload started on one replica continues on the other and is
// finished there; the blob is then served by the first.
func TestScaleOutUploadMovesBetweenReplicas(t *testing.T) {
	dep := newDeployment(t)
	r1, r2 := dep.replica(t), dep.replica(t)
	c := &httpClient{t: t, token: tokenFrom(t, r1, "repository:team-a/moved:pull,push")}
	content := bytes.Repeat([]byte("a chunk of a layer that crosses replicas. "), 250_000) // 10.5 MB: halves past S3's 5 MiB part minimum, so commit copies server-side
	half := len(content) / 2

	resp := c.expect(c.do("POST", "http://"+r1.Addr+"/v2/team-a/moved/blobs/uploads/", nil), 202, "start on replica 1")
	loc := resp.Header.Get("Location")
	resp.Body.Close()
	resp = c.expect(c.do("PATCH", "http://"+r1.Addr+loc, content[:half], "Content-Type", "application/octet-stream",
		"Content-Range", "0-"+itoa(half-1)), 202, "first half to replica 1")
	resp.Body.Close()
	resp = c.expect(c.do("GET", "http://"+r2.Addr+loc, nil), 204, "status on replica 2")
	if got := resp.Header.Get("Range"); got != "0-"+itoa(half-1) {
		t.Fatalf("replica 2 sees the upload at %q, want 0-%d", got, half-1)
	}
	resp = c.expect(c.do("PATCH", "http://"+r2.Addr+loc, content[half:], "Content-Type", "application/octet-stream",
		"Content-Range", itoa(half)+"-"+itoa(len(content)-1)), 202, "second half to replica 2")
	loc = resp.Header.Get("Location")
	resp.Body.Close()
	d := digest.FromBytes(content)
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	c.expect(c.do("PUT", "http://"+r2.Addr+loc+sep+"digest="+d.String(), nil), 201, "finish on replica 2").Body.Close()
	resp = c.expect(c.do("GET", "http://"+r1.Addr+"/v2/team-a/moved/blobs/"+d.String(), nil), 200, "the blob through replica 1")
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("replica 1 served %d bytes (%v), want the %d uploaded", len(got), err, len(content))
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// A tag deleted through one replica is gone on the other for the very
// next request, whose cache held it a moment before; crane sees it.
func TestScaleOutDeletedTagGoneAtOnce(t *testing.T) {
	crane := testpeers.Tool(t, "crane")
	dep := newDeployment(t)
	r1, r2 := dep.replica(t), dep.replica(t)
	env := []string{"HOME=" + t.TempDir()}
	for _, r := range []*server{r1, r2} {
		run(t, env, crane, "auth", "login", r.Addr, "-u", "admin", "-p", r.Password)
	}
	layout := untar(t, testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar"))
	c := &httpClient{t: t, token: tokenFrom(t, r1, "repository:team-a/debian:pull,push,delete")}
	for i := range 5 {
		tag := "v" + itoa(i)
		run(t, env, crane, "push", "--insecure", layout, r1.Addr+"/team-a/debian:"+tag)
		// Twice through replica 2: the second answer is its cache's.
		for range 2 {
			if got := strings.TrimSpace(run(t, env, crane, "digest", "--insecure", r2.Addr+"/team-a/debian:"+tag)); got != minbaseDigest {
				t.Fatalf("digest through replica 2 = %s", got)
			}
		}
		c.expect(c.do("DELETE", "http://"+r1.Addr+"/v2/team-a/debian/manifests/"+tag, nil), 202, "delete the tag through replica 1").Body.Close()
		out, err := runErr(env, crane, "digest", "--insecure", r2.Addr+"/team-a/debian:"+tag)
		if err == nil || !strings.Contains(out, "MANIFEST_UNKNOWN") {
			t.Fatalf("round %d: replica 2 still knows the deleted tag: %v %s", i, err, out)
		}
	}
}

// A project policy put through one replica through the API refuses crane's
// very next pull through the other, which served the image a moment
// before; deleted through the first, the other serves it again.
func TestScaleOutPolicyEnforcedAtOnce(t *testing.T) {
	crane := testpeers.Tool(t, "crane")
	dep := newDeployment(t)
	r1, r2 := dep.replica(t), dep.replica(t)
	env := []string{"HOME=" + t.TempDir()}
	for _, r := range []*server{r1, r2} {
		run(t, env, crane, "auth", "login", r.Addr, "-u", "admin", "-p", r.Password)
	}
	layout := untar(t, testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar"))
	run(t, env, crane, "push", "--insecure", layout, r1.Addr+"/team-a/debian:release")
	// The runtime pulls with an identity that may only pull (one that may
	// push is served with a warning).
	robot, secret := newRobot(t, r1, "runtime", "team-a=pull")
	runtime := []string{"HOME=" + t.TempDir()}
	run(t, runtime, crane, "auth", "login", r2.Addr, "-u", robot, "-p", secret)
	pull := func() (string, error) {
		return runErr(runtime, crane, "pull", "--insecure", r2.Addr+"/team-a/debian:release", filepath.Join(t.TempDir(), "img.tar"))
	}
	policyURL := "http://" + r1.Addr + "/api/v1/projects/team-a/policy"
	api := func(method string, body []byte, want int) {
		t.Helper()
		req, err := http.NewRequest(method, policyURL, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("admin", r1.Password)
		req.Header.Set("Content-Type", "application/yaml")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s policy through replica 1: %s %s", method, resp.Status, msg)
		}
	}
	doc := []byte("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: no-release}\nspec:\n  tags: {deny: [release]}\n")
	for i := range 3 {
		if out, err := pull(); err != nil {
			t.Fatalf("round %d: crane pull through replica 2 without a policy: %v\n%s", i, err, out)
		}
		api("PUT", doc, http.StatusOK)
		out, err := pull()
		expectRefusal(t, "crane pull through replica 2 under the policy put through replica 1", out, err, "DENIED")
		if !strings.Contains(out, "no-release") {
			t.Errorf("round %d: the refusal does not name the policy: %s", i, out)
		}
		api("DELETE", nil, http.StatusNoContent)
	}
}

// A web UI login through one replica is good on the other, with the same
// CSRF token, and survives the first replica's restart; a logout through
// the second ends it on the first. Browsers behind a load balancer need no
// sticky sessions.
func TestScaleOutWebSession(t *testing.T) {
	dep := newDeployment(t)
	r1, r2 := dep.replica(t), dep.replica(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm("http://"+r1.Addr+"/ui/login", url.Values{"name": {"admin"}, "password": {r1.Password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "berth_session" && c.Value != "" {
			cookie = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || cookie == nil {
		t.Fatalf("login through replica 1: %d, session cookie %v", resp.StatusCode, cookie)
	}
	csrfField := regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	// page loads path from r with the cookie and returns the page's CSRF
	// token ("" when the page is not a logged-in one).
	page := func(r *server, path string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+r.Addr+path, nil)
		req.AddCookie(cookie)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`action="/ui/logout"`)) {
			return ""
		}
		m := csrfField.FindSubmatch(body)
		if m == nil {
			t.Fatalf("%s on %s: a logged-in page without a CSRF token", path, r.Addr)
		}
		return string(m[1])
	}
	token := page(r1, "/ui/projects")
	if token == "" {
		t.Fatal("the session does not open the UI on replica 1, where it logged in")
	}
	if got := page(r2, "/ui/admin/users"); got != token {
		t.Fatalf("on replica 2 the session's page has CSRF token %q, want replica 1's %q", got, token)
	}

	r1.stop()
	r1 = launchBerthEnv(t, r1.Addr, r1.Data, adminPassword, dep.env)
	if got := page(r1, "/ui/projects"); got != token {
		t.Fatalf("after replica 1 restarted, its page has CSRF token %q, want %q", got, token)
	}

	req, _ := http.NewRequest("POST", "http://"+r2.Addr+"/ui/logout", strings.NewReader(url.Values{"csrf": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(cookie)
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Fatalf("logout through replica 2: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if page(r1, "/ui/projects") != "" {
		t.Error("after logging out through replica 2 the cookie still opens the UI on replica 1")
	}
	req, _ = http.NewRequest("GET", "http://"+r1.Addr+"/api/v1/users", nil)
	req.AddCookie(cookie)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the logged-out cookie on replica 1's API: %d, want 401", resp.StatusCode)
	}
}

// The OCI conformance suite, every workflow and option on, against one
// replica of a two-replica deployment with auth on.
func TestScaleOutConformance(t *testing.T) {
	suite := testpeers.Tool(t, "oci-conformance")
	dep := newDeployment(t)
	dep.replica(t)
	r2 := dep.replica(t)
	runConformance(t, suite, r2, "OCI_USERNAME=admin", "OCI_PASSWORD="+r2.Password)
}

// scaleOutPush is one client's image and whether its push was
// acknowledged.
type scaleOutPush struct {
	repo     string
	blobs    [][]byte
	manifest []byte
	done     bool
}

// push uploads the blobs in 256 KiB chunks and then the manifest,
// stopping at the first failure (the replica killed).
func (p *scaleOutPush) push(base string) {
	client := &http.Client{Timeout: time.Minute}
	send := func(method, url string, body []byte, headers ...string) *http.Response {
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			return nil
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for _, b := range p.blobs {
		resp := send("POST", base+"/v2/"+p.repo+"/blobs/uploads/", nil)
		if resp == nil || resp.StatusCode != http.StatusAccepted {
			return
		}
		loc := resp.Header.Get("Location")
		for off := 0; off < len(b); off += 256 << 10 {
			end := min(off+256<<10, len(b))
			resp = send("PATCH", base+loc, b[off:end], "Content-Range", strconv.Itoa(off)+"-"+strconv.Itoa(end-1))
			if resp == nil || resp.StatusCode != http.StatusAccepted {
				return
			}
			loc = resp.Header.Get("Location")
		}
		resp = send("PUT", base+loc+"?digest="+digest.FromBytes(b).String(), nil)
		if resp == nil || resp.StatusCode != http.StatusCreated {
			return
		}
	}
	resp := send("PUT", base+"/v2/"+p.repo+"/manifests/latest", p.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	p.done = resp != nil && resp.StatusCode == http.StatusCreated
}

// kill -9 of a replica during 20 parallel pushes: every push it
// acknowledged is read whole from the other replica, no partial blob is
// ever served, and berth fsck finds no problem, also after collecting
// everything collectable.
func TestScaleOutKill9DuringParallelPushes(t *testing.T) {
	dep := newDeployment(t)
	r1, r2 := dep.replica(t, "--no-auth"), dep.replica(t, "--no-auth")
	pushes := make([]*scaleOutPush, 20)
	for i := range pushes {
		config := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","n":%d}`, i)
		layers := [][]byte{randomBlob(t, 300<<10+i), randomBlob(t, 1<<20+i)}
		var descs []string
		for _, l := range layers {
			descs = append(descs, `{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"`+digest.FromBytes(l).String()+`","size":`+strconv.Itoa(len(l))+`}`)
		}
		manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
			digest.FromBytes(config).String() + `","size":` + strconv.Itoa(len(config)) + `},"layers":[` + strings.Join(descs, ",") + `]}`)
		pushes[i] = &scaleOutPush{repo: fmt.Sprintf("crash/img%d", i), blobs: append([][]byte{config}, layers...), manifest: manifest}
	}
	var finished atomic.Int64
	var wg sync.WaitGroup
	for _, p := range pushes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.push("http://" + r1.Addr)
			if p.done {
				finished.Add(1)
			}
		}()
	}
	for finished.Load() < 4 {
		time.Sleep(time.Millisecond)
	}
	if err := r1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	acknowledged := 0
	for _, p := range pushes {
		if p.done {
			acknowledged++
		}
	}
	t.Logf("%d of %d pushes acknowledged before kill -9", acknowledged, len(pushes))
	if acknowledged == len(pushes) {
		t.Fatal("every push finished before the kill; the test proves nothing")
	}
	get := func(path string) (int, []byte) {
		resp, err := http.Get("http://" + r2.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	for _, p := range pushes {
		for _, b := range p.blobs {
			d := digest.FromBytes(b)
			status, got := get("/v2/" + p.repo + "/blobs/" + d.String())
			switch {
			case status == http.StatusOK && digest.FromBytes(got) != d:
				t.Errorf("%s: blob %s served with %d bytes of other content", p.repo, d, len(got))
			case status != http.StatusOK && status != http.StatusNotFound:
				t.Errorf("%s: blob %s answered %d", p.repo, d, status)
			case p.done && status != http.StatusOK:
				t.Errorf("%s: acknowledged push lost blob %s (%d)", p.repo, d, status)
			}
		}
		if status, got := get("/v2/" + p.repo + "/manifests/latest"); p.done && (status != http.StatusOK || !bytes.Equal(got, p.manifest)) {
			t.Errorf("%s: acknowledged manifest answered %d through the other replica", p.repo, status)
		}
	}
	offline := append([]string{"BERTH_DATA=" + t.TempDir()}, dep.env...)
	if out := run(t, offline, berthBin, "fsck"); !strings.Contains(out, ": 0 problems") {
		t.Errorf("berth fsck after the kill: %s", out)
	}
	// Everything collectable goes; the acknowledged images stay whole.
	run(t, offline, berthBin, "gc", "--grace", "0s", "--untagged", "--upload-ttl", "1ns")
	out := run(t, offline, berthBin, "fsck")
	var manifests int
	if m := regexp.MustCompile(`and (\d+) manifests`).FindStringSubmatch(out); m != nil {
		manifests, _ = strconv.Atoi(m[1])
	}
	// A push whose manifest was stored as the replica died, before its
	// answer left, counts too: stored, not acknowledged.
	if !strings.Contains(out, ": 0 problems") || manifests < acknowledged || manifests > len(pushes) {
		t.Errorf("berth fsck after gc (%d acknowledged): %s", acknowledged, out)
	}
	for _, p := range pushes {
		if status, got := get("/v2/" + p.repo + "/manifests/latest"); p.done && (status != http.StatusOK || !bytes.Equal(got, p.manifest)) {
			t.Errorf("%s: acknowledged manifest answered %d after gc", p.repo, status)
		}
	}
	t.Logf("fsck: %s", strings.TrimSpace(out))
}

func randomBlob(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// An update of the vulnerability database asked for through replica 1
// gives both replicas one database: replica 2's GET /api/v1/vulndb shows
// the one replica 1 shows, whichever replica ran the update job.
func TestScaleOutVulnDBShared(t *testing.T) {
	feed := t.TempDir()
	if err := os.MkdirAll(filepath.Join(feed, "npm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(feed, "ecosystems.txt"), []byte("npm\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	w, _ := zw.Create("E2E-1.json")
	w.Write([]byte(`{"id":"E2E-1","modified":"2026-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"lodash"},` +
		`"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"2.0.0"}]}]}]}`))
	zw.Close()
	if err := os.WriteFile(filepath.Join(feed, "npm", "all.zip"), zipped.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	dep := newDeployment(t)
	args := []string{"--db-source", feed, "--db-update-interval", "0"}
	r1, r2 := dep.replica(t, args...), dep.replica(t, args...)

	c := &httpClient{t: t}
	basic := func(r *server) []string {
		return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+r.Password))}
	}
	status := func(r *server) (st struct {
		Digest   string `json:"digest"`
		Database struct {
			UpdatedAt time.Time `json:"updated_at"`
			Records   int       `json:"records"`
		} `json:"database"`
	}) {
		t.Helper()
		resp := c.expect(c.do("GET", "http://"+r.Addr+"/api/v1/vulndb", nil, basic(r)...), http.StatusOK, "vulndb status")
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	c.expect(c.do("POST", "http://"+r1.Addr+"/api/v1/vulndb/update", nil, basic(r1)...), http.StatusAccepted, "update through replica 1").Body.Close()
	for deadline := time.Now().Add(60 * time.Second); status(r1).Digest == ""; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no database on replica 1 after the update\n%s\n%s", r1.logs, r2.logs)
		}
	}
	s1, s2 := status(r1), status(r2)
	if s1 != s2 || s1.Database.Records != 1 {
		t.Errorf("replica 1 shows %+v, replica 2 %+v", s1, s2)
	}
}
