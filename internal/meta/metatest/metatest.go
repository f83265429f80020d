// Package metatest is the test suite and benchmark set every meta.Store
// implementation runs (SQLite now, PostgreSQL later), so they behave the
// same. Call Run from the implementation's tests and Bench from its
// benchmarks.
package metatest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/registry/event"
)

// Factory makes an empty store for one test. reopen closes nothing and
// returns a fresh Store over the same database, as a restarted process would
// see it; the test closes both.
type Factory func(t testing.TB) (s meta.Store, reopen func() meta.Store)

// Run runs the whole suite against stores made by f.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"BlobLinksArePerRepository", testBlobLinks},
		{"MountBlob", testMountBlob},
		{"ClaimsKeepRecordedSizes", testClaimsKeepSizes},
		{"PutManifestRequiresBlobs", testPutManifestRequiresBlobs},
		{"PutManifestClaimsLayersAndRefusesCollectedOnes", testPutManifestClaimsLayers},
		{"ManifestRoundTrip", testManifestRoundTrip},
		{"TagsMoveAndList", testTags},
		{"DeleteTagAndManifest", testDeletes},
		{"DeleteRepository", testDeleteRepository},
		{"Referrers", testReferrers},
		{"SignatureArrivals", testSignatureArrivals},
		{"RepositoriesCatalog", testRepositories},
		{"Uploads", testUploads},
		{"UploadLimits", testUploadLimits},
		{"ConcurrentPushesOfOneTag", testConcurrentTagPushes},
		{"ConcurrentLinksOfOneBlob", testConcurrentLinks},
		{"CollectManifests", testCollectManifests},
		{"PruneBlobLinks", testPruneBlobLinks},
		{"SweepBlobs", testSweepBlobs},
		{"RemoveUnrecordedBlob", testRemoveUnrecordedBlob},
		{"PruneRepositories", testPruneRepositories},
		{"WalkAndCheck", testWalkAndCheck},
		{"SurvivesReopen", testReopen},
		{"EventsOutbox", testEvents},
		{"EventsOutboxConcurrentWriters", testEventsConcurrentWriters},
		{"Artifacts", testArtifacts},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, f) })
	}
}

func dg(s string) digest.Digest { return digest.FromString(s) }

func mustLink(t testing.TB, s meta.Store, repo string, d digest.Digest, size int64) {
	t.Helper()
	if err := s.LinkBlob(context.Background(), repo, d, size); err != nil {
		t.Fatalf("LinkBlob(%s, %s): %v", repo, d, err)
	}
}

// image builds a manifest whose content is unique to name and which
// requires the blobs given.
func image(name string, blobs ...digest.Digest) *meta.Manifest {
	content := []byte(`{"schemaVersion":2,"name":"` + name + `"}`)
	m := &meta.Manifest{
		Digest:       digest.FromBytes(content),
		MediaType:    "application/vnd.oci.image.manifest.v1+json",
		ArtifactType: "application/vnd.oci.image.config.v1+json",
		Content:      content,
	}
	for _, b := range blobs {
		m.References = append(m.References, meta.Reference{Digest: b, Kind: meta.RefBlob})
	}
	return m
}

func mustPut(t testing.TB, s meta.Store, repo string, m *meta.Manifest, tags ...string) {
	t.Helper()
	if err := s.PutManifest(context.Background(), repo, m, tags); err != nil {
		t.Fatalf("PutManifest(%s, %s): %v", repo, m.Digest, err)
	}
}

func testBlobLinks(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	d := dg("layer")
	if _, err := s.BlobSize(ctx, "a/one", d); !errors.Is(err, meta.ErrBlobUnknown) {
		t.Errorf("BlobSize before link: err = %v, want ErrBlobUnknown", err)
	}
	mustLink(t, s, "a/one", d, 42)
	size, err := s.BlobSize(ctx, "a/one", d)
	if err != nil || size != 42 {
		t.Errorf("BlobSize = %d, %v; want 42", size, err)
	}
	if _, err := s.BlobSize(ctx, "a/two", d); !errors.Is(err, meta.ErrBlobUnknown) {
		t.Errorf("a blob linked to a/one is readable from a/two: %v", err)
	}
	repos, err := s.BlobRepositories(ctx, d, 10)
	if err != nil || !slices.Equal(repos, []string{"a/one"}) {
		t.Errorf("BlobRepositories = %v, %v", repos, err)
	}
	if err := s.UnlinkBlob(ctx, "a/one", d); err != nil {
		t.Fatalf("UnlinkBlob: %v", err)
	}
	if _, err := s.BlobSize(ctx, "a/one", d); !errors.Is(err, meta.ErrBlobUnknown) {
		t.Errorf("BlobSize after unlink: err = %v", err)
	}
	if err := s.UnlinkBlob(ctx, "a/one", d); !errors.Is(err, meta.ErrBlobUnknown) {
		t.Errorf("second UnlinkBlob: err = %v, want ErrBlobUnknown", err)
	}
	if err := s.UnlinkBlob(ctx, "never/seen", d); !errors.Is(err, meta.ErrBlobUnknown) {
		t.Errorf("UnlinkBlob on an unknown repository: err = %v, want ErrBlobUnknown", err)
	}
}

func testMountBlob(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	d := dg("shared layer")
	if _, err := s.MountBlob(ctx, "src", "dst", d); !errors.Is(err, meta.ErrBlobUnknown) {
		t.Errorf("MountBlob of a blob the source lacks: err = %v, want ErrBlobUnknown", err)
	}
	if _, err := s.BlobSize(ctx, "dst", d); !errors.Is(err, meta.ErrBlobUnknown) {
		t.Errorf("a failed mount linked the blob")
	}
	mustLink(t, s, "src", d, 7)
	size, err := s.MountBlob(ctx, "src", "dst", d)
	if err != nil || size != 7 {
		t.Fatalf("MountBlob = %d, %v", size, err)
	}
	if size, err := s.BlobSize(ctx, "dst", d); err != nil || size != 7 {
		t.Errorf("BlobSize in dst after mount = %d, %v", size, err)
	}
	repos, err := s.BlobRepositories(ctx, d, 1)
	if err != nil || len(repos) != 1 {
		t.Errorf("BlobRepositories with n=1 = %v, %v", repos, err)
	}
	repos, err = s.BlobRepositories(ctx, d, -1)
	if err != nil || !slices.Equal(repos, []string{"dst", "src"}) {
		t.Errorf("BlobRepositories = %v, %v", repos, err)
	}
}

