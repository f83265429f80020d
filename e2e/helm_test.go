package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testpeers"
)

// The media types of a Helm chart in an OCI registry
// (https://helm.sh/docs/topics/registries/).
const (
	helmConfigMediaType = "application/vnd.cncf.helm.config.v1+json"
	helmChartMediaType  = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
)

// helmClient runs the helm binary with its cache, configuration, data and
// registry credentials in fresh directories, so that nothing reads or
// writes the user's home; each helmClient is one logged-in identity.
type helmClient struct {
	bin            string
	env            []string
	registryConfig string // HELM_REGISTRY_CONFIG: where login stores credentials
}

func newHelm(t *testing.T, bin string) *helmClient {
	t.Helper()
	dir := t.TempDir()
	registryConfig := filepath.Join(dir, "registry", "config.json")
	return &helmClient{bin: bin, registryConfig: registryConfig, env: []string{
		"HOME=" + filepath.Join(dir, "home"),
		"HELM_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"HELM_DATA_HOME=" + filepath.Join(dir, "data"),
		"HELM_REGISTRY_CONFIG=" + registryConfig,
	}}
}

// run runs helm in dir with stdin, returning stdout and stderr together
// (helm prints its errors on stderr).
func (h *helmClient) run(dir, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), h.env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// must is run failing the test on error.
func (h *helmClient) must(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := h.run(dir, "", args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// login logs h into s's registry as user.
func (h *helmClient) login(t *testing.T, s *server, user, password string) {
	t.Helper()
	if out, err := h.run("", password, "registry", "login", s.Addr, "-u", user, "--password-stdin", "--plain-http"); err != nil {
		t.Fatalf("helm registry login as %s: %v\n%s", user, err, out)
	}
}

// helmChart creates a chart with `helm create`, packages it at version
// and returns the path of the .tgz.
func helmChart(t *testing.T, h *helmClient, name, version string) string {
	t.Helper()
	work := t.TempDir()
	h.must(t, work, "create", name)
	h.must(t, work, "package", name, "--version", version, "--app-version", "v"+version, "-d", work)
	tgz := filepath.Join(work, name+"-"+version+".tgz")
	if _, err := os.Stat(tgz); err != nil {
		t.Fatalf("helm package did not write %s: %v", tgz, err)
	}
	return tgz
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// pushedDigest is the digest helm push prints.
var pushedDigest = regexp.MustCompile(`(?m)^Digest: (sha256:[0-9a-f]{64})\s*$`)

// registryGet fetches /v2/<repo>/<kind>/<ref> from s with Basic
// credentials, accepting an OCI manifest, and returns the body and the
// response headers.
func registryGet(t *testing.T, s *server, user, password, repo, kind, ref string) ([]byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+s.Addr+"/v2/"+repo+"/"+kind+"/"+ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", req.URL, resp.Status, body)
	}
	return body, resp.Header
}

// TestHelmPushPull is a chart's round trip through a private project with
// auth on: login, push, the manifest berth serves, pull, show.
func TestHelmPushPull(t *testing.T) {
	helm := newHelm(t, testpeers.Tool(t, "helm"))
	s := startBerthAuth(t)
	devPassword := newUser(t, s, "dev", "charts", "developer")
	tgz := helmChart(t, helm, "berth-demo", "0.3.1")
	tgzDigest := fileSHA256(t, tgz)

	helm.login(t, s, "dev", devPassword)
	if cfg, err := os.ReadFile(helm.registryConfig); err != nil || !strings.Contains(string(cfg), s.Addr) {
		t.Fatalf("helm registry login did not write HELM_REGISTRY_CONFIG: %v\n%s", err, cfg)
	}
	out := helm.must(t, "", "push", tgz, "oci://"+s.Addr+"/charts", "--plain-http")
	m := pushedDigest.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("helm push printed no digest:\n%s", out)
	}
	digest := m[1]
	if !strings.Contains(out, "Pushed: "+s.Addr+"/charts/berth-demo:0.3.1") {
		t.Errorf("helm push output lacks the reference:\n%s", out)
	}

	// The manifest berth serves for the tag is the one helm pushed, with
	// helm's media types unchanged.
	body, hdr := registryGet(t, s, "dev", devPassword, "charts/berth-demo", "manifests", "0.3.1")
	if got := hdr.Get("Docker-Content-Digest"); got != digest {
		t.Errorf("Docker-Content-Digest = %s, helm pushed %s", got, digest)
	}
	if sum := sha256.Sum256(body); "sha256:"+hex.EncodeToString(sum[:]) != digest {
		t.Errorf("served manifest hashes to sha256:%x, helm pushed %s", sum, digest)
	}
	if got := hdr.Get("Content-Type"); got != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("Content-Type = %q", got)
	}
	var manifest struct {
		MediaType string
		Config    struct{ MediaType, Digest string }
		Layers    []struct {
			MediaType, Digest string
			Size              int64
		}
	}
	if err := json.Unmarshal(body, &manifest); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if manifest.Config.MediaType != helmConfigMediaType {
		t.Errorf("config media type = %q, want %q", manifest.Config.MediaType, helmConfigMediaType)
	}
	if len(manifest.Layers) != 1 || manifest.Layers[0].MediaType != helmChartMediaType || manifest.Layers[0].Digest != tgzDigest {
		t.Errorf("layers = %+v, want one %s of digest %s", manifest.Layers, helmChartMediaType, tgzDigest)
	}
	// The config blob is the chart's metadata.
	config, _ := registryGet(t, s, "dev", devPassword, "charts/berth-demo", "blobs", manifest.Config.Digest)
	var meta struct{ Name, Version, AppVersion string }
	if err := json.Unmarshal(config, &meta); err != nil || meta.Name != "berth-demo" || meta.Version != "0.3.1" || meta.AppVersion != "v0.3.1" {
		t.Errorf("config blob = %s (%v)", config, err)
	}
	// The tag list is what helm resolves versions from.
	tags, _ := registryGet(t, s, "dev", devPassword, "charts/berth-demo", "tags", "list")
	if !strings.Contains(string(tags), `"0.3.1"`) {
		t.Errorf("tags/list = %s", tags)
	}

	ref := "oci://" + s.Addr + "/charts/berth-demo"
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"by version", []string{"--version", "0.3.1"}},
		{"latest", nil},
	} {
		t.Run("pull "+tc.name, func(t *testing.T) {
			dest := t.TempDir()
			helm.must(t, "", append([]string{"pull", ref, "--plain-http", "-d", dest}, tc.args...)...)
			if got := fileSHA256(t, filepath.Join(dest, "berth-demo-0.3.1.tgz")); got != tgzDigest {
				t.Errorf("pulled chart %s, pushed %s", got, tgzDigest)
			}
		})
	}
	t.Run("pull by digest", func(t *testing.T) {
		dest := t.TempDir()
		helm.must(t, "", "pull", ref+"@"+digest, "--plain-http", "-d", dest)
		// helm names a chart pulled by digest after the digest.
		name := "berth-demo@" + strings.Replace(digest, ":", "-", 1) + ".tgz"
		if got := fileSHA256(t, filepath.Join(dest, name)); got != tgzDigest {
			t.Errorf("pulled chart %s, pushed %s", got, tgzDigest)
		}
	})
	t.Run("show chart", func(t *testing.T) {
		out := helm.must(t, "", "show", "chart", ref, "--version", "0.3.1", "--plain-http")
		for _, want := range []string{"name: berth-demo", "version: 0.3.1", "appVersion: v0.3.1"} {
			if !strings.Contains(out, want) {
				t.Errorf("helm show chart lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("template", func(t *testing.T) {
		out := helm.must(t, "", "template", "demo", ref, "--version", "0.3.1", "--plain-http")
		if !strings.Contains(out, "kind: Deployment") || !strings.Contains(out, "name: demo-berth-demo") {
			t.Errorf("helm template:\n%s", out)
		}
	})
	t.Run("logout", func(t *testing.T) {
		helm.must(t, "", "registry", "logout", s.Addr)
		out, err := helm.run("", "", "pull", ref, "--version", "0.3.1", "--plain-http", "-d", t.TempDir())
		expectRefusal(t, "pull after logout", out, err, "401: unauthorized")
	})
}

// TestHelmAccess checks who may pull and push charts: anonymous callers
// pull from a public project only, guests pull but do not push, outsiders
// reach nothing private.
func TestHelmAccess(t *testing.T) {
	bin := testpeers.Tool(t, "helm")
	s := startBerthAuth(t)
	berthAdmin(t, s, "project", "create", "public-charts", "--public")
	guestPassword := newUser(t, s, "guest", "charts", "guest")
	outsiderPassword := newUser(t, s, "outsider", "", "")

	admin := newHelm(t, bin)
	admin.login(t, s, "admin", s.Password)
	tgz := helmChart(t, admin, "demo", "1.0.0")
	admin.must(t, "", "push", tgz, "oci://"+s.Addr+"/charts", "--plain-http")
	admin.must(t, "", "push", tgz, "oci://"+s.Addr+"/public-charts", "--plain-http")
	other := helmChart(t, admin, "other", "2.0.0")

	clients := map[string]*helmClient{"anonymous": newHelm(t, bin), "guest": newHelm(t, bin), "outsider": newHelm(t, bin)}
	clients["guest"].login(t, s, "guest", guestPassword)
	clients["outsider"].login(t, s, "outsider", outsiderPassword)

	// What helm prints for a refusal: the status and the registry's error
	// code, e.g. `response status code 403: denied: push to project charts
	// denied: …`.
	unauthorized := []string{"401: unauthorized"}
	denied := []string{"403: denied"}
	for _, tc := range []struct {
		who, op, project string
		refused          []string // nil: allowed
	}{
		{"anonymous", "pull", "charts", unauthorized},
		{"anonymous", "show", "charts", unauthorized},
		{"anonymous", "pull", "public-charts", nil},
		{"anonymous", "show", "public-charts", nil},
		{"anonymous", "push", "public-charts", unauthorized},
		{"guest", "pull", "charts", nil},
		{"guest", "push", "charts", denied},
		{"outsider", "pull", "charts", denied},
		{"outsider", "pull", "public-charts", nil},
		{"outsider", "push", "public-charts", denied},
	} {
		t.Run(tc.who+" "+tc.op+" "+tc.project, func(t *testing.T) {
			h := clients[tc.who]
			ref := "oci://" + s.Addr + "/" + tc.project
			dest := t.TempDir()
			var out string
			var err error
			switch tc.op {
			case "pull":
				out, err = h.run("", "", "pull", ref+"/demo", "--version", "1.0.0", "--plain-http", "-d", dest)
			case "show":
				out, err = h.run("", "", "show", "chart", ref+"/demo", "--version", "1.0.0", "--plain-http")
			case "push":
				out, err = h.run("", "", "push", other, ref, "--plain-http")
			}
			if tc.refused != nil {
				expectRefusal(t, tc.who+" "+tc.op, out, err, tc.refused...)
				return
			}
			if err != nil {
				t.Fatalf("helm %s: %v\n%s", tc.op, err, out)
			}
			switch tc.op {
			case "pull":
				if got, want := fileSHA256(t, filepath.Join(dest, "demo-1.0.0.tgz")), fileSHA256(t, tgz); got != want {
					t.Errorf("pulled %s, pushed %s", got, want)
				}
			case "show":
				if !strings.Contains(out, "name: demo") || !strings.Contains(out, "version: 1.0.0") {
					t.Errorf("helm show chart:\n%s", out)
				}
			}
		})
	}

	// Refused pushes left nothing behind.
	for _, repo := range []string{"charts/other", "public-charts/other"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.Addr+"/v2/"+repo+"/tags/list", nil)
		req.SetBasicAuth("admin", s.Password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s after refused pushes: %s", repo, resp.Status)
		}
	}

	// A wrong password is refused at login.
	out, err := newHelm(t, bin).run("", "wrong-password", "registry", "login", s.Addr, "-u", "guest", "--password-stdin", "--plain-http")
	expectRefusal(t, "login with a wrong password", out, err, "401: unauthorized")
}
