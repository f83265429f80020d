package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/blob/filesystem"
	"berth.dev/berth/internal/meta/sqlite"
	"berth.dev/berth/internal/registry"
	"berth.dev/berth/internal/registry/event"
)

// env is a registry over real stores in a temporary directory, served by
// httptest.
type env struct {
	t      *testing.T
	dir    string
	srv    *httptest.Server
	reg    *registry.Registry
	blobs  *filesystem.Store
	meta   *sqlite.Store
	events *recordedEvents
	host   string // host:port, for clients that want a registry name
}

type recordedEvents struct {
	mu     sync.Mutex
	events []event.Event
}

func (r *recordedEvents) Notify(_ context.Context, e event.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recordedEvents) all() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

// newEnv starts a registry; adjust may change the options.
func newEnv(t *testing.T, adjust ...func(*registry.Options)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), events: &recordedEvents{}}
	e.open(adjust...)
	return e
}

// open (re)opens the stores over e.dir and starts a server, as a restarted
// process would.
func (e *env) open(adjust ...func(*registry.Options)) {
	t := e.t
	t.Helper()
	var err error
	if e.blobs, err = filesystem.New(filepath.Join(e.dir, "blobs")); err != nil {
		t.Fatal(err)
	}
	if e.meta, err = sqlite.Open(context.Background(), filepath.Join(e.dir, "meta.db")); err != nil {
		t.Fatal(err)
	}
	opts := registry.Options{Blobs: e.blobs, Meta: e.meta, Notifier: e.events}
	for _, a := range adjust {
		a(&opts)
	}
	if e.reg, err = registry.New(opts); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.reg)
	e.host = strings.TrimPrefix(e.srv.URL, "http://")
	srv, ms := e.srv, e.meta
	t.Cleanup(func() { srv.Close(); ms.Close() })
}

// restart stops the server and reopens everything over the same directory.
func (e *env) restart(adjust ...func(*registry.Options)) {
	e.srv.Close()
	e.meta.Close()
	e.open(adjust...)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// errorCodes returns the codes of a spec error body.
func (r response) errorCodes() []string {
	var body struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	json.Unmarshal(r.body, &body)
	var codes []string
	for _, e := range body.Errors {
		codes = append(codes, e.Code)
	}
	return codes
}

func (r response) hasError(code string) bool {
	for _, c := range r.errorCodes() {
		if c == code {
			return true
		}
	}
	return false
}

// do sends a raw request; path may be absolute ("/v2/…") or a Location
// header's value. headers alternate name, value.
func (e *env) do(method, path string, body []byte, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		e.t.Errorf("%s %s: Docker-Distribution-API-Version = %q", method, path, resp.Header.Get("Docker-Distribution-API-Version"))
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// expect fails the test unless r has the status and, if code is not empty,
// that error code.
func (e *env) expect(r response, status int, code string, what string) {
	e.t.Helper()
	if r.status != status || (code != "" && !r.hasError(code)) {
		e.t.Errorf("%s: status %d %v, want %d %s; body %s", what, r.status, r.errorCodes(), status, code, r.body)
	}
}

// pushBlob uploads content monolithically into repo.
func (e *env) pushBlob(repo string, content []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(content)
	r := e.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), content, "Content-Type", "application/octet-stream")
	if r.status != http.StatusCreated {
		e.t.Fatalf("push blob: status %d %s", r.status, r.body)
	}
	return d
}

// image is a minimal OCI image: config and one layer, pushed as blobs.
type image struct {
	config, layer []byte
	manifest      []byte
	digest        digest.Digest
}

func newImage(seed string) image {
	layer := []byte("layer of " + seed)
	config := []byte(`{"architecture":"amd64","os":"linux","seed":"` + seed + `"}`)
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest.FromBytes(config).String() +
		`","size":` + itoa(len(config)) + `},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` +
		digest.FromBytes(layer).String() + `","size":` + itoa(len(layer)) + `}]}`)
	return image{config: config, layer: layer, manifest: manifest, digest: digest.FromBytes(manifest)}
}

func itoa(n int) string { return strconv.Itoa(n) }

// pushImage pushes an image's blobs and manifest under ref.
func (e *env) pushImage(repo, ref string, img image) {
	e.t.Helper()
	e.pushBlob(repo, img.config)
	e.pushBlob(repo, img.layer)
	r := e.do("PUT", "/v2/"+repo+"/manifests/"+ref, img.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if r.status != http.StatusCreated {
		e.t.Fatalf("push manifest %s:%s: status %d %s", repo, ref, r.status, r.body)
	}
}
