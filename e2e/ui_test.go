package e2e

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"berth.dev/berth/internal/testpeers"
)

// XSS payloads: each, if a page ever ran it, would set window.__xss.
const (
	xssPackage    = `xss-<img src=x onerror=window.__xss=1>`
	xssSummary    = `<script>window.__xss=2</script><img src=x onerror=window.__xss=2> summary`
	xssAnnotation = `"><img src=x onerror=window.__xss=3><script>window.__xss=3</script>`
	xssWebhook    = `http://hooks.invalid/hook?x="><img src=x onerror=window.__xss=4>`
	xssAdvisory   = "BERTH-XSS-2026-0001"
)

// chromium finds Debian's Chromium, failing (not skipping) when CI must
// have it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	testpeers.Missing(t, "chromium (/usr/bin/chromium, or chromium on PATH)", "run scripts/peers.sh, which installs Debian's chromium")
	return ""
}

// browser is a headless Chromium with a fresh profile, flags that keep it
// off the network (the machine has none; without them it hangs on
// connection attempts), and a laptop-sized window. The dialogs it counts
// would mean an injected script ran.
func browser(t *testing.T) (context.Context, *atomic.Int64) {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true), chromedp.Flag("metrics-recording-only", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	dialogs := new(atomic.Int64)
	events := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range events {
			if err != nil {
				return
			}
			dialogs.Add(1)
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return ctx, dialogs
}

// artifactsDir is where screenshots go: $BERTH_ARTIFACTS, else a
// temporary folder (named in the log).
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("BERTH_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	dir = filepath.Join(dir, "ui-screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// visit opens a page, checks that no injected script ran and no element
// carries an injected handler, saves a full-page screenshot, and returns
// the visible text of its main part.
func visit(t *testing.T, ctx context.Context, shots, base, path, shot string) string {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+path), chromedp.WaitReady(chromedp.CSS("main"))); err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	clean, err := chromedp.Run(ctx, chromedp.Evaluate[[]any](`[window.__xss === undefined, document.querySelectorAll("[onerror],[onload]").length, document.scripts.length]`))
	if err != nil {
		t.Fatalf("inspect %s: %v", path, err)
	}
	if len(clean) != 3 || clean[0] != true || clean[1] != float64(0) || clean[2] != float64(0) {
		t.Errorf("%s: injected markup took effect (want no __xss, no handler attributes, no scripts): %v", path, clean)
	}
	if shot != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", path, err)
		}
		if err := os.WriteFile(filepath.Join(shots, shot+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// As a person reads it: cells and lines apart by a space.
	return strings.Join(strings.Fields(text), " ")
}

func mustContain(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s does not show %q:\n%.3000s", what, w, text)
		}
	}
}

func mustNotContain(t *testing.T, what, text string, bads ...string) {
	t.Helper()
	for _, b := range bads {
		if strings.Contains(text, b) {
			t.Errorf("%s shows %q, which its viewer may not see", what, b)
		}
	}
}

// login signs in through the form.
func login(t *testing.T, ctx context.Context, base, user, password string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/ui/login"),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/ui/logout"]`)),
	)
	if err != nil {
		t.Fatalf("log in as %s: %v", user, err)
	}
}

// addXSSAdvisory adds an OSV record for the injected npm package whose
// summary is itself an injection.
func addXSSAdvisory(t *testing.T, feed string) {
	t.Helper()
	path := filepath.Join(feed, "osv", "npm", "all.zip")
	old, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range old.File {
		w, _ := zw.CreateHeader(&f.FileHeader)
		rc, _ := f.Open()
		io.Copy(w, rc)
		rc.Close()
	}
	old.Close()
	w, _ := zw.Create(xssAdvisory + ".json")
	fmt.Fprintf(w, `{"schema_version":"1.6.0","id":%q,"modified":"2026-12-06T00:00:00Z","published":"2026-12-06T00:00:00Z",
		"summary":%q,"database_specific":{"severity":"HIGH"},
		"affected":[{"package":{"ecosystem":"npm","name":%q},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.1"}]}]}]}`,
		xssAdvisory, xssSummary, xssPackage)
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pushXSSImage pushes an image whose package-lock names the injected
// package and whose manifest carries an injected annotation.
func pushXSSImage(t *testing.T, s *server, ref string) {
	t.Helper()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	lock := fmt.Sprintf(`{"name":"app","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"app","version":"1.0.0"},%q:{"version":"1.0.0"}}}`,
		"node_modules/"+xssPackage)
	for _, f := range []struct{ name, body string }{{"app/", ""}, {"app/package-lock.json", lock}} {
		h := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		tw.WriteHeader(h)
		tw.Write([]byte(f.body))
	}
	tw.Close()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layer.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config.Labels = "linux", "amd64", map[string]string{"xss": xssAnnotation}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img = mutate.Annotations(img, map[string]string{"org.opencontainers.image.description": xssAnnotation}).(v1.Image)
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: s.Password})); err != nil {
		t.Fatal(err)
	}
}

