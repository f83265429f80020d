package store_test

import (
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"

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
