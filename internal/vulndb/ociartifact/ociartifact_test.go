package ociartifact_test

import (
	"archive/zip"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/internal/vulndb"
	"berth.dev/berth/internal/vulndb/bundle"
	"berth.dev/berth/internal/vulndb/ociartifact"
	"berth.dev/berth/internal/vulndb/update"
)

var now = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

func newDB(t *testing.T, id string) string {
	t.Helper()
	feed := t.TempDir()
	os.MkdirAll(filepath.Join(feed, "npm"), 0o755)
	f, _ := os.Create(filepath.Join(feed, "npm", "all.zip"))
	zw := zip.NewWriter(f)
	w, _ := zw.Create(id + ".json")
	w.Write([]byte(`{"id":"` + id + `","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.1"}]}]}]}`))
	zw.Close()
	f.Close()
	dir := t.TempDir()
	if _, err := update.Run(context.Background(), update.Options{Dir: dir, Sources: []string{feed}, Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func leftPad(t *testing.T, dir string) string {
	t.Helper()
	db, err := vulndb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	vs, err := db.Vulnerabilities(context.Background(), "npm", "left-pad")
	if err != nil || len(vs) != 1 {
		t.Fatalf("left-pad: %v, %v", vs, err)
	}
	return vs[0].ID
}

// registryHost starts go-containerregistry's in-memory registry on
// loopback; its plain-HTTP address needs no extra option.
func registryHost(t *testing.T) string {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestPushPull(t *testing.T) {
	host := registryHost(t)
	ref := host + "/berth/vulndb:1"
	ctx := context.Background()
	d, err := ociartifact.Push(ctx, newDB(t, "PUSHED-1"), ref, now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d, "sha256:") {
		t.Errorf("digest %q", d)
	}

	// The manifest is an OCI artifact a registry browser can describe.
	r, _ := name.ParseReference(ref)
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != d {
		t.Errorf("registry holds %s, Push said %s", desc.Digest, d)
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(desc.Manifest, &man); err != nil {
		t.Fatal(err)
	}
	if man.ArtifactType != ociartifact.ArtifactType || man.Config.MediaType != ocispec.MediaTypeEmptyJSON ||
		len(man.Layers) != 1 || man.Layers[0].MediaType != bundle.MediaType {
		t.Errorf("manifest %s", desc.Manifest)
	}
	if man.Annotations[ociartifact.AnnotationRecords] != "1" || man.Annotations[ociartifact.AnnotationUpdated] != "2026-05-01T00:00:00Z" ||
		man.Annotations[ociartifact.AnnotationEcosystems] != `{"npm":1}` {
		t.Errorf("annotations %v", man.Annotations)
	}

	// update --source oci://REF installs it over an existing DB.
	dest := newDB(t, "LOCAL-1")
	info, err := update.Run(ctx, update.Options{Dir: dest, Sources: []string{"oci://" + ref}})
	if err != nil {
		t.Fatal(err)
	}
	if info.Records != 1 || leftPad(t, dest) != "PUSHED-1" {
		t.Errorf("after pull: %+v, %s", info, leftPad(t, dest))
	}
}

func TestPullRejects(t *testing.T) {
	host := registryHost(t)
	ctx := context.Background()
	dest := newDB(t, "LOCAL-1")
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	imgRef, _ := name.ParseReference(host + "/library/app:1")
	if err := remote.Write(imgRef, img); err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]string{
		host + "/berth/missing:1": "berth/missing/manifests/1",
		"not a reference!":        "could not parse",
		host + "/library/app:1":   "not a berth vulnerability database",
	} {
		_, err := update.Run(ctx, update.Options{Dir: dest, Sources: []string{"oci://" + ref}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("pull of %s: err = %v, want %q", ref, err, want)
		}
	}
	if leftPad(t, dest) != "LOCAL-1" {
		t.Error("a failed pull changed the DB")
	}
}
