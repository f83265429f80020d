package server

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/policy"
	"berth.dev/berth/internal/policy/policytest"
	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/store"
	"berth.dev/berth/internal/sign/store/storetest"
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

// puller makes a robot that may only pull in project, as the runtimes a
// pull-time policy guards are, and returns its credentials.
func puller(t *testing.T, a *authServer, project string) []string {
	t.Helper()
	var created struct{ Secret string }
	r := a.expect(a.api(adminCreds, "POST", "/robots", map[string]any{"name": "runtime-" + project,
		"permissions": []map[string]any{{"project": project, "actions": []string{"pull"}}}}), 201, "create a pull-only robot")
	if err := json.Unmarshal([]byte(r.body), &created); err != nil || created.Secret == "" {
		t.Fatalf("robot: %s", r.body)
	}
	return basicAuth("robot$runtime-"+project, created.Secret)
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

	runtime := puller(t, a, "team")
	pull := func(method, ref string) answer {
		return a.do(method, "/v2/team/app/manifests/"+ref, nil, append(runtime, "Accept", "application/vnd.oci.image.manifest.v1+json")...)
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
	// Whoever may push to the repository is served what the policy
	// refuses, told so in a warning: a signer reads the image it signs.
	// An image pushed after the policy is signed through the registry
	// (resolved by tag and fetched as cosign and berth sign do) and is
	// then served to the runtime.
	r = a.expect(a.do("GET", "/v2/team/app/manifests/unsigned", nil, adminCreds...), 200, "an identity that may push")
	if w := r.header.Get("Warning"); !strings.Contains(w, "not signed by 1 of [ci]") || !strings.Contains(w, "you may push to team/app") {
		t.Errorf("warning to a pusher: %q", w)
	}
	a.expect(pull("GET", "late"), 404, "not pushed yet")
	late := policytest.PushTo(t, st, host, "team/app", "late", "late")
	a.expect(pull("GET", "late"), 403, "pushed, not signed yet")
	policytest.SignTarget(t, st, late, ci, false, nil)
	a.expect(pull("GET", "late"), 200, "signed after the policy was put")

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

// TestPullTimeVulnerabilityRules: a policy with vulnerability rules
// refuses an image the server has not scanned, and serves it once its
// report is stored (the stored report forgets the cached refusal).
func TestPullTimeVulnerabilityRules(t *testing.T) {
	a := startAuthServer(t, func(c *Config) {
		c.Scan.DBSources = []string{emptyFeed(t)}
		c.Scan.DBUpdateInterval = time.Hour // and once at start
		c.Jobs.RetryBase, c.Jobs.RetryMax = 50*time.Millisecond, 500*time.Millisecond
	})
	// The workers, as Serve starts them (Close stops them).
	if err := a.s.bg.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team")
	off := false
	a.expect(a.api(adminCreds, "PATCH", "/projects/team", map[string]any{"auto_scan": off}), 200, "no scan on push")
	a.expect(a.push("team/app", "v1", scannableImage(t, "vulns"), adminCreds), 201, "push")
	a.expect(putPolicy(a, "team", "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: clean}\nspec:\n  vulnerabilities: {severity: CRITICAL}\n"), 200, "policy")
	runtime := puller(t, a, "team")
	pull := func() answer { return a.do("GET", "/v2/team/app/manifests/v1", nil, runtime...) }
	r := a.expect(pull(), 403, "not scanned")
	if !strings.Contains(r.body, "ImagePolicy/clean: vulnerability: the image has not been scanned yet") {
		t.Errorf("refusal %s", r.body)
	}
	scanNow(t, a, "team", "app", "v1")
	a.expect(pull(), 200, "scanned, no critical finding")
}

// TestRevokedStageApprovalRefusesPulls: a policy requiring the scan
// key serves an image the scan stage signed; a database update whose
// re-match makes the image fail the stage rule revokes the approval, and
// the next pull is refused with the revocation's reason although the
// signature is still in the registry; an update that clears the image
// approves it again, and it is served.
func TestRevokedStageApprovalRefusesPulls(t *testing.T) {
	if policy.StageAnnotation != custody.AnnotationStage {
		t.Fatalf("policies read the stage from %q, the stage signs with %q", policy.StageAnnotation, custody.AnnotationStage)
	}
	ctx := context.Background()
	feed := t.TempDir()
	writeNPMFeed(t, feed, map[string]string{"VULN-1": "lodash"})
	a := startAuthServer(t, func(c *Config) {
		c.Keys.MasterKey = "file:" + masterKeyFile(t)
		c.Scan.DBSources = []string{feed}
		c.Scan.DBUpdateInterval = 0
		c.Jobs.RetryBase, c.Jobs.RetryMax = 50*time.Millisecond, 500*time.Millisecond
	})
	if err := a.s.bg.start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.s.bg.scans.UpdateDB(ctx); err != nil {
		t.Fatal(err)
	}
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team")
	off := false
	a.expect(a.api(adminCreds, "PATCH", "/projects/team", map[string]any{"auto_scan": off}), 200, "no scan on push")
	a.expect(a.api(adminCreds, "POST", "/projects/team/keys", map[string]any{"purpose": "scan"}), 201, "scan key")
	a.expect(a.api(adminCreds, "PUT", "/projects/team/stages/scan", map[string]any{"key": "scan", "fail_on": "high", "attest": true}), 200, "scan stage rule")
	a.expect(a.push("team/app", "v1", npmImage("minimist"), adminCreds), 201, "push a clean image")
	approval := func(want string) custody.Approval {
		t.Helper()
		var approvals []custody.Approval
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			r := a.expect(a.api(adminCreds, "GET", "/projects/team/repositories/app/artifacts/v1/approvals", nil), 200, "approvals")
			if err := json.Unmarshal([]byte(r.body), &approvals); err != nil {
				t.Fatalf("approvals: %v %s", err, r.body)
			}
			if len(approvals) == 1 && approvals[0].State == want {
				return approvals[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("approvals %+v, want one %s\n%s", approvals, want, a.logs.String())
			}
		}
	}
	scanNow(t, a, "team", "app", "v1")
	approval(custody.Approved)
	// The stage's signature, and (another document) its vulnerability
	// attestation: a revocation withdraws both.
	a.expect(putPolicy(a, "team", "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: scanned}\nspec:\n  signers:\n    keys:\n    - ref: scan\n"+
		"---\napiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {name: attested}\nspec:\n  images: [{glob: \"**\"}]\n"+
		"  authorities:\n  - name: scan\n    key: {secretRef: {name: scan}}\n    attestations: [{name: vulns, predicateType: vuln}]\n"), 200, "policy")
	runtime := puller(t, a, "team")
	pull := func() answer { return a.do("GET", "/v2/team/app/manifests/v1", nil, runtime...) }
	a.expect(pull(), 200, "signed by the scan stage")

	// No wait for the signing job to end: a re-match's stage job is
	// queued for a newer report version, so one still recorded as running
	// does not absorb it (TestStageJobsOfNewerReportsAreNotAbsorbed).
	writeNPMFeed(t, feed, map[string]string{"VULN-1": "lodash", "VULN-2": "minimist"})
	if _, err := a.s.bg.scans.UpdateDB(ctx); err != nil {
		t.Fatal(err)
	}
	revoked := approval(custody.Revoked)
	if !strings.Contains(revoked.Reason, "VULN-2") {
		t.Fatalf("revoked for %q, want VULN-2 named", revoked.Reason)
	}
	r := a.expect(pull(), 403, "scan stage approval revoked")
	want := "scan stage approval revoked: " + revoked.Reason
	for _, doc := range []string{"ImagePolicy/scanned: signature: ", "ClusterImagePolicy/attested: authority: "} {
		if i := strings.Index(r.body, doc); i < 0 || !strings.Contains(r.body[i:], want) {
			t.Errorf("refusal %s, want %s… to say %q", r.body, doc, want)
		}
	}
	// The signature itself is still there: the approval, not the
	// registry, withdrew it.
	a.expect(a.do("GET", "/v2/team/app/manifests/sha256-"+revoked.Digest.Encoded()+".sig", nil, runtime...), 200, "the stage's signature")

	writeNPMFeed(t, feed, map[string]string{"VULN-1": "lodash"})
	if _, err := a.s.bg.scans.UpdateDB(ctx); err != nil {
		t.Fatal(err)
	}
	approval(custody.Approved)
	a.expect(pull(), 200, "approved again")
}

// emptyFeed is an OSV feed holding no records: a database that finds
// nothing.
func emptyFeed(t *testing.T) string {
	feed := t.TempDir()
	var zipped bytes.Buffer
	zip.NewWriter(&zipped).Close()
	if err := os.MkdirAll(filepath.Join(feed, "npm"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(feed, "ecosystems.txt"), []byte("npm\n"), 0o644)
	os.WriteFile(filepath.Join(feed, "npm", "all.zip"), zipped.Bytes(), 0o644)
	return feed
}

// scanNow scans an artifact through the API and waits for its report.
func scanNow(t *testing.T, a *authServer, project, repo, tag string) {
	t.Helper()
	base := "/projects/" + project + "/repositories/" + repo + "/artifacts/" + tag
	a.expect(a.api(adminCreds, "POST", base+"/scan", nil), 202, "scan now")
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := a.api(adminCreds, "GET", base+"/vulnerabilities", nil)
		var rep struct{ Scan struct{ Status string } }
		if json.Unmarshal([]byte(r.body), &rep) == nil && rep.Scan.Status == "done" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("scan did not finish: %s\n%s", r.body, a.logs.String())
		}
	}
}

// TestPullTimeSecretAndMisconfigurationRules: the stored report's secrets
// refuse a pull, named by rule id and file, never the key; a server
// scanning without misconfig (the default scanners) refuses a
// misconfigurations rule with the configuration to change, rather than
// reading the missing scan as clean; an allow-list entry serves the image.
func TestPullTimeSecretAndMisconfigurationRules(t *testing.T) {
	a := startAuthServer(t, func(c *Config) {
		c.Scan.DBSources = []string{emptyFeed(t)}
		c.Scan.DBUpdateInterval = time.Hour
		c.Jobs.RetryBase, c.Jobs.RetryMax = 50*time.Millisecond, 500*time.Millisecond
	})
	if got := a.s.cfg.Scan.Scanners; !slices.Equal(got, []string{"vuln", "secret"}) {
		t.Fatalf("default scanners %v, the test is about vuln,secret", got)
	}
	if err := a.s.bg.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team")
	off := false
	a.expect(a.api(adminCreds, "PATCH", "/projects/team", map[string]any{"auto_scan": off}), 200, "no scan on push")
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	a.expect(a.push("team/app", "v1", imageOfFile(t, "srv/deploy.key", keyPEM), adminCreds), 201, "push")
	scanNow(t, a, "team", "app", "v1")
	runtime := puller(t, a, "team")
	pull := func() answer { return a.do("GET", "/v2/team/app/manifests/v1", nil, runtime...) }
	header := "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: hygiene}\nspec:\n"
	cases := []struct {
		name, spec string
		status     int
		want       []string
	}{
		{"a planted key", "  secrets: {deny: true}\n", 403,
			[]string{"ImagePolicy/hygiene: secret: private-key (CRITICAL) in srv/deploy.key:1"}},
		{"misconfigurations not scanned", "  misconfigurations: {deny: [BI001]}\n", 403,
			[]string{"ImagePolicy/hygiene: misconfiguration: not scanned for misconfigurations: add misconfig to scan.scanners"}},
		{"the key allowed", "  secrets: {deny: true, allow: [{id: private-key, path: srv/deploy.key}]}\n", 200, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a.expect(putPolicy(a, "team", header+tc.spec), 200, "policy")
			r := a.expect(pull(), tc.status, tc.name)
			for _, w := range tc.want {
				if !strings.Contains(r.body, w) {
					t.Errorf("refusal lacks %q: %s", w, r.body)
				}
			}
			if strings.Contains(r.body, "PRIVATE KEY") || strings.Contains(r.body, strings.Split(keyPEM, "\n")[1]) {
				t.Errorf("the refusal shows the key: %s", r.body)
			}
		})
	}
}

