package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/registry"
	"berth.dev/berth/internal/registry/event"
)

func TestBase(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/v2/", nil)
	if r.status != http.StatusOK || string(r.body) != "{}" {
		t.Errorf("GET /v2/ = %d %q", r.status, r.body)
	}
	e.expect(e.do("POST", "/v2/", nil), http.StatusMethodNotAllowed, "UNSUPPORTED", "POST /v2/")
	e.expect(e.do("GET", "/v2/repo/nonsense/x", nil), http.StatusNotFound, "UNSUPPORTED", "unknown endpoint")
}

func TestInvalidRepositoryNames(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{
		"UPPER/case",
		"a/../b",
		"..",
		"a/./b",
		"/etc/passwd",
		"a//b",
		"-leading",
		"trailing-",
		"a___b",
		"a..b",
		"a/b/",
		"space name",
		"uni\u00e9code",
		strings.Repeat("a", 256),
	} {
		for _, p := range []string{"/manifests/latest", "/blobs/" + digest.FromString("x").String(), "/tags/list",
			"/blobs/uploads/", "/referrers/" + digest.FromString("x").String()} {
			r := e.do("GET", "/v2/"+name+p, nil)
			if name == "a/b/" && p == "/tags/list" {
				continue // "a/b//tags/list": the empty component is caught, as a 400 or a 404 route
			}
			if r.status != http.StatusBadRequest && r.status != http.StatusNotFound && r.status != http.StatusMethodNotAllowed {
				t.Errorf("GET /v2/%s%s = %d, want a 4xx", name, p, r.status)
			}
			if r.status == http.StatusOK || r.status == http.StatusCreated || r.status == http.StatusAccepted {
				t.Errorf("GET /v2/%s%s succeeded", name, p)
			}
		}
		e.expect(e.do("GET", "/v2/"+name+"/manifests/latest", nil), http.StatusBadRequest, "NAME_INVALID", "name "+name)
	}
	// Escaped characters never reach the name check: "%2e%2e" is "..".
	for _, p := range []string{"/v2/%2e%2e/x/manifests/latest", "/v2/a%2fb/manifests/latest", "/v2/a/manifests/%6catest"} {
		e.expect(e.do("GET", p, nil), http.StatusBadRequest, "NAME_INVALID", p)
	}
	// Valid names of every shape.
	for _, name := range []string{"a", "a/b/c", "a.b", "a_b", "a__b", "a-b", "a---b", "0/9", strings.Repeat("a", 255)} {
		e.expect(e.do("GET", "/v2/"+name+"/manifests/latest", nil), http.StatusNotFound, "MANIFEST_UNKNOWN", "name "+name)
	}
}

