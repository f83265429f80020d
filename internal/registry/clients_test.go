package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/registry"
	"berth.dev/berth/internal/registry/access"
)

// go-containerregistry's remote package is a real client: push and pull an
// image and a multi-platform index, list, attach a referrer, delete.
func TestGoContainerRegistryClient(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ref := func(s string) name.Reference {
		r, err := name.ParseReference(e.host+"/"+s, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	img, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref("team/app:v1"), img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("remote.Write: %v", err)
	}
	pulled, err := remote.Image(ref("team/app:v1"))
	if err != nil {
		t.Fatalf("remote.Image: %v", err)
	}
	want, _ := img.Digest()
	got, _ := pulled.Digest()
	if got != want {
		t.Errorf("pulled digest %s, want %s", got, want)
	}
	layers, _ := pulled.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Errorf("layer read: %v", err)
		}
		rc.Close()
	}

	idx, err := random.Index(1024, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref("team/multi:latest"), idx); err != nil {
		t.Fatalf("remote.WriteIndex: %v", err)
	}
	if _, err := remote.Index(ref("team/multi:latest")); err != nil {
		t.Errorf("remote.Index: %v", err)
	}
	// Copying to another repository mounts the blobs.
	if err := remote.Write(ref("team/copy:v1"), pulled); err != nil {
		t.Fatalf("copy: %v", err)
	}

	tags, err := remote.List(ref("team/app:v1").Context())
	if err != nil || !slices.Equal(tags, []string{"v1"}) {
		t.Errorf("remote.List = %v, %v", tags, err)
	}
	reg, _ := name.NewRegistry(e.host, name.Insecure)
	repos, err := remote.Catalog(ctx, reg)
	if err != nil || !slices.Equal(repos, []string{"team/app", "team/copy", "team/multi"}) {
		t.Errorf("remote.Catalog = %v, %v", repos, err)
	}

	// An artifact attached to the image, found through the referrers API.
	subject, err := remote.Head(ref("team/app:v1"))
	if err != nil {
		t.Fatal(err)
	}
	art := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	art = mutate.ConfigMediaType(art, "application/vnd.example.sig")
	art = mutate.Subject(art, *subject).(v1.Image)
	artDigest, _ := art.Digest()
	if err := remote.Write(ref("team/app@"+artDigest.String()), art); err != nil {
		t.Fatalf("push referrer: %v", err)
	}
	referrers, err := remote.Referrers(ref("team/app@" + subject.Digest.String()).Context().Digest(subject.Digest.String()))
	if err != nil {
		t.Fatalf("remote.Referrers: %v", err)
	}
	im, _ := referrers.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != artDigest || im.Manifests[0].ArtifactType != "application/vnd.example.sig" {
		t.Errorf("referrers = %+v", im.Manifests)
	}

	if err := remote.Delete(ref("team/app@" + want.String())); err != nil {
		t.Fatalf("remote.Delete: %v", err)
	}
	if _, err := remote.Image(ref("team/app:v1")); err == nil || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
		t.Errorf("pull after delete: %v, want MANIFEST_UNKNOWN", err)
	}
}

