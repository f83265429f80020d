// Package policytest holds what tests of policy enforcement share: an
// in-process registry on loopback, generated keys in the forms policies
// name them, images pushed and signed the ways cosign and berth sign.
package policytest

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/keys"
	"berth.dev/berth/internal/sign/store"
	"berth.dev/berth/internal/sign/store/storetest"
)

// Registry is go-containerregistry's registry on loopback with a store
// for it.
type Registry struct {
	Host  string
	Store *store.Remote
	URL   string
}

// NewRegistry starts a registry; wrap (if not nil) sees its traffic.
func NewRegistry(t testing.TB, wrap func(http.Handler) http.Handler) *Registry {
	t.Helper()
	var h http.Handler = registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &Registry{Host: u.Host, Store: StoreFor(t, u.Host), URL: srv.URL}
}

// StoreFor is a store speaking plain HTTP to host.
func StoreFor(t testing.TB, host string) *store.Remote {
	t.Helper()
	reg, err := name.NewRegistry(host, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.NewRemote(reg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Push pushes a one-layer image (its content derived from seed) tagged
// tag into repo and returns it resolved.
func (r *Registry) Push(t testing.TB, repo, tag, seed string) sign.Target {
	t.Helper()
	return PushTo(t, r.Store, r.Host, repo, tag, seed)
}

// PushTo pushes through st to the registry host.
func PushTo(t testing.TB, st store.Store, host, repo, tag, seed string) sign.Target {
	t.Helper()
	storetest.Image(t, st, repo, tag, seed)
	ref, err := name.ParseReference(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	target, err := sign.Resolve(context.Background(), st, ref)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// Key is a generated key pair.
type Key struct {
	Name string
	Sign *sign.Key
	// PEM is the public key as policies hold it.
	PEM string
}

// NewKey generates a key pair.
func NewKey(t testing.TB, name string) Key {
	t.Helper()
	priv, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	k, err := sign.NewKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := keys.EncodePublic(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return Key{Name: name, Sign: k, PEM: string(pem)}
}

// Indented is the PEM indented for a YAML block scalar at depth spaces.
func (k Key) Indented(depth int) string {
	pad := strings.Repeat(" ", depth)
	return pad + strings.ReplaceAll(strings.TrimSpace(k.PEM), "\n", "\n"+pad)
}

// SignTarget signs t with k, as a sigstore bundle referrer when bundle
// is set (cosign v3) or in the .sig tag (cosign v2).
func SignTarget(t testing.TB, st store.Store, target sign.Target, k Key, bundle bool, annotations map[string]string) {
	t.Helper()
	if _, err := sign.Sign(context.Background(), st, target, k.Sign, sign.SignOptions{Referrers: bundle, Annotations: annotations}); err != nil {
		t.Fatal(err)
	}
}

// AttestTarget attaches a predicate of kind (a cosign --type name or URI),
// with annotations on the statement's subject (as berth serve's scan
// stage marks its attestations).
func AttestTarget(t testing.TB, st store.Store, target sign.Target, k Key, kind, predicate string, bundle bool, annotations map[string]string) {
	t.Helper()
	s, err := sign.NewStatement(target, kind, []byte(predicate), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := range s.Subject {
		for name, v := range annotations {
			if s.Subject[i].Annotations == nil {
				s.Subject[i].Annotations = map[string]any{}
			}
			s.Subject[i].Annotations[name] = v
		}
	}
	if _, err := sign.Attest(context.Background(), st, target, s, k.Sign, sign.AttestOptions{Referrers: bundle}); err != nil {
		t.Fatal(err)
	}
}

// CopyTag copies the manifest tagged fromTag in fromRepo, with its blobs,
// to toRepo as toTag: a signature moved where it does not belong.
func CopyTag(t testing.TB, st store.Store, fromRepo, fromTag, toRepo, toTag string) {
	t.Helper()
	ctx := context.Background()
	m, err := st.Manifest(ctx, fromRepo, fromTag)
	if err != nil {
		t.Fatal(err)
	}
	var mf struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(m.Body, &mf); err != nil {
		t.Fatal(err)
	}
	for _, d := range append([]string{mf.Config.Digest}, func() []string {
		var ds []string
		for _, l := range mf.Layers {
			ds = append(ds, l.Digest)
		}
		return ds
	}()...) {
		h, err := v1.NewHash(d)
		if err != nil {
			t.Fatal(err)
		}
		b, err := st.Blob(ctx, fromRepo, h)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.PutBlob(ctx, toRepo, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.PutTag(ctx, toRepo, toTag, m.Descriptor.MediaType, m.Body); err != nil {
		t.Fatal(err)
	}
}