func TestInvalidReferences(t *testing.T) {
	e := newEnv(t)
	img := newImage("refs")
	e.pushImage("r", "ok", img)
	for _, tc := range []struct {
		ref, code string
	}{
		{"-bad", "MANIFEST_INVALID"},
		{".bad", "MANIFEST_INVALID"},
		{strings.Repeat("t", 129), "MANIFEST_INVALID"},
		{"sha256:xyz", "DIGEST_INVALID"},
		{"sha256:" + strings.ToUpper(img.digest.Encoded()), "DIGEST_INVALID"},
		{"md5:d41d8cd98f00b204e9800998ecf8427e", "DIGEST_INVALID"},
		{"sha384:" + strings.Repeat("a", 96), "DIGEST_INVALID"},
	} {
		e.expect(e.do("GET", "/v2/r/manifests/"+tc.ref, nil), http.StatusBadRequest, tc.code, "GET manifest "+tc.ref)
		e.expect(e.do("PUT", "/v2/r/manifests/"+tc.ref, img.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json"),
			http.StatusBadRequest, tc.code, "PUT manifest "+tc.ref)
	}
	for _, ref := range []string{"sha256:xyz", "latest", "md5:d41d8cd98f00b204e9800998ecf8427e"} {
		e.expect(e.do("GET", "/v2/r/blobs/"+ref, nil), http.StatusBadRequest, "DIGEST_INVALID", "GET blob "+ref)
		e.expect(e.do("GET", "/v2/r/referrers/"+ref, nil), http.StatusBadRequest, "DIGEST_INVALID", "referrers "+ref)
	}
	e.expect(e.do("PUT", "/v2/r/manifests/"+img.digest.String()+"?tag=-bad", img.manifest,
		"Content-Type", "application/vnd.oci.image.manifest.v1+json"), http.StatusBadRequest, "MANIFEST_INVALID", "bad tag parameter")
}

func TestBlobPullPushAndRange(t *testing.T) {
	e := newEnv(t)
	content := bytes.Repeat([]byte("0123456789"), 300)
	d := e.pushBlob("r", content)
	r := e.do("GET", "/v2/r/blobs/"+d.String(), nil)
	if r.status != http.StatusOK || !bytes.Equal(r.body, content) || r.header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("GET blob = %d, %d bytes, digest header %q", r.status, len(r.body), r.header.Get("Docker-Content-Digest"))
	}
	r = e.do("HEAD", "/v2/r/blobs/"+d.String(), nil)
	if r.status != http.StatusOK || r.header.Get("Content-Length") != "3000" || len(r.body) != 0 {
		t.Errorf("HEAD blob = %d, Content-Length %q", r.status, r.header.Get("Content-Length"))
	}
	for _, tc := range []struct {
		rng    string
		status int
		want   []byte
	}{
		{"bytes=10-19", http.StatusPartialContent, content[10:20]},
		{"bytes=2990-", http.StatusPartialContent, content[2990:]},
		{"bytes=-5", http.StatusPartialContent, content[2995:]},
		{"bytes=2000-9000", http.StatusPartialContent, content[2000:]},
		{"bytes=500-0", http.StatusRequestedRangeNotSatisfiable, nil},
		{"bytes=5000-6000", http.StatusRequestedRangeNotSatisfiable, nil},
	} {
		r := e.do("GET", "/v2/r/blobs/"+d.String(), nil, "Range", tc.rng)
		if r.status != tc.status || (tc.want != nil && !bytes.Equal(r.body, tc.want)) {
			t.Errorf("Range %s = %d, %d bytes; want %d, %d bytes", tc.rng, r.status, len(r.body), tc.status, len(tc.want))
		}
	}
	r = e.do("GET", "/v2/r/blobs/"+d.String(), nil, "If-None-Match", `"`+d.String()+`"`)
	if r.status != http.StatusNotModified {
		t.Errorf("If-None-Match = %d, want 304", r.status)
	}
	// Another repository cannot read it.
	e.expect(e.do("GET", "/v2/other/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN", "blob from another repository")
	e.expect(e.do("HEAD", "/v2/other/blobs/"+d.String(), nil), http.StatusNotFound, "", "HEAD blob from another repository")
	// Delete unlinks it from r.
	e.expect(e.do("DELETE", "/v2/r/blobs/"+d.String(), nil), http.StatusAccepted, "", "DELETE blob")
	e.expect(e.do("GET", "/v2/r/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN", "GET after DELETE")
	e.expect(e.do("DELETE", "/v2/r/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN", "second DELETE")
	e.expect(e.do("PUT", "/v2/r/blobs/"+d.String(), nil), http.StatusMethodNotAllowed, "UNSUPPORTED", "PUT on a blob")
}

func TestWrongDigestStoresNothing(t *testing.T) {
	e := newEnv(t)
	content := []byte("the real content")
	wrong := digest.FromString("what the client claimed")
	countBlobs := func() int {
		n := 0
		e.blobs.Walk(context.Background(), func(blob.Info) error { n++; return nil })
		return n
	}
	// Monolithic POST.
	e.expect(e.do("POST", "/v2/r/blobs/uploads/?digest="+wrong.String(), content), http.StatusBadRequest, "DIGEST_INVALID", "monolithic")
	// POST then PUT.
	r := e.do("POST", "/v2/r/blobs/uploads/", nil)
	loc := r.header.Get("Location")
	e.expect(e.do("PUT", loc+"?digest="+wrong.String(), content), http.StatusBadRequest, "DIGEST_INVALID", "PUT")
	e.expect(e.do("GET", loc, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "session after a wrong digest")
	// Chunked then PUT.
	r = e.do("POST", "/v2/r/blobs/uploads/", nil)
	loc = r.header.Get("Location")
	e.expect(e.do("PATCH", loc, content, "Content-Range", fmt.Sprintf("0-%d", len(content)-1)), http.StatusAccepted, "", "PATCH")
	e.expect(e.do("PUT", loc+"?digest="+wrong.String(), nil), http.StatusBadRequest, "DIGEST_INVALID", "chunked PUT")
	// An unsupported algorithm.
	e.expect(e.do("POST", "/v2/r/blobs/uploads/?digest=md5:d41d8cd98f00b204e9800998ecf8427e", content),
		http.StatusBadRequest, "DIGEST_INVALID", "md5")
	for _, d := range []digest.Digest{wrong, digest.FromBytes(content)} {
		e.expect(e.do("HEAD", "/v2/r/blobs/"+d.String(), nil), http.StatusNotFound, "", "HEAD "+d.String())
	}
	if n := countBlobs(); n != 0 {
		t.Errorf("%d blobs stored after wrong digests", n)
	}
	uploads := 0
	e.blobs.WalkUploads(context.Background(), func(blob.UploadInfo) error { uploads++; return nil })
	if uploads != 0 {
		t.Errorf("%d upload sessions left after wrong digests", uploads)
	}
}

func TestChunkedUploadProtocol(t *testing.T) {
	e := newEnv(t)
	content := bytes.Repeat([]byte("abcdefgh"), 1000) // 8000 bytes
	d := digest.FromBytes(content)
	r := e.do("POST", "/v2/r/blobs/uploads/", nil)
	if r.status != http.StatusAccepted || r.header.Get("Range") != "0-0" || r.header.Get("Docker-Upload-UUID") == "" {
		t.Fatalf("POST = %d, Range %q", r.status, r.header.Get("Range"))
	}
	loc := r.header.Get("Location")
	r = e.do("PATCH", loc, content[:3000], "Content-Range", "0-2999", "Content-Type", "application/octet-stream")
	if r.status != http.StatusAccepted || r.header.Get("Range") != "0-2999" {
		t.Fatalf("PATCH 1 = %d, Range %q", r.status, r.header.Get("Range"))
	}
	loc = r.header.Get("Location")
	// Out of order: skips ahead, then goes back to the start.
	for _, cr := range []string{"4000-4999", "0-999", "3001-4000", "garbage", "5-2"} {
		body := content[:1000]
		if cr == "5-2" || cr == "garbage" {
			body = content[:10]
		}
		r := e.do("PATCH", loc, body, "Content-Range", cr)
		if r.status != http.StatusRequestedRangeNotSatisfiable || r.header.Get("Range") != "0-2999" || r.header.Get("Location") == "" {
			t.Errorf("out-of-order PATCH %s = %d, Range %q, Location %q", cr, r.status, r.header.Get("Range"), r.header.Get("Location"))
		}
	}
	// Content-Length disagreeing with Content-Range.
	e.expect(e.do("PATCH", loc, content[3000:3500], "Content-Range", "3000-3999"), http.StatusBadRequest, "SIZE_INVALID", "short chunk")
	r = e.do("GET", loc, nil)
	if r.status != http.StatusNoContent || r.header.Get("Range") != "0-2999" {
		t.Errorf("status = %d, Range %q", r.status, r.header.Get("Range"))
	}
	// A streamed chunk without Content-Range.
	e.expect(e.do("PATCH", loc, content[3000:6000]), http.StatusAccepted, "", "streamed PATCH")
	// The last chunk travels with the PUT.
	r = e.do("PUT", loc+"?digest="+d.String(), content[6000:], "Content-Range", "6000-7999")
	if r.status != http.StatusCreated || r.header.Get("Docker-Content-Digest") != d.String() ||
		r.header.Get("Location") != "/v2/r/blobs/"+d.String() {
		t.Fatalf("PUT = %d %s; headers %v", r.status, r.body, r.header)
	}
	if got := e.do("GET", "/v2/r/blobs/"+d.String(), nil); !bytes.Equal(got.body, content) {
		t.Errorf("chunked blob content differs")
	}
	e.expect(e.do("GET", loc, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "session after finishing")
	// A session belongs to its repository.
	r = e.do("POST", "/v2/r/blobs/uploads/", nil)
	other := strings.Replace(r.header.Get("Location"), "/v2/r/", "/v2/other/", 1)
	e.expect(e.do("PATCH", other, []byte("x")), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "session through another repository")
	e.expect(e.do("PUT", r.header.Get("Location"), nil), http.StatusBadRequest, "DIGEST_INVALID", "PUT without digest")
	e.expect(e.do("DELETE", r.header.Get("Location"), nil), http.StatusNoContent, "", "cancel")
	e.expect(e.do("DELETE", r.header.Get("Location"), nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "cancel twice")
	e.expect(e.do("GET", "/v2/r/blobs/uploads/not-a-session", nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "unknown session")
	e.expect(e.do("GET", "/v2/r/blobs/uploads/..%2f..%2fx", nil), http.StatusBadRequest, "NAME_INVALID", "escaped session id")
}

func TestEmptyBlobAndSha512(t *testing.T) {
	e := newEnv(t)
	for _, d := range []digest.Digest{digest.FromBytes(nil), digest.SHA512.FromBytes(nil), digest.SHA512.FromString("five")} {
		content := []byte{}
		if d == digest.SHA512.FromString("five") {
			content = []byte("five")
		}
		e.expect(e.do("POST", "/v2/r/blobs/uploads/?digest="+d.String(), content), http.StatusCreated, "", "push "+d.String())
		r := e.do("GET", "/v2/r/blobs/"+d.String(), nil)
		if r.status != http.StatusOK || !bytes.Equal(r.body, content) {
			t.Errorf("GET %s = %d %q", d, r.status, r.body)
		}
	}
}

func TestMounts(t *testing.T) {
	e := newEnv(t)
	d := e.pushBlob("src", []byte("shared layer"))
	r := e.do("POST", "/v2/dst/blobs/uploads/?mount="+d.String()+"&from=src", nil)
	if r.status != http.StatusCreated || r.header.Get("Location") != "/v2/dst/blobs/"+d.String() {
		t.Fatalf("mount = %d %v", r.status, r.header)
	}
	e.expect(e.do("HEAD", "/v2/dst/blobs/"+d.String(), nil), http.StatusOK, "", "mounted blob")
	// Anonymous mount: found in some repository the caller may read.
	e.expect(e.do("POST", "/v2/third/blobs/uploads/?mount="+d.String(), nil), http.StatusCreated, "", "anonymous mount")
	// A blob the source lacks starts an upload instead.
	missing := digest.FromString("nowhere")
	for _, q := range []string{"?mount=" + missing.String() + "&from=src", "?mount=" + missing.String(),
		"?mount=" + d.String() + "&from=Bad..Name", "?mount=sha256:nope&from=src"} {
		r := e.do("POST", "/v2/dst2/blobs/uploads/"+q, nil)
		if r.status != http.StatusAccepted || !strings.Contains(r.header.Get("Location"), "/v2/dst2/blobs/uploads/") {
			t.Errorf("mount %s = %d, want 202 with an upload session", q, r.status)
		}
	}
}

func TestManifestPushPullDelete(t *testing.T) {
	e := newEnv(t)
	img := newImage("one")
	e.pushImage("team/app", "v1", img)
	for _, ref := range []string{"v1", img.digest.String()} {
		r := e.do("GET", "/v2/team/app/manifests/"+ref, nil)
		if r.status != http.StatusOK || !bytes.Equal(r.body, img.manifest) ||
			r.header.Get("Content-Type") != "application/vnd.oci.image.manifest.v1+json" ||
			r.header.Get("Docker-Content-Digest") != img.digest.String() {
			t.Errorf("GET manifest %s = %d, type %q", ref, r.status, r.header.Get("Content-Type"))
		}
		r = e.do("HEAD", "/v2/team/app/manifests/"+ref, nil)
		if r.status != http.StatusOK || r.header.Get("Content-Length") != fmt.Sprint(len(img.manifest)) || len(r.body) != 0 {
			t.Errorf("HEAD manifest %s = %d, length %q", ref, r.status, r.header.Get("Content-Length"))
		}
	}
	// Manifests can be read through the blobs endpoint, as with distribution.
	if r := e.do("GET", "/v2/team/app/blobs/"+img.digest.String(), nil); !bytes.Equal(r.body, img.manifest) {
		t.Errorf("manifest through the blobs endpoint = %d", r.status)
	}
	// A tag in the referrers fallback schema is an ordinary tag.
	fallback := "sha256-" + img.digest.Encoded()
	e.expect(e.do("PUT", "/v2/team/app/manifests/"+fallback, img.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json"),
		http.StatusCreated, "", "fallback-schema tag")
	e.expect(e.do("GET", "/v2/team/app/manifests/"+fallback, nil), http.StatusOK, "", "GET fallback-schema tag")

	e.expect(e.do("DELETE", "/v2/team/app/manifests/v1", nil), http.StatusAccepted, "", "delete tag")
	e.expect(e.do("GET", "/v2/team/app/manifests/v1", nil), http.StatusNotFound, "MANIFEST_UNKNOWN", "deleted tag")
	e.expect(e.do("GET", "/v2/team/app/manifests/"+img.digest.String(), nil), http.StatusOK, "", "manifest after its tag went")
	e.expect(e.do("DELETE", "/v2/team/app/manifests/"+img.digest.String(), nil), http.StatusAccepted, "", "delete manifest")
	e.expect(e.do("GET", "/v2/team/app/manifests/"+img.digest.String(), nil), http.StatusNotFound, "MANIFEST_UNKNOWN", "deleted manifest")
	e.expect(e.do("GET", "/v2/team/app/manifests/"+fallback, nil), http.StatusNotFound, "MANIFEST_UNKNOWN", "tag of deleted manifest")
	e.expect(e.do("DELETE", "/v2/team/app/manifests/"+img.digest.String(), nil), http.StatusNotFound, "MANIFEST_UNKNOWN", "delete twice")
	e.expect(e.do("DELETE", "/v2/team/app/manifests/nope", nil), http.StatusNotFound, "MANIFEST_UNKNOWN", "delete unknown tag")
	e.expect(e.do("POST", "/v2/team/app/manifests/v1", nil), http.StatusMethodNotAllowed, "UNSUPPORTED", "POST manifest")

	var kinds []event.Kind
	for _, ev := range e.events.all() {
		kinds = append(kinds, ev.Kind)
	}
	want := []event.Kind{event.ManifestPushed, event.ManifestPushed, event.TagDeleted, event.ManifestDeleted}
	if !slices.Equal(kinds, want) {
		t.Errorf("events %v, want %v", kinds, want)
	}
	if ev := e.events.all()[3]; ev.Repository != "team/app" || ev.Digest != img.digest || !slices.Equal(ev.Tags, []string{fallback}) {
		t.Errorf("delete event = %+v", ev)
	}
}

func TestManifestDigestMismatch(t *testing.T) {
	e := newEnv(t)
	img := newImage("mismatch")
	e.pushBlob("r", img.config)
	e.pushBlob("r", img.layer)
	padded := append(append([]byte(nil), img.manifest...), ' ', ' ')
	e.expect(e.do("PUT", "/v2/r/manifests/"+img.digest.String(), padded, "Content-Type", "application/vnd.oci.image.manifest.v1+json"),
		http.StatusBadRequest, "DIGEST_INVALID", "content not matching the digest reference")
	e.expect(e.do("GET", "/v2/r/manifests/"+img.digest.String(), nil), http.StatusNotFound, "MANIFEST_UNKNOWN", "after mismatch")
	// sha512 references hash with sha512.
	d512 := digest.SHA512.FromBytes(img.manifest)
	e.expect(e.do("PUT", "/v2/r/manifests/"+d512.String(), img.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json"),
		http.StatusCreated, "", "sha512 reference")
	e.expect(e.do("GET", "/v2/r/manifests/"+d512.String(), nil), http.StatusOK, "", "GET by sha512")
}

func TestManifestMissingBlobs(t *testing.T) {
	img := newImage("sparse")
	t.Run("config is required", func(t *testing.T) {
		e := newEnv(t)
		e.pushBlob("r", img.layer)
		r := e.do("PUT", "/v2/r/manifests/v1", img.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
		e.expect(r, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", "missing config")
		if !strings.Contains(string(r.body), digest.FromBytes(img.config).String()) {
			t.Errorf("error does not name the missing blob: %s", r.body)
		}
		e.expect(e.do("GET", "/v2/r/manifests/v1", nil), http.StatusNotFound, "MANIFEST_UNKNOWN", "rejected manifest")
		// A blob in another repository does not count.
		e.pushBlob("elsewhere", img.config)
		e.expect(e.do("PUT", "/v2/r/manifests/v1", img.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json"),
			http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", "config only in another repository")
	})
	t.Run("sparse layers by default", func(t *testing.T) {
		e := newEnv(t)
		e.pushBlob("r", img.config)
		e.expect(e.do("PUT", "/v2/r/manifests/v1", img.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json"),
			http.StatusCreated, "", "sparse image")
	})
	t.Run("layers required when configured", func(t *testing.T) {
		e := newEnv(t, func(o *registry.Options) { o.RequireLayers = true })
		e.pushBlob("r", img.config)
		e.expect(e.do("PUT", "/v2/r/manifests/v1", img.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json"),
			http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", "missing layer")
		// Non-distributable layers and layers with URLs are never required.
		foreign := strings.Replace(string(img.manifest), `"application/vnd.oci.image.layer.v1.tar"`,
			`"application/vnd.oci.image.layer.nondistributable.v1.tar"`, 1)
		e.expect(e.do("PUT", "/v2/r/manifests/v2", []byte(foreign), "Content-Type", "application/vnd.oci.image.manifest.v1+json"),
			http.StatusCreated, "", "non-distributable layer")
	})
}

func TestManifestTooLarge(t *testing.T) {
	e := newEnv(t, func(o *registry.Options) { o.MaxManifestSize = 1024 })
	big := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"x":"` +
		strings.Repeat("y", 2000) + `"}}`)
	r := e.do("PUT", "/v2/r/manifests/big", big, "Content-Type", "application/vnd.oci.image.index.v1+json")
	e.expect(r, http.StatusRequestEntityTooLarge, "MANIFEST_INVALID", "manifest over the limit")
	if !strings.Contains(string(r.body), "exceeds the limit of 1024 bytes") {
		t.Errorf("unclear error: %s", r.body)
	}
	// Without Content-Length (chunked transfer) the limit still holds.
	req, _ := http.NewRequest("PUT", e.srv.URL+"/v2/r/manifests/big", struct{ *bytes.Reader }{bytes.NewReader(big)})
	req.Header.Set("Content-Type", "application/vnd.oci.image.index.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked oversized manifest = %d, want 413", resp.StatusCode)
	}
	small := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
	e.expect(e.do("PUT", "/v2/r/manifests/small", small, "Content-Type", "application/vnd.oci.image.index.v1+json"),
		http.StatusCreated, "", "manifest under the limit")
}

// The default limit is the spec's 4 MiB: a manifest of exactly that size
// is stored, one byte more is refused before it is parsed.
func TestManifestDefaultLimit(t *testing.T) {
	e := newEnv(t)
	head := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"pad":"`
	tail := `"}}`
	exact := []byte(head + strings.Repeat("p", 4<<20-len(head)-len(tail)) + tail)
	e.expect(e.do("PUT", "/v2/r/manifests/exact", exact, "Content-Type", "application/vnd.oci.image.index.v1+json"),
		http.StatusCreated, "", "a 4 MiB manifest")
	over := []byte(head + strings.Repeat("p", 4<<20-len(head)-len(tail)+1) + tail)
	r := e.do("PUT", "/v2/r/manifests/over", over, "Content-Type", "application/vnd.oci.image.index.v1+json")
	e.expect(r, http.StatusRequestEntityTooLarge, "MANIFEST_INVALID", "4 MiB and a byte")
	if !strings.Contains(string(r.body), "manifest of 4194305 bytes exceeds the limit of 4194304 bytes") {
		t.Errorf("unclear error: %s", r.body)
	}
}

func TestManifestValidation(t *testing.T) {
	e := newEnv(t)
	img := newImage("valid")
	e.pushBlob("r", img.config)
	e.pushBlob("r", img.layer)
	cfg := `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest.FromBytes(img.config).String() +
		`","size":` + itoa(len(img.config)) + `}`
	dockerCfg := strings.Replace(cfg, "application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json", 1)
	child := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + img.digest.String() + `","size":` + itoa(len(img.manifest)) + `}`
	for _, tc := range []struct {
		name, contentType, body string
		ok                      bool
	}{
		{"oci image", "application/vnd.oci.image.manifest.v1+json", string(img.manifest), true},
		{"media type only in the body", "", string(img.manifest), true},
		{"media type only in Content-Type", "application/vnd.oci.image.manifest.v1+json",
			`{"schemaVersion":2,"config":` + cfg + `,"layers":[]}`, true},
		{"Content-Type with parameters", "application/vnd.oci.image.manifest.v1+json; charset=utf-8", string(img.manifest), true},
		{"docker schema2", "application/vnd.docker.distribution.manifest.v2+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":` + dockerCfg + `,"layers":[]}`, true},
		{"docker manifest list", "application/vnd.docker.distribution.manifest.list.v2+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[` + child + `]}`, true},
		{"oci index", "application/vnd.oci.image.index.v1+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + child + `]}`, true},
		{"artifact with inline config", "application/vnd.oci.image.manifest.v1+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/x.test",` +
				`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="},"layers":[]}`, true},
		{"mismatched media types", "application/vnd.oci.image.index.v1+json", string(img.manifest), false},
		{"unknown media type", "application/vnd.example.thing+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.example.thing+json","config":` + cfg + `}`, false},
		{"docker schema1", "application/vnd.docker.distribution.manifest.v1+prettyjws",
			`{"schemaVersion":1,"name":"r","tag":"x","fsLayers":[]}`, false},
		{"no media type anywhere", "", `{"schemaVersion":2,"config":` + cfg + `,"layers":[]}`, false},
		{"schema version 1", "application/vnd.oci.image.manifest.v1+json",
			`{"schemaVersion":1,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `}`, false},
		{"schema version missing", "application/vnd.oci.image.manifest.v1+json",
			`{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `}`, false},
		{"not JSON", "application/vnd.oci.image.manifest.v1+json", `this is not json`, false},
		{"trailing garbage", "application/vnd.oci.image.manifest.v1+json", string(img.manifest) + `{}`, false},
		{"JSON array", "application/vnd.oci.image.manifest.v1+json", `[1,2]`, false},
		{"image without config", "application/vnd.oci.image.manifest.v1+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`, false},
		{"image with manifests", "application/vnd.oci.image.manifest.v1+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `,"manifests":[]}`, false},
		{"index with config", "application/vnd.oci.image.index.v1+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","config":` + cfg + `,"manifests":[]}`, false},
		{"index without manifests", "application/vnd.oci.image.index.v1+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}`, false},
		{"bad layer digest", "application/vnd.oci.image.manifest.v1+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg +
				`,"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:short","size":1}]}`, false},
		{"negative size", "application/vnd.oci.image.manifest.v1+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` +
				strings.Replace(cfg, `"size":`, `"size":-`, 1) + `,"layers":[]}`, false},
		{"descriptor without media type", "application/vnd.oci.image.manifest.v1+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` +
				strings.Replace(cfg, `"application/vnd.oci.image.config.v1+json"`, `"nonsense"`, 1) + `,"layers":[]}`, false},
		{"inline data not matching its digest", "application/vnd.oci.image.manifest.v1+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
				`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e2E="},"layers":[]}`, false},
		{"inline data of the wrong size", "application/vnd.oci.image.manifest.v1+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
				`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"YWJj"},"layers":[]}`, false},
		{"bad subject", "application/vnd.oci.image.manifest.v1+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg +
				`,"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"nope","size":1}}`, false},
		{"empty body", "application/vnd.oci.image.manifest.v1+json", ``, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var headers []string
			if tc.contentType != "" {
				headers = []string{"Content-Type", tc.contentType}
			}
			r := e.do("PUT", "/v2/r/manifests/t", []byte(tc.body), headers...)
			if tc.ok {
				e.expect(r, http.StatusCreated, "", tc.name)
			} else {
				e.expect(r, http.StatusBadRequest, "MANIFEST_INVALID", tc.name)
			}
		})
	}
}

func TestTagParametersAndSubject(t *testing.T) {
	e := newEnv(t)
	img := newImage("subject")
	e.pushImage("r", "base", img)
	sbom := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/spdx+json",` +
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="},` +
		`"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + img.digest.String() + `","size":` + itoa(len(img.manifest)) + `},` +
		`"annotations":{"org.example":"sbom"}}`)
	d := digest.FromBytes(sbom)
	r := e.do("PUT", "/v2/r/manifests/"+d.String()+"?tag=a&tag=b", sbom, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if r.status != http.StatusCreated || r.header.Get("OCI-Subject") != img.digest.String() ||
		!slices.Equal(r.header.Values("OCI-Tag"), []string{"a", "b"}) {
		t.Fatalf("PUT with subject and tags = %d, OCI-Subject %q, OCI-Tag %q", r.status, r.header.Get("OCI-Subject"), r.header.Values("OCI-Tag"))
	}
	for _, tag := range []string{"a", "b"} {
		e.expect(e.do("GET", "/v2/r/manifests/"+tag, nil), http.StatusOK, "", "tag parameter "+tag)
	}
	type index struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Manifests     []struct {
			Digest       digest.Digest     `json:"digest"`
			ArtifactType string            `json:"artifactType"`
			Annotations  map[string]string `json:"annotations"`
			Size         int               `json:"size"`
		} `json:"manifests"`
	}
	for _, tc := range []struct {
		query   string
		want    int
		filters string
	}{
		{"", 1, ""},
		{"?artifactType=" + url.QueryEscape("application/spdx+json"), 1, "artifactType"},
		{"?artifactType=application/other", 0, "artifactType"},
	} {
		r := e.do("GET", "/v2/r/referrers/"+img.digest.String()+tc.query, nil)
		var idx index
		if err := json.Unmarshal(r.body, &idx); err != nil || r.status != http.StatusOK {
			t.Fatalf("referrers%s = %d %s", tc.query, r.status, r.body)
		}
		if r.header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" || idx.SchemaVersion != 2 ||
			idx.MediaType != "application/vnd.oci.image.index.v1+json" || len(idx.Manifests) != tc.want ||
			r.header.Get("OCI-Filters-Applied") != tc.filters {
			t.Errorf("referrers%s = %+v, filters %q", tc.query, idx, r.header.Get("OCI-Filters-Applied"))
		}
		if tc.want == 1 && len(idx.Manifests) == 1 {
			m := idx.Manifests[0]
			if m.Digest != d || m.ArtifactType != "application/spdx+json" || m.Annotations["org.example"] != "sbom" || m.Size != len(sbom) {
				t.Errorf("referrer descriptor = %+v", m)
			}
		}
	}
	// An unknown subject or repository has an empty list.
	for _, p := range []string{"/v2/r/referrers/" + digest.FromString("x").String(), "/v2/never/referrers/" + img.digest.String()} {
		r := e.do("GET", p, nil)
		if r.status != http.StatusOK || !strings.Contains(string(r.body), `"manifests":[]`) {
			t.Errorf("GET %s = %d %s", p, r.status, r.body)
		}
	}
}

func TestListsPaginate(t *testing.T) {
	e := newEnv(t)
	img := newImage("tags")
	tags := []string{"a", "b", "c", "d", "e"}
	for _, tag := range tags {
		e.pushImage("repo/one", tag, img)
	}
	for _, repo := range []string{"repo/two", "repo/three", "alpha"} {
		e.pushImage(repo, "x", img)
	}
	type tagList struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	var got []string
	path := "/v2/repo/one/tags/list?n=2"
	for path != "" {
		r := e.do("GET", path, nil)
		var tl tagList
		if err := json.Unmarshal(r.body, &tl); err != nil || r.status != http.StatusOK || tl.Name != "repo/one" {
			t.Fatalf("GET %s = %d %s", path, r.status, r.body)
		}
		got = append(got, tl.Tags...)
		path = ""
		if link := r.header.Get("Link"); link != "" {
			path = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
		}
	}
	if !slices.Equal(got, tags) {
		t.Errorf("paginated tags = %v, want %v", got, tags)
	}
	r := e.do("GET", "/v2/repo/one/tags/list?last=c", nil)
	if !strings.Contains(string(r.body), `"tags":["d","e"]`) || r.header.Get("Link") != "" {
		t.Errorf("tags after c = %s, Link %q", r.body, r.header.Get("Link"))
	}
	e.expect(e.do("GET", "/v2/repo/one/tags/list?n=-1", nil), http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "negative n")
	e.expect(e.do("GET", "/v2/repo/one/tags/list?n=x", nil), http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "n=x")
	e.expect(e.do("GET", "/v2/never/seen/tags/list", nil), http.StatusNotFound, "NAME_UNKNOWN", "tags of an unknown repository")

	r = e.do("GET", "/v2/_catalog?n=2", nil)
	if !strings.Contains(string(r.body), `"repositories":["alpha","repo/one"]`) || !strings.Contains(r.header.Get("Link"), "last=repo%2Fone") {
		t.Errorf("catalog page 1 = %s, Link %q", r.body, r.header.Get("Link"))
	}
	r = e.do("GET", "/v2/_catalog?n=2&last=repo/one", nil)
	if !strings.Contains(string(r.body), `"repositories":["repo/three","repo/two"]`) || r.header.Get("Link") != "" {
		t.Errorf("catalog page 2 = %s, Link %q", r.body, r.header.Get("Link"))
	}
}

func TestConcurrentPushesOfOneBlob(t *testing.T) {
	e := newEnv(t)
	content := bytes.Repeat([]byte("same"), 50000)
	d := digest.FromBytes(content)
	var wg sync.WaitGroup
	statuses := make(chan int, 24)
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := fmt.Sprintf("r%d", i%3)
			if i%2 == 0 {
				statuses <- e.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), content).status
				return
			}
			loc := e.do("POST", "/v2/"+repo+"/blobs/uploads/", nil).header.Get("Location")
			e.do("PATCH", loc, content[:100000], "Content-Range", "0-99999")
			statuses <- e.do("PUT", loc+"?digest="+d.String(), content[100000:], "Content-Range", "100000-199999").status
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusCreated {
			t.Errorf("a concurrent push answered %d", s)
		}
	}
	for i := range 3 {
		r := e.do("GET", fmt.Sprintf("/v2/r%d/blobs/%s", i, d), nil)
		if !bytes.Equal(r.body, content) {
			t.Errorf("r%d: content differs after concurrent pushes", i)
		}
	}
}

func TestConcurrentPushesOfOneTag(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	digests := make([]digest.Digest, 16)
	for i := range digests {
		img := newImage(fmt.Sprint("racer ", i))
		digests[i] = img.digest
		e.pushBlob("r", img.config)
		e.pushBlob("r", img.layer)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				r := e.do("PUT", "/v2/r/manifests/latest", img.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
				if r.status != http.StatusCreated {
					t.Errorf("concurrent tag push = %d %s", r.status, r.body)
				}
				// Reads race the writes through the cache.
				e.do("GET", "/v2/r/manifests/latest", nil)
			}
		}()
	}
	wg.Wait()
	r := e.do("GET", "/v2/r/manifests/latest", nil)
	got := digest.Digest(r.header.Get("Docker-Content-Digest"))
	if !slices.Contains(digests, got) || digest.FromBytes(r.body) != got {
		t.Fatalf("latest = %s (body hashes to %s)", got, digest.FromBytes(r.body))
	}
	stored, err := e.meta.Tag(context.Background(), "r", "latest")
	if err != nil || stored != got {
		t.Errorf("the cache serves %s but the database says %s (%v)", got, stored, err)
	}
}

func TestCacheFollowsWrites(t *testing.T) {
	e := newEnv(t)
	one, two := newImage("one"), newImage("two")
	e.pushImage("r", "v", one)
	e.do("GET", "/v2/r/manifests/v", nil) // warm the cache
	e.pushImage("r", "v", two)
	if r := e.do("GET", "/v2/r/manifests/v", nil); digest.Digest(r.header.Get("Docker-Content-Digest")) != two.digest {
		t.Errorf("tag served stale after a push")
	}
	e.do("GET", "/v2/r/manifests/"+two.digest.String(), nil)
	e.expect(e.do("DELETE", "/v2/r/manifests/"+two.digest.String(), nil), http.StatusAccepted, "", "delete")
	e.expect(e.do("GET", "/v2/r/manifests/"+two.digest.String(), nil), http.StatusNotFound, "MANIFEST_UNKNOWN", "cached manifest after delete")
	e.expect(e.do("GET", "/v2/r/manifests/v", nil), http.StatusNotFound, "MANIFEST_UNKNOWN", "cached tag after delete")
	// Changes made behind the registry's back reach the cache through
	// Notify, as the garbage collector's do.
	e.pushImage("r", "w", one)
	e.do("GET", "/v2/r/manifests/w", nil)
	if _, err := e.meta.DeleteManifest(context.Background(), "r", one.digest); err != nil {
		t.Fatal(err)
	}
	e.reg.Notify(context.Background(), event.Event{Kind: event.ManifestDeleted, Repository: "r", Digest: one.digest, Tags: []string{"w"}})
	e.expect(e.do("GET", "/v2/r/manifests/w", nil), http.StatusNotFound, "MANIFEST_UNKNOWN", "after a notified delete")
}

func TestUploadResumesAfterRestart(t *testing.T) {
	e := newEnv(t)
	content := bytes.Repeat([]byte("resume me "), 10000)
	d := digest.FromBytes(content)
	loc := e.do("POST", "/v2/r/blobs/uploads/", nil).header.Get("Location")
	e.expect(e.do("PATCH", loc, content[:40000], "Content-Range", "0-39999"), http.StatusAccepted, "", "first chunk")
	e.restart()
	r := e.do("GET", loc, nil)
	if r.status != http.StatusNoContent || r.header.Get("Range") != "0-39999" {
		t.Fatalf("status after restart = %d, Range %q", r.status, r.header.Get("Range"))
	}
	e.expect(e.do("PATCH", loc, content[40000:70000], "Content-Range", "40000-69999"), http.StatusAccepted, "", "second chunk")
	e.restart()
	e.expect(e.do("PUT", loc+"?digest="+d.String(), content[70000:], "Content-Range", fmt.Sprintf("70000-%d", len(content)-1)),
		http.StatusCreated, "", "final chunk after a second restart")
	if r := e.do("GET", "/v2/r/blobs/"+d.String(), nil); !bytes.Equal(r.body, content) {
		t.Errorf("content differs after an upload across restarts")
	}
}
