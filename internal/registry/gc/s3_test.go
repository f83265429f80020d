package gc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/blob/s3"
	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/meta/postgres"
	"berth.dev/berth/internal/registry/gc"
	"berth.dev/berth/internal/testpeers"
)

// scaleOut is a meta store on PostgreSQL and a blob store on S3, reached
// through a proxy that counts the S3 requests by kind.
type scaleOut struct {
	meta    *postgres.Store
	blobs   *s3.Store
	raw     *minio.Client
	bucket  string
	mu      sync.Mutex
	counted map[string]int
	dbURL   string
	s3cfg   s3.Config
	// beforeDelete, if set, runs when a DeleteObjects request arrives (a
	// batch's rows are gone, its content not yet), which then waits a
	// while before it goes on.
	beforeDelete atomic.Pointer[func()]
}

func newScaleOut(t *testing.T) *scaleOut {
	t.Helper()
	ctx := context.Background()
	so := &scaleOut{counted: map[string]int{}, dbURL: testpeers.Postgres(t)}
	srv, bucket := testpeers.Bucket(t)
	so.bucket, so.raw = bucket, srv.Client(t)
	target, _ := url.Parse(srv.Endpoint)
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := r.Method
		if r.URL.Query().Has("delete") {
			kind = "DeleteObjects"
		}
		so.mu.Lock()
		so.counted[kind]++
		so.mu.Unlock()
		if f := so.beforeDelete.Load(); kind == "DeleteObjects" && f != nil {
			(*f)()
			time.Sleep(300 * time.Millisecond)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	var err error
	if so.meta, err = postgres.Open(ctx, so.dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { so.meta.Close() })
	so.s3cfg = s3.Config{Bucket: bucket, Endpoint: proxy.URL, Region: "us-east-1", AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	if so.blobs, err = s3.Open(ctx, so.s3cfg); err != nil {
		t.Fatal(err)
	}
	return so
}

func (so *scaleOut) counts() map[string]int {
	so.mu.Lock()
	defer so.mu.Unlock()
	c := so.counted
	so.counted = map[string]int{}
	return c
}

// object writes content straight into the bucket under its blob key, as
// a finished upload leaves it, without the store's upload requests.
func (so *scaleOut) object(t *testing.T, content []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(content)
	key := "blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded()
	if _, err := so.raw.PutObject(context.Background(), so.bucket, key, bytes.NewReader(content), int64(len(content)),
		minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	return d
}

func (so *scaleOut) exists(t *testing.T, d digest.Digest) bool {
	t.Helper()
	_, err := so.blobs.Stat(context.Background(), d)
	if err != nil && !errors.Is(err, blob.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// On S3, garbage collection deletes in batches: one DeleteObjects request
// per thousand blobs, no per-blob HEAD or DELETE, and a reconciliation
// that removes objects no row names; linked blobs stay.
func TestBatchedSweepOnS3(t *testing.T) {
	ctx := context.Background()
	so := newScaleOut(t)
	const unreferenced, strays, linked = 2500, 600, 40
	var garbage, kept []digest.Digest
	for i := range unreferenced {
		d := so.object(t, fmt.Appendf(nil, "unreferenced %d", i))
		if err := so.meta.TouchBlob(ctx, d); err != nil {
			t.Fatal(err)
		}
		garbage = append(garbage, d)
	}
	for i := range strays {
		garbage = append(garbage, so.object(t, fmt.Appendf(nil, "stray %d", i)))
	}
	image := &meta.Manifest{MediaType: "application/vnd.oci.image.manifest.v1+json", Content: []byte(`{"schemaVersion":2}`)}
	image.Digest = digest.FromBytes(image.Content)
	for i := range linked {
		content := fmt.Appendf(nil, "linked %d", i)
		d := so.object(t, content)
		if err := so.meta.LinkBlob(ctx, "team/app", d, int64(len(content))); err != nil {
			t.Fatal(err)
		}
		image.References = append(image.References, meta.Reference{Digest: d, Kind: meta.RefBlob})
		kept = append(kept, d)
	}
	if err := so.meta.PutManifest(ctx, "team/app", image, []string{"v1"}); err != nil {
		t.Fatal(err)
	}
	so.counts()
	rep, err := gc.Run(ctx, so.meta, so.blobs, gc.Options{Grace: 0, UploadTTL: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blobs != unreferenced || rep.StrayFiles != strays {
		t.Errorf("report: %d blobs and %d stray objects deleted, want %d and %d", rep.Blobs, rep.StrayFiles, unreferenced, strays)
	}
	got := so.counts()
	// 3 batches of swept blobs, 1 of strays; listing the bucket is GETs.
	if got["DeleteObjects"] != 4 || got["HEAD"] != 0 || got["DELETE"] != 0 {
		t.Errorf("S3 requests %v: want 4 DeleteObjects and no HEAD or DELETE", got)
	}
	for _, d := range garbage {
		if so.exists(t, d) {
			t.Fatalf("garbage %s survived", d)
		}
	}
	for _, d := range kept {
		if !so.exists(t, d) {
			t.Fatalf("linked blob %s was deleted", d)
		}
	}
}

// Pushes of the very blobs a batched sweep is removing, made just when a
// batch's rows are gone and its content is not yet: every push
// acknowledged (content checked after linking, as the registry does) can
// be read afterwards. Without the sweep holding off claims and links
// while it deletes, those pushes would link content the batch then
// deletes.
func TestBatchedSweepRacingPushes(t *testing.T) {
	ctx := context.Background()
	so := newScaleOut(t)
	const n = 40
	contents := make([][]byte, n)
	ds := make([]digest.Digest, n)
	for i := range n {
		contents[i] = fmt.Appendf(nil, "raced %d", i)
		ds[i] = so.object(t, contents[i])
		if err := so.meta.TouchBlob(ctx, ds[i]); err != nil {
			t.Fatal(err)
		}
	}
	// A second replica's stores, pushing while this one collects.
	pusher, err := postgres.Open(ctx, so.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pusher.Close()
	var acknowledged, refused atomic.Int64
	var wg sync.WaitGroup
	push := func(i int) {
		defer wg.Done()
		d, repo := ds[i], fmt.Sprintf("team/app%d", i)
		if err := pusher.TouchBlob(ctx, d); err != nil {
			t.Error(err)
			return
		}
		if _, err := so.blobs.Put(ctx, d, bytes.NewReader(contents[i])); err != nil {
			t.Error(err)
			return
		}
		if err := pusher.LinkBlob(ctx, repo, d, int64(len(contents[i]))); err != nil {
			t.Error(err)
			return
		}
		if _, err := so.blobs.Stat(ctx, d); errors.Is(err, blob.ErrNotFound) {
			refused.Add(1) // "push it again": not acknowledged
			if err := pusher.UnlinkBlob(ctx, repo, d); err != nil {
				t.Error(err)
			}
			return
		} else if err != nil {
			t.Error(err)
			return
		}
		acknowledged.Add(1)
	}
	var once sync.Once
	hook := func() {
		once.Do(func() {
			for i := range n {
				wg.Add(1)
				go push(i)
			}
			// Let the pushes get as far as they can before the delete.
			time.Sleep(200 * time.Millisecond)
		})
	}
	so.beforeDelete.Store(&hook)
	rep, err := gc.Run(ctx, so.meta, so.blobs, gc.Options{Grace: 0, UploadTTL: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if rep.Blobs != n {
		t.Fatalf("the sweep removed %d blobs, want all %d: the pushes did not race it", rep.Blobs, n)
	}
	lost := 0
	for i, d := range ds {
		size, err := so.meta.BlobSize(ctx, fmt.Sprintf("team/app%d", i), d)
		if err != nil {
			continue // not acknowledged
		}
		if !so.exists(t, d) {
			lost++
			t.Errorf("acknowledged push of %s (%d bytes) lost its content to the sweep", d, size)
		}
	}
	t.Logf("%d pushes acknowledged, %d told to push again, %d lost", acknowledged.Load(), refused.Load(), lost)
}

// Two replicas collecting at once delete every piece of garbage once
// between them and fail on nothing.
func TestTwoCollectionsAtOnce(t *testing.T) {
	ctx := context.Background()
	so := newScaleOut(t)
	const n = 1500
	var garbage []digest.Digest
	for i := range n {
		d := so.object(t, fmt.Appendf(nil, "garbage %d", i))
		if i%3 != 0 { // a third are strays
			if err := so.meta.TouchBlob(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		garbage = append(garbage, d)
	}
	other, err := postgres.Open(ctx, so.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherBlobs, err := s3.Open(ctx, so.s3cfg)
	if err != nil {
		t.Fatal(err)
	}
	reps := make([]gc.Report, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, st := range []struct {
		m *postgres.Store
		b *s3.Store
	}{{so.meta, so.blobs}, {other, otherBlobs}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i], errs[i] = gc.Run(ctx, st.m, st.b, gc.Options{Grace: 0, UploadTTL: 1 << 40})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	swept := reps[0].Blobs + reps[1].Blobs
	if swept != 2*n/3 {
		t.Errorf("the collections swept %d + %d blobs, want %d in all", reps[0].Blobs, reps[1].Blobs, 2*n/3)
	}
	for _, d := range garbage {
		if so.exists(t, d) {
			t.Fatalf("garbage %s survived two collections", d)
		}
	}
}
