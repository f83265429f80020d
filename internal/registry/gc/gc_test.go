package gc_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/blob/filesystem"
	"berth.dev/berth/internal/meta/sqlite"
	"berth.dev/berth/internal/registry"
	"berth.dev/berth/internal/registry/event"
	"berth.dev/berth/internal/registry/fsck"
	"berth.dev/berth/internal/registry/gc"
)

type env struct {
	t      *testing.T
	dir    string
	url    string
	reg    *registry.Registry
	blobs  *filesystem.Store
	meta   *sqlite.Store
	events *events
}

type events struct {
	mu   sync.Mutex
	list []event.Event
}

func (e *events) Notify(_ context.Context, ev event.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, ev)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	bs, err := filesystem.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := sqlite.Open(context.Background(), filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Options{Blobs: bs, Meta: ms})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(func() { srv.Close(); ms.Close() })
	return &env{t: t, dir: dir, url: srv.URL, reg: reg, blobs: bs, meta: ms, events: &events{}}
}

func (e *env) do(method, path string, body []byte, headers ...string) (int, http.Header, []byte) {
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Error(err)
		return 0, nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (e *env) pushBlob(repo string, content []byte) (digest.Digest, int) {
	d := digest.FromBytes(content)
	status, _, _ := e.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), content)
	return d, status
}