// scannableImage is a one-layer image whose layer is a real tar, with its
// diffID in the config.
func scannableImage(t *testing.T, seed string) testImage {
	return imageOfFile(t, "seed.txt", seed)
}

// imageOfFile is a one-layer image of one file, with no USER (root).
func imageOfFile(t *testing.T, path, content string) testImage {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(content))
	tw.Close()
	layer := buf.Bytes()
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digest.FromBytes(layer).String() + `"]}}`)
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		digest.FromBytes(config), len(config), digest.FromBytes(layer), len(layer))
	return testImage{config, layer, []byte(manifest)}
}

// TestAdmissionMountedInServe: berth serve answers AdmissionReviews at
// /admission/, reading its own images from its stores, and only those the
// caller may pull: without credentials a private project's image is as
// absent as a missing one.
func TestAdmissionMountedInServe(t *testing.T) {
	ci := policytest.NewKey(t, "ci")
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	doc := fmt.Sprintf("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  signers:\n    keys:\n    - name: ci\n      data: |\n%s\n", ci.Indented(8))
	if err := os.WriteFile(pol, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var host string
	a := startAuthServer(t, func(c *Config) { c.Admission.Policy = pol })
	u, _ := url.Parse(a.url)
	host = u.Host
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team")
	reg, _ := name.NewRegistry(host, name.Insecure)
	st, err := store.NewRemote(reg, remote.WithAuth(&authn.Basic{Username: "admin", Password: testAdminPassword}))
	if err != nil {
		t.Fatal(err)
	}
	signed := policytest.PushTo(t, st, host, "team/app", "signed", "signed")
	policytest.SignTarget(t, st, signed, ci, false, nil)
	policytest.PushTo(t, st, host, "team/app", "unsigned", "unsigned")
	review := func(image string, creds ...string) string {
		body := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"app","image":%q}]}}}}`, image)
		r := a.do("POST", "/admission/validate", []byte(body), append(creds, "Content-Type", "application/json")...)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		return r.body
	}
	// The name the webhook is called by names the registry too.
	ours := host
	if got := review(ours+"/team/app:signed", adminCreds...); !strings.Contains(got, `"allowed":true`) {
		t.Errorf("signed, as the administrator: %s", got)
	}
	if got := review(ours+"/team/app:unsigned", adminCreds...); !strings.Contains(got, "not signed by 1 of [ci]") {
		t.Errorf("unsigned, as the administrator: %s", got)
	}
	if got := review(ours + "/team/app:signed"); !strings.Contains(got, `"allowed":false`) || !strings.Contains(got, "not found in its registry") {
		t.Errorf("private image without credentials: %s", got)
	}
}

// BenchmarkManifestGetWithPolicy measures a cached manifest GET through the
// whole handler (auth on, Basic credentials) without a project policy and
// with one requiring a verified signature: the difference is what the
// pull-time step adds once its verdict is cached.
func BenchmarkManifestGetWithPolicy(b *testing.B) {
	for _, mode := range []string{"policy=none", "policy=signature"} {
		b.Run(mode, func(b *testing.B) {
			t := &testing.T{}
			cfg := DefaultConfig()
			cfg.Data = b.TempDir()
			cfg.Auth.AdminPassword = testAdminPassword
			s, err := New(context.Background(), cfg, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			srv := httptest.NewServer(s)
			a := &authServer{t: t, s: s, url: srv.URL}
			a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"})
			u, _ := url.Parse(srv.URL)
			reg, _ := name.NewRegistry(u.Host, name.Insecure)
			st, err := store.NewRemote(reg, remote.WithAuth(&authn.Basic{Username: "admin", Password: testAdminPassword}))
			if err != nil {
				b.Fatal(err)
			}
			ci := policytest.NewKey(b, "ci")
			tgt := policytest.PushTo(b, st, u.Host, "team/app", "v1", "bench")
			policytest.SignTarget(b, st, tgt, ci, false, nil)
			if mode == "policy=signature" {
				doc := fmt.Sprintf("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  signers:\n    keys:\n    - name: ci\n      data: |\n%s\n", ci.Indented(8))
				if r := putPolicy(a, "team", doc); r.status != 200 {
					b.Fatalf("policy: %d %s", r.status, r.body)
				}
			}
			srv.Close()
			req := httptest.NewRequest("GET", "/v2/team/app/manifests/v1", nil)
			req.Host = u.Host
			req.RemoteAddr = "127.0.0.1:40000"
			req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
			req.Header.Set(adminCreds[0], adminCreds[1])
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req.Clone(req.Context())) // the verdict is cached from here on
			if w.Code != http.StatusOK {
				b.Fatalf("GET = %d %s", w.Code, w.Body)
			}
			before := s.policies.enforcer.Evaluations()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					w := httptest.NewRecorder()
					s.ServeHTTP(w, req.Clone(req.Context()))
					if w.Code != http.StatusOK {
						b.Errorf("GET = %d %s", w.Code, w.Body)
						return
					}
				}
			})
			b.StopTimer()
			if n := s.policies.enforcer.Evaluations() - before; n != 0 {
				b.Errorf("%d evaluations while cached", n)
			}
		})
	}
}

// TestPolicyKeysFromBerthsKeyStore: a project policy names its signers by
// reference: a signing key the server holds for the project (by purpose)
// and a key of the project's trust file. The policy survives a restart.
func TestPolicyKeysFromBerthsKeyStore(t *testing.T) {
	master := masterKeyFile(t)
	trustDir := t.TempDir()
	data := t.TempDir()
	ci := policytest.NewKey(t, "ci")
	if err := os.WriteFile(filepath.Join(trustDir, "team.yaml"), []byte("keys:\n- name: ci\n  key: |\n"+ci.Indented(4)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	adjust := func(c *Config) {
		c.Data = data
		c.Keys.MasterKey = "file:" + master
		c.TrustDir = trustDir
	}
	a := startAuthServer(t, adjust)
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team")
	a.expect(a.api(adminCreds, "POST", "/projects/team/keys", map[string]any{"purpose": "release"}), 201, "release key")
	u, _ := url.Parse(a.url)
	reg, _ := name.NewRegistry(u.Host, name.Insecure)
	st, err := store.NewRemote(reg, remote.WithAuth(&authn.Basic{Username: "admin", Password: testAdminPassword}))
	if err != nil {
		t.Fatal(err)
	}
	both := policytest.PushTo(t, st, u.Host, "team/app", "both", "both")
	onlyCI := policytest.PushTo(t, st, u.Host, "team/app", "ci", "ci")
	p, _ := a.s.sec.auth.Project("team")
	release, _, err := a.s.bg.custody.Signer(context.Background(), p.ID, "release")
	if err != nil {
		t.Fatal(err)
	}
	policytest.SignTarget(t, st, both, ci, false, nil)
	policytest.SignTarget(t, st, both, policytest.Key{Name: "release", Sign: release}, true, nil)
	policytest.SignTarget(t, st, onlyCI, ci, false, nil)
	doc := "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: two}\nspec:\n  signers:\n    keys:\n    - ref: ci\n    - ref: release\n"
	a.expect(putPolicy(a, "team", doc), 200, "policy by reference")
	bad := a.expect(putPolicy(a, "team", strings.Replace(doc, "ref: release", "ref: deploy", 1)), 400, "unknown reference")
	if !strings.Contains(bad.body, `policy of project team:8: key reference \"deploy\": project team has no key`) {
		t.Errorf("unknown reference: %s", bad.body)
	}
	runtime := puller(t, a, "team")
	pull := func(a *authServer, tag string) answer {
		return a.do("GET", "/v2/team/app/manifests/"+tag, nil, runtime...)
	}
	a.expect(pull(a, "both"), 200, "signed by both")
	// The API and the web UI verify with the keys the server holds too.
	var sigs struct {
		Signatures []struct {
			Verified bool
			Keys     []string
		}
	}
	if r := a.expect(a.api(adminCreds, "GET", "/projects/team/repositories/app/artifacts/both/signatures", nil), 200, "signatures"); json.Unmarshal([]byte(r.body), &sigs) != nil {
		t.Fatalf("signatures: %s", r.body)
	}
	var vouched []string
	for _, s := range sigs.Signatures {
		if s.Verified {
			vouched = append(vouched, s.Keys...)
		}
	}
	if slices.Sort(vouched); strings.Join(vouched, ",") != "ci,release" {
		t.Errorf("signatures verified by %v, want ci and release: %+v", vouched, sigs)
	}
	r := a.expect(pull(a, "ci"), 403, "signed by ci only")
	if !strings.Contains(r.body, "not signed by 2 of [ci, release] (signed by ci)") {
		t.Errorf("refusal %s", r.body)
	}
	// Restarted on the same data directory, the policy is still enforced.
	a.s.Close()
	b := startAuthServer(t, adjust)
	b.expect(pull(b, "ci"), 403, "after a restart")
	b.expect(pull(b, "both"), 200, "after a restart")

	// The release key rotated, an image signed by ci and the new key is
	// served at once, without putting the policy again: a reference means
	// every key of the rotation, now as when the policy was put.
	b.expect(b.api(adminCreds, "POST", "/projects/team/keys/release/rotate", nil), 200, "rotate release")
	next, _, err := b.s.bg.custody.Signer(context.Background(), p.ID, "release")
	if err != nil {
		t.Fatal(err)
	}
	u, _ = url.Parse(b.url)
	reg, _ = name.NewRegistry(u.Host, name.Insecure)
	if st, err = store.NewRemote(reg, remote.WithAuth(&authn.Basic{Username: "admin", Password: testAdminPassword})); err != nil {
		t.Fatal(err)
	}
	// Pushed and signed by digest: the policy refuses the unsigned image's
	// tag to the signer too.
	rotated := sign.Target{Name: u.Host + "/team/app", Repo: "team/app", Manifest: storetest.Image(t, st, "team/app", "rotated", "rotated")}
	policytest.SignTarget(t, st, rotated, ci, false, nil)
	policytest.SignTarget(t, st, rotated, policytest.Key{Name: "release", Sign: next}, true, nil)
	b.expect(pull(b, "rotated"), 200, "signed by ci and the rotated release key")
	b.expect(pull(b, "both"), 200, "signed by the release key in its overlap")

	// Rotated again with a one-second overlap: once it has passed, the
	// second key still vouches for what the registry received while the
	// key was valid, but not for a signature it made since (a leaked
	// retired key signs nothing new).
	b.expect(b.api(adminCreds, "POST", "/projects/team/keys/release/rotate", map[string]any{"overlap": "1s"}), 200, "rotate release again")
	time.Sleep(1500 * time.Millisecond)
	late := sign.Target{Name: u.Host + "/team/app", Repo: "team/app", Manifest: storetest.Image(t, st, "team/app", "late", "late")}
	policytest.SignTarget(t, st, late, ci, false, nil)
	policytest.SignTarget(t, st, late, policytest.Key{Name: "release", Sign: next}, true, nil)
	explain := func(ref string) PolicyVerdictAnswer {
		t.Helper()
		r := b.expect(b.api(adminCreds, "GET", "/projects/team/repositories/app/artifacts/"+ref+"/policy", nil), 200, "policy of "+ref)
		var v PolicyVerdictAnswer
		if err := json.Unmarshal([]byte(r.body), &v); err != nil || v.Verdict == nil {
			t.Fatalf("policy of %s: %s (%v)", ref, r.body, err)
		}
		return v
	}
	if v := explain("rotated").Verdict; !v.Allowed {
		t.Errorf("signed inside the retired key's window, judged after it: %+v", v.Violations)
	}
	if v := explain("late").Verdict; v.Allowed || len(v.Violations) != 1 || !strings.Contains(v.Violations[0].Message, "expired") {
		t.Errorf("signed by the retired key after its window: %+v", v)
	}
	if r := b.expect(pull(b, "late"), 403, "signed by the retired key after its window"); !strings.Contains(r.body, "expired") {
		t.Errorf("refusal %s", r.body)
	}
}

