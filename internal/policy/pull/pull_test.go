package pull

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/meta"
	metasqlite "berth.dev/berth/internal/meta/sqlite"
	"berth.dev/berth/internal/policy"
	"berth.dev/berth/internal/policy/sqlite"
	"berth.dev/berth/internal/registry/event"
	"berth.dev/berth/internal/reports"
	reportsqlite "berth.dev/berth/internal/reports/sqlite"
)

func newEnforcer(t testing.TB) *Enforcer {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e, err := New(context.Background(), Options{Policies: st, ProjectID: func(string) string { return "id-team" }})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Set(context.Background(), "team", "id-team", []byte("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  tags: {deny: [latest]}\n"), "admin"); err != nil {
		t.Fatal(err)
	}
	return e
}

var image = &meta.Manifest{Digest: digest.FromString("image"), MediaType: "application/vnd.oci.image.manifest.v1+json",
	Content: []byte(`{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip"}]}`)}

// TestCacheAndInvalidation: a verdict is reused until something it
// depends on changes: a signature tag of the digest, a referrer, a stored
// report, the policy.
func TestCacheAndInvalidation(t *testing.T) {
	e := newEnforcer(t)
	ctx := context.Background()
	check := func(ref string) string {
		deny, _ := e.CheckPull(ctx, "r.example", "team/app", ref, image)
		return deny
	}
	if d := check("latest"); d == "" {
		t.Fatal("latest served")
	}
	if d := check("v1"); d != "" {
		t.Fatalf("v1 refused: %s", d)
	}
	n := e.Evaluations()
	check("v1")
	check("latest")
	if e.Evaluations() != n {
		t.Fatal("cached verdicts evaluated again")
	}
	sigTag := "sha256-" + image.Digest.Encoded() + ".sig"
	for _, ev := range []event.Event{
		{Kind: event.ManifestPushed, Repository: "team/app", Digest: digest.FromString("sig"), Tags: []string{sigTag}},
		{Kind: event.ManifestPushed, Repository: "team/app", Digest: digest.FromString("bundle"), Subject: image.Digest},
		{Kind: event.TagDeleted, Repository: "team/app", Tags: []string{"sha256-" + image.Digest.Encoded()}},
	} {
		n := e.Evaluations()
		e.Notify(ctx, ev)
		check("v1")
		if e.Evaluations() != n+1 {
			t.Errorf("%+v did not forget the verdict", ev)
		}
	}
	// Events about other digests or repositories change nothing.
	n = e.Evaluations()
	e.Notify(ctx, event.Event{Kind: event.ManifestPushed, Repository: "team/other", Subject: image.Digest})
	e.Notify(ctx, event.Event{Kind: event.ManifestPushed, Repository: "team/app", Digest: digest.FromString("x"), Tags: []string{"v2"}})
	check("v1")
	if e.Evaluations() != n {
		t.Error("an unrelated event forgot the verdict")
	}
	e.ReportStored(image.Digest)
	check("v1")
	if e.Evaluations() != n+1 {
		t.Error("a stored report did not forget the verdict")
	}
	// Attached artifacts are never judged: under a policy refusing
	// cosign's tags, a signature manifest is still served by them.
	if _, _, err := e.Set(ctx, "team", "id-team", []byte("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  tags: {deny: [\"sha256-*\"]}\n"), "admin"); err != nil {
		t.Fatal(err)
	}
	sigTag = "sha256-" + image.Digest.Encoded() + ".sig"
	sig := &meta.Manifest{Digest: digest.FromString("sig"), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Content: []byte(`{"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json"}]}`)}
	if deny, _ := e.CheckPull(ctx, "r.example", "team/app", sigTag, sig); deny != "" {
		t.Errorf("a signature manifest refused: %s", deny)
	}
	// A runnable image does not pass for one by its tag or a subject
	// (anyone who may push chooses both): it is judged.
	for _, content := range []string{
		`{"subject":{"digest":"` + image.Digest.String() + `"},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip"}]}`,
		`{"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json"},{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip"}]}`,
	} {
		m := &meta.Manifest{Digest: digest.FromString(content), Subject: image.Digest, MediaType: "application/vnd.oci.image.manifest.v1+json", Content: []byte(content)}
		if deny, _ := e.CheckPull(ctx, "r.example", "team/app", sigTag, m); deny == "" {
			t.Errorf("a runnable image disguised as an attachment served: %s", content)
		}
	}
}

