package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

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
	crane := peer(t, "crane")
	skopeo := peer(t, "skopeo")
	dep := newDeployment(t)
	r1, r2 := dep.replica(t), dep.replica(t)
	env := []string{"HOME=" + t.TempDir()}
	for _, r := range []*server{r1, r2} {
		run(t, env, crane, "auth", "login", r.Addr, "-u", "admin", "-p", r.Password)
	}

	layout := untar(t, sharedImage(t, "kitchen-sink.oci.tar"))
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
	archive := sharedImage(t, "debian-bookworm-minbase.oci.tar")
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
	crane := peer(t, "crane")
	dep := newDeployment(t)
	r1, r2 := dep.replica(t), dep.replica(t)
	env := []string{"HOME=" + t.TempDir()}
	for _, r := range []*server{r1, r2} {
		run(t, env, crane, "auth", "login", r.Addr, "-u", "admin", "-p", r.Password)
	}
	layout := untar(t, sharedImage(t, "debian-bookworm-minbase.oci.tar"))
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

// The OCI conformance suite, every workflow and option on, against one
// replica of a two-replica deployment with auth on.
func TestScaleOutConformance(t *testing.T) {
	suite := peer(t, "oci-conformance")
	dep := newDeployment(t)
	dep.replica(t)
	r2 := dep.replica(t)
	runConformance(t, suite, r2, "OCI_USERNAME=admin", "OCI_PASSWORD="+r2.Password)
}
