package server

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/policy/policytest"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/store"
)

// adminStore is a store signing through s as the administrator.
func adminStore(t *testing.T, s *authServer) (*store.Remote, string) {
	t.Helper()
	u, err := url.Parse(s.url)
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
	return st, u.Host
}

// A project policy put or deleted through one replica is what the other
// enforces at its very next request, and a signature pushed or deleted
// through one replica changes the other's cached verdict at once: a
// deny policy set on A is never escaped by pulling through B.
func TestPolicyChangesReachTheOtherReplicaAtOnce(t *testing.T) {
	shared := sharedBackends(t)
	a := startAuthServer(t, shared)
	b := startAuthServer(t, shared)
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create project on A")
	runtime := puller(t, a, "team")
	st, host := adminStore(t, a)
	ci := policytest.NewKey(t, "ci")
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
	pull := func(ref string) answer {
		return b.do("GET", "/v2/team/app/manifests/"+ref, nil, append(runtime, "Accept", "application/vnd.oci.image.manifest.v1+json")...)
	}
	for i := range 10 {
		tag := fmt.Sprint("v", i)
		target := policytest.PushTo(t, st, host, "team/app", tag, fmt.Sprint("image ", i))
		if r := pull(tag); r.status != 200 {
			t.Fatalf("round %d: B refuses the image before any policy: %d %s", i, r.status, r.body)
		}
		a.expect(putPolicy(a, "team", doc), 200, "put the policy through A")
		// Twice: the second answer is B's cached verdict.
		for range 2 {
			if r := pull(tag); r.status != 403 {
				t.Fatalf("round %d: B serves an unsigned image the policy put through A refuses: %d", i, r.status)
			}
		}
		// Signed through A, alternately in cosign's .sig tag and as a
		// referrer: B forgets its refusal.
		w, err := signOn(st, target, ci, i%2 == 1)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if r := pull(tag); r.status != 200 {
				t.Fatalf("round %d: B refuses the image signed through A: %d %s", i, r.status, r.body)
			}
		}
		// The signature deleted through A: B forgets its approval.
		a.expect(a.do("DELETE", "/v2/team/app/manifests/"+w, nil, adminCreds...), 202, "delete the signature through A")
		if r := pull(tag); r.status != 403 {
			t.Fatalf("round %d: B serves the image whose signature was deleted through A: %d", i, r.status)
		}
		a.expect(a.api(adminCreds, "DELETE", "/projects/team/policy", nil), 204, "delete the policy through A")
		if r := pull(tag); r.status != 200 {
			t.Fatalf("round %d: B still enforces the policy deleted through A: %d %s", i, r.status, r.body)
		}
	}
}

// signOn signs target with k (as a referrer when bundle) and returns the
// signature manifest's digest.
func signOn(st *store.Remote, target sign.Target, k policytest.Key, bundle bool) (string, error) {
	w, err := sign.Sign(context.Background(), st, target, k.Sign, sign.SignOptions{Referrers: bundle})
	if err != nil {
		return "", err
	}
	return w.Manifest.Digest.String(), nil
}

// A scan report stored through one replica (the one that ran the scan)
// changes the other's cached verdicts on vulnerability rules at once:
// the refusal of an image not yet scanned goes, and a re-match that finds
// a critical vulnerability refuses an image served a moment before.
func TestReportChangesReachTheOtherReplicasPolicyAtOnce(t *testing.T) {
	shared := sharedBackends(t)
	a := startAuthServer(t, shared)
	b := startAuthServer(t, shared)
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create project on A")
	runtime := puller(t, a, "team")
	a.expect(putPolicy(a, "team", "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: clean}\nspec:\n  vulnerabilities: {severity: CRITICAL}\n"), 200, "policy")
	pull := func(tag string) answer {
		return b.do("GET", "/v2/team/app/manifests/"+tag, nil, append(runtime, "Accept", "application/vnd.oci.image.manifest.v1+json")...)
	}
	ctx := context.Background()
	for i := range 5 {
		img := makeImage(fmt.Sprint("scanned ", i))
		tag := fmt.Sprint("v", i)
		a.expect(a.push("team/app", tag, img, adminCreds), 201, "push through A")
		for range 2 {
			if r := pull(tag); r.status != 403 || !strings.Contains(r.body, "not been scanned") {
				t.Fatalf("round %d: B's answer for an image not scanned: %d %s", i, r.status, r.body)
			}
		}
		d := digest.Digest(img.digest())
		clean := &match.Report{SchemaVersion: match.ReportSchemaVersion, MatchedAt: time.Now().UTC(), Findings: []match.Finding{}}
		if err := a.s.bg.reports.Put(ctx, d, reports.Scan{Status: reports.Done}, clean, nil, -1); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if r := pull(tag); r.status != 200 {
				t.Fatalf("round %d: B refuses the image whose clean report A stored: %d %s", i, r.status, r.body)
			}
		}
		critical := &match.Report{SchemaVersion: match.ReportSchemaVersion, MatchedAt: time.Now().UTC(),
			Findings: []match.Finding{{ID: "CVE-2026-0001", Severity: match.SeverityCritical, Status: match.StatusAffected}}}
		if err := a.s.bg.reports.Put(ctx, d, reports.Scan{Status: reports.Done}, critical, nil, -1); err != nil {
			t.Fatal(err)
		}
		if r := pull(tag); r.status != 403 || !strings.Contains(r.body, "CVE-2026-0001") {
			t.Fatalf("round %d: B serves the image A found a critical vulnerability in: %d %s", i, r.status, r.body)
		}
	}
}