// TestExplainSharesTheVerdictCache: the rule-by-rule verdict the API and
// the web UI show comes from the cache the pulls fill and use, and is
// forgotten with it.
func TestExplainSharesTheVerdictCache(t *testing.T) {
	e := newEnforcer(t)
	ctx := context.Background()
	explain := func(ref string, m *meta.Manifest) *policy.Verdict {
		t.Helper()
		ex, err := e.Explain(ctx, "r.example", "team/app", ref, m)
		if err != nil {
			t.Fatal(err)
		}
		if ex.Verdict == nil {
			t.Fatalf("%s: no verdict (exempt: %q)", ref, ex.Exempt)
		}
		return ex.Verdict
	}
	n := e.Evaluations()
	if v := explain("latest", image); v.Allowed || len(v.Violations) != 1 {
		t.Fatalf("latest: %+v", v)
	}
	explain("latest", image)
	if e.Evaluations() != n+1 {
		t.Errorf("%d evaluations for one verdict explained twice", e.Evaluations()-n)
	}
	if deny, _ := e.CheckPull(ctx, "r.example", "team/app", "latest", image); deny == "" {
		t.Error("latest served after Explain refused it")
	}
	if e.Evaluations() != n+1 {
		t.Error("the pull evaluated a verdict Explain had cached")
	}
	// A pull's verdict serves Explain.
	e.CheckPull(ctx, "r.example", "team/app", "v1", image)
	n = e.Evaluations()
	if v := explain("v1", image); !v.Allowed {
		t.Errorf("v1: %+v", v)
	}
	if e.Evaluations() != n {
		t.Error("Explain evaluated a verdict the pull had cached")
	}
	// What forgets a pull's verdict forgets Explain's.
	e.Notify(ctx, event.Event{Kind: event.ManifestPushed, Repository: "team/app", Digest: digest.FromString("sig"),
		Tags: []string{"sha256-" + image.Digest.Encoded() + ".sig"}})
	explain("v1", image)
	if e.Evaluations() != n+1 {
		t.Error("a signature pushed did not forget the verdict Explain gives")
	}
	// A new policy is a new verdict.
	if _, _, err := e.Set(ctx, "team", "id-team", []byte("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  tags: {deny: [v1]}\n"), "admin"); err != nil {
		t.Fatal(err)
	}
	if v := explain("v1", image); v.Allowed {
		t.Errorf("v1 under a policy denying it: %+v", v)
	}
	// An index's platform manifests are allowed with it without a verdict
	// of their own; Explain evaluates one asked for by digest.
	index := &meta.Manifest{Digest: digest.FromString("index"), MediaType: "application/vnd.oci.image.index.v1+json",
		Content: []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + image.Digest.String() + `"}]}`)}
	if deny, _ := e.CheckPull(ctx, "r.example", "team/app", "v2", index); deny != "" {
		t.Fatalf("index refused: %s", deny)
	}
	n = e.Evaluations()
	if v := explain(image.Digest.String(), image); !v.Allowed || v.Digest != image.Digest.String() {
		t.Errorf("platform manifest by digest: %+v", v)
	}
	if e.Evaluations() != n+1 {
		t.Error("the platform manifest's verdict was not evaluated")
	}
}

// BenchmarkCachedCheck is the pull-time step on a cached verdict: what it
// adds to a manifest GET.
func BenchmarkCachedCheck(b *testing.B) {
	e := newEnforcer(b)
	ctx := context.Background()
	e.CheckPull(ctx, "r.example", "team/app", "v1", image)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if deny, _ := e.CheckPull(ctx, "r.example", "team/app", "v1", image); deny != "" {
				b.Error(deny)
				return
			}
		}
	})
}

