package admission

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"berth.dev/berth/internal/policy/policytest"
	"berth.dev/berth/internal/sign/store"
)

// TestRegistryCredentials: an image in a registry that wants credentials
// is decided with those of a docker config (an imagePullSecret's
// .dockerconfigjson), and refused with the registry's reason without them.
func TestRegistryCredentials(t *testing.T) {
	f := newFixture(t)
	locked := policytest.NewRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "puller" || p != "s3cret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	// Pushed and signed through the lock with the credentials.
	reg, err := name.NewRegistry(locked.Host, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.NewRemote(reg, remote.WithAuth(&authn.Basic{Username: "puller", Password: "s3cret"}))
	if err != nil {
		t.Fatal(err)
	}
	tgt := policytest.PushTo(t, st, locked.Host, "team/app", "v1", "locked")
	policytest.SignTarget(t, st, tgt, f.ci, false, nil)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	auth := base64.StdEncoding.EncodeToString([]byte("puller:s3cret"))
	if err := os.WriteFile(cfg, []byte(`{"auths":{"`+locked.Host+`":{"auth":"`+auth+`"},"https://index.docker.io/v1/":{"username":"u","password":"p"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	kc, err := FileKeychain(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := kc.(fileKeychain)["index.docker.io"]; got.Username != "u" {
		t.Errorf("Docker Hub entry: %+v", got)
	}
	image := locked.Host + "/team/app:v1"
	without := post(t, handlerFor(f.policy(t, ""), Options{}), "/validate", fixtureReview(t, "pod.json", image, ""))
	if without.resp == nil || without.resp.Allowed || !strings.Contains(without.resp.Result.Message, "401 Unauthorized") {
		t.Errorf("without credentials: %+v", without.resp.Result)
	}
	with := post(t, handlerFor(f.policy(t, ""), Options{Keychain: kc}), "/validate", fixtureReview(t, "pod.json", image, ""))
	if with.resp == nil || !with.resp.Allowed {
		t.Errorf("with credentials: %+v %+v", with.resp, with.resp.Result)
	}

	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"auths":{"r.example":{"auth":"%%%"}}}`), 0o600)
	if _, err := FileKeychain(bad); err == nil || !strings.Contains(err.Error(), "r.example: auth is not base64") {
		t.Errorf("bad config: %v", err)
	}
}
