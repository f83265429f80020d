package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/policy"
	"berth.dev/berth/internal/policy/policytest"
	"berth.dev/berth/internal/secret"
	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/store"
)

// fixture is a registry with images signed in every way the issue lists,
// and a policy trusting the key "ci".
type fixture struct {
	reg     *policytest.Registry
	ci      policytest.Key
	targets map[string]sign.Target
	hits    atomic.Int64 // manifest requests the registry answered
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{ci: policytest.NewKey(t, "ci"), targets: map[string]sign.Target{}}
	f.reg = policytest.NewRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") {
				f.hits.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	other := policytest.NewKey(t, "other")
	push := func(tag string) sign.Target {
		tgt := f.reg.Push(t, "team/app", tag, tag)
		f.targets[tag] = tgt
		return tgt
	}
	policytest.SignTarget(t, f.reg.Store, push("signed"), f.ci, false, nil)
	policytest.SignTarget(t, f.reg.Store, push("bundle"), f.ci, true, nil)
	push("unsigned")
	policytest.SignTarget(t, f.reg.Store, push("untrusted"), other, false, nil)
	tampered := push("tampered")
	policytest.CopyTag(t, f.reg.Store, "team/app", sign.Tag(f.targets["signed"].Manifest.Digest, "sig"), "team/app", sign.Tag(tampered.Manifest.Digest, "sig"))
	elsewhere := f.reg.Push(t, "team/other", "moved", "moved")
	policytest.SignTarget(t, f.reg.Store, elsewhere, f.ci, false, nil)
	push("moved")
	policytest.CopyTag(t, f.reg.Store, "team/other", sign.Tag(elsewhere.Manifest.Digest, "sig"), "team/app", sign.Tag(elsewhere.Manifest.Digest, "sig"))
	return f
}

func (f *fixture) image(tag string) string { return f.reg.Host + "/team/app:" + tag }

func (f *fixture) pinned(tag string) string {
	return f.image(tag) + "@" + f.targets[tag].Manifest.Digest.String()
}