// Admission reviews answered by one replica see what was changed through
// another at once, as registry and API requests do: the admission policy
// is each replica's file, but who may see which image (a project made
// public or private) and the images and signatures are shared. Each round
// reviews references not reviewed before, so no cached decision answers.
func TestAdmissionSeesTheOtherReplicasChangesAtOnce(t *testing.T) {
	shared := sharedBackends(t)
	ci := policytest.NewKey(t, "ci")
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	doc := fmt.Sprintf("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  signers:\n    keys:\n    - name: ci\n      data: |\n%s\n", ci.Indented(8))
	if err := os.WriteFile(pol, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	admit := func(c *Config) { c.Admission.Policy = pol }
	a := startAuthServer(t, shared, admit)
	b := startAuthServer(t, shared, admit)
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team on A")
	st, _ := adminStore(t, a)
	bu, err := url.Parse(b.url)
	if err != nil {
		t.Fatal(err)
	}
	// Images named by B's address: B reads them from the shared stores.
	review := func(image string) string {
		t.Helper()
		body := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"app","image":%q}]}}}}`, bu.Host+"/"+image)
		r := b.do("POST", "/admission/validate", []byte(body), "Content-Type", "application/json")
		if r.status != 200 {
			t.Fatalf("review of %s on B: %d %s", image, r.status, r.body)
		}
		return r.body
	}
	for i := range 20 {
		tag := fmt.Sprint("v", i)
		target := policytest.PushTo(t, st, bu.Host, "team/app", tag, fmt.Sprint("image ", i))
		policytest.SignTarget(t, st, target, ci, false, nil)
		a.expect(a.api(adminCreds, "PATCH", "/projects/team", map[string]any{"public": true}), 200, "make team public through A")
		if got := review("team/app:" + tag); !strings.Contains(got, `"allowed":true`) {
			t.Fatalf("round %d: B does not see the signed image of the project made public through A: %s", i, got)
		}
		a.expect(a.api(adminCreds, "PATCH", "/projects/team", map[string]any{"public": false}), 200, "make team private through A")
		if got := review("team/app@" + target.Manifest.Digest.String()); !strings.Contains(got, "not found in its registry") {
			t.Fatalf("round %d: B shows an anonymous caller the image of the project made private through A: %s", i, got)
		}
	}
}

// A project policy put or deleted through one replica decides the next
// admission review answered by another, as it does the next pull there:
// the review asks the replica's enforcer, which the policy's change
// notification reloads before the review is answered.
func TestAdmissionSeesProjectPoliciesPutThroughAnotherReplica(t *testing.T) {
	shared := sharedBackends(t)
	ci := policytest.NewKey(t, "ci")
	admit := func(c *Config) { c.Admission.ProjectPolicies = true }
	a := startAuthServer(t, shared, admit)
	b := startAuthServer(t, shared, admit)
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team on A")
	// Public: the review carries no credentials.
	a.expect(a.api(adminCreds, "PATCH", "/projects/team", map[string]any{"public": true}), 200, "make team public through A")
	st, _ := adminStore(t, a)
	bu, err := url.Parse(b.url)
	if err != nil {
		t.Fatal(err)
	}
	policytest.PushTo(t, st, bu.Host, "team/app", "unsigned", "unsigned")
	doc := fmt.Sprintf("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  signers:\n    keys:\n    - name: ci\n      data: |\n%s\n", ci.Indented(8))
	review := func() string {
		t.Helper()
		body := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"app","image":%q}]}}}}`, bu.Host+"/team/app:unsigned")
		r := b.do("POST", "/admission/validate", []byte(body), "Content-Type", "application/json")
		if r.status != 200 {
			t.Fatalf("review on B: %d %s", r.status, r.body)
		}
		return r.body
	}
	for i := range 10 {
		a.expect(putPolicy(a, "team", doc), 200, "put team's policy through A")
		if got := review(); !strings.Contains(got, `"allowed":false`) || !strings.Contains(got, "denied by the policy of project team: ImagePolicy/p: signature: not signed by 1 of [ci]") {
			t.Fatalf("round %d: B admits the image the policy put through A refuses: %s", i, got)
		}
		a.expect(a.api(adminCreds, "DELETE", "/projects/team/policy", nil), 204, "delete team's policy through A")
		if got := review(); !strings.Contains(got, `"allowed":true`) {
			t.Fatalf("round %d: B refuses the image after the policy was deleted through A: %s", i, got)
		}
	}
}
