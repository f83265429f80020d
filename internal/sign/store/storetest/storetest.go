// Package storetest is the one suite every store.Store implementation runs,
// so that signing behaves the same over any registry client.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"berth.dev/berth/internal/sign/store"
)

// Factory returns a fresh, empty store and the repository to use in it.
type Factory func(t *testing.T) (store.Store, string)

// Run runs the suite against stores from newStore.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store, string)
	}{
		{"BlobRoundTrip", testBlobRoundTrip},
		{"MissingBlob", testMissingBlob},
		{"ManifestByDigest", testManifestByDigest},
		{"TagMoves", testTagMoves},
		{"MissingManifest", testMissingManifest},
		{"Referrers", testReferrers},
		{"NoReferrers", testNoReferrers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, repo := newStore(t)
			tc.fn(t, s, repo)
		})
	}
}

// Image pushes a minimal image (config and one layer) whose content is
// derived from seed and returns its manifest descriptor.
func Image(t testing.TB, s store.Writer, repo, tag, seed string) v1.Descriptor {
	t.Helper()
	ctx := context.Background()
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":{"seed":%q}}}`, seed))
	layer := []byte("layer " + seed)
	for _, b := range [][]byte{cfg, layer} {
		if err := s.PutBlob(ctx, repo, b); err != nil {
			t.Fatalf("put blob: %v", err)
		}
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        describe(types.OCIConfigJSON, cfg),
		Layers:        []v1.Descriptor{describe(types.OCILayer, layer)},
	}
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var d v1.Descriptor
	if tag == "" {
		d, err = s.PutManifest(ctx, repo, types.OCIManifestSchema1, body)
	} else {
		d, err = s.PutTag(ctx, repo, tag, types.OCIManifestSchema1, body)
	}
	if err != nil {
		t.Fatalf("put manifest: %v", err)
	}
	return d
}

func describe(mt types.MediaType, b []byte) v1.Descriptor {
	h, size, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		panic(err) // hashing an in-memory slice cannot fail
	}
	return v1.Descriptor{MediaType: mt, Digest: h, Size: size}
}

func testBlobRoundTrip(t *testing.T, s store.Store, repo string) {
	ctx := context.Background()
	content := []byte(`{"critical":{}}`)
	if err := s.PutBlob(ctx, repo, content); err != nil {
		t.Fatal(err)
	}
	got, err := s.Blob(ctx, repo, describe("", content).Digest)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(content) {
		t.Fatalf("blob = %q", got)
	}
}

func testMissingBlob(t *testing.T, s store.Store, repo string) {
	Image(t, s, repo, "base", "missing-blob")
	_, err := s.Blob(context.Background(), repo, describe("", []byte("never stored")).Digest)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

func testManifestByDigest(t *testing.T, s store.Store, repo string) {
	ctx := context.Background()
	d := Image(t, s, repo, "", "by-digest")
	got, err := s.Resolve(ctx, repo, d.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != d.Digest || got.Size != d.Size || got.MediaType != types.OCIManifestSchema1 {
		t.Fatalf("Resolve = %+v, want %+v", got, d)
	}
	m, err := s.Manifest(ctx, repo, d.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if m.Descriptor.Digest != d.Digest || int64(len(m.Body)) != d.Size {
		t.Fatalf("Manifest = %+v", m.Descriptor)
	}
}

func testTagMoves(t *testing.T, s store.Store, repo string) {
	ctx := context.Background()
	first := Image(t, s, repo, "latest", "one")
	got, err := s.Resolve(ctx, repo, "latest")
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != first.Digest {
		t.Fatalf("latest = %s, want %s", got.Digest, first.Digest)
	}
	second := Image(t, s, repo, "latest", "two")
	m, err := s.Manifest(ctx, repo, "latest")
	if err != nil {
		t.Fatal(err)
	}
	if m.Descriptor.Digest != second.Digest {
		t.Fatalf("latest after retag = %s, want %s", m.Descriptor.Digest, second.Digest)
	}
	if _, err := s.Resolve(ctx, repo, first.Digest.String()); err != nil {
		t.Fatalf("old manifest lost after retag: %v", err)
	}
}

func testMissingManifest(t *testing.T, s store.Store, repo string) {
	ctx := context.Background()
	Image(t, s, repo, "present", "missing-manifest")
	if _, err := s.Resolve(ctx, repo, "absent"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Resolve absent tag: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Manifest(ctx, repo, "absent"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Manifest absent tag: err = %v, want ErrNotFound", err)
	}
	missing := describe("", []byte("no such manifest")).Digest.String()
	if _, err := s.Manifest(ctx, repo, missing); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Manifest absent digest: err = %v, want ErrNotFound", err)
	}
}

func testReferrers(t *testing.T, s store.Store, repo string) {
	ctx := context.Background()
	subject := Image(t, s, repo, "app", "subject")
	empty := []byte("{}")
	if err := s.PutBlob(ctx, repo, empty); err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"hello":"referrer"}`)
	if err := s.PutBlob(ctx, repo, payload); err != nil {
		t.Fatal(err)
	}
	const artifactType = "application/vnd.example.test+json"
	m := struct {
		v1.Manifest
		ArtifactType string `json:"artifactType"`
	}{v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        describe("application/vnd.oci.empty.v1+json", empty),
		Layers:        []v1.Descriptor{describe(artifactType, payload)},
		Subject:       &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
		Annotations:   map[string]string{"org.example": "yes"},
	}, artifactType}
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := s.PutManifest(ctx, repo, types.OCIManifestSchema1, body)
	if err != nil {
		t.Fatal(err)
	}
	refs, err := s.Referrers(ctx, repo, subject.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0].Digest != ref.Digest {
		t.Fatalf("Referrers = %+v, want one with digest %s", refs, ref.Digest)
	}
}

func testNoReferrers(t *testing.T, s store.Store, repo string) {
	subject := Image(t, s, repo, "lonely", "no-referrers")
	refs, err := s.Referrers(context.Background(), repo, subject.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 0 {
		t.Fatalf("Referrers = %+v, want none", refs)
	}
}
