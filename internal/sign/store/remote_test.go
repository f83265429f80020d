package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"berth.dev/berth/internal/sign/store"
	"berth.dev/berth/internal/sign/store/storetest"
)

// newRemote starts go-containerregistry's in-process registry, with or
// without the referrers API, and returns a Remote store for it.
func newRemote(referrers bool) storetest.Factory {
	return func(t *testing.T) (store.Store, string) {
		srv := httptest.NewServer(registry.New(
			registry.WithReferrersSupport(referrers),
			registry.Logger(log.New(io.Discard, "", 0)),
		))
		t.Cleanup(srv.Close)
		u, err := url.Parse(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		reg, err := name.NewRegistry(u.Host, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		s, err := store.NewRemote(reg)
		if err != nil {
			t.Fatal(err)
		}
		return s, "team/app"
	}
}

func TestRemoteWithReferrersAPI(t *testing.T) { storetest.Run(t, newRemote(true)) }

func TestRemoteWithReferrersTagSchema(t *testing.T) { storetest.Run(t, newRemote(false)) }

// PutReferrer stores the manifest either way, reports whether the
// registry lists it through the referrers API, and never writes the
// referrers tag schema's index. It relies on go-containerregistry's wording
// for a registry without the API; this pins it.
func TestRemotePutReferrer(t *testing.T) {
	ctx := context.Background()
	for _, referrersAPI := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrers API %v", referrersAPI), func(t *testing.T) {
			s, repo := newRemote(referrersAPI)(t)
			r := s.(store.ReferrerWriter)
			subject := storetest.Image(t, s, repo, "v1", "subject")
			if err := s.PutBlob(ctx, repo, []byte("{}")); err != nil {
				t.Fatal(err)
			}
			body := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"artifactType":"application/example",`+
				`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},`+
				`"layers":[],"subject":{"mediaType":%q,"digest":%q,"size":%d}}`,
				types.OCIManifestSchema1, subject.MediaType, subject.Digest, subject.Size)
			d, listed, err := r.PutReferrer(ctx, repo, types.OCIManifestSchema1, []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if listed != referrersAPI {
				t.Fatalf("listed = %v, want %v", listed, referrersAPI)
			}
			if m, err := s.Manifest(ctx, repo, d.Digest.String()); err != nil || string(m.Body) != body {
				t.Fatalf("manifest by digest: %s (%v)", m.Body, err)
			}
			schemaTag := subject.Digest.Algorithm + "-" + subject.Digest.Hex
			if _, err := s.Resolve(ctx, repo, schemaTag); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("referrers tag %s: err = %v, want it absent", schemaTag, err)
			}
			refs, err := s.Referrers(ctx, repo, subject.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 1, false: 0}[referrersAPI]; len(refs) != want {
				t.Fatalf("%d referrers listed, want %d", len(refs), want)
			}
		})
	}
}
