package sign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"berth.dev/berth/internal/sign/attestation"
	"berth.dev/berth/internal/sign/store"
)

// requireNoReferrersAPI checks that reg answers the referrers API with 404,
// as a registry without it (distribution's) does, so that clients take the
// referrers tag schema.
func requireNoReferrersAPI(t *testing.T, reg *testRegistry, img Target) {
	t.Helper()
	resp, err := http.Get("http://" + reg.host + "/v2/" + img.Repo + "/referrers/" + img.Manifest.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("referrers API answered %s, want 404 Not Found", resp.Status)
	}
}

// listedReferrers returns the index tagged sha256-<hex> for img.
func listedReferrers(t *testing.T, reg *testRegistry, img Target) v1.IndexManifest {
	t.Helper()
	m, err := reg.store.Manifest(context.Background(), img.Repo, schemaTag(img.Manifest.Digest))
	if err != nil {
		t.Fatal(err)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(m.Body, &im); err != nil {
		t.Fatal(err)
	}
	return im
}

// Several parties sign one image at the same moment with --referrers on a
// registry without the referrers API: each bundle is a manifest of its
// own, but all are listed in the one index tagged sha256-<hex>, a
// read-modify-write. Every signature must stay listed, and `berth verify`
// with all the keys must pass.
func TestConcurrentSchemaSignersKeepEverySignature(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t, false)
	img := reg.image(t, "team/app", "v1", "concurrent schema signers")
	requireNoReferrersAPI(t, reg, img)
	ks := signerKeys(t, concurrentSigners)
	err := runTogether(len(ks), func(i int) error {
		_, err := Sign(ctx, reg.store, img, ks[i].key, SignOptions{Referrers: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(listedReferrers(t, reg, img).Manifests); n != len(ks) {
		t.Fatalf("referrers index lists %d manifests, want %d", n, len(ks))
	}
	res, err := Verify(ctx, reg.store, img, trustOf(len(ks), ks...), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Keys(); len(got) != len(ks) {
		t.Fatalf("verified keys %v, want all %d", got, len(ks))
	}
}

// The same for attestations, listed in the same index.
func TestConcurrentSchemaAttestersKeepEveryAttestation(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t, false)
	img := reg.image(t, "team/app", "v1", "concurrent schema attesters")
	requireNoReferrersAPI(t, reg, img)
	ks := signerKeys(t, concurrentSigners)
	err := runTogether(len(ks), func(i int) error {
		st, err := NewStatement(img, "vuln", []byte(fmt.Sprintf(`{"scanner":{"uri":"scanner-%d"}}`, i)), fixedNow)
		if err != nil {
			return err
		}
		_, err = Attest(ctx, reg.store, img, st, ks[i].key, AttestOptions{Referrers: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(listedReferrers(t, reg, img).Manifests); n != len(ks) {
		t.Fatalf("referrers index lists %d manifests, want %d", n, len(ks))
	}
	res, err := VerifyAttestations(ctx, reg.store, img, trustOf(len(ks), ks...), VerifyOptions{PredicateType: attestation.PredicateVuln})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Verified) != len(ks) || len(res.Keys()) != len(ks) {
		t.Fatalf("verified %d attestations by keys %v, want %d", len(res.Verified), res.Keys(), len(ks))
	}
}

// unlistedReferrer stores a bundle referrer of img that no index lists yet
// and returns the entry that would list it.
func unlistedReferrer(t *testing.T, reg *testRegistry, img Target, bundleJSON string) v1.Descriptor {
	t.Helper()
	ctx := context.Background()
	for _, b := range [][]byte{emptyJSON, []byte(bundleJSON)} {
		if err := reg.store.PutBlob(ctx, img.Repo, b); err != nil {
			t.Fatal(err)
		}
	}
	body, err := bundleReferrerManifest(img, []byte(bundleJSON), attestation.PredicateCosignSign, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	d, listed, err := reg.store.PutReferrer(ctx, img.Repo, types.OCIManifestSchema1, body)
	if err != nil || listed {
		t.Fatalf("PutReferrer: listed %v, err %v", listed, err)
	}
	e, err := referrerEntry(d, body)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// putSchemaIndex points img's referrers tag at an index listing entries.
func putSchemaIndex(t *testing.T, reg *testRegistry, img Target, entries ...v1.Descriptor) store.Manifest {
	t.Helper()
	body, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: entries})
	if err != nil {
		t.Fatal(err)
	}
	d, err := reg.store.PutTag(context.Background(), img.Repo, schemaTag(img.Manifest.Digest), types.OCIImageIndex, body)
	if err != nil {
		t.Fatal(err)
	}
	return store.Manifest{Descriptor: d, Body: body}
}

func digestsOf(ds []v1.Descriptor) []v1.Hash {
	hs := make([]v1.Hash, len(ds))
	for i, d := range ds {
		hs[i] = d.Digest
	}
	return hs
}

// Adding an entry keeps every other entry (fields berth does not know
// included), every other member of the index, and adds nothing twice.
func TestSchemaIndexWithKeepsEverything(t *testing.T) {
	other := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("0a", 32) +
		`","size":10,"artifactType":"application/example","annotations":{"a":"b"},"x-unknown":[1,2]}`
	body := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + other +
		`],"annotations":{"kept":"yes"},"x-extra":{"n":1}}`
	ix, err := parseSchemaIndex(types.OCIImageIndex, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	ours := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: describe(types.OCIManifestSchema1, []byte("ours")).Digest, Size: 4, ArtifactType: "application/vnd.dev.sigstore.bundle.v0.3+json"}
	got, err := ix.with(ours)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatal(err)
	}
	if string(m["annotations"]) != `{"kept":"yes"}` || string(m["x-extra"]) != `{"n":1}` || string(m["schemaVersion"]) != "2" ||
		string(m["mediaType"]) != `"application/vnd.oci.image.index.v1+json"` || len(m) != 5 {
		t.Fatalf("index members not kept: %s", got)
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(m["manifests"], &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || string(entries[0]) != other {
		t.Fatalf("entries %s, want the other entry unchanged, then ours", m["manifests"])
	}
	var e v1.Descriptor
	if err := json.Unmarshal(entries[1], &e); err != nil || e.Digest != ours.Digest || e.ArtifactType != ours.ArtifactType {
		t.Fatalf("our entry %s (%v)", entries[1], err)
	}
	if len(ix.manifests) != 1 {
		t.Fatal("with modified the index it was called on")
	}

	// The same digest is not listed twice, whatever its other fields.
	again, err := parseSchemaIndex(types.OCIImageIndex, got)
	if err != nil {
		t.Fatal(err)
	}
	ours.Annotations = map[string]string{"other": "fields"}
	if !again.lists(ours.Digest) {
		t.Fatal("our entry is not found by digest")
	}
	twice, err := again.with(ours)
	if err != nil {
		t.Fatal(err)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(twice, &im); err != nil || len(im.Manifests) != 2 {
		t.Fatalf("added twice: %s (%v)", twice, err)
	}

	// No index yet: a new one.
	fresh, err := schemaIndex{}.with(ours)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fresh, &im); err != nil || im.SchemaVersion != 2 || im.MediaType != types.OCIImageIndex ||
		len(im.Manifests) != 1 || im.Manifests[0].Digest != ours.Digest {
		t.Fatalf("new index %s (%v)", fresh, err)
	}
}

func TestParseSchemaIndexRefusesOtherManifests(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mediaType types.MediaType
		body      string
	}{
		{"image manifest", types.OCIManifestSchema1, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`},
		{"docker list", types.DockerManifestList, `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`},
		{"body says image", types.OCIImageIndex, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`},
		{"schema version 1", types.OCIImageIndex, `{"schemaVersion":1,"manifests":[]}`},
		{"not JSON", types.OCIImageIndex, `{"schemaVersion":2,`},
		{"entry not an object", types.OCIImageIndex, `{"schemaVersion":2,"manifests":["sha256:00"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseSchemaIndex(tc.mediaType, []byte(tc.body)); !errors.Is(err, ErrForeignIndex) {
				t.Fatalf("err = %v, want ErrForeignIndex", err)
			}
		})
	}
}

// A tag sha256-<hex> that holds something else than an index is left alone.
func TestReferrerRefusesForeignSchemaTag(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t, false)
	img := reg.image(t, "team/app", "v1", "foreign schema tag")
	tag := schemaTag(img.Manifest.Digest)
	foreign := reg.image(t, "team/app", tag, "not an index")
	_, err := Sign(ctx, reg.store, img, newTestKey(t, "ours").key, SignOptions{Referrers: true})
	if !errors.Is(err, ErrForeignIndex) || !strings.Contains(err.Error(), img.Name+":"+tag) {
		t.Fatalf("err = %v, want ErrForeignIndex naming %s", err, tag)
	}
	if d, err := reg.store.Resolve(ctx, img.Repo, tag); err != nil || d.Digest != foreign.Manifest.Digest {
		t.Fatalf("tag now %v (%v), want %s unchanged", d.Digest, err, foreign.Manifest.Digest)
	}
}

// A writer that read the index before our push and writes after our
// read-back drops our entry; the check after the settle time sees it and
// lists it again, keeping the other writer's entry.
func TestReferrerRepairsEntryDroppedAfterReadBack(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t, false)
	img := reg.image(t, "team/app", "v1", "late index writer")
	tag := schemaTag(img.Manifest.Digest)
	early, ours := newTestKey(t, "early"), newTestKey(t, "ours")
	if _, err := Sign(ctx, reg.store, img, early.key, SignOptions{Referrers: true}); err != nil {
		t.Fatal(err)
	}
	slow := unlistedReferrer(t, reg, img, `{"slow":"writer"}`)
	read := listedReferrers(t, reg, img).Manifests

	h := &hookStore{Store: reg.store, tag: tag}
	clobbered := false
	h.beforeRead = func(n int) {
		// Read 1 is ours before the push, read 2 the read-back that finds
		// our entry; before the check after the settle time, the slow
		// writer lands what it read (early's entry) plus its own.
		if n == 3 {
			putSchemaIndex(t, reg, img, append(read, slow)...)
			clobbered = true
		}
	}
	w, err := Sign(ctx, h, img, ours.key, SignOptions{Referrers: true})
	if err != nil {
		t.Fatal(err)
	}
	if !clobbered || h.puts != 2 {
		t.Fatalf("clobbered %v, %d pushes: the scenario did not play out", clobbered, h.puts)
	}
	got := digestsOf(listedReferrers(t, reg, img).Manifests)
	if len(got) != 3 || got[0] != read[0].Digest || got[1] != slow.Digest || got[2] != w.Manifest.Digest {
		t.Fatalf("index lists %v, want early's, the slow writer's and ours", got)
	}
	if _, err := Verify(ctx, reg.store, img, trustOf(2, early, ours), VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A writer that replaces the index after every push of ours, forever: the
// signature gives up with an error naming the tag.
func TestReferrerGivesUpWhenTheIndexNeverListsOurs(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t, false)
	img := reg.image(t, "team/app", "v1", "hostile index writer")
	tag := schemaTag(img.Manifest.Digest)
	theirs := putSchemaIndex(t, reg, img, unlistedReferrer(t, reg, img, `{"their":"bundle"}`))
	h := &hookStore{Store: reg.store, tag: tag}
	h.afterPut = func(int) {
		if _, err := reg.store.PutTag(ctx, img.Repo, tag, theirs.Descriptor.MediaType, theirs.Body); err != nil {
			t.Error(err)
		}
	}
	_, err := Sign(ctx, h, img, newTestKey(t, "ours").key, SignOptions{Referrers: true})
	if !errors.Is(err, ErrTagUnsettled) || !strings.Contains(err.Error(), img.Name+":"+tag) {
		t.Fatalf("err = %v, want ErrTagUnsettled naming %s", err, tag)
	}
	if h.puts != appendAttempts {
		t.Fatalf("%d pushes, want %d", h.puts, appendAttempts)
	}
}

// The requests one --referrers signature makes after uploading its blobs.
// With the referrers API: the manifest PUT and go-containerregistry's
// referrers query, nothing else (no index, no read-back, no settle wait),
// as before the index got its read-back. Without: the same two, then the
// index read, its PUT, the read-back and the read after the settle time
// (go-containerregistry no longer writes the index itself).
func TestReferrerRequests(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		referrersAPI bool
		want         []string
	}{
		{true, []string{"PUT /manifests/@", "GET /referrers/subject"}},
		{false, []string{"PUT /manifests/@", "GET /referrers/subject", "GET /manifests/tag", "PUT /manifests/tag", "GET /manifests/tag", "GET /manifests/tag"}},
	} {
		t.Run(fmt.Sprintf("referrers API %v", tc.referrersAPI), func(t *testing.T) {
			var log requestLog
			reg := newWrappedTestRegistry(t, tc.referrersAPI, log.wrap)
			img := reg.image(t, "team/app", "v1", "requests")
			log.take()
			start := time.Now()
			w, err := Sign(ctx, reg.store, img, newTestKey(t, "k").key, SignOptions{Referrers: true})
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			prefix := "/v2/" + img.Repo
			var got []string
			for _, r := range log.take() {
				if strings.Contains(r, "/blobs/") {
					continue
				}
				r = strings.Replace(r, prefix+"/manifests/"+w.Manifest.Digest.String(), "/manifests/@", 1)
				r = strings.Replace(r, prefix+"/manifests/"+schemaTag(img.Manifest.Digest), "/manifests/tag", 1)
				r = strings.Replace(r, prefix+"/referrers/"+img.Manifest.Digest.String(), "/referrers/subject", 1)
				got = append(got, r)
			}
			if strings.Join(got, ", ") != strings.Join(tc.want, ", ") {
				t.Fatalf("requests %q, want %q", got, tc.want)
			}
			if !tc.referrersAPI && took < settleMin {
				t.Fatalf("took %v, less than the settle time %v", took, settleMin)
			}
		})
	}
}