// A client that goes away mid-chunk: the bytes that arrived stay, the
// status says how many, and the upload resumes from there.
func TestTruncatedChunk(t *testing.T) {
	e := newEnv(t)
	content := bytes.Repeat([]byte("x"), 1000)
	d := digest.FromBytes(content)
	loc := e.do("POST", "/v2/r/blobs/uploads/", nil).header.Get("Location")

	conn, err := net.Dial("tcp", e.host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000\r\nContent-Range: 0-999\r\n\r\n", loc, e.host)
	conn.Write(content[:400])
	conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	conn.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "BLOB_UPLOAD_INVALID") {
		t.Errorf("truncated PATCH = %d %s", resp.StatusCode, body)
	}
	r := e.do("GET", loc, nil)
	if r.header.Get("Range") != "0-399" {
		t.Fatalf("after a truncated chunk Range = %q, want 0-399", r.header.Get("Range"))
	}
	e.expect(e.do("PATCH", loc, content[400:], "Content-Range", "400-999"), http.StatusAccepted, "", "resumed chunk")
	e.expect(e.do("PUT", loc+"?digest="+d.String(), nil), http.StatusCreated, "", "finish")

	// A monolithic push cut short stores nothing.
	conn, err = net.Dial("tcp", e.host)
	if err != nil {
		t.Fatal(err)
	}
	other := digest.FromString("never complete")
	fmt.Fprintf(conn, "POST /v2/r/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: %s\r\nContent-Length: 5000\r\n\r\n", other, e.host)
	conn.Write(content[:100])
	conn.(*net.TCPConn).CloseWrite()
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	resp.Body.Close()
	conn.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("truncated monolithic push = %d", resp.StatusCode)
	}
	e.expect(e.do("HEAD", "/v2/r/blobs/"+other.String(), nil), http.StatusNotFound, "", "truncated blob")
}

// gate is an Authorizer for tests: anyone may do anything in public/, the
// subject "alice" (Basic auth) may do anything under team-a/, "limited" may
// pull from team-a/ but neither list its tags nor see it in the catalog,
// and bad credentials are challenged.
type gate struct{}

func (gate) Authenticate(r *http.Request) (access.Subject, error) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return access.Subject{}, nil
	}
	if pass != "secret" {
		return access.Subject{}, &access.Challenge{Scheme: "Basic", Realm: "berth"}
	}
	return access.Subject{Name: user}, nil
}

func (gate) Authorize(_ context.Context, s access.Subject, req access.Request) error {
	switch {
	case req.Action == "" || (req.Action == access.Catalog && req.Repository == ""):
		return nil
	case strings.HasPrefix(req.Repository, "public/"):
		return nil
	case s.Name == "flood":
		return &access.Throttle{RetryAfter: 1500 * time.Millisecond}
	case s.Anonymous():
		return &access.Challenge{Scheme: "Bearer", Realm: "https://auth.example/token", Service: "berth",
			Scope: []access.Request{req}}
	case s.Name == "alice" && strings.HasPrefix(req.Repository, "team-a/"):
		return nil
	case s.Name == "limited" && strings.HasPrefix(req.Repository, "team-a/") && req.Action == access.Pull:
		return nil
	case strings.HasPrefix(req.Repository, "missing/"):
		return &access.Denial{Reason: "project missing does not exist"}
	}
	return access.ErrDenied
}

