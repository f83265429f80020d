package server

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"berth.dev/berth/internal/policy/policytest"
	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/store"
)

// policyServer is a server with project "team" and a store that signs
// into it as the administrator.
func policyServer(t *testing.T) (*authServer, *store.Remote, string) {
	a := startAuthServer(t)
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team")
	u, err := url.Parse(a.url)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := name.NewRegistry(u.Host, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.NewRemote(reg, remote.WithAuth(&authn.Basic{Username: "admin", Password: testAdminPassword}))
	if err != nil {
		t.Fatal(err)
	}
	return a, st, u.Host
}

func putPolicy(a *authServer, project, doc string) answer {
	return a.do("PUT", "/api/v1/projects/"+project+"/policy", []byte(doc), append(adminCreds, "Content-Type", "application/yaml")...)
}

// TestPullTimePolicy: with a project policy requiring a signature by the
// trusted key, a signed image is served, unsigned and wrongly signed ones
// are refused with 403 DENIED naming the rule, by tag and by digest, GET
// and HEAD; the signatures themselves stay pullable; a cached verdict
// costs no evaluation and a new signature is seen at once.
func TestPullTimePolicy(t *testing.T) {
	a, st, host := policyServer(t)
	ci, other := policytest.NewKey(t, "ci"), policytest.NewKey(t, "other")
	signed := policytest.PushTo(t, st, host, "team/app", "signed", "signed")
	policytest.SignTarget(t, st, signed, ci, false, nil)
	bundled := policytest.PushTo(t, st, host, "team/app", "bundled", "bundled")
	policytest.SignTarget(t, st, bundled, ci, true, nil)
	unsigned := policytest.PushTo(t, st, host, "team/app", "unsigned", "unsigned")
	wrong := policytest.PushTo(t, st, host, "team/app", "wrong", "wrong")
	policytest.SignTarget(t, st, wrong, other, false, nil)

	doc := fmt.Sprintf(`apiVersion: berth.dev/v1
kind: ImagePolicy
metadata: {name: release}
spec:
  signers:
    keys:
    - name: ci
      data: |
%s
`, ci.Indented(8))
	r := a.expect(putPolicy(a, "team", doc), 200, "put policy")
	if !strings.Contains(r.body, `"documents":["ImagePolicy/release"]`) {
		t.Errorf("put answer %s", r.body)
	}
	got := a.expect(a.api(adminCreds, "GET", "/projects/team/policy", nil), 200, "get policy")
	if got.body != doc || got.header.Get("Content-Type") != "application/yaml" {
		t.Errorf("get policy: %q %s", got.body, got.header.Get("Content-Type"))
	}

	pull := func(method, ref string) answer {
		return a.do(method, "/v2/team/app/manifests/"+ref, nil, append(adminCreds, "Accept", "application/vnd.oci.image.manifest.v1+json")...)
	}
	for _, tc := range []struct {
		name   string
		target sign.Target
		tag    string
		status int
		msg    string
	}{
		{"signed by the trusted key (berth sign, cosign v2 layout)", signed, "signed", 200, ""},
		{"signed by the trusted key (sigstore bundle, cosign v3 layout)", bundled, "bundled", 200, ""},
		{"unsigned", unsigned, "unsigned", 403, "denied by the policy of project team: ImagePolicy/release: signature: not signed by 1 of [ci]"},
		{"signed by another key", wrong, "wrong", 403, "signature does not verify with any given key"},
	} {
		for _, ref := range []string{tc.tag, tc.target.Manifest.Digest.String()} {
			for _, method := range []string{"GET", "HEAD"} {
				r := pull(method, ref)
				if r.status != tc.status {
					t.Errorf("%s: %s %s: %d %s, want %d", tc.name, method, ref, r.status, r.body, tc.status)
					continue
				}
				if tc.status == 403 && method == "GET" && (!strings.Contains(r.body, `"code":"DENIED"`) || !strings.Contains(r.body, tc.msg)) {
					t.Errorf("%s: %s: body %s, want DENIED with %q", tc.name, ref, r.body, tc.msg)
				}
			}
		}
	}
	// The signatures stay pullable, by tag and by digest, so verifiers
	// can read them.
	sigTag := sign.Tag(wrong.Manifest.Digest, "sig")
	r = a.expect(pull("GET", sigTag), 200, "signature manifest by tag")
	a.expect(pull("GET", r.header.Get("Docker-Content-Digest")), 200, "signature manifest by digest")
	if _, err := sign.Verify(context.Background(), st, signed, sign.Trust{Keys: []sign.TrustedKey{trusted(t, ci)}, Require: 1}, sign.VerifyOptions{}); err != nil {
		t.Errorf("cosign-style verification through the registry: %v", err)
	}

	// Cached: pulling again evaluates nothing.
	e := a.s.policies.enforcer
	before := e.Evaluations()
	for range 5 {
		a.expect(pull("GET", "signed"), 200, "cached pull")
		a.expect(pull("GET", "unsigned"), 403, "cached refusal")
	}
	if n := e.Evaluations() - before; n != 0 {
		t.Errorf("%d evaluations for cached pulls, want 0", n)
	}
	// Signing the refused image is seen by the next pull.
	policytest.SignTarget(t, st, unsigned, ci, true, nil)
	a.expect(pull("GET", "unsigned"), 200, "pull after signing")

	// Warn mode serves and says why.
	a.expect(putPolicy(a, "team", strings.Replace(doc, "spec:\n", "spec:\n  mode: warn\n", 1)), 200, "warn policy")
	r = a.expect(pull("GET", "wrong"), 200, "warn mode")
	if w := r.header.Get("Warning"); !strings.HasPrefix(w, `299 - "ImagePolicy/release: signature: not signed by 1 of [ci]`) {
		t.Errorf("Warning header %q", w)
	}

	// A bad policy is refused with its line and the old one stays.
	bad := a.expect(putPolicy(a, "team", strings.Replace(doc, "signers:", "signerz:", 1)), 400, "bad policy")
	if !strings.Contains(bad.body, "policy of project team:5: field signerz not found") {
		t.Errorf("bad policy answer %s", bad.body)
	}
	a.expect(pull("GET", "wrong"), 200, "old (warn) policy still enforced")

	// Deleted: everything is served again.
	a.expect(putPolicy(a, "team", doc), 200, "enforce again")
	a.expect(pull("GET", "wrong"), 403, "enforced")
	a.expect(a.api(adminCreds, "DELETE", "/projects/team/policy", nil), 204, "delete policy")
	a.expect(pull("GET", "wrong"), 200, "no policy")
	a.expect(a.api(adminCreds, "GET", "/projects/team/policy", nil), 404, "no policy to get")
}

func trusted(t *testing.T, k policytest.Key) sign.TrustedKey {
	t.Helper()
	tk, err := sign.NewTrustedKey(k.Name, k.Sign.Public(), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}