// TestReload: what another process put or deleted in the store is
// enforced once reloaded, by project id or all; a policy left stored by
// a deleted project of the same name never shadows the current one's,
// whatever order the store lists them in.
func TestReload(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, err := New(ctx, Options{Policies: st, ProjectID: func(string) string { return "id-new" }})
	if err != nil {
		t.Fatal(err)
	}
	denyLatest := []byte("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  tags: {deny: [latest]}\n")
	denyV1 := []byte("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  tags: {deny: [v1]}\n")
	put := func(id string, body []byte, at time.Time) {
		t.Helper()
		if err := st.Put(ctx, policy.Stored{ProjectID: id, Project: "team", Body: body, Version: id, UpdatedAt: at, UpdatedBy: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	denied := func(ref string) bool {
		deny, _ := e.CheckPull(ctx, "r.example", "team/app", ref, image)
		return deny != ""
	}
	// Stored by another process: not enforced until reloaded.
	put("id-new", denyV1, time.Unix(2, 0))
	if denied("v1") {
		t.Fatal("enforced before the reload")
	}
	if err := e.Reload(ctx, []string{"id-new"}, false); err != nil {
		t.Fatal(err)
	}
	if !denied("v1") || denied("latest") {
		t.Fatal("the reloaded policy is not enforced")
	}
	// The deleted project's policy, listed after the current one's.
	put("id-old", denyLatest, time.Unix(3, 0))
	for _, reload := range []func() error{
		func() error { return e.Reload(ctx, nil, true) },
		func() error { return e.LoadStored(ctx) },
		func() error { return e.Reload(ctx, []string{"id-old"}, false) },
	} {
		if err := reload(); err != nil {
			t.Fatal(err)
		}
		if !denied("v1") || denied("latest") {
			t.Fatal("a deleted project's policy shadows the current project's")
		}
	}
	// Deleted by another process.
	if err := st.Delete(ctx, "id-new"); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(ctx, []string{"id-new"}, false); err != nil {
		t.Fatal(err)
	}
	if denied("v1") || e.Enforced("team/app") {
		t.Fatal("a deleted policy is still enforced")
	}
}

// TestForgetAll: every cached verdict goes.
func TestForgetAll(t *testing.T) {
	e := newEnforcer(t)
	ctx := context.Background()
	e.CheckPull(ctx, "r.example", "team/app", "v1", image)
	n := e.Evaluations()
	e.ForgetAll()
	e.CheckPull(ctx, "r.example", "team/app", "v1", image)
	if e.Evaluations() != n+1 {
		t.Error("ForgetAll kept the verdict")
	}
}

// TestCheckImage: the admission webhook's question (a digest of the
// registry's own) is answered as the pull's, from the same verdict cache;
// a manifest that is not there is an error, unless the project has no
// policy and nothing needs reading.
func TestCheckImage(t *testing.T) {
	ctx := context.Background()
	e := newEnforcer(t)
	ms, err := metasqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	e.opts.Meta = ms
	if err := ms.PutManifest(ctx, "team/app", image, []string{"latest", "v1"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, repo, ref string
		d               digest.Digest
		deny            string
		err             error
	}{
		{"refused tag", "team/app", "latest", image.Digest, `denied by the policy of project team: ImagePolicy/p: tag: tag "latest" is refused`, nil},
		{"allowed tag", "team/app", "v1", image.Digest, "", nil},
		{"by digest", "team/app", image.Digest.String(), image.Digest, "", nil},
		{"not there", "team/app", "v2", digest.FromString("absent"), "", meta.ErrManifestUnknown},
		{"project without a policy", "other/app", "latest", digest.FromString("absent"), "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, _ := e.CheckPull(ctx, "r.example", tc.repo, tc.ref, &meta.Manifest{Digest: tc.d, MediaType: image.MediaType, Content: image.Content})
			n := e.Evaluations()
			deny, _, err := e.CheckImage(ctx, "r.example", tc.repo, tc.ref, tc.d)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if tc.err != nil {
				return
			}
			if deny != want || !strings.HasPrefix(deny, tc.deny) {
				t.Errorf("deny %q, want %q (the pull's: %q)", deny, tc.deny, want)
			}
			if e.Evaluations() != n {
				t.Error("the pull's cached verdict was evaluated again")
			}
		})
	}
}

// TestNotScannedIsNotCached: a refusal for want of a scan report is not
// remembered, so the pull after the report is stored is judged on it,
// even before the store's ReportStored reaches the cache.
func TestNotScannedIsNotCached(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reps, err := reportsqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reps.Close() })
	e, err := New(ctx, Options{Policies: st, Reports: reps, ProjectID: func(string) string { return "id-team" }})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Set(ctx, "team", "id-team", []byte("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: clean}\nspec:\n  vulnerabilities: {severity: CRITICAL}\n"), "admin"); err != nil {
		t.Fatal(err)
	}
	if deny, _ := e.CheckPull(ctx, "r.example", "team/app", "v1", image); !strings.Contains(deny, "has not been scanned yet") {
		t.Fatalf("unscanned image: %q", deny)
	}
	clean := &match.Report{SchemaVersion: match.ReportSchemaVersion, Inventory: inventory.Inventory{Packages: []inventory.Package{}}}
	if err := reps.Put(ctx, image.Digest, reports.Scan{Status: reports.Done}, clean, nil, -1); err != nil {
		t.Fatal(err)
	}
	if deny, _ := e.CheckPull(ctx, "r.example", "team/app", "v1", image); deny != "" {
		t.Errorf("scanned clean image refused: %s", deny)
	}
}