// A claim (TouchBlob) comes before the content is verified, from any
// repository that pushes the digest: it must not change what readers of the
// blob elsewhere are told. Only a verified link records a size.
func testClaimsKeepSizes(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	d := dg("someone else's layer")
	mustLink(t, s, "victim/app", d, 42)
	for range 2 {
		if err := s.TouchBlob(ctx, d); err != nil {
			t.Fatalf("TouchBlob: %v", err)
		}
	}
	if size, err := s.BlobSize(ctx, "victim/app", d); err != nil || size != 42 {
		t.Errorf("BlobSize after a claim = %d, %v; want 42", size, err)
	}
	// A claim on a new digest records no size.
	fresh := dg("claimed, never written")
	if err := s.TouchBlob(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	sizes := map[digest.Digest]int64{}
	if err := s.WalkBlobs(ctx, func(r meta.BlobRecord) error { sizes[r.Digest] = r.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	if sizes[d] != 42 || sizes[fresh] != -1 {
		t.Errorf("recorded sizes = %v; want 42 for the linked blob, -1 for the claim", sizes)
	}
	// fsck --repair corrects a recorded size.
	if err := s.SetBlobSize(ctx, d, 43); err != nil {
		t.Fatalf("SetBlobSize: %v", err)
	}
	if size, err := s.BlobSize(ctx, "victim/app", d); err != nil || size != 43 {
		t.Errorf("BlobSize after SetBlobSize = %d, %v; want 43", size, err)
	}
	if err := s.SetBlobSize(ctx, dg("unknown"), 1); !errors.Is(err, meta.ErrBlobUnknown) {
		t.Errorf("SetBlobSize of an unknown blob: err = %v, want ErrBlobUnknown", err)
	}
}

func testPutManifestRequiresBlobs(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	config, layer, absent := dg("config"), dg("layer"), dg("sparse layer")
	m := image("needs blobs", config)
	m.References = append(m.References,
		meta.Reference{Digest: layer, Kind: meta.RefBlob},
		meta.Reference{Digest: absent, Kind: meta.RefLayer})
	mustLink(t, s, "repo", config, 10)
	err := s.PutManifest(ctx, "repo", m, []string{"latest"})
	var missing *meta.MissingBlobsError
	if !errors.As(err, &missing) || !errors.Is(err, meta.ErrBlobUnknown) {
		t.Fatalf("PutManifest with a missing blob: err = %v, want *MissingBlobsError", err)
	}
	if !slices.Equal(missing.Digests, []digest.Digest{layer}) {
		t.Errorf("missing = %v, want [%s]", missing.Digests, layer)
	}
	if _, err := s.Manifest(ctx, "repo", m.Digest); !errors.Is(err, meta.ErrManifestUnknown) {
		t.Errorf("a rejected manifest was stored: %v", err)
	}
	if _, err := s.Tag(ctx, "repo", "latest"); !errors.Is(err, meta.ErrTagUnknown) {
		t.Errorf("a rejected manifest's tag was stored: %v", err)
	}
	// A blob in another repository does not count.
	mustLink(t, s, "elsewhere", layer, 20)
	if err := s.PutManifest(ctx, "repo", m, nil); !errors.Is(err, meta.ErrBlobUnknown) {
		t.Errorf("a blob of another repository satisfied PutManifest: %v", err)
	}
	mustLink(t, s, "repo", layer, 20)
	mustPut(t, s, "repo", m, "latest")
}

// A layer uploaded longer than the grace period before the manifest naming
// it loses its link to garbage collection, then its content. The manifest
// must then be refused, not stored as an image that cannot be pulled; a
// layer the repository links when the manifest arrives is claimed by it in
// the same transaction; a layer never uploaded keeps the manifest sparse.
func testPutManifestClaimsLayers(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	config, early, late, never, external := dg("config"), dg("layer uploaded early"), dg("layer uploaded late"), dg("layer never uploaded"), dg("foreign layer")
	manifest := func(name string) *meta.Manifest {
		m := image(name, config)
		m.References = append(m.References,
			meta.Reference{Digest: early, Kind: meta.RefLayer},
			meta.Reference{Digest: late, Kind: meta.RefLayer},
			meta.Reference{Digest: never, Kind: meta.RefLayer},
			meta.Reference{Digest: external, Kind: meta.RefExternal})
		return m
	}
	sweepAll := func() []digest.Digest {
		t.Helper()
		later := time.Now().Add(time.Hour)
		if _, err := s.PruneBlobLinks(ctx, later); err != nil {
			t.Fatal(err)
		}
		removed, err := s.SweepBlobs(ctx, later, func(digest.Digest) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		return removed
	}
	for _, d := range []digest.Digest{early, external} {
		if err := s.TouchBlob(ctx, d); err != nil {
			t.Fatal(err)
		}
		mustLink(t, s, "r", d, 1)
	}
	// The collector runs past the grace period of the early uploads.
	if removed := sweepAll(); len(removed) != 2 {
		t.Fatalf("swept %v, want the two early blobs", removed)
	}
	mustLink(t, s, "r", config, 1)
	mustLink(t, s, "r", late, 1)
	m := manifest("lost an early layer")
	err := s.PutManifest(ctx, "r", m, []string{"v1"})
	var missing *meta.MissingBlobsError
	if !errors.As(err, &missing) || !errors.Is(err, meta.ErrBlobUnknown) {
		t.Fatalf("PutManifest naming a collected layer: err = %v, want *MissingBlobsError", err)
	}
	if !slices.Equal(missing.Digests, []digest.Digest{early}) || !slices.Equal(missing.Collected, []digest.Digest{early}) {
		t.Errorf("missing = %v, collected = %v; want the early layer in both (not the never-uploaded or the foreign one)",
			missing.Digests, missing.Collected)
	}
	if _, err := s.Tag(ctx, "r", "v1"); !errors.Is(err, meta.ErrTagUnknown) {
		t.Errorf("the refused manifest's tag was stored: %v", err)
	}
	// The repository is remembered while its pruned link is.
	if pruned, err := s.PruneRepositories(ctx, time.Now().Add(time.Hour)); err != nil || len(pruned) != 0 {
		t.Errorf("PruneRepositories = %v, %v; want r kept", pruned, err)
	}
	// Another repository never held it: its sparse manifest is fine.
	other := manifest("sparse elsewhere")
	mustLink(t, s, "other", config, 1)
	mustPut(t, s, "other", other)

	// Pushed again, the layer is welcome, and the manifest claims every
	// layer present: a collection right after takes none of them.
	mustLink(t, s, "r", early, 1)
	mustPut(t, s, "r", m, "v1")
	if removed := sweepAll(); len(removed) != 0 {
		t.Errorf("a collection after the push swept %v", removed)
	}
	for _, d := range []digest.Digest{config, early, late} {
		if _, err := s.BlobSize(ctx, "r", d); err != nil {
			t.Errorf("blob %s of the stored manifest: %v", d, err)
		}
	}
	// Which references were present is what fsck tells damage by.
	present := map[digest.Digest]bool{}
	if err := s.WalkManifests(ctx, func(repo string, w *meta.Manifest) error {
		if repo == "r" {
			for _, r := range w.References {
				present[r.Digest] = r.Present
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[digest.Digest]bool{config: true, early: true, late: true, never: false, external: false}
	if !maps.Equal(present, want) {
		t.Errorf("present = %v, want %v", present, want)
	}
	// Linking the early layer again forgot its pruned link; the foreign
	// layer's is still remembered, until forgotten.
	if n, err := s.ForgetPrunedLinks(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Errorf("ForgetPrunedLinks of links pruned before an hour ago = %d, %v; want 0", n, err)
	}
	if n, err := s.ForgetPrunedLinks(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("ForgetPrunedLinks = %d, %v; want 1 (the foreign layer's)", n, err)
	}
}

func testManifestRoundTrip(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	m := image("round trip")
	m.Subject = dg("subject")
	m.ArtifactType = "application/vnd.example.sbom"
	m.Annotations = map[string]string{"org.example": "yes"}
	mustPut(t, s, "team/app", m, "v1")
	got, err := s.Manifest(ctx, "team/app", m.Digest)
	if err != nil {
		t.Fatalf("Manifest: %v", err)
	}
	if string(got.Content) != string(m.Content) || got.MediaType != m.MediaType ||
		got.ArtifactType != m.ArtifactType || got.Subject != m.Subject || got.Digest != m.Digest {
		t.Errorf("Manifest = %+v, want %+v", got, m)
	}
	if got.PushedAt.IsZero() || time.Since(got.PushedAt) > time.Minute {
		t.Errorf("PushedAt = %v, want about now", got.PushedAt)
	}
	if _, err := s.Manifest(ctx, "team/other", m.Digest); !errors.Is(err, meta.ErrManifestUnknown) {
		t.Errorf("manifest readable from another repository: %v", err)
	}
	// Pushing the same manifest again is idempotent.
	mustPut(t, s, "team/app", m, "v1", "v1.0")
	if d, err := s.Tag(ctx, "team/app", "v1.0"); err != nil || d != m.Digest {
		t.Errorf("Tag(v1.0) = %s, %v", d, err)
	}
	if tags, err := s.ManifestTags(ctx, "team/app", m.Digest); err != nil || !slices.Equal(tags, []string{"v1", "v1.0"}) {
		t.Errorf("ManifestTags = %v, %v", tags, err)
	}
	if tags, err := s.ManifestTags(ctx, "team/none", m.Digest); err != nil || len(tags) != 0 {
		t.Errorf("ManifestTags of an unknown repository = %v, %v", tags, err)
	}
	// Which repositories hold a manifest.
	mustPut(t, s, "alpha/app", m)
	if repos, err := s.ManifestRepositories(ctx, m.Digest, -1); err != nil || !slices.Equal(repos, []string{"alpha/app", "team/app"}) {
		t.Errorf("ManifestRepositories = %v, %v", repos, err)
	}
	if repos, err := s.ManifestRepositories(ctx, m.Digest, 1); err != nil || !slices.Equal(repos, []string{"alpha/app"}) {
		t.Errorf("ManifestRepositories(n=1) = %v, %v", repos, err)
	}
	if _, err := s.DeleteManifest(ctx, "alpha/app", m.Digest); err != nil {
		t.Fatal(err)
	}
	if repos, err := s.ManifestRepositories(ctx, dg("absent"), -1); err != nil || len(repos) != 0 {
		t.Errorf("ManifestRepositories(absent) = %v, %v", repos, err)
	}
}

func testTags(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	if _, err := s.Tags(ctx, "nope", "", -1); !errors.Is(err, meta.ErrRepositoryUnknown) {
		t.Errorf("Tags of an unknown repository: err = %v, want ErrRepositoryUnknown", err)
	}
	mustLink(t, s, "blobs-only", dg("x"), 1)
	if tags, err := s.Tags(ctx, "blobs-only", "", -1); err != nil || len(tags) != 0 {
		t.Errorf("Tags of a repository without tags = %v, %v; want empty", tags, err)
	}
	one, two := image("one"), image("two")
	names := []string{"b", "a", "c", "sha256-" + one.Digest.Encoded(), "1.0", "Z"}
	mustPut(t, s, "r", one, names...)
	mustPut(t, s, "r", two)
	all, err := s.Tags(ctx, "r", "", -1)
	want := slices.Sorted(slices.Values(names))
	if err != nil || !slices.Equal(all, want) {
		t.Fatalf("Tags = %v, %v; want %v", all, err, want)
	}
	page, err := s.Tags(ctx, "r", "", 2)
	if err != nil || !slices.Equal(page, want[:2]) {
		t.Errorf("Tags(n=2) = %v, %v", page, err)
	}
	page, err = s.Tags(ctx, "r", want[1], 2)
	if err != nil || !slices.Equal(page, want[2:4]) {
		t.Errorf("Tags(last=%s, n=2) = %v, %v", want[1], page, err)
	}
	page, err = s.Tags(ctx, "r", want[len(want)-1], 5)
	if err != nil || len(page) != 0 {
		t.Errorf("Tags after the last tag = %v, %v", page, err)
	}
	if page, err = s.Tags(ctx, "r", "", 0); err != nil || len(page) != 0 {
		t.Errorf("Tags(n=0) = %v, %v", page, err)
	}
	// Moving a tag.
	mustPut(t, s, "r", two, "a")
	if d, err := s.Tag(ctx, "r", "a"); err != nil || d != two.Digest {
		t.Errorf("tag a after move = %s, %v; want %s", d, err, two.Digest)
	}
	if d, err := s.Tag(ctx, "r", "b"); err != nil || d != one.Digest {
		t.Errorf("tag b = %s, %v; want %s", d, err, one.Digest)
	}
	if _, err := s.Tag(ctx, "r", "missing"); !errors.Is(err, meta.ErrTagUnknown) {
		t.Errorf("Tag(missing): err = %v", err)
	}
}

func testDeletes(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	m := image("to delete")
	mustPut(t, s, "r", m, "keep", "drop")
	d, err := s.DeleteTag(ctx, "r", "drop")
	if err != nil || d != m.Digest {
		t.Fatalf("DeleteTag = %s, %v", d, err)
	}
	if _, err := s.Tag(ctx, "r", "drop"); !errors.Is(err, meta.ErrTagUnknown) {
		t.Errorf("deleted tag still resolves: %v", err)
	}
	if _, err := s.Manifest(ctx, "r", m.Digest); err != nil {
		t.Errorf("DeleteTag deleted the manifest: %v", err)
	}
	if _, err := s.DeleteTag(ctx, "r", "drop"); !errors.Is(err, meta.ErrTagUnknown) {
		t.Errorf("second DeleteTag: err = %v", err)
	}
	tags, err := s.DeleteManifest(ctx, "r", m.Digest)
	if err != nil || !slices.Equal(tags, []string{"keep"}) {
		t.Fatalf("DeleteManifest = %v, %v; want [keep]", tags, err)
	}
	if _, err := s.Tag(ctx, "r", "keep"); !errors.Is(err, meta.ErrTagUnknown) {
		t.Errorf("a tag of a deleted manifest still resolves: %v", err)
	}
	if _, err := s.DeleteManifest(ctx, "r", m.Digest); !errors.Is(err, meta.ErrManifestUnknown) {
		t.Errorf("second DeleteManifest: err = %v", err)
	}
	if _, err := s.DeleteManifest(ctx, "never/seen", m.Digest); !errors.Is(err, meta.ErrManifestUnknown) {
		t.Errorf("DeleteManifest in an unknown repository: err = %v", err)
	}
}

// testDeleteRepository deletes a repository holding an index, its
// platform manifests, a referrer and tags: everything of it goes in one
// change, each manifest is announced, and a repository of the same
// prefix keeps everything.
func testDeleteRepository(t *testing.T, f Factory) {
	ctx := event.WithActor(context.Background(), "alice")
	s, _ := f(t)
	cfg, layer := dg("config"), dg("layer")
	for _, repo := range []string{"p/app", "p/app-other"} {
		mustLink(t, s, repo, cfg, 10)
		mustLink(t, s, repo, layer, 20)
	}
	amd, arm := image("amd64", cfg, layer), image("arm64", cfg)
	mustPut(t, s, "p/app", amd)
	mustPut(t, s, "p/app", arm)
	index := image("index")
	index.MediaType = "application/vnd.oci.image.index.v1+json"
	index.References = []meta.Reference{{Digest: amd.Digest, Kind: meta.RefManifest}, {Digest: arm.Digest, Kind: meta.RefManifest}}
	mustPut(t, s, "p/app", index, "v1", "latest")
	sig := image("signature", cfg)
	sig.Subject = amd.Digest
	mustPut(t, s, "p/app", sig)
	other := image("other", cfg)
	mustPut(t, s, "p/app-other", other, "v1")
	before, err := s.Events(ctx, 0, -1)
	if err != nil {
		t.Fatal(err)
	}

	changes, err := s.DeleteRepository(ctx, "p/app")
	if err != nil {
		t.Fatal(err)
	}
	var deleted []digest.Digest
	for _, e := range changes {
		deleted = append(deleted, e.Digest)
	}
	want := []digest.Digest{amd.Digest, arm.Digest, index.Digest, sig.Digest}
	slices.Sort(want)
	if !slices.Equal(deleted, want) {
		t.Errorf("deleted %v, want %v", deleted, want)
	}
	for _, d := range want {
		if _, err := s.Manifest(ctx, "p/app", d); !errors.Is(err, meta.ErrManifestUnknown) {
			t.Errorf("manifest %s outlived its repository: %v", d, err)
		}
	}
	if _, err := s.Tags(ctx, "p/app", "", -1); !errors.Is(err, meta.ErrRepositoryUnknown) {
		t.Errorf("tags of the deleted repository: %v", err)
	}
	if _, err := s.BlobSize(ctx, "p/app", layer); !errors.Is(err, meta.ErrBlobUnknown) {
		t.Errorf("a blob is still readable from the deleted repository: %v", err)
	}
	if repos, err := s.Repositories(ctx, "", -1); err != nil || !slices.Equal(repos, []string{"p/app-other"}) {
		t.Errorf("repositories after the delete: %v, %v", repos, err)
	}
	if _, err := s.Manifest(ctx, "p/app-other", other.Digest); err != nil {
		t.Errorf("the other repository lost its manifest: %v", err)
	}
	if n, err := s.BlobSize(ctx, "p/app-other", layer); err != nil || n != 20 {
		t.Errorf("the other repository lost its blob: %d, %v", n, err)
	}
	evs, err := s.Events(ctx, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	tagsOf := map[digest.Digest]string{}
	for _, e := range evs[len(before):] {
		if e.Kind != event.ManifestDeleted || e.Repository != "p/app" || e.Actor != "alice" {
			t.Errorf("event %+v, want alice's deletion in p/app", e)
		}
		tagsOf[e.Digest] = fmt.Sprint(e.Tags)
		if e.Digest == index.Digest && e.MediaType != index.MediaType {
			t.Errorf("the index's deletion names media type %q", e.MediaType)
		}
	}
	if len(tagsOf) != 4 || tagsOf[index.Digest] != "[latest v1]" || tagsOf[amd.Digest] != "[]" {
		t.Errorf("deletion events: %v", tagsOf)
	}
	if _, err := s.DeleteRepository(ctx, "p/app"); !errors.Is(err, meta.ErrRepositoryUnknown) {
		t.Errorf("second DeleteRepository: %v", err)
	}
	// The name can be pushed to again, from nothing.
	mustLink(t, s, "p/app", cfg, 10)
	mustPut(t, s, "p/app", image("again", cfg), "v1")
	if tags, err := s.Tags(ctx, "p/app", "", -1); err != nil || !slices.Equal(tags, []string{"v1"}) {
		t.Errorf("tags after pushing again: %v, %v", tags, err)
	}
}

// testSignatureArrivals: the first push of a signature is remembered,
// across repositories, re-pushes and the deletion of what carried it.
func testSignatureArrivals(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	first := time.Unix(1_700_000_000, 0).UTC()
	sig := image("sig v1")
	sig.PushedAt, sig.Signatures = first, []string{"sig-a"}
	mustPut(t, s, "r", sig, "sha256-x.sig")
	// The same signature appended to later manifests, elsewhere too,
	// arrived at first.
	sig2 := image("sig v2")
	sig2.PushedAt, sig2.Signatures = first.Add(time.Hour), []string{"sig-a", "sig-b"}
	mustPut(t, s, "r", sig2, "sha256-x.sig")
	other := image("sig other repo")
	other.PushedAt, other.Signatures = first.Add(2*time.Hour), []string{"sig-a", "sig-c"}
	mustPut(t, s, "elsewhere", other)
	if _, err := s.DeleteManifest(ctx, "r", sig.Digest); err != nil {
		t.Fatal(err)
	}
	got, err := s.SignatureArrivals(ctx, []string{"sig-a", "sig-b", "sig-c", "never"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"sig-a": first, "sig-b": first.Add(time.Hour), "sig-c": first.Add(2 * time.Hour)}
	if len(got) != len(want) {
		t.Errorf("SignatureArrivals = %v, want %v", got, want)
	}
	for k, w := range want {
		if !got[k].Equal(w) {
			t.Errorf("arrival of %s = %v, want %v", k, got[k], w)
		}
	}
	if none, err := s.SignatureArrivals(ctx, nil); err != nil || len(none) != 0 {
		t.Errorf("SignatureArrivals(nil) = %v, %v", none, err)
	}
}

func testReferrers(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	subject := image("subject")
	mustPut(t, s, "r", subject, "v1")
	sig := image("signature")
	sig.Subject, sig.ArtifactType = subject.Digest, "application/vnd.dev.cosign.artifact.sig.v1+json"
	sbom := image("sbom")
	sbom.Subject, sbom.ArtifactType = subject.Digest, "application/spdx+json"
	sbom.Annotations = map[string]string{"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
	mustPut(t, s, "r", sig)
	mustPut(t, s, "r", sbom)
	// The same referrer in another repository is not listed.
	other := image("other repo sbom")
	other.Subject = subject.Digest
	mustPut(t, s, "elsewhere", other)

	all, err := s.Referrers(ctx, "r", subject.Digest, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("Referrers = %+v, %v; want 2", all, err)
	}
	for _, d := range all {
		want := sig
		if d.Digest == sbom.Digest {
			want = sbom
		}
		if d.Digest != want.Digest || d.MediaType != want.MediaType || d.Size != int64(len(want.Content)) ||
			d.ArtifactType != want.ArtifactType || len(d.Annotations) != len(want.Annotations) {
			t.Errorf("referrer %+v does not describe %s", d, want.Digest)
		}
		for k, v := range want.Annotations {
			if d.Annotations[k] != v {
				t.Errorf("referrer %s annotation %s = %q, want %q", d.Digest, k, d.Annotations[k], v)
			}
		}
	}
	filtered, err := s.Referrers(ctx, "r", subject.Digest, "application/spdx+json")
	if err != nil || len(filtered) != 1 || filtered[0].Digest != sbom.Digest {
		t.Errorf("Referrers filtered = %+v, %v", filtered, err)
	}
	none, err := s.Referrers(ctx, "r", dg("no such subject"), "")
	if err != nil || len(none) != 0 {
		t.Errorf("Referrers of an unknown subject = %+v, %v", none, err)
	}
	none, err = s.Referrers(ctx, "never/seen", subject.Digest, "")
	if err != nil || len(none) != 0 {
		t.Errorf("Referrers in an unknown repository = %+v, %v", none, err)
	}
	// Referrers are listed even while their subject is absent.
	if _, err := s.DeleteManifest(ctx, "r", subject.Digest); err != nil {
		t.Fatal(err)
	}
	if all, err := s.Referrers(ctx, "r", subject.Digest, ""); err != nil || len(all) != 2 {
		t.Errorf("Referrers after the subject was deleted = %d, %v; want 2", len(all), err)
	}
}

func testRepositories(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	for _, r := range []string{"c/app", "a/app", "b", "a/app/sub"} {
		mustPut(t, s, r, image(r))
	}
	mustLink(t, s, "only/blobs", dg("x"), 1)
	if err := s.CreateUpload(ctx, meta.Upload{ID: "u1", Repository: "only/upload", StartedAt: time.Now()}, meta.UploadLimit{}); err != nil {
		t.Fatal(err)
	}
	all, err := s.Repositories(ctx, "", -1)
	want := []string{"a/app", "a/app/sub", "b", "c/app"}
	if err != nil || !slices.Equal(all, want) {
		t.Fatalf("Repositories = %v, %v; want %v", all, err, want)
	}
	page, err := s.Repositories(ctx, "a/app", 2)
	if err != nil || !slices.Equal(page, want[1:3]) {
		t.Errorf("Repositories(last=a/app, n=2) = %v, %v", page, err)
	}
	names, err := s.RepositoryNames(ctx)
	if err != nil || len(names) != 6 {
		t.Errorf("RepositoryNames = %v, %v; want all 6", names, err)
	}
}

func testUploads(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	started := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	u := meta.Upload{ID: "0123abcd", Repository: "team/app", Account: "alice", StartedAt: started}
	if err := s.CreateUpload(ctx, u, meta.UploadLimit{}); err != nil {
		t.Fatalf("CreateUpload: %v", err)
	}
	if err := s.CreateUpload(ctx, u, meta.UploadLimit{}); !errors.Is(err, meta.ErrUploadExists) {
		t.Errorf("duplicate CreateUpload: err = %v, want ErrUploadExists", err)
	}
	got, err := s.Upload(ctx, u.ID)
	if err != nil || got.Repository != u.Repository || got.Account != u.Account || !got.StartedAt.Equal(started) {
		t.Errorf("Upload = %+v, %v; want %+v", got, err, u)
	}
	if _, err := s.Upload(ctx, "nope"); !errors.Is(err, meta.ErrUploadUnknown) {
		t.Errorf("Upload(nope): err = %v", err)
	}
	list, err := s.Uploads(ctx)
	if err != nil || len(list) != 1 || list[0].ID != u.ID || list[0].Account != u.Account {
		t.Errorf("Uploads = %+v, %v", list, err)
	}
	d := dg("uploaded")
	if err := s.LinkUploadedBlob(ctx, u.ID, d, 99); err != nil {
		t.Fatalf("LinkUploadedBlob: %v", err)
	}
	if size, err := s.BlobSize(ctx, "team/app", d); err != nil || size != 99 {
		t.Errorf("BlobSize after LinkUploadedBlob = %d, %v", size, err)
	}
	if _, err := s.Upload(ctx, u.ID); !errors.Is(err, meta.ErrUploadUnknown) {
		t.Errorf("the upload survived LinkUploadedBlob: %v", err)
	}
	if err := s.LinkUploadedBlob(ctx, u.ID, d, 99); !errors.Is(err, meta.ErrUploadUnknown) {
		t.Errorf("LinkUploadedBlob on a finished upload: err = %v", err)
	}
	if err := s.CreateUpload(ctx, meta.Upload{ID: "gone", Repository: "r", StartedAt: time.Now()}, meta.UploadLimit{}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUpload(ctx, "gone"); err != nil {
		t.Errorf("DeleteUpload: %v", err)
	}
	if err := s.DeleteUpload(ctx, "gone"); err != nil {
		t.Errorf("DeleteUpload of an unknown upload: %v", err)
	}
}

// Unfinished sessions are capped per account and per repository, checked
// in the transaction that adds one, so concurrent starts cannot overshoot.
func testUploadLimits(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	limit := meta.UploadLimit{PerRepository: 5, PerAccount: 3}
	start := func(id, repo, account string) error {
		return s.CreateUpload(ctx, meta.Upload{ID: id, Repository: repo, Account: account, StartedAt: time.Now()}, limit)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = start(fmt.Sprintf("m%d", i), "shared", "mallory")
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		var tooMany *meta.TooManyUploadsError
		switch {
		case err == nil:
			ok++
		case errors.As(err, &tooMany) && errors.Is(err, meta.ErrTooManyUploads):
			if tooMany.Scope != "account" || tooMany.Limit != 3 {
				t.Errorf("refusal %+v, want the account limit of 3", tooMany)
			}
		default:
			t.Errorf("CreateUpload: %v", err)
		}
	}
	if ok != 3 {
		t.Errorf("%d concurrent sessions of one account started, want 3", ok)
	}
	// Other accounts are not held back by mallory, until the repository is
	// full.
	for i := range 3 {
		err := start(fmt.Sprintf("o%d", i), "shared", fmt.Sprintf("other%d", i))
		var tooMany *meta.TooManyUploadsError
		if i < 2 && err != nil {
			t.Errorf("another account's session %d: %v", i, err)
		}
		if i == 2 && (!errors.As(err, &tooMany) || tooMany.Scope != "repository") {
			t.Errorf("session past the repository limit: err = %v, want the repository limit", err)
		}
	}
	// Finishing or forgetting a session frees its place.
	list, err := s.Uploads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range list {
		if u.Account == "mallory" {
			if err := s.DeleteUpload(ctx, u.ID); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if err := start("again", "elsewhere", "mallory"); err != nil {
		t.Errorf("a session after one was forgotten: %v", err)
	}
	if err := s.CreateUpload(ctx, meta.Upload{ID: "unlimited", Repository: "shared", Account: "mallory", StartedAt: time.Now()}, meta.UploadLimit{}); err != nil {
		t.Errorf("a session with no limit: %v", err)
	}
}

func testConcurrentTagPushes(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	config := dg("config")
	mustLink(t, s, "r", config, 1)
	var wg sync.WaitGroup
	pushed := make([]digest.Digest, 16)
	errs := make(chan error, len(pushed))
	for i := range pushed {
		m := image(fmt.Sprintf("racer %d", i), config)
		pushed[i] = m.Digest
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.PutManifest(ctx, "r", m, []string{"latest"}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent PutManifest: %v", err)
	}
	d, err := s.Tag(ctx, "r", "latest")
	if err != nil || !slices.Contains(pushed, d) {
		t.Errorf("latest = %s, %v; want one of the pushed manifests", d, err)
	}
	for _, p := range pushed {
		if _, err := s.Manifest(ctx, "r", p); err != nil {
			t.Errorf("manifest %s lost: %v", p, err)
		}
	}
}

func testConcurrentLinks(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	d := dg("popular")
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := fmt.Sprintf("r%d", i%4)
			if err := s.TouchBlob(ctx, d); err != nil {
				errs <- err
			}
			if err := s.LinkBlob(ctx, repo, d, 5); err != nil {
				errs <- err
			}
			if _, err := s.BlobSize(ctx, repo, d); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent link: %v", err)
	}
	repos, err := s.BlobRepositories(ctx, d, -1)
	if err != nil || len(repos) != 4 {
		t.Errorf("BlobRepositories = %v, %v; want 4", repos, err)
	}
}

func testCollectManifests(t *testing.T, f Factory) {
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour)
	aged := func(m *meta.Manifest) *meta.Manifest { m.PushedAt = old; return m }
	type world struct {
		tagged, untagged, index, child, sig, orphanSig, cosignSig, fresh *meta.Manifest
	}
	build := func(t *testing.T, s meta.Store) world {
		w := world{
			tagged:    aged(image("tagged")),
			untagged:  aged(image("untagged")),
			child:     aged(image("child")),
			sig:       aged(image("signature of tagged")),
			orphanSig: aged(image("signature of nothing")),
			cosignSig: aged(image("cosign tag-scheme signature of untagged")),
			fresh:     image("pushed just now"),
		}
		w.index = aged(image("index"))
		w.index.MediaType = "application/vnd.oci.image.index.v1+json"
		w.index.References = []meta.Reference{{Digest: w.child.Digest, Kind: meta.RefManifest}}
		w.sig.Subject = w.tagged.Digest
		w.orphanSig.Subject = dg("never pushed")
		mustPut(t, s, "r", w.tagged, "v1")
		mustPut(t, s, "r", w.untagged)
		mustPut(t, s, "r", w.child)
		mustPut(t, s, "r", w.index, "multi")
		mustPut(t, s, "r", w.sig)
		mustPut(t, s, "r", w.orphanSig)
		mustPut(t, s, "r", w.cosignSig, "sha256-"+w.untagged.Digest.Encoded()+".sig")
		mustPut(t, s, "r", w.fresh)
		return w
	}
	tests := []struct {
		name     string
		untagged bool
		gone     func(w world) []*meta.Manifest
	}{
		{"referrers of nothing go", false, func(w world) []*meta.Manifest { return []*meta.Manifest{w.orphanSig} }},
		{"untagged go too", true, func(w world) []*meta.Manifest {
			return []*meta.Manifest{w.untagged, w.orphanSig, w.cosignSig}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := f(t)
			w := build(t, s)
			got, err := s.CollectManifests(ctx, "r", meta.GCPolicy{Untagged: tc.untagged, Before: time.Now().Add(-time.Hour)})
			if err != nil {
				t.Fatalf("CollectManifests: %v", err)
			}
			var gotDigests []digest.Digest
			for _, m := range got.Manifests {
				gotDigests = append(gotDigests, m.Digest)
				if m.MediaType == "" {
					t.Errorf("collected %s without its media type", m.Digest)
				}
			}
			var want []digest.Digest
			for _, m := range tc.gone(w) {
				want = append(want, m.Digest)
			}
			slices.Sort(gotDigests)
			slices.Sort(want)
			if !slices.Equal(gotDigests, want) {
				t.Errorf("collected %v, want %v", gotDigests, want)
			}
			for _, m := range []*meta.Manifest{w.tagged, w.untagged, w.index, w.child, w.sig, w.orphanSig, w.cosignSig, w.fresh} {
				_, err := s.Manifest(ctx, "r", m.Digest)
				if gone := slices.Contains(want, m.Digest); gone != errors.Is(err, meta.ErrManifestUnknown) {
					t.Errorf("manifest %s: gone=%v but Manifest err = %v", m.Digest, gone, err)
				}
			}
		})
	}
	t.Run("a referrer goes with its subject", func(t *testing.T) {
		s, _ := f(t)
		w := build(t, s)
		if _, err := s.DeleteManifest(ctx, "r", w.tagged.Digest); err != nil {
			t.Fatal(err)
		}
		got, err := s.CollectManifests(ctx, "r", meta.GCPolicy{Before: time.Now().Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Manifest(ctx, "r", w.sig.Digest); !errors.Is(err, meta.ErrManifestUnknown) {
			t.Errorf("signature outlived its subject (collected %+v)", got.Manifests)
		}
	})
	t.Run("a fallback tag goes with its subject", func(t *testing.T) {
		s, _ := f(t)
		subject, sig := aged(image("subject")), aged(image("sig, also tagged normally"))
		mustPut(t, s, "r", subject)
		mustPut(t, s, "r", sig, "sha256-"+subject.Digest.Encoded()+".sig", "keep-me")
		// Make the tags old enough to collect.
		mustPut(t, s, "r", sig)
		if _, err := s.DeleteManifest(ctx, "r", subject.Digest); err != nil {
			t.Fatal(err)
		}
		got, err := s.CollectManifests(ctx, "r", meta.GCPolicy{Before: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Tags, []string{"sha256-" + subject.Digest.Encoded() + ".sig"}) {
			t.Errorf("collected tags %v, want the .sig tag", got.Tags)
		}
		if _, err := s.Manifest(ctx, "r", sig.Digest); err != nil {
			t.Errorf("a normally tagged manifest was collected: %v", err)
		}
	})
	t.Run("unknown repository", func(t *testing.T) {
		s, _ := f(t)
		got, err := s.CollectManifests(ctx, "nope", meta.GCPolicy{Untagged: true, Before: time.Now()})
		if err != nil || len(got.Manifests) != 0 {
			t.Errorf("CollectManifests(nope) = %+v, %v", got, err)
		}
	})
}

func testPruneBlobLinks(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	used, unused := dg("used"), dg("unused")
	mustLink(t, s, "r", used, 1)
	mustLink(t, s, "r", unused, 1)
	m := image("user", used)
	mustPut(t, s, "r", m)
	n, err := s.PruneBlobLinks(ctx, time.Now().Add(-time.Hour))
	if err != nil || n != 0 {
		t.Errorf("PruneBlobLinks within the grace period removed %d, %v", n, err)
	}
	n, err = s.PruneBlobLinks(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 1 {
		t.Errorf("PruneBlobLinks = %d, %v; want 1", n, err)
	}
	if _, err := s.BlobSize(ctx, "r", used); err != nil {
		t.Errorf("a link a manifest needs was pruned: %v", err)
	}
	if _, err := s.BlobSize(ctx, "r", unused); !errors.Is(err, meta.ErrBlobUnknown) {
		t.Errorf("an unreferenced link survived: %v", err)
	}
}

func testSweepBlobs(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	linked, referenced, orphan, failing := dg("linked"), dg("referenced"), dg("orphan"), dg("failing")
	mustLink(t, s, "r", linked, 1)
	mustLink(t, s, "r", referenced, 1)
	mustPut(t, s, "r", image("user", referenced))
	if err := s.UnlinkBlob(ctx, "r", referenced); err != nil {
		t.Fatal(err)
	}
	for _, d := range []digest.Digest{orphan, failing} {
		if err := s.TouchBlob(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := s.SweepBlobs(ctx, time.Now().Add(-time.Hour), func(digest.Digest) error {
		t.Error("SweepBlobs removed a blob touched within the grace period")
		return nil
	})
	if err != nil || len(removed) != 0 {
		t.Errorf("SweepBlobs within grace = %v, %v", removed, err)
	}
	boom := errors.New("disk on fire")
	var called []digest.Digest
	removed, err = s.SweepBlobs(ctx, time.Now().Add(time.Hour), func(d digest.Digest) error {
		called = append(called, d)
		if d == failing {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("SweepBlobs err = %v, want the remove error", err)
	}
	if !slices.Equal(removed, []digest.Digest{orphan}) {
		t.Errorf("removed %v, want [%s]", removed, orphan)
	}
	slices.Sort(called)
	want := []digest.Digest{orphan, failing}
	slices.Sort(want)
	if !slices.Equal(called, want) {
		t.Errorf("remove called for %v, want %v", called, want)
	}
	// The failed one is still recorded and is retried next time.
	removed, err = s.SweepBlobs(ctx, time.Now().Add(time.Hour), func(digest.Digest) error { return nil })
	if err != nil || !slices.Equal(removed, []digest.Digest{failing}) {
		t.Errorf("second SweepBlobs = %v, %v", removed, err)
	}
}

func testRemoveUnrecordedBlob(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	known := dg("known")
	if err := s.TouchBlob(ctx, known); err != nil {
		t.Fatal(err)
	}
	ran, err := s.RemoveUnrecordedBlob(ctx, known, func() error { t.Error("removed a recorded blob"); return nil })
	if err != nil || ran {
		t.Errorf("RemoveUnrecordedBlob(known) = %v, %v", ran, err)
	}
	ran, err = s.RemoveUnrecordedBlob(ctx, dg("stray"), func() error { return nil })
	if err != nil || !ran {
		t.Errorf("RemoveUnrecordedBlob(stray) = %v, %v", ran, err)
	}
	boom := errors.New("boom")
	if _, err := s.RemoveUnrecordedBlob(ctx, dg("stray"), func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("RemoveUnrecordedBlob did not return remove's error: %v", err)
	}
}

func testPruneRepositories(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	mustPut(t, s, "with-manifest", image("m"))
	mustLink(t, s, "with-blob", dg("b"), 1)
	mustLink(t, s, "emptied", dg("c"), 1)
	if err := s.UnlinkBlob(ctx, "emptied", dg("c")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUpload(ctx, meta.Upload{ID: "u", Repository: "uploading", StartedAt: time.Now()}, meta.UploadLimit{}); err != nil {
		t.Fatal(err)
	}
	if pruned, err := s.PruneRepositories(ctx, time.Now().Add(-time.Hour)); err != nil || len(pruned) != 0 {
		t.Errorf("PruneRepositories within grace = %v, %v", pruned, err)
	}
	pruned, err := s.PruneRepositories(ctx, time.Now().Add(time.Hour))
	if err != nil || !slices.Equal(pruned, []string{"emptied"}) {
		t.Errorf("PruneRepositories = %v, %v; want [emptied]", pruned, err)
	}
	names, _ := s.RepositoryNames(ctx)
	if !slices.Equal(names, []string{"uploading", "with-blob", "with-manifest"}) {
		t.Errorf("repositories after pruning = %v", names)
	}
}

func testWalkAndCheck(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	config, layer := dg("config"), dg("layer")
	mustLink(t, s, "r", config, 3)
	m := image("walked", config)
	m.References = append(m.References, meta.Reference{Digest: layer, Kind: meta.RefLayer})
	mustPut(t, s, "r", m, "t")
	if err := s.TouchBlob(ctx, dg("pending")); err != nil {
		t.Fatal(err)
	}
	var walked []*meta.Manifest
	if err := s.WalkManifests(ctx, func(repo string, m *meta.Manifest) error {
		if repo != "r" {
			t.Errorf("WalkManifests repo = %q", repo)
		}
		walked = append(walked, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(walked) != 1 || string(walked[0].Content) != string(m.Content) {
		t.Fatalf("WalkManifests visited %d manifests", len(walked))
	}
	refs := walked[0].References
	slices.SortFunc(refs, func(a, b meta.Reference) int { return int(a.Kind) - int(b.Kind) })
	if len(refs) != 2 || refs[0] != (meta.Reference{Digest: config, Kind: meta.RefBlob, Present: true}) ||
		refs[1] != (meta.Reference{Digest: layer, Kind: meta.RefLayer}) {
		t.Errorf("References = %+v", refs)
	}
	records := map[digest.Digest]meta.BlobRecord{}
	if err := s.WalkBlobs(ctx, func(r meta.BlobRecord) error { records[r.Digest] = r; return nil }); err != nil {
		t.Fatal(err)
	}
	if r := records[config]; !r.Linked || !r.Referenced || r.Size != 3 {
		t.Errorf("config record = %+v", r)
	}
	if r := records[dg("pending")]; r.Linked || r.Referenced || r.Size != -1 || r.LastUsed.IsZero() {
		t.Errorf("pending record = %+v", r)
	}
	stop := errors.New("stop")
	if err := s.WalkBlobs(ctx, func(meta.BlobRecord) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("WalkBlobs did not return the callback's error: %v", err)
	}
	problems, err := s.CheckIntegrity(ctx)
	if err != nil || len(problems) != 0 {
		t.Errorf("CheckIntegrity = %v, %v", problems, err)
	}
}

func testReopen(t *testing.T, f Factory) {
	ctx := context.Background()
	s, reopen := f(t)
	d := dg("durable")
	mustLink(t, s, "r", d, 5)
	m := image("durable", d)
	mustPut(t, s, "r", m, "v1")
	if err := s.CreateUpload(ctx, meta.Upload{ID: "in-flight", Repository: "r", StartedAt: time.Now()}, meta.UploadLimit{}); err != nil {
		t.Fatal(err)
	}
	s2 := reopen()
	if got, err := s2.Tag(ctx, "r", "v1"); err != nil || got != m.Digest {
		t.Errorf("tag after reopen = %s, %v", got, err)
	}
	if size, err := s2.BlobSize(ctx, "r", d); err != nil || size != 5 {
		t.Errorf("blob after reopen = %d, %v", size, err)
	}
	if u, err := s2.Upload(ctx, "in-flight"); err != nil || u.Repository != "r" {
		t.Errorf("upload after reopen = %+v, %v", u, err)
	}
}

// Bench runs the shared meta store benchmarks: the lookups on the registry's
// hot paths and a manifest push.
func Bench(b *testing.B, f Factory) {
	ctx := context.Background()
	s, _ := f(b)
	config := dg("bench config")
	mustLink(b, s, "bench/app", config, 100)
	m := image("bench", config)
	mustPut(b, s, "bench/app", m, "latest")
	b.Run("Tag", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Tag(ctx, "bench/app", "latest"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("Manifest", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Manifest(ctx, "bench/app", m.Digest); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("BlobSize", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.BlobSize(ctx, "bench/app", config); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("PutManifest", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			mustPut(b, s, "bench/app", image(fmt.Sprintf("push %d", i), config), "latest")
		}
	})
}

// testEvents checks the outbox: every change is recorded with the actor of
// its context, in order, survives a reopen, and a failed change records
// nothing.
func testEvents(t *testing.T, f Factory) {
	ctx := event.WithActor(context.Background(), "alice")
	s, reopen := f(t)
	cfg := dg("config")
	mustLink(t, s, "p/app", cfg, 10)
	m := image("app", cfg)
	if err := s.PutManifest(ctx, "p/app", m, []string{"v1", "latest"}); err != nil {
		t.Fatal(err)
	}
	// A manifest whose config is missing changes nothing, records nothing.
	if err := s.PutManifest(ctx, "p/app", image("broken", dg("absent")), []string{"v2"}); !errors.Is(err, meta.ErrBlobUnknown) {
		t.Fatalf("PutManifest without its config: %v", err)
	}
	if _, err := s.DeleteTag(ctx, "p/app", "latest"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteTag(ctx, "p/app", "latest"); !errors.Is(err, meta.ErrTagUnknown) {
		t.Fatalf("second DeleteTag: %v", err)
	}
	if _, err := s.DeleteManifest(context.Background(), "p/app", m.Digest); err != nil {
		t.Fatal(err)
	}

	check := func(s meta.Store) []event.Event {
		t.Helper()
		evs, err := s.Events(context.Background(), 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		type brief struct {
			kind   event.Kind
			digest digest.Digest
			tags   string
			actor  string
		}
		var got []brief
		for _, e := range evs {
			got = append(got, brief{e.Kind, e.Digest, fmt.Sprint(e.Tags), e.Actor})
			if e.Repository != "p/app" || e.At.IsZero() || e.Seq == 0 {
				t.Errorf("event %+v: want repository p/app, a time and a sequence number", e)
			}
		}
		want := []brief{
			{event.ManifestPushed, m.Digest, "[v1 latest]", "alice"},
			{event.TagDeleted, m.Digest, "[latest]", "alice"},
			{event.ManifestDeleted, m.Digest, "[v1]", ""},
		}
		if !slices.Equal(got, want) {
			t.Fatalf("events:\n got %+v\nwant %+v", got, want)
		}
		if evs[0].MediaType != m.MediaType || evs[0].ArtifactType != m.ArtifactType {
			t.Errorf("pushed event %+v lacks the media and artifact types", evs[0])
		}
		for i := 1; i < len(evs); i++ {
			if evs[i].Seq <= evs[i-1].Seq {
				t.Errorf("sequence not increasing: %d then %d", evs[i-1].Seq, evs[i].Seq)
			}
		}
		return evs
	}
	evs := check(s)
	evs = check(reopen())

	// Reading after a position and forgetting what was read.
	rest, err := s.Events(ctx, evs[0].Seq, 1)
	if err != nil || len(rest) != 1 || rest[0].Seq != evs[1].Seq {
		t.Fatalf("Events after %d, 1: %+v, %v", evs[0].Seq, rest, err)
	}
	if err := s.DeleteEvents(ctx, evs[1].Seq); err != nil {
		t.Fatal(err)
	}
	left, err := s.Events(ctx, 0, -1)
	if err != nil || len(left) != 1 || left[0].Seq != evs[2].Seq {
		t.Fatalf("after DeleteEvents: %+v, %v", left, err)
	}
	// Sequence numbers are never reused, even after the newest is deleted.
	if err := s.DeleteEvents(ctx, evs[2].Seq); err != nil {
		t.Fatal(err)
	}
	mustLink(t, s, "p/app", cfg, 10)
	mustPut(t, s, "p/app", m, "v3")
	next, err := s.Events(ctx, 0, -1)
	if err != nil || len(next) != 1 || next[0].Seq <= evs[2].Seq {
		t.Fatalf("after a new push: %+v, %v (last seq was %d)", next, err, evs[2].Seq)
	}

	// Garbage collection records what it deletes.
	if err := s.DeleteEvents(ctx, next[0].Seq); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteTag(ctx, "p/app", "v3"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CollectManifests(event.WithActor(ctx, "gc"), "p/app", meta.GCPolicy{Untagged: true, Before: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	gcEvents, err := s.Events(ctx, next[0].Seq, -1)
	if err != nil || len(gcEvents) != 2 || gcEvents[1].Kind != event.ManifestDeleted || gcEvents[1].Digest != m.Digest || gcEvents[1].Actor != "gc" {
		t.Fatalf("events of garbage collection: %+v, %v", gcEvents, err)
	}
}

// testArtifacts checks the listing: top-level manifests only (no
// referrers, no index children), newest first, with their tags, paged.
func testArtifacts(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	cfg := dg("config")
	mustLink(t, s, "p/app", cfg, 2)
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var imgs []*meta.Manifest
	for i := range 5 {
		m := image(fmt.Sprint("img", i), cfg)
		m.PushedAt = base.Add(time.Duration(i) * time.Hour)
		imgs = append(imgs, m)
	}
	mustPut(t, s, "p/app", imgs[0], "v0")
	mustPut(t, s, "p/app", imgs[1], "v1", "latest")
	mustPut(t, s, "p/app", imgs[2])
	// imgs[3] is an index child, imgs[4] a referrer.
	mustPut(t, s, "p/app", imgs[3])
	idx := &meta.Manifest{Digest: dg("index"), MediaType: "application/vnd.oci.image.index.v1+json", Content: []byte(`{"manifests":[]}`),
		PushedAt: base.Add(10 * time.Hour), References: []meta.Reference{{Digest: imgs[3].Digest, Kind: meta.RefManifest}}}
	mustPut(t, s, "p/app", idx, "multi")
	imgs[4].Subject = imgs[0].Digest
	mustPut(t, s, "p/app", imgs[4])

	got, total, err := s.Artifacts(ctx, "p/app", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var brief []string
	for _, a := range got {
		brief = append(brief, fmt.Sprintf("%s %v", a.Digest, a.Tags))
	}
	want := []string{
		fmt.Sprintf("%s [multi]", idx.Digest),
		fmt.Sprintf("%s []", imgs[2].Digest),
		fmt.Sprintf("%s [latest v1]", imgs[1].Digest),
		fmt.Sprintf("%s [v0]", imgs[0].Digest),
	}
	if total != 4 || !slices.Equal(brief, want) {
		t.Errorf("Artifacts = %d %v\nwant 4 %v", total, brief, want)
	}
	if got[2].MediaType != imgs[1].MediaType || got[2].Size != int64(len(imgs[1].Content)) || !got[2].PushedAt.Equal(imgs[1].PushedAt) {
		t.Errorf("artifact %+v", got[2])
	}
	page, total, err := s.Artifacts(ctx, "p/app", 2, 1)
	if err != nil || total != 4 || len(page) != 1 || page[0].Digest != imgs[1].Digest {
		t.Errorf("page 3 of 1: %+v, %d, %v", page, total, err)
	}
	if none, total, err := s.Artifacts(ctx, "p/none", 0, 10); err != nil || total != 0 || len(none) != 0 {
		t.Errorf("unknown repository: %v %d %v", none, total, err)
	}
}

// testEventsConcurrentWriters checks that a reader following the outbox by
// position while many pushes commit at once sees every change: a change
// must never become visible behind a position the reader already passed.
func testEventsConcurrentWriters(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f(t)
	cfg := dg("config")
	mustLink(t, s, "r", cfg, 1)
	const writers, each = 8, 15
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := s.PutManifest(ctx, "r", image(fmt.Sprintf("w%d-%d", w, i), cfg), []string{fmt.Sprintf("w%d", w)}); err != nil {
					t.Errorf("PutManifest: %v", err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	seen := map[digest.Digest]bool{}
	var last int64
	read := func() {
		evs, err := s.Events(ctx, last, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Seq <= last {
				t.Fatalf("event %d after position %d", e.Seq, last)
			}
			last = e.Seq
			seen[e.Digest] = true
		}
	}
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		read()
	}
	for range writers * each {
		read()
	}
	if len(seen) != writers*each {
		t.Errorf("a reader following the outbox saw %d of %d pushes", len(seen), writers*each)
	}
}