// TestArtifactPolicyVerdict: the artifact's policy endpoint tells, rule by
// rule, what a pull of it is told: the unsigned image's violation is the
// one in the pull's refusal, the signed one names its signer, a signature
// is exempt, and a project without a policy says so.
func TestArtifactPolicyVerdict(t *testing.T) {
	a, st, host := policyServer(t)
	ci := policytest.NewKey(t, "ci")
	signed := policytest.PushTo(t, st, host, "team/app", "signed", "signed")
	policytest.SignTarget(t, st, signed, ci, false, nil)
	policytest.PushTo(t, st, host, "team/app", "unsigned", "unsigned")

	verdict := func(ref string) PolicyVerdictAnswer {
		t.Helper()
		r := a.expect(a.api(adminCreds, "GET", "/projects/team/repositories/app/artifacts/"+ref+"/policy", nil), 200, "policy of "+ref)
		var v PolicyVerdictAnswer
		if err := json.Unmarshal([]byte(r.body), &v); err != nil {
			t.Fatalf("%s: %v", r.body, err)
		}
		return v
	}
	if v := verdict("unsigned"); v.Enforced || !strings.Contains(v.Reason, "has no policy") || v.Verdict != nil {
		t.Errorf("before any policy: %+v", v)
	}

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
	put := a.expect(putPolicy(a, "team", doc), 200, "put policy")
	version := strings.Trim(a.expect(a.api(adminCreds, "GET", "/projects/team/policy", nil), 200, "get policy").header.Get("ETag"), `"`)
	if version == "" {
		t.Fatalf("no policy version in %s", put.body)
	}

	v := verdict("unsigned")
	if !v.Enforced || v.Version != version || v.Verdict == nil || v.Verdict.Allowed || len(v.Verdict.Violations) != 1 {
		t.Fatalf("unsigned: %+v", v)
	}
	viol := v.Verdict.Violations[0]
	if viol.Policy != "ImagePolicy/release" || viol.Rule != "signature" || viol.Mode != "enforce" {
		t.Errorf("unsigned violation %+v", viol)
	}
	refusal := a.do("GET", "/v2/team/app/manifests/unsigned", nil, append(puller(t, a, "team"), "Accept", "application/vnd.oci.image.manifest.v1+json")...)
	if refusal.status != 403 || !strings.Contains(refusal.body, viol.Message) {
		t.Errorf("the pull's refusal %d %s does not carry the verdict's reason %q", refusal.status, refusal.body, viol.Message)
	}

	v = verdict("signed")
	if v.Verdict == nil || !v.Verdict.Allowed || len(v.Verdict.Violations) != 0 || strings.Join(v.Verdict.Signers, ",") != "ci" ||
		strings.Join(v.Verdict.Policies, ",") != "ImagePolicy/release" {
		t.Errorf("signed: %+v", v.Verdict)
	}
	if v := verdict(sign.Tag(signed.Manifest.Digest, "sig")); v.Verdict != nil || !strings.Contains(v.Exempt, "always pullable") {
		t.Errorf("signature manifest: %+v", v)
	}
}