// manifest builds an image manifest over a config and layers, with an
// optional subject.
func manifest(config []byte, layers [][]byte, subject []byte) []byte {
	desc := func(mt string, b []byte) string {
		return `{"mediaType":"` + mt + `","digest":"` + digest.FromBytes(b).String() + `","size":` + strconv.Itoa(len(b)) + `}`
	}
	var ls []string
	for _, l := range layers {
		ls = append(ls, desc("application/vnd.oci.image.layer.v1.tar", l))
	}
	m := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` +
		desc("application/vnd.oci.image.config.v1+json", config) + `,"layers":[` + strings.Join(ls, ",") + `]`
	if subject != nil {
		m += `,"subject":` + desc("application/vnd.oci.image.manifest.v1+json", subject)
	}
	return []byte(m + "}")
}

type pushed struct {
	manifest []byte
	blobs    [][]byte
}

// push uploads blobs and the manifest under ref; it reports the manifest
// PUT's status.
func (e *env) push(repo, ref string, p pushed) int {
	for _, b := range p.blobs {
		if _, status := e.pushBlob(repo, b); status != http.StatusCreated {
			return status
		}
	}
	status, _, _ := e.do("PUT", "/v2/"+repo+"/manifests/"+ref, p.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	return status
}

func image(seed string, shared []byte) pushed {
	config := []byte(`{"seed":"` + seed + `"}`)
	layer := []byte("layer " + seed)
	layers := [][]byte{layer}
	if shared != nil {
		layers = append(layers, shared)
	}
	return pushed{manifest: manifest(config, layers, nil), blobs: append([][]byte{config}, layers...)}
}

func (e *env) run(untagged bool, grace time.Duration) gc.Report {
	e.t.Helper()
	rep, err := gc.Run(context.Background(), e.meta, e.blobs, gc.Options{
		Untagged: untagged, Grace: grace, UploadTTL: 24 * time.Hour,
		Notifier: event.Notifiers{e.reg, e.events}, LockUpload: e.reg.LockUpload,
	})
	if err != nil {
		e.t.Fatalf("gc: %v", err)
	}
	return rep
}

func (e *env) blobExists(d digest.Digest) bool {
	_, err := e.blobs.Stat(context.Background(), d)
	return err == nil
}

func (e *env) checkClean() {
	e.t.Helper()
	rep, err := fsck.Run(context.Background(), e.meta, e.blobs, fsck.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range rep.Problems {
		e.t.Errorf("fsck: %s", p)
	}
}

func TestUnreferencedBlobsSurviveTheGracePeriod(t *testing.T) {
	e := newEnv(t)
	d, _ := e.pushBlob("r", []byte("pushed, manifest not yet"))
	if rep := e.run(true, time.Hour); rep.Blobs != 0 || rep.BlobLinks != 0 || !e.blobExists(d) {
		t.Fatalf("a blob within the grace period was collected: %+v", rep)
	}
	status, _, _ := e.do("HEAD", "/v2/r/blobs/"+d.String(), nil)
	if status != http.StatusOK {
		t.Errorf("blob HEAD after gc = %d", status)
	}
	rep := e.run(true, 0)
	if rep.BlobLinks != 1 || rep.Blobs != 1 || e.blobExists(d) {
		t.Errorf("an unreferenced blob past the grace period survived: %+v", rep)
	}
	// The repository stays while the store remembers the link it pruned
	// (so a late manifest naming the blob is refused), then goes.
	if rep.Repositories != 0 {
		t.Errorf("the repository went while its pruned link is remembered: %+v", rep)
	}
	if n, err := e.meta.ForgetPrunedLinks(context.Background(), time.Now().Add(gc.PrunedLinkMemory)); err != nil || n != 1 {
		t.Fatalf("ForgetPrunedLinks = %d, %v; want 1", n, err)
	}
	if rep := e.run(true, 0); rep.Repositories != 1 {
		t.Errorf("the emptied repository was not pruned: %+v", rep)
	}
	e.checkClean()
}

// The attack: a layer uploaded longer than the grace period before the
// manifest naming it is collected, and the manifest push must then fail
// (MANIFEST_BLOB_UNKNOWN: push the layer again) instead of acknowledging an
// image that can never be pulled. Layers never uploaded, non-distributable
// ones and ones with URLs keep working (sparse images).
func TestManifestNamingACollectedLayerIsRefused(t *testing.T) {
	e := newEnv(t)
	config, layer := []byte(`{"os":"linux"}`), []byte("layer uploaded long before its manifest")
	m := manifest(config, [][]byte{layer}, nil)
	layerDigest, status := e.pushBlob("r", layer)
	if status != http.StatusCreated {
		t.Fatal("push layer")
	}
	// Grace 0: the layer is past its grace period (as with --gc-grace 2s
	// and a 3 s wait).
	if rep := e.run(false, 0); rep.BlobLinks != 1 || rep.Blobs != 1 {
		t.Fatalf("gc did not collect the unreferenced layer: %+v", rep)
	}
	if _, status := e.pushBlob("r", config); status != http.StatusCreated {
		t.Fatal("push config")
	}
	status, _, body := e.do("PUT", "/v2/r/manifests/v1", m, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if status != http.StatusBadRequest || !strings.Contains(string(body), "MANIFEST_BLOB_UNKNOWN") ||
		!strings.Contains(string(body), layerDigest.String()) || !strings.Contains(string(body), "push the blob again") {
		t.Fatalf("manifest naming a collected layer = %d %s; want 400 MANIFEST_BLOB_UNKNOWN naming it", status, body)
	}
	if status, _, _ := e.do("GET", "/v2/r/manifests/v1", nil); status != http.StatusNotFound {
		t.Errorf("the refused manifest is served: %d", status)
	}
	// The client pushes the layer again, as it is told; now the push is
	// whole and claims the layer: collection right after keeps it.
	if _, status := e.pushBlob("r", layer); status != http.StatusCreated {
		t.Fatal("push layer again")
	}
	if status, _, body := e.do("PUT", "/v2/r/manifests/v1", m, "Content-Type", "application/vnd.oci.image.manifest.v1+json"); status != http.StatusCreated {
		t.Fatalf("manifest after the layer came back = %d %s", status, body)
	}
	e.run(true, 0)
	if status, h, _ := e.do("HEAD", "/v2/r/blobs/"+layerDigest.String(), nil); status != http.StatusOK || h.Get("Content-Length") != strconv.Itoa(len(layer)) {
		t.Errorf("HEAD of the layer after gc = %d", status)
	}

	// Sparse manifests in a repository that never held the layers.
	if _, status := e.pushBlob("sparse", config); status != http.StatusCreated {
		t.Fatal("push config")
	}
	for ref, mediaType := range map[string]string{
		"never-uploaded":    "application/vnd.oci.image.layer.v1.tar",
		"non-distributable": "application/vnd.oci.image.layer.nondistributable.v1.tar",
	} {
		sm := strings.Replace(string(manifest(config, [][]byte{[]byte("not here " + ref)}, nil)),
			`"application/vnd.oci.image.layer.v1.tar"`, `"`+mediaType+`"`, 1)
		if status, _, body := e.do("PUT", "/v2/sparse/manifests/"+ref, []byte(sm), "Content-Type", "application/vnd.oci.image.manifest.v1+json"); status != http.StatusCreated {
			t.Errorf("sparse manifest (%s) = %d %s", ref, status, body)
		}
	}
	// A non-distributable layer the repository once held and lost is not
	// required either: clients never upload those.
	foreign := []byte("foreign layer")
	if _, status := e.pushBlob("sparse", foreign); status != http.StatusCreated {
		t.Fatal("push foreign layer")
	}
	e.run(false, 0)
	if _, status := e.pushBlob("sparse", config); status != http.StatusCreated {
		t.Fatal("push config")
	}
	fm := strings.Replace(string(manifest(config, [][]byte{foreign}, nil)),
		`"application/vnd.oci.image.layer.v1.tar"`, `"application/vnd.oci.image.layer.nondistributable.v1.tar"`, 1)
	if status, _, body := e.do("PUT", "/v2/sparse/manifests/foreign", []byte(fm), "Content-Type", "application/vnd.oci.image.manifest.v1+json"); status != http.StatusCreated {
		t.Errorf("manifest naming a collected non-distributable layer = %d %s", status, body)
	}
	e.checkClean()
}

func TestUntaggedManifests(t *testing.T) {
	e := newEnv(t)
	shared := []byte("shared base layer")
	keep, drop := image("keep", shared), image("drop", shared)
	if e.push("r", "v1", keep) != http.StatusCreated || e.push("r", "tmp", drop) != http.StatusCreated {
		t.Fatal("push failed")
	}
	dropDigest := digest.FromBytes(drop.manifest)
	if status, _, _ := e.do("DELETE", "/v2/r/manifests/tmp", nil); status != http.StatusAccepted {
		t.Fatal("tag delete failed")
	}
	// Cache the untagged manifest, to check the collector's events reach it.
	e.do("GET", "/v2/r/manifests/"+dropDigest.String(), nil)

	if rep := e.run(false, 0); rep.Manifests != 0 {
		t.Errorf("untagged manifest collected without Untagged: %+v", rep)
	}
	rep := e.run(true, 0)
	if rep.Manifests != 1 {
		t.Errorf("collected %d manifests, want the untagged one", rep.Manifests)
	}
	if status, _, _ := e.do("GET", "/v2/r/manifests/"+dropDigest.String(), nil); status != http.StatusNotFound {
		t.Errorf("collected manifest still served (%d): the cache missed the event", status)
	}
	for _, b := range drop.blobs {
		if e.blobExists(digest.FromBytes(b)) != bytes.Equal(b, shared) {
			t.Errorf("blob %q: exists=%v", b, e.blobExists(digest.FromBytes(b)))
		}
	}
	for _, b := range keep.blobs {
		status, _, got := e.do("GET", "/v2/r/blobs/"+digest.FromBytes(b).String(), nil)
		if status != http.StatusOK || !bytes.Equal(got, b) {
			t.Errorf("blob of the tagged image: %d", status)
		}
	}
	var deleted []digest.Digest
	for _, ev := range e.events.list {
		if ev.Kind == event.ManifestDeleted {
			deleted = append(deleted, ev.Digest)
		}
	}
	if len(deleted) != 1 || deleted[0] != dropDigest {
		t.Errorf("deletion events for %v", deleted)
	}
	e.checkClean()
}

func TestReferrersLiveAndDieWithTheirSubject(t *testing.T) {
	e := newEnv(t)
	subject := image("subject", nil)
	if e.push("r", "v1", subject) != http.StatusCreated {
		t.Fatal("push subject")
	}
	sigLayer := []byte("signature payload")
	sbomLayer := []byte("sbom document")
	emptyConfig := []byte("{}")
	sig := pushed{manifest: manifest(emptyConfig, [][]byte{sigLayer}, subject.manifest), blobs: [][]byte{emptyConfig, sigLayer}}
	sbom := pushed{manifest: manifest(emptyConfig, [][]byte{sbomLayer}, subject.manifest), blobs: [][]byte{emptyConfig, sbomLayer}}
	// A cosign-style signature: no subject field, a sha256-<hex>.sig tag.
	cosignLayer := []byte("cosign simple signing payload")
	cosign := pushed{manifest: manifest(emptyConfig, [][]byte{cosignLayer}, nil), blobs: [][]byte{emptyConfig, cosignLayer}}
	subjectDigest := digest.FromBytes(subject.manifest)
	for ref, p := range map[string]pushed{
		digest.FromBytes(sig.manifest).String():      sig,
		digest.FromBytes(sbom.manifest).String():     sbom,
		"sha256-" + subjectDigest.Encoded() + ".sig": cosign,
	} {
		if status := e.push("r", ref, p); status != http.StatusCreated {
			t.Fatalf("push %s: %d", ref, status)
		}
	}
	if rep := e.run(true, 0); rep.Manifests != 0 || rep.Tags != 0 {
		t.Fatalf("attached artifacts of a live subject were collected: %+v", rep)
	}
	if status, _, _ := e.do("DELETE", "/v2/r/manifests/"+subjectDigest.String(), nil); status != http.StatusAccepted {
		t.Fatal("delete subject")
	}
	rep := e.run(false, 0)
	if rep.Manifests != 3 {
		t.Errorf("collected %d manifests, want the signature, the SBOM and the cosign signature: %+v", rep.Manifests, rep)
	}
	for _, b := range [][]byte{sigLayer, sbomLayer, cosignLayer, emptyConfig} {
		if e.blobExists(digest.FromBytes(b)) {
			t.Errorf("blob %q outlived its subject", b)
		}
	}
	status, _, body := e.do("GET", "/v2/r/referrers/"+subjectDigest.String(), nil)
	if status != http.StatusOK || !strings.Contains(string(body), `"manifests":[]`) {
		t.Errorf("referrers after collection = %d %s", status, body)
	}
	e.checkClean()
}

func TestExpiresIdleUploadsAndStrayFiles(t *testing.T) {
	e := newEnv(t)
	_, h, _ := e.do("POST", "/v2/r/blobs/uploads/", nil)
	loc := h.Get("Location")
	e.do("PATCH", loc, []byte("some bytes"), "Content-Range", "0-9")
	stray := []byte("a file the meta store never heard of")
	if _, err := e.blobs.Put(context.Background(), digest.FromBytes(stray), bytes.NewReader(stray)); err != nil {
		t.Fatal(err)
	}
	if rep := e.run(true, time.Hour); rep.Uploads != 0 || rep.StrayFiles != 0 {
		t.Fatalf("young upload or stray file collected: %+v", rep)
	}
	rep, err := gc.Run(context.Background(), e.meta, e.blobs, gc.Options{Grace: 0, UploadTTL: 0, LockUpload: e.reg.LockUpload})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Uploads != 1 || rep.StrayFiles != 1 || rep.BytesFreed != int64(len(stray)) {
		t.Errorf("report %+v, want one upload and one stray file", rep)
	}
	if status, _, _ := e.do("GET", loc, nil); status != http.StatusNotFound {
		t.Errorf("expired upload answers %d", status)
	}
	n := 0
	e.blobs.WalkUploads(context.Background(), func(blob.UploadInfo) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d upload directories left", n)
	}
}

// A session idle at the walk but written to before its lock is taken (a
// PATCH that held the lock meanwhile) is active: expiry must leave it.
func TestExpiryKeepsASessionWrittenSinceTheWalk(t *testing.T) {
	e := newEnv(t)
	_, h, _ := e.do("POST", "/v2/r/blobs/uploads/", nil)
	loc := h.Get("Location")
	id := loc[strings.LastIndexByte(loc, '/')+1:]
	cutoff := time.Now().Add(time.Hour) // everything written so far is stale
	lock := func(got string) func() {
		unlock := e.reg.LockUpload(got)
		if got == id {
			// What a request holding the lock did after the walk.
			up, err := e.blobs.ResumeUpload(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			up.Write([]byte("a late chunk"))
			up.Close()
			future := cutoff.Add(time.Minute)
			os.Chtimes(filepath.Join(e.dir, "blobs", "_uploads", id, "data"), future, future)
		}
		return unlock
	}
	n, err := gc.ExpireUploads(context.Background(), e.meta, e.blobs, cutoff, lock)
	if err != nil || n != 0 {
		t.Fatalf("ExpireUploads = %d, %v; want the written session kept", n, err)
	}
	if status, h, _ := e.do("GET", loc, nil); status != http.StatusNoContent || h.Get("Range") != "0-11" {
		t.Errorf("session after expiry = %d, Range %q; want it whole", status, h.Get("Range"))
	}
	// Idle at the walk and still idle under the lock: expired.
	if n, err := gc.ExpireUploads(context.Background(), e.meta, e.blobs, cutoff.Add(time.Hour), e.reg.LockUpload); err != nil || n != 1 {
		t.Errorf("ExpireUploads of the idle session = %d, %v; want 1", n, err)
	}
}

// Garbage collection with no grace period at all, over and over, while
// clients push layers first and the config last, as crane does (the load
// that once lost a layer of 1 in 49 acknowledged images): a push may be
// refused, and the client pushes again, but every push acknowledged reads
// back whole.
func TestNoAcknowledgedPushLosesALayer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: stress test, the collector racing concurrent pushes (scripts/test.sh, as CI runs, does not pass -short)")
	}
	e := newEnv(t)
	stop := make(chan struct{})
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if _, err := gc.Run(context.Background(), e.meta, e.blobs, gc.Options{Grace: 0, UploadTTL: time.Hour,
				Notifier: e.reg, LockUpload: e.reg.LockUpload}); err != nil {
				t.Errorf("gc: %v", err)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	var refused atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := fmt.Sprintf("w%d", w)
			for i := range 12 {
				img := image(fmt.Sprintf("%d-%d", w, i), []byte(fmt.Sprintf("second layer %d-%d", w, i)))
				// Layers first and the config last: a collection between
				// them takes only layers.
				slices.Reverse(img.blobs)
				tag := fmt.Sprintf("v%d", i)
				for attempt := 0; ; attempt++ {
					status := e.push(repo, tag, img)
					if status == http.StatusCreated {
						break
					}
					// MANIFEST_BLOB_UNKNOWN, or a blob collected while its
					// upload finished (503): the client pushes again.
					if status != http.StatusBadRequest && status != http.StatusServiceUnavailable {
						t.Errorf("push %s:%s = %d", repo, tag, status)
						return
					}
					refused.Add(1)
					if attempt == 500 {
						t.Errorf("push %s:%s refused %d times", repo, tag, attempt+1)
						return
					}
				}
				for _, b := range img.blobs {
					d := digest.FromBytes(b)
					if status, _, got := e.do("GET", "/v2/"+repo+"/blobs/"+d.String(), nil); status != http.StatusOK || !bytes.Equal(got, b) {
						t.Errorf("acknowledged push %s:%s lost blob %s: %d", repo, tag, d, status)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-gcDone
	t.Logf("48 pushes acknowledged after %d refusals", refused.Load())
	e.checkClean()
}

// Garbage collection with a grace period far shorter than a push, in a
// loop, while clients push images and delete tags: every push the registry
// acknowledged stays whole, and the stores end consistent. A push may be
// refused when the collector takes its blobs between upload and manifest
// (what a real grace period prevents); the client then pushes again, as
// real clients do.
func TestCollectsWhilePushing(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: stress test, the collector racing concurrent pushes (scripts/test.sh, as CI runs, does not pass -short)")
	}
	e := newEnv(t)
	stop := make(chan struct{})
	var gcRuns atomic.Int64
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			// The grace period must outlast one push (blobs, then the
			// manifest naming them), or a push on a loaded machine is
			// swept before it completes every time it retries. It is
			// still far shorter than the test, so garbage is collected
			// while pushes run.
			if _, err := gc.Run(context.Background(), e.meta, e.blobs, gc.Options{Untagged: true, Grace: 500 * time.Millisecond,
				UploadTTL: time.Hour, Notifier: e.reg, LockUpload: e.reg.LockUpload}); err != nil {
				t.Errorf("gc: %v", err)
				return
			}
			gcRuns.Add(1)
		}
	}()
	shared := []byte("base layer every image shares")
	var wg sync.WaitGroup
	var retries atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				repo := fmt.Sprintf("w%d", w)
				img := image(fmt.Sprintf("%d-%d", w, i), shared)
				tag := fmt.Sprintf("v%d", i)
				for attempt := 0; ; attempt++ {
					if status := e.push(repo, tag, img); status == http.StatusCreated {
						break
					}
					retries.Add(1)
					if attempt == 50 {
						t.Errorf("push %s:%s kept failing", repo, tag)
						return
					}
				}
				// Every acknowledged push reads back whole.
				for _, b := range img.blobs {
					status, _, got := e.do("GET", "/v2/"+repo+"/blobs/"+digest.FromBytes(b).String(), nil)
					if status != http.StatusOK || !bytes.Equal(got, b) {
						t.Errorf("blob of acknowledged push %s:%s: %d", repo, tag, status)
					}
				}
				// Make garbage: untag every other image.
				if i%2 == 1 {
					e.do("DELETE", "/v2/"+repo+"/manifests/"+tag, nil)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-gcDone
	t.Logf("%d gc runs during the pushes, %d pushes retried", gcRuns.Load(), retries.Load())
	e.checkClean()
	// Tagged images survive one more collection whole.
	e.run(true, 0)
	for w := range 4 {
		for i := 0; i < 15; i += 2 {
			status, _, body := e.do("GET", fmt.Sprintf("/v2/w%d/manifests/v%d", w, i), nil)
			if status != http.StatusOK {
				t.Errorf("w%d:v%d = %d", w, i, status)
				continue
			}
			if digest.FromBytes(body) != digest.FromBytes(image(fmt.Sprintf("%d-%d", w, i), shared).manifest) {
				t.Errorf("w%d:v%d has the wrong content", w, i)
			}
		}
	}
	e.checkClean()
}