func (f *fixture) policy(t *testing.T, extra string) *policy.Policy {
	doc := fmt.Sprintf(`apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: signed}
spec:
  images: [{glob: "**"}]
  authorities:
  - name: ci
    key:
      data: |
%s
`, f.ci.Indented(8)) + extra
	p, err := policy.Parse("policy.yaml", []byte(doc), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func handlerFor(p *policy.Policy, opts Options) *Handler {
	opts.Policy = func() *policy.Policy { return p }
	return New(opts)
}

// fixtureReview reads testdata/NAME with IMAGE and IMAGE2 replaced.
func fixtureReview(t *testing.T, name, image, image2 string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "IMAGE2", image2)
	return []byte(strings.ReplaceAll(s, "IMAGE", image))
}

type answer struct {
	status int
	text   string
	resp   *Response
}

func post(t *testing.T, h http.Handler, path string, body []byte) answer {
	t.Helper()
	req := httptest.NewRequest("POST", path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	a := answer{status: w.Code, text: w.Body.String()}
	if w.Code == 200 {
		var rev Review
		if err := json.Unmarshal(w.Body.Bytes(), &rev); err != nil {
			t.Fatalf("answer is not a review: %v %s", err, w.Body)
		}
		if rev.APIVersion != APIVersion || rev.Kind != Kind || rev.Response == nil {
			t.Fatalf("answer %s", w.Body)
		}
		a.resp = rev.Response
	}
	return a
}

func TestBadReviews(t *testing.T) {
	f := newFixture(t)
	h := handlerFor(f.policy(t, ""), Options{})
	for _, tc := range []struct {
		fixture string
		status  int
		text    string
	}{
		{"malformed.json", 400, "malformed AdmissionReview: unexpected end of JSON input"},
		{"wrong-apiversion.json", 400, `apiVersion "admission.k8s.io/v1beta1" kind "AdmissionReview": this webhook answers admission.k8s.io/v1 AdmissionReview (set admissionReviewVersions: [v1])`},
		{"missing-uid.json", 400, "AdmissionReview request without a uid"},
	} {
		a := post(t, h, "/validate", fixtureReview(t, tc.fixture, f.image("signed"), ""))
		if a.status != tc.status || strings.TrimSpace(a.text) != tc.text {
			t.Errorf("%s: %d %q, want %d %q", tc.fixture, a.status, a.text, tc.status, tc.text)
		}
	}
	// Not JSON at all, and the wrong method.
	req := httptest.NewRequest("POST", "/validate", strings.NewReader("uid=1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusUnsupportedMediaType {
		t.Errorf("form body: %d", w.Code)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/validate", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}
	// Something that is not a workload has no images: allowed, and the
	// audit annotation says it was not checked.
	a := post(t, h, "/validate", fixtureReview(t, "not-a-workload.json", "x", ""))
	if a.resp == nil || !a.resp.Allowed || a.resp.UID != "c1" || a.resp.AuditAnnotations["decision"] != "not checked: ConfigMap is not a workload" {
		t.Errorf("not a workload: %+v %s", a.resp, a.text)
	}
}

func TestPodDecisions(t *testing.T) {
	f := newFixture(t)
	now := time.Now().UTC()
	expired := now.Add(-time.Hour).Truncate(time.Second)
	h := handlerFor(f.policy(t, ""), Options{})
	denied := func(tag, msg string) string {
		return "berth: containers[0] (app): " + f.pinned(tag) + " is not allowed: ClusterImagePolicy/signed: authority: no authority passed: authority ci: " + msg
	}
	for _, tc := range []struct {
		name, image string
		allowed     bool
		message     string
	}{
		{"signed (tag scheme)", f.image("signed"), true, ""},
		{"signed (sigstore bundle)", f.image("bundle"), true, ""},
		{"already pinned", f.pinned("signed"), true, ""},
		{"unsigned", f.image("unsigned"), false, denied("unsigned", "not signed by [ci]")},
		{"signed by a key that is not trusted", f.image("untrusted"), false,
			denied("untrusted", "not signed by [ci] (rejected: signature does not verify with any given key)")},
		{"tampered: the payload names another digest", f.image("tampered"), false,
			denied("tampered", "not signed by [ci] (rejected: signed payload names a different manifest digest: payload is about "+f.targets["signed"].Manifest.Digest.String()+", the image is "+f.targets["tampered"].Manifest.Digest.String()+")")},
		{"a signature for a different repository", f.image("moved"), false,
			denied("moved", "not signed by [ci] (the signature by ci is for team/other, not team/app)")},
		{"an image reference that does not parse", "Team/App:la test", false,
			`berth: containers[0] (app): image reference "Team/App:la test" does not parse: could not parse reference: Team/App:la test`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := post(t, h, "/validate", fixtureReview(t, "pod.json", tc.image, ""))
			if a.resp == nil {
				t.Fatalf("%d %s", a.status, a.text)
			}
			r := a.resp
			if r.UID != "p1" || r.Allowed != tc.allowed {
				t.Fatalf("uid %s allowed %v, want %v: %+v", r.UID, r.Allowed, tc.allowed, r.Result)
			}
			if !tc.allowed && (r.Result == nil || r.Result.Code != 403 || r.Result.Message != tc.message) {
				t.Errorf("refusal\n got %+v\nwant %q", r.Result, tc.message)
			}
			if r.AuditAnnotations["policy"] == "" || r.AuditAnnotations["images"] == "" {
				t.Errorf("audit annotations %v", r.AuditAnnotations)
			}
		})
	}

	// An expired exception waives nothing.
	berthDoc := fmt.Sprintf(`---
apiVersion: berth.dev/v1
kind: ImagePolicy
metadata: {name: release}
spec:
  signers:
    keys:
    - name: ci
      data: |
%s
  exceptions:
  - name: legacy
    rules: [signature]
    expires: %s
`, f.ci.Indented(8), expired.Format(time.RFC3339))
	p, err := policy.Parse("p.yaml", []byte(berthDoc), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := post(t, handlerFor(p, Options{}), "/validate", fixtureReview(t, "pod.json", f.image("unsigned"), ""))
	want := "berth: containers[0] (app): " + f.pinned("unsigned") + " is not allowed: ImagePolicy/release: signature: not signed by 1 of [ci] (exception legacy expired at " + expired.Format(time.RFC3339) + ")"
	if a.resp == nil || a.resp.Allowed || a.resp.Result.Message != want {
		t.Errorf("expired exception:\n got %+v\nwant %q", a.resp.Result, want)
	}
}

func TestMutatePinsDigests(t *testing.T) {
	f := newFixture(t)
	h := handlerFor(f.policy(t, ""), Options{})
	a := post(t, h, "/mutate", fixtureReview(t, "deployment.json", f.image("signed"), f.pinned("bundle")))
	if a.resp == nil || !a.resp.Allowed || a.resp.PatchType == nil || *a.resp.PatchType != "JSONPatch" {
		t.Fatalf("%d %s", a.status, a.text)
	}
	var ops []patchOp
	if err := json.Unmarshal(a.resp.Patch, &ops); err != nil {
		t.Fatal(err)
	}
	pinned := f.pinned("signed")
	want := []patchOp{
		{"replace", "/spec/template/spec/initContainers/0/image", pinned},
		{"replace", "/spec/template/spec/containers/0/image", pinned},
		{"replace", "/spec/template/spec/ephemeralContainers/0/image", pinned},
	}
	if fmt.Sprint(ops) != fmt.Sprint(want) {
		t.Errorf("patch\n got %v\nwant %v", ops, want)
	}
	// The cron job's pod template is deep inside it.
	a = post(t, h, "/mutate", fixtureReview(t, "cronjob.json", f.image("bundle"), ""))
	if a.resp == nil || !strings.Contains(string(a.resp.Patch), `"path":"/spec/jobTemplate/spec/template/spec/containers/0/image","value":"`+f.pinned("bundle")+`"`) {
		t.Errorf("cronjob patch: %s", a.text)
	}
	// Mutate refuses what validate would.
	a = post(t, h, "/mutate", fixtureReview(t, "deployment.json", f.image("unsigned"), f.image("signed")))
	if a.resp == nil || a.resp.Allowed || a.resp.Patch != nil ||
		!strings.Contains(a.resp.Result.Message, "initContainers[0] (migrate): "+f.pinned("unsigned")+" is not allowed") {
		t.Errorf("mutate of unsigned: %+v", a.resp)
	}
}

func TestDedupeCoalesceAndCache(t *testing.T) {
	f := newFixture(t)
	h := handlerFor(f.policy(t, ""), Options{})
	// The deployment names one image four times: it is decided once.
	before := f.hits.Load()
	a := post(t, h, "/validate", fixtureReview(t, "deployment.json", f.image("signed"), f.image("signed")))
	if a.resp == nil || !a.resp.Allowed {
		t.Fatalf("%s", a.text)
	}
	first := f.hits.Load() - before
	if n := h.dc.remembered(); n != 1 {
		t.Errorf("%d decisions looked up for one image, want 1", n)
	}
	// Cached: more requests read nothing from the registry.
	before = f.hits.Load()
	for range 5 {
		post(t, h, "/validate", fixtureReview(t, "pod.json", f.image("signed"), ""))
	}
	if n := f.hits.Load() - before; n != 0 {
		t.Errorf("cached decisions read %d manifests", n)
	}
	// Concurrent requests for an image not yet decided share one lookup.
	h2 := handlerFor(f.policy(t, ""), Options{})
	before = f.hits.Load()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			post(t, h2, "/validate", fixtureReview(t, "pod.json", f.image("signed"), ""))
		}()
	}
	wg.Wait()
	if n := f.hits.Load() - before; n > first {
		t.Errorf("8 concurrent requests read %d manifests, one lookup reads %d", n, first)
	}
}

func TestRegistryTimeoutFailsClosed(t *testing.T) {
	f := newFixture(t)
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); hang.Close() })
	host := strings.TrimPrefix(hang.URL, "http://")
	h := handlerFor(f.policy(t, ""), Options{Timeout: 5 * time.Second})
	req := httptest.NewRequest("POST", "/validate?timeout=1s", bytes.NewReader(fixtureReview(t, "pod.json", host+"/team/app:1", "")))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var rev Review
	if err := json.Unmarshal(w.Body.Bytes(), &rev); err != nil || rev.Response == nil {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if rev.Response.Allowed || !strings.Contains(rev.Response.Result.Message, "containers[0] (app): no decision within the webhook's time") {
		t.Errorf("hanging registry: %+v", rev.Response.Result)
	}
}