// PolicyVerdictAnswer is the endpoint's JSON as a client reads it.
type PolicyVerdictAnswer struct {
	Enforced bool   `json:"enforced"`
	Reason   string `json:"reason"`
	Version  string `json:"policy_version"`
	Exempt   string `json:"exempt"`
	Error    string `json:"error"`
	Verdict  *struct {
		Allowed    bool     `json:"allowed"`
		Policies   []string `json:"policies"`
		Signers    []string `json:"signers"`
		Violations []struct {
			Policy, Rule, Message, Mode string
		} `json:"violations"`
	} `json:"verdict"`
}

// TestDeletedProjectTakesItsPolicy: deleting a project deletes its stored
// policy, on SQLite and on PostgreSQL; a project created again under the
// name starts without one, and no replica loads the old one.
func TestDeletedProjectTakesItsPolicy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		backend func(t *testing.T) func(*Config)
	}{
		{"sqlite", func(*testing.T) func(*Config) { return func(*Config) {} }},
		{"postgres", sharedBackends},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			a := startAuthServer(t, tc.backend(t))
			a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team")
			old, err := a.s.sec.auth.Project("team")
			if err != nil {
				t.Fatal(err)
			}
			doc := "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: clean}\nspec:\n  vulnerabilities: {severity: CRITICAL}\n"
			a.expect(putPolicy(a, "team", doc), 200, "put the policy")
			if _, err := a.s.policies.store.Get(ctx, old.ID); err != nil {
				t.Fatalf("the policy put is not stored: %v", err)
			}

			a.expect(a.api(adminCreds, "DELETE", "/projects/team", nil), 204, "delete team")
			if s, err := a.s.policies.store.Get(ctx, old.ID); !errors.Is(err, policy.ErrNoPolicy) {
				t.Errorf("the deleted project's policy is still stored: %s of %s, %v", s.Version, s.Project, err)
			}
			if all, err := a.s.policies.store.All(ctx); err != nil || len(all) != 0 {
				t.Errorf("%d policies stored after the project was deleted, %v", len(all), err)
			}

			a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team again")
			a.expect(a.api(adminCreds, "GET", "/projects/team/policy", nil), 404, "policy of the project created again")
			if a.s.policies.enforcer.Enforced("team/app") {
				t.Error("a policy is enforced in the project created again")
			}
		})
	}
}