// TestWebUI is issue 13's proof in a real browser: a server holding
// kitchen-sink, scanned by the server and signed with berth sign, beside
// an image made of injections; each page opened through the login form,
// what a person sees asserted, injected strings shown as text, project
// visibility in every page and search, CSRF refused, a session cookie
// dead after logout, and a screenshot of every page.
func TestWebUI(t *testing.T) {
	crane := testpeers.Tool(t, "crane")
	ctx, dialogs := browser(t)
	defer func() {
		if n := dialogs.Load(); n > 0 {
			t.Errorf("pages opened %d JavaScript dialogs: an injected script ran", n)
		}
	}()
	shots := artifactsDir(t)
	feed, feedSrv := copyFeed(t)
	addXSSAdvisory(t, feed)
	trustDir := t.TempDir()
	s := startBerthAuth(t, "--db-source", feedSrv.URL+"/osv", "--db-source", "nodejs-wg:"+feedSrv.URL+"/nodejs-security-wg/vuln.zip",
		"--db-update-interval", "0", "--trust-dir", trustDir, "--master-key", "file:"+newMasterKey(t))
	base := "http://" + s.Addr
	env := []string{"HOME=" + t.TempDir(), "BERTH_KEY_PASSWORD=key-password"}

	apiCall(t, s, "POST", "/api/v1/vulndb/update", nil, http.StatusAccepted, nil)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var st struct{ Ready bool }
		apiCall(t, s, "GET", "/api/v1/vulndb", nil, http.StatusOK, &st)
		if st.Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("vulnerability database not ready in 2 minutes")
		}
	}
	berthAdmin(t, s, "project", "create", "team-a")
	berthAdmin(t, s, "project", "create", "hidden")
	apiCall(t, s, "POST", "/api/v1/users", map[string]any{"name": "viewer", "password": "viewer-password"}, http.StatusCreated, nil)
	apiCall(t, s, "PUT", "/api/v1/projects/team-a/members/viewer", map[string]any{"role": "guest"}, http.StatusOK, nil)
	apiCall(t, s, "POST", "/api/v1/projects/team-a/webhooks", map[string]any{"url": xssWebhook, "events": []string{"dev.berth.scan.completed"}}, http.StatusCreated, nil)

	run(t, env, crane, "auth", "login", "-u", "admin", "-p", s.Password, s.Addr)
	kitchen := untar(t, testpeers.Shared(t, "images", "kitchen-sink.oci.tar"))
	run(t, env, crane, "push", kitchen, s.Addr+"/team-a/kitchen-sink:latest", "--insecure")
	run(t, env, crane, "push", kitchen, s.Addr+"/hidden/secret-app:v1", "--insecure")
	pushXSSImage(t, s, s.Addr+"/team-a/xss:v1")
	waitReport(t, s, "/api/v1/projects/team-a/repositories/kitchen-sink/artifacts/latest/vulnerabilities")
	waitReport(t, s, "/api/v1/projects/hidden/repositories/secret-app/artifacts/v1/vulnerabilities")
	waitReport(t, s, "/api/v1/projects/team-a/repositories/xss/artifacts/v1/vulnerabilities")

	// Signed with berth sign; the project trusts the key as release-key.
	keyDir := t.TempDir()
	if out, err := runIn(keyDir, env, berthBin, "key", "generate"); err != nil {
		t.Fatalf("berth key generate: %v\n%s", err, out)
	}
	run(t, env, berthBin, "sign", "--key", filepath.Join(keyDir, "berth.key"), s.Addr+"/team-a/kitchen-sink:latest")
	pub, err := os.ReadFile(filepath.Join(keyDir, "berth.pub"))
	if err != nil {
		t.Fatal(err)
	}
	trust := "keys:\n  - name: release-key\n    key: |\n      " + strings.ReplaceAll(strings.TrimSpace(string(pub)), "\n", "\n      ") + "\n"
	if err := os.WriteFile(filepath.Join(trustDir, "team-a.yaml"), []byte(trust), 0o644); err != nil {
		t.Fatal(err)
	}
	var art struct{ Digest string }
	apiCall(t, s, "GET", "/api/v1/projects/team-a/repositories/kitchen-sink/artifacts/latest", nil, http.StatusOK, &art)
	artPage := "/ui/projects/team-a/repositories/kitchen-sink/artifacts/" + art.Digest

	// The administrator, through the form.
	login(t, ctx, base, "admin", s.Password)
	text := visit(t, ctx, shots, base, "/ui/projects", "01-projects")
	mustContain(t, "projects page", text, "team-a", "hidden")
	text = visit(t, ctx, shots, base, "/ui/projects/team-a", "02-project")
	mustContain(t, "project page", text, "kitchen-sink", "xss", "latest")
	text = visit(t, ctx, shots, base, "/ui/projects/team-a/repositories/kitchen-sink", "03-repository")
	mustContain(t, "repository page", text, "latest", "linux/amd64", "verified by release-key", "done")
	text = visit(t, ctx, shots, base, artPage, "04-artifact-vulnerabilities")
	mustContain(t, "artifact page", text, "CVE-2021-44906", "minimist", "1.2.0 → 1.2.6", "CRITICAL", "How to fix",
		"verified by release-key", "1 critical")
	text = visit(t, ctx, shots, base, artPage+"?tab=packages&q=lodash", "05-artifact-packages")
	mustContain(t, "packages tab", text, "lodash", "4.17.15", "CycloneDX", "SPDX")
	mustNotContain(t, "packages tab searching lodash", text, "minimist")
	text = visit(t, ctx, shots, base, artPage+"?tab=layers", "06-artifact-layers")
	mustContain(t, "layers tab", text, "COPY app/ /app/", "/usr/local/bin/ks-app", "org.opencontainers.image.title")
	text = visit(t, ctx, shots, base, artPage+"?tab=signatures", "07-artifact-signatures")
	mustContain(t, "signatures tab", text, "verified", "release-key", "cosign-v2", "Stage approvals", "No stage has approved this artifact")
	// A stage people approve: approved and revoked through the forms; the
	// server signs with the project's staging key.
	apiCall(t, s, "POST", "/api/v1/projects/team-a/keys", map[string]any{"purpose": "staging"}, http.StatusCreated, nil)
	apiCall(t, s, "PUT", "/api/v1/projects/team-a/stages/staging", map[string]any{"key": "staging"}, http.StatusOK, nil)
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+artPage+"?tab=signatures"),
		chromedp.SendKeys(chromedp.ID("approve-stage"), "staging"),
		chromedp.Submit(chromedp.ID("approve-stage")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if err != nil {
		t.Fatal(err)
	}
	text = visit(t, ctx, shots, base, artPage+"?tab=signatures", "07-artifact-approved")
	mustContain(t, "signatures tab after approving", text, "staging", "approved", "dev.berth.stage=staging")
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+artPage+"?tab=signatures"),
		chromedp.SendKeys(chromedp.CSS(`form[action$="/revoke"] input[name="reason"]`), "rolled back"),
		chromedp.Submit(chromedp.CSS(`form[action$="/revoke"] input[name="reason"]`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if err != nil {
		t.Fatal(err)
	}
	text = visit(t, ctx, shots, base, artPage+"?tab=signatures", "07-artifact-revoked")
	mustContain(t, "signatures tab after revoking", text, "revoked", "revoked by admin: rolled back")
	text = visit(t, ctx, shots, base, artPage+"?tab=secrets", "08-artifact-secrets")
	mustContain(t, "secrets tab", text, "private-key", "root/.ssh/id_rsa", "allowed", "AWS's documentation example credentials")
	mustNotContain(t, "secrets tab (masked)", text, "wJalrXUtnFEMI")
	text = visit(t, ctx, shots, base, artPage+"?tab=policy", "08-artifact-policy")
	mustContain(t, "policy tab without a policy", text, "project team-a has no policy")
	// A project policy: signed by the trusted key and no critical
	// vulnerability. The image is signed but has one: the tab says
	// which rule denies it and why, the repository page says denied.
	// Set through the settings form, as a project administrator would.
	policy := "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: no-critical}\nspec:\n" +
		"  signers:\n    keys:\n    - ref: release-key\n  vulnerabilities:\n    severity: CRITICAL\n"
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/ui/projects/team-a/settings"),
		chromedp.SetValue(chromedp.ID("policy-doc"), policy),
		chromedp.Submit(chromedp.ID("policy-doc")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if err != nil {
		t.Fatal(err)
	}
	text = visit(t, ctx, shots, base, "/ui/projects/team-a/settings", "10-settings-policy")
	mustContain(t, "settings with a policy", text, "Enforced at every pull", "Remove policy")
	if got := apiCall(t, s, "GET", "/api/v1/projects/team-a/policy", nil, http.StatusOK, nil); string(got) != policy {
		t.Errorf("the policy stored through the form is %q, want %q", got, policy)
	}
	text = visit(t, ctx, shots, base, artPage+"?tab=policy", "08-artifact-policy-denied")
	mustContain(t, "policy tab", text, "denied", "ImagePolicy/no-critical", "vulnerability", "CVE-2021-44906", "vouched for by release-key")
	text = visit(t, ctx, shots, base, "/ui/projects/team-a/repositories/kitchen-sink", "03-repository-policy")
	mustContain(t, "repository page with a policy", text, "denied")
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/ui/projects/team-a/settings"),
		chromedp.Click(chromedp.CSS(`form[action="/ui/projects/team-a/policy/delete"] button`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if err != nil {
		t.Fatal(err)
	}
	apiCall(t, s, "GET", "/api/v1/projects/team-a/policy", nil, http.StatusNotFound, nil)
	text = visit(t, ctx, shots, base, "/ui/vulnerabilities?id=cve-2021-44906", "09-vulnerability-search")
	mustContain(t, "search", text, "2 images", "team-a", "kitchen-sink", "hidden", "secret-app", "minimist")
	text = visit(t, ctx, shots, base, "/ui/projects/team-a/settings", "10-settings")
	mustContain(t, "settings", text, "viewer", "guest", xssWebhook)
	text = visit(t, ctx, shots, base, "/ui/admin/vulndb", "11-vulndb")
	mustContain(t, "database page", text, "ready", "Update now")
	text = visit(t, ctx, shots, base, "/ui/admin/audit?verify=1", "12-audit")
	mustContain(t, "audit page", text, "The chain verifies", "login")
	text = visit(t, ctx, shots, base, "/ui/admin/users", "13-users")
	mustContain(t, "users page", text, "viewer")

	// A robot's secret is shown once, on the answer to the form.
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/ui/admin/robots"),
		chromedp.SendKeys(chromedp.ID("robot-name"), "ci"),
		chromedp.Submit(chromedp.ID("robot-name")),
		chromedp.WaitVisible(chromedp.CSS(".secret")),
	)
	if err != nil {
		t.Fatal(err)
	}
	robotText, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, "robot created", robotText, "robot$ci", "shown this once")
	text = visit(t, ctx, shots, base, "/ui/admin/robots", "14-robots")
	mustNotContain(t, "robots page after creation", text, "shown this once")

	// Every attacker-controlled string is text, in every page showing it.
	xssArt := "/ui/projects/team-a/repositories/xss/artifacts/v1"
	text = visit(t, ctx, shots, base, xssArt, "15-xss-vulnerabilities")
	mustContain(t, "injected finding", text, xssPackage, "<script>window.__xss=2</script>", xssAdvisory)
	text = visit(t, ctx, shots, base, xssArt+"?tab=layers", "16-xss-layers")
	mustContain(t, "injected annotation", text, xssAnnotation)
	text = visit(t, ctx, shots, base, xssArt+"?tab=packages", "")
	mustContain(t, "injected package", text, xssPackage)
	text = visit(t, ctx, shots, base, "/ui/vulnerabilities?id="+xssAdvisory, "")
	mustContain(t, "injected search", text, xssPackage, "<script>window.__xss=2</script>")
	visit(t, ctx, shots, base, "/ui/vulnerabilities?id="+url.QueryEscape(`<img src=x onerror=window.__xss=5>`), "")
	visit(t, ctx, shots, base, "/ui/projects/team-a/repositories/"+url.PathEscape(`<img src=x onerror=window.__xss=6>`), "")
	visit(t, ctx, shots, base, "/ui/projects/team-a/repositories/kitchen-sink/artifacts/"+url.PathEscape(`"><svg onload=window.__xss=7>`), "")

	// CSRF: another origin's page posting to berth with the administrator's
	// browser creates nothing.
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<html><body><form id="f" method="post" action="%s/ui/admin/users">
			<input name="name" value="csrf-victim"><input name="password" value="csrf-victim-password"><input name="csrf" value="guess">
			</form><script>document.getElementById("f").submit()</script></body></html>`, base)
	}))
	defer attacker.Close()
	if err := chromedp.Do(ctx, chromedp.Navigate(attacker.URL), chromedp.WaitVisible(chromedp.CSS("main"))); err != nil {
		t.Fatal(err)
	}
	csrfText, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, "cross-site form post", csrfText, "refused")
	apiCall(t, s, "GET", "/api/v1/users/csrf-victim", nil, http.StatusNotFound, nil)

	// The same form without the session's token, from berth's own
	// origin (a forged page cannot know the token): refused too.
	got, err := chromedp.Run(ctx, func(c context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(c, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{base}})
	})
	if err != nil {
		t.Fatal(err)
	}
	cookies := got.Cookies
	var session string
	for _, c := range cookies {
		if c.Name == "berth_session" {
			session = c.Value
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict {
				t.Errorf("session cookie %+v is not HttpOnly and SameSite=Strict", c)
			}
		}
	}
	if session == "" {
		t.Fatal("no session cookie in the browser")
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	withSession := func(method, path string, form url.Values) int {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, base+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.AddCookie(&http.Cookie{Name: "berth_session", Value: session})
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := withSession("POST", "/ui/admin/users", url.Values{"name": {"csrf-victim"}, "password": {"csrf-victim-password"}}); got != http.StatusForbidden {
		t.Errorf("a form post without the CSRF token: %d, want 403", got)
	}
	apiCall(t, s, "GET", "/api/v1/users/csrf-victim", nil, http.StatusNotFound, nil)
	if got := withSession("POST", "/ui/projects/team-a/policy", url.Values{"policy": {policy}}); got != http.StatusForbidden {
		t.Errorf("a policy form post without the CSRF token: %d, want 403", got)
	}
	apiCall(t, s, "GET", "/api/v1/projects/team-a/policy", nil, http.StatusNotFound, nil)
	if got := withSession("GET", "/api/v1/users", nil); got != http.StatusOK {
		t.Fatalf("the session cookie before logout: %d", got)
	}

	// Logout ends the session on the server: the cookie replayed opens
	// nothing.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/projects"), chromedp.Click(chromedp.CSS(`form[action="/ui/logout"] button`)),
		chromedp.WaitVisible(chromedp.ID("name"))); err != nil {
		t.Fatal(err)
	}
	if got := withSession("GET", "/api/v1/users", nil); got != http.StatusUnauthorized {
		t.Errorf("the session cookie replayed after logout, on the API: %d, want 401", got)
	}
	if got := withSession("GET", "/ui/admin/users", nil); got != http.StatusSeeOther {
		t.Errorf("the session cookie replayed after logout, on a page: %d, want 303 to the login", got)
	}

	// A member of team-a only: hidden is nowhere, in pages or search.
	login(t, ctx, base, "viewer", "viewer-password")
	text = visit(t, ctx, shots, base, "/ui/projects", "17-viewer-projects")
	mustContain(t, "viewer's projects", text, "team-a")
	mustNotContain(t, "viewer's projects", text, "hidden")
	text = visit(t, ctx, shots, base, "/ui/vulnerabilities?id=CVE-2021-44906", "18-viewer-search")
	mustContain(t, "viewer's search", text, "1 image", "kitchen-sink")
	mustNotContain(t, "viewer's search", text, "hidden", "secret-app")
	for _, p := range []string{"/ui/projects/hidden", "/ui/projects/hidden/repositories/secret-app",
		"/ui/projects/hidden/repositories/secret-app/artifacts/" + art.Digest, "/ui/projects/hidden/settings"} {
		text = visit(t, ctx, shots, base, p, "")
		// The page names only what the viewer typed.
		mustContain(t, "viewer opening "+p, text, "not found")
		mustNotContain(t, "viewer opening "+p, text, "CVE-", "critical", "minimist")
	}
	text = visit(t, ctx, shots, base, "/ui/admin/users", "")
	mustContain(t, "viewer opening the users page", text, "you may not do this")
	text = visit(t, ctx, shots, base, artPage+"?tab=signatures", "")
	mustContain(t, "viewer's signatures tab", text, "Stage approvals", "revoked by admin: rolled back")
	mustNotContain(t, "viewer's signatures tab (a guest approves nothing)", text, "Approve for stage")
	text = visit(t, ctx, shots, base, artPage, "19-viewer-artifact")
	mustContain(t, "viewer's artifact page", text, "CVE-2021-44906")
	mustNotContain(t, "viewer's artifact page", text, "Scan now")
}