func TestWarnModeAndPodSecurity(t *testing.T) {
	f := newFixture(t)
	doc := fmt.Sprintf(`apiVersion: berth.dev/v1
kind: ImagePolicy
metadata: {name: soft}
spec:
  mode: warn
  signers:
    keys:
    - name: ci
      data: |
%s
`, f.ci.Indented(8))
	p, err := policy.Parse("p.yaml", []byte(doc), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := post(t, handlerFor(p, Options{}), "/validate", fixtureReview(t, "pod.json", f.image("unsigned"), ""))
	if a.resp == nil || !a.resp.Allowed || len(a.resp.Warnings) != 1 ||
		a.resp.Warnings[0] != "containers[0] (app): ImagePolicy/soft: signature: not signed by 1 of [ci]" {
		t.Errorf("warn mode: %+v", a.resp)
	}

	h := handlerFor(f.policy(t, ""), Options{PodSecurity: true})
	if a := post(t, h, "/validate", fixtureReview(t, "pod-restricted.json", f.image("signed"), "")); a.resp == nil || !a.resp.Allowed {
		t.Errorf("restricted pod: %s", a.text)
	}
	a = post(t, h, "/validate", fixtureReview(t, "pod-unrestricted.json", f.image("signed"), ""))
	want := "berth: volumes[0] (host): hostPath volumes are not allowed; containers[0] (app): privileged containers are not allowed; " +
		"containers[0] (app): set securityContext.runAsNonRoot: true; containers[0] (app): set securityContext.readOnlyRootFilesystem: true; " +
		"containers[0] (app): set securityContext.allowPrivilegeEscalation: false; containers[0] (app): drop all capabilities (securityContext.capabilities.drop: [ALL]); " +
		"containers[0] (app): set seccompProfile.type: RuntimeDefault"
	if a.resp == nil || a.resp.Allowed || a.resp.Result.Message != want {
		t.Errorf("unrestricted pod:\n got %+v\nwant %q", a.resp.Result, want)
	}
}

// TestProjectPolicy: images Local answers for are also decided by their
// project's policy, asked at every review by reference and digest;
// without a policy of the webhook's own, only the project's decides and
// other registries' images are not looked up.
func TestProjectPolicy(t *testing.T) {
	f := newFixture(t)
	type asked struct{ registry, repo, reference, digest string }
	var mu sync.Mutex
	var calls []asked
	slow := make(chan struct{})
	t.Cleanup(func() { close(slow) })
	opts := Options{
		Local: func(_ context.Context, registry, _ string) (store.Reader, func(string) func(context.Context) (*match.Report, error), bool) {
			return f.reg.Store, nil, registry == f.reg.Host
		},
		ProjectPolicy: func(_ context.Context, registry, repo, reference, d string) (string, []string, error) {
			mu.Lock()
			calls = append(calls, asked{registry, repo, reference, d})
			mu.Unlock()
			switch {
			case d == f.targets["unsigned"].Manifest.Digest.String():
				return "denied by the policy of project team: ImagePolicy/p: signature: not signed", nil, nil
			case d == f.targets["untrusted"].Manifest.Digest.String():
				return "", []string{"ImagePolicy/p: signature: not signed"}, nil
			case d == f.targets["tampered"].Manifest.Digest.String():
				return "", nil, errors.New("store unavailable")
			case d == f.targets["bundle"].Manifest.Digest.String():
				<-slow // an evaluation longer than the review may take
			}
			return "", nil, nil
		},
	}
	projectsOnly := New(opts)
	both := handlerFor(f.policy(t, ""), opts)
	digestOf := func(tag string) string { return f.targets[tag].Manifest.Digest.String() }
	for _, tc := range []struct {
		name    string
		h       *Handler
		image   string
		allowed bool
		message string
		warning string
		asked   []asked
	}{
		{"refused by the project, by tag", projectsOnly, f.image("unsigned"), false,
			"berth: containers[0] (app): " + f.pinned("unsigned") + " is not allowed: denied by the policy of project team: ImagePolicy/p: signature: not signed", "",
			[]asked{{f.reg.Host, "team/app", "unsigned", digestOf("unsigned")}}},
		{"refused by the project, by digest", projectsOnly, f.pinned("unsigned"), false,
			"berth: containers[0] (app): " + f.pinned("unsigned") + " is not allowed: denied by the policy of project team: ImagePolicy/p: signature: not signed", "",
			[]asked{{f.reg.Host, "team/app", digestOf("unsigned"), digestOf("unsigned")}}},
		{"warned by the project", projectsOnly, f.image("untrusted"), true, "", "containers[0] (app): ImagePolicy/p: signature: not signed",
			[]asked{{f.reg.Host, "team/app", "untrusted", digestOf("untrusted")}}},
		{"the project's policy cannot be checked", projectsOnly, f.image("tampered"), false,
			"berth: containers[0] (app): " + f.pinned("tampered") + " is not allowed: its project's policy could not be checked: store unavailable", "",
			[]asked{{f.reg.Host, "team/app", "tampered", digestOf("tampered")}}},
		{"allowed by the project", projectsOnly, f.image("signed"), true, "", "",
			[]asked{{f.reg.Host, "team/app", "signed", digestOf("signed")}}},
		{"allowed by the project, asked again", projectsOnly, f.image("signed"), true, "", "",
			[]asked{{f.reg.Host, "team/app", "signed", digestOf("signed")}}},
		{"another registry, projects only", projectsOnly, "registry.invalid/team/app:v1", true, "", "", nil},
		{"refused by both", both, f.image("unsigned"), false,
			"berth: containers[0] (app): " + f.pinned("unsigned") + " is not allowed: ClusterImagePolicy/signed: authority: no authority passed: authority ci: not signed by [ci]; denied by the policy of project team: ImagePolicy/p: signature: not signed", "",
			[]asked{{f.reg.Host, "team/app", "unsigned", digestOf("unsigned")}}},
		{"allowed by the project, refused by the webhook's policy", both, f.image("untrusted"), false,
			"berth: containers[0] (app): " + f.pinned("untrusted") + " is not allowed: ClusterImagePolicy/signed: authority: no authority passed: authority ci: not signed by [ci] (rejected: signature does not verify with any given key)", "containers[0] (app): ImagePolicy/p: signature: not signed",
			[]asked{{f.reg.Host, "team/app", "untrusted", digestOf("untrusted")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			calls = nil
			mu.Unlock()
			hits := f.hits.Load()
			a := post(t, tc.h, "/validate", fixtureReview(t, "pod.json", tc.image, ""))
			if a.resp == nil {
				t.Fatalf("%d %s", a.status, a.text)
			}
			r := a.resp
			var msg string
			if r.Result != nil {
				msg = r.Result.Message
			}
			if r.Allowed != tc.allowed || msg != tc.message {
				t.Errorf("allowed %v %q\nwant %v %q", r.Allowed, msg, tc.allowed, tc.message)
			}
			if got := strings.Join(r.Warnings, "\n"); got != tc.warning {
				t.Errorf("warnings %q, want %q", got, tc.warning)
			}
			mu.Lock()
			if fmt.Sprint(calls) != fmt.Sprint(tc.asked) {
				t.Errorf("the project's policy was asked %v, want %v", calls, tc.asked)
			}
			mu.Unlock()
			if tc.asked == nil && f.hits.Load() != hits {
				t.Error("an image no policy applies to was looked up")
			}
		})
	}

	// An evaluation that outlasts the apiserver's time is a refusal in
	// time, with berth's message.
	start := time.Now()
	a := post(t, projectsOnly, "/validate?timeout=300ms", fixtureReview(t, "pod.json", f.image("bundle"), ""))
	if a.resp == nil || a.resp.Allowed || a.resp.Result == nil ||
		!strings.Contains(a.resp.Result.Message, "its project's policy could not be checked: no decision within the webhook's time: context deadline exceeded") {
		t.Errorf("slow project policy: %+v %s", a.resp, a.text)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("answered after %v", took)
	}
}

// TestSecretAndMisconfigurationRules: admission reads the stored report of
// berth's own images (Local) for ImagePolicy's secrets and
// misconfigurations rules, as the registry does at pull time: a stored
// secret refuses the pod by rule id and file; a report made without the
// misconfig scanner refuses a misconfigurations rule with the setting to
// change; an image of another registry, with no report, is refused as
// not scanned.
func TestSecretAndMisconfigurationRules(t *testing.T) {
	f := newFixture(t)
	stored := &match.Report{Scanners: []string{"vuln", "secret"}, Secrets: []secret.Finding{{RuleID: "private-key",
		Severity: secret.SeverityCritical, Kind: secret.KindFile, Path: "srv/deploy.key", StartLine: 1, Secret: "MIIEv****"}}}
	local := func(_ context.Context, registry, repository string) (store.Reader, func(string) func(context.Context) (*match.Report, error), bool) {
		if registry != f.reg.Host || repository != "team/app" {
			return nil, nil, false
		}
		return f.reg.Store, func(d string) func(context.Context) (*match.Report, error) {
			return func(context.Context) (*match.Report, error) {
				if d != f.targets["signed"].Manifest.Digest.String() {
					return nil, policy.ErrNotScanned
				}
				return stored, nil
			}
		}, true
	}
	p, err := policy.Parse("p.yaml", []byte("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: hygiene}\nspec:\n"+
		"  secrets: {deny: true}\n  misconfigurations: {deny: [BI001]}\n"), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := handlerFor(p, Options{Local: local})
	for _, tc := range []struct {
		name, image string
		message     string
	}{
		{"a stored secret", f.image("signed"), "berth: containers[0] (app): " + f.pinned("signed") + " is not allowed: " +
			"ImagePolicy/hygiene: secret: private-key (CRITICAL) in srv/deploy.key:1; " +
			"ImagePolicy/hygiene: misconfiguration: not scanned for misconfigurations: add misconfig to scan.scanners (berth scan --scanners ...,misconfig)"},
		{"not scanned", f.image("unsigned"), "berth: containers[0] (app): " + f.pinned("unsigned") + " is not allowed: " +
			"ImagePolicy/hygiene: secret: the image has not been scanned yet, so its secrets are unknown; " +
			"ImagePolicy/hygiene: misconfiguration: the image has not been scanned yet, so its misconfigurations are unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := post(t, h, "/validate", fixtureReview(t, "pod.json", tc.image, ""))
			if a.resp == nil || a.resp.Allowed || a.resp.Result == nil || a.resp.Result.Message != tc.message {
				t.Errorf("%d %s\nwant %q", a.status, a.text, tc.message)
			}
			if strings.Contains(a.text, "MIIEv") {
				t.Errorf("the refusal shows the masked secret: %s", a.text)
			}
		})
	}
}
