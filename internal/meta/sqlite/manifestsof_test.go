package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/meta/sqlite"
)

// TestManifestRepositoriesOf answers for many digests what
// ManifestRepositories answers for each, past one batch of digests.
func TestManifestRepositoriesOf(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ds []digest.Digest
	for i := range 600 {
		content := []byte(fmt.Sprintf(`{"schemaVersion":2,"n":%d}`, i))
		m := &meta.Manifest{Digest: digest.FromBytes(content), MediaType: "application/vnd.oci.image.manifest.v1+json", Content: content, PushedAt: time.Now()}
		for _, repo := range []string{"b/app", "a/app"}[:1+i%2] {
			if err := s.PutManifest(ctx, repo, m, nil); err != nil {
				t.Fatal(err)
			}
		}
		ds = append(ds, m.Digest)
	}
	missing := digest.FromString("none")
	got, err := s.ManifestRepositoriesOf(ctx, append(slices.Clone(ds), missing))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ds) {
		t.Errorf("%d digests answered, want %d", len(got), len(ds))
	}
	for _, d := range ds {
		want, err := s.ManifestRepositories(ctx, d, -1)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got[d], want) {
			t.Errorf("%s: %v, want %v", d, got[d], want)
		}
	}
	if _, ok := got[missing]; ok {
		t.Error("a digest no repository holds was answered")
	}
}