func TestAuthorizerSeam(t *testing.T) {
	e := newEnv(t, func(o *registry.Options) { o.Authorizer = gate{} })
	alice := []string{"Authorization", "Basic " + basic("alice", "secret")}
	bob := []string{"Authorization", "Basic " + basic("bob", "secret")}

	r := e.do("POST", "/v2/team-a/app/blobs/uploads/", nil)
	e.expect(r, http.StatusUnauthorized, "UNAUTHORIZED", "anonymous push")
	if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="https://auth.example/token",service="berth",scope="repository:team-a/app:push"` {
		t.Errorf("challenge = %q", got)
	}
	e.expect(e.do("GET", "/v2/team-a/app/tags/list", nil, "Authorization", "Basic "+basic("alice", "wrong")),
		http.StatusUnauthorized, "UNAUTHORIZED", "bad password")
	e.expect(e.do("POST", "/v2/team-a/app/blobs/uploads/", nil, bob...), http.StatusForbidden, "DENIED", "bob pushes to team-a")
	r = e.do("GET", "/v2/team-a/app/tags/list", nil, "Authorization", "Basic "+basic("flood", "secret"))
	e.expect(r, http.StatusTooManyRequests, "TOOMANYREQUESTS", "throttled subject")
	if got := r.header.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After = %q, want 2 (seconds, rounded up)", got)
	}
	r = e.do("POST", "/v2/missing/app/blobs/uploads/", nil, bob...)
	e.expect(r, http.StatusForbidden, "DENIED", "push to a missing project")
	if !strings.Contains(string(r.body), "project missing does not exist") {
		t.Errorf("denial does not carry its reason: %s", r.body)
	}

	img := newImage("authz")
	for _, content := range [][]byte{img.config, img.layer} {
		d := digest.FromBytes(content)
		e.expect(e.do("POST", "/v2/team-a/app/blobs/uploads/?digest="+d.String(), content, alice...), http.StatusCreated, "", "alice pushes")
	}
	e.expect(e.do("PUT", "/v2/team-a/app/manifests/v1", img.manifest, append(alice, "Content-Type", "application/vnd.oci.image.manifest.v1+json")...),
		http.StatusCreated, "", "alice pushes a manifest")
	e.expect(e.do("GET", "/v2/team-a/app/manifests/v1", nil, bob...), http.StatusForbidden, "DENIED", "bob pulls")
	limited := []string{"Authorization", "Basic " + basic("limited", "secret")}
	e.expect(e.do("GET", "/v2/team-a/app/manifests/v1", nil, limited...), http.StatusOK, "", "a limited guest pulls")
	e.expect(e.do("GET", "/v2/team-a/app/tags/list", nil, limited...), http.StatusForbidden, "DENIED", "a limited guest lists tags")
	e.expect(e.do("DELETE", "/v2/team-a/app/manifests/v1", nil, bob...), http.StatusForbidden, "DENIED", "bob deletes")

	// Mounting into a repository bob may push to, from one he may not
	// read, falls back to an upload instead of revealing the blob.
	d := digest.FromBytes(img.layer)
	gateBob := func(o *registry.Options) { o.Authorizer = bobGate{} }
	e2 := newEnv(t, gateBob)
	e2.pushBlob("team-a/app", img.layer)
	for _, q := range []string{"?mount=" + d.String() + "&from=team-a/app", "?mount=" + d.String()} {
		r := e2.do("POST", "/v2/bob/app/blobs/uploads/"+q, nil)
		if r.status != http.StatusAccepted {
			t.Errorf("mount %s from an unreadable repository = %d, want 202", q, r.status)
		}
	}
	e2.pushBlob("bob/other", img.layer)
	if r := e2.do("POST", "/v2/bob/app/blobs/uploads/?mount="+d.String(), nil); r.status != http.StatusCreated {
		t.Errorf("anonymous mount from a readable repository = %d, want 201", r.status)
	}

	// The catalog lists only what the caller may pull.
	e.pushImage("public/base", "v1", newImage("public"))
	r = e.do("GET", "/v2/_catalog", nil)
	if !strings.Contains(string(r.body), `"repositories":["public/base"]`) {
		t.Errorf("anonymous catalog = %s", r.body)
	}
	r = e.do("GET", "/v2/_catalog", nil, alice...)
	if !strings.Contains(string(r.body), `"repositories":["public/base","team-a/app"]`) {
		t.Errorf("alice's catalog = %s", r.body)
	}
	r = e.do("GET", "/v2/_catalog", nil, limited...)
	if !strings.Contains(string(r.body), `"repositories":["public/base"]`) {
		t.Errorf("a limited guest's catalog = %s", r.body)
	}
}

// bobGate lets everyone do anything except read team-a/ (or mount from it).
type bobGate struct{}

func (bobGate) Authenticate(*http.Request) (access.Subject, error) { return access.Subject{}, nil }

func (bobGate) Authorize(_ context.Context, _ access.Subject, req access.Request) error {
	if strings.HasPrefix(req.Repository, "team-a/") && (req.Action == access.Pull || req.Action == access.MountSource) {
		return access.ErrDenied
	}
	return nil
}

func basic(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}
