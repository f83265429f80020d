package sign

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"

	"berth.dev/berth/internal/sign/keys"
	"berth.dev/berth/internal/sign/store"
	"berth.dev/berth/internal/sign/store/storetest"
)

// testRegistry is go-containerregistry's in-process registry on loopback
// and a Remote store for it.
type testRegistry struct {
	host  string
	store *store.Remote
}

func newTestRegistry(t testing.TB, referrersAPI bool) *testRegistry {
	t.Helper()
	return newWrappedTestRegistry(t, referrersAPI, nil)
}

// newWrappedTestRegistry is newTestRegistry with the registry's handler
// passed through wrap (when not nil), to watch or alter its traffic.
func newWrappedTestRegistry(t testing.TB, referrersAPI bool, wrap func(http.Handler) http.Handler) *testRegistry {
	t.Helper()
	var h http.Handler = registry.New(
		registry.WithReferrersSupport(referrersAPI),
		registry.Logger(log.New(io.Discard, "", 0)),
	)
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
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
	return &testRegistry{host: u.Host, store: s}
}

// image pushes an image tagged tag into repo and returns it resolved.
func (r *testRegistry) image(t testing.TB, repo, tag, seed string) Target {
	t.Helper()
	storetest.Image(t, r.store, repo, tag, seed)
	ref, err := name.ParseReference(r.host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	target, err := Resolve(context.Background(), r.store, ref)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// testKey is a generated key pair, for signing and as a trusted key.
type testKey struct {
	name    string
	key     *Key
	trusted TrustedKey
}

func newTestKey(t testing.TB, name string) testKey {
	t.Helper()
	priv, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := NewTrustedKey(name, priv.Public(), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return testKey{name: name, key: k, trusted: tk}
}

func trustOf(require int, ks ...testKey) Trust {
	t := Trust{Require: require}
	for _, k := range ks {
		t.Keys = append(t.Keys, k.trusted)
	}
	return t
}
