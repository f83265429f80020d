package scan

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	mrand "math/rand/v2"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers"
	"berth.dev/berth/internal/secret"
)

// token makes a fake credential: prefix and n random characters. Tests
// make their secrets; none is written in the source.
func token(r *mrand.Rand, prefix string, n int) string {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := []byte(prefix)
	for range n {
		b = append(b, alnum[r.IntN(len(alnum))])
	}
	return string(b)
}

type tarFile struct{ name, body string }

func layerOf(t *testing.T, files ...tarFile) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(f.body))
	}
	tw.Close()
	raw := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// secretImage is an image with secrets in a file a later layer deletes,
// in a file that stays, in a file name, in Env, in a label and in a build
// argument kept by the history, and decoys that must not be reported.
type secretImage struct {
	src                               string
	ghToken, npmToken, glToken, pyKey string
	diffIDs                           []string
}

func buildSecretImage(t *testing.T) secretImage {
	t.Helper()
	r := mrand.New(mrand.NewPCG(7, 11))
	si := secretImage{
		ghToken:  token(r, "ghp_", 36),
		npmToken: token(r, "npm_", 36),
		glToken:  token(r, "glpat-", 20),
		pyKey:    token(r, "", 40),
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalECPrivateKey(k)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	layers := []mutate.Addendum{
		{Layer: layerOf(t,
			tarFile{"etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"},
			tarFile{"app/settings.py", "SECRET_KEY = os.environ[\"SECRET_KEY\"]\nDB_PASSWORD = \"${DB_PASSWORD}\"\n"},
			tarFile{"app/docs.md", "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"},
		), History: v1.History{CreatedBy: "COPY base/ /"}},
		{Layer: layerOf(t,
			tarFile{"app/.env", "GITHUB_TOKEN=" + si.ghToken + "\nDEBUG=1\n"},
			tarFile{"etc/ssl/private/app.key", keyPEM},
			tarFile{"app/cache/" + si.glToken + ".json", "{}"},
			// The name holds a secret, and so does the content: the content's
			// finding must not show the name in full.
			tarFile{"app/keys/" + si.glToken + ".pem", keyPEM},
		), History: v1.History{CreatedBy: "COPY app/ /app/"}},
		{Layer: layerOf(t, tarFile{"app/.wh..env", ""}), History: v1.History{CreatedBy: "RUN /bin/sh -c rm /app/.env"}},
	}
	img, err := mutate.Append(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Env = []string{"PATH=/usr/bin", "NPM_TOKEN=" + si.npmToken, "HOME=/root"}
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.title": "app", "ci.deploy-key": "aws_secret_access_key=" + si.pyKey}
	cfg.History = append(cfg.History, v1.History{CreatedBy: "RUN |1 GITLAB_TOKEN=" + si.glToken + " /bin/sh -c make", EmptyLayer: true})
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, _ := l.Layer.DiffID()
		si.diffIDs = append(si.diffIDs, d.String())
	}
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	si.src = "oci-dir:" + dir
	return si
}

func secretEngine(t testing.TB, cacheDir string) *Engine {
	t.Helper()
	rs, err := secret.Default()
	if err != nil {
		t.Fatal(err)
	}
	s := &inventory.Scanner{Analyzers: analyzers.All()}
	if cacheDir != "" {
		if s.Cache, err = inventory.OpenCache(cacheDir); err != nil {
			t.Fatal(err)
		}
	}
	return &Engine{Inventory: s, Secrets: rs, Logger: quiet}
}

func TestSecretsInEveryLayerAndTheConfig(t *testing.T) {
	si := buildSecretImage(t)
	cache := t.TempDir()
	e := secretEngine(t, cache)
	r, err := e.Scan(context.Background(), si.src, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		rule, kind, path, layer, createdBy, removedBy string
		allowed                                       bool
	}
	got := map[string]want{}
	for _, f := range r.Secrets {
		k := f.RuleID + " " + f.Kind
		if strings.HasPrefix(f.Path, "app/keys/") {
			k += " " + f.Path // the second file named by a token
		}
		got[k] = want{f.RuleID, f.Kind, f.Path, f.Layer, f.CreatedBy, f.RemovedBy, f.Allowed != ""}
	}
	for _, w := range []want{
		{rule: "github-pat", kind: "file", path: "app/.env", layer: si.diffIDs[1], createdBy: "COPY app/ /app/", removedBy: si.diffIDs[2]},
		{rule: "private-key", kind: "file", path: "etc/ssl/private/app.key", layer: si.diffIDs[1], createdBy: "COPY app/ /app/"},
		{rule: "gitlab-pat", kind: "name", path: "app/cache/glpa************.json", layer: si.diffIDs[1], createdBy: "COPY app/ /app/"},
		{rule: "npm-access-token", kind: "env", path: "NPM_TOKEN"},
		{rule: "aws-secret-access-key", kind: "label", path: "ci.deploy-key"},
		{rule: "gitlab-pat", kind: "history"},
		{rule: "aws-access-token", kind: "file", path: "app/docs.md", layer: si.diffIDs[0], createdBy: "COPY base/ /", allowed: true},
		{rule: "gitlab-pat", kind: "name", path: "app/keys/glpa************.pem", layer: si.diffIDs[1], createdBy: "COPY app/ /app/"},
		{rule: "private-key", kind: "file", path: "app/keys/glpa************.pem", layer: si.diffIDs[1], createdBy: "COPY app/ /app/"},
	} {
		key := w.rule + " " + w.kind
		if strings.HasPrefix(w.path, "app/keys/") {
			key += " " + w.path
		}
		g, ok := got[key]
		if !ok {
			t.Errorf("%s in %s not found; found %+v", w.rule, w.kind, got)
			continue
		}
		if g != w {
			t.Errorf("got  %+v\nwant %+v", g, w)
		}
		delete(got, key)
	}
	for k, g := range got {
		t.Errorf("unexpected finding %s: %+v", k, g)
	}
	// No secret in full anywhere in the stored report.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{si.ghToken, si.npmToken, si.glToken, si.pyKey, si.ghToken[4:16], si.glToken[6:18]} {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("report holds %q", s)
		}
	}
	// A warm scan reads no layer and finds the same.
	e2 := secretEngine(t, cache)
	var read int
	e2.Inventory.OnPlan = func(l []image.Layer) { read = len(l) }
	r2, err := e2.Scan(context.Background(), si.src, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if read != 0 {
		t.Errorf("warm scan read %d layers", read)
	}
	if a, b := mustJSON(t, r.Secrets), mustJSON(t, r2.Secrets); a != b {
		t.Errorf("warm scan differs:\n%s\n%s", a, b)
	}
	// The same cache with the secret scanner off and on again: the
	// inventory entries do not hide the missing secret results.
	if r.Scanners == nil || strings.Join(r.Scanners, ",") != "secret" {
		t.Errorf("scanners %v", r.Scanners)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSecretScanAfterInventoryOnlyScanReadsLayers(t *testing.T) {
	si := buildSecretImage(t)
	cache := t.TempDir()
	plain := secretEngine(t, cache)
	plain.Secrets = nil
	if _, err := plain.Scan(context.Background(), si.src, image.Options{}); err != nil {
		t.Fatal(err)
	}
	e := secretEngine(t, cache)
	r, err := e.Scan(context.Background(), si.src, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range r.Secrets {
		found = found || f.RuleID == "github-pat"
	}
	if !found {
		t.Fatalf("the cached inventory hid the layers from the secret pass: %+v", r.Secrets)
	}
}

func TestSecretsOfSharedImages(t *testing.T) {
	e := secretEngine(t, t.TempDir())
	base := sharedImage(t, "debian-bookworm-minbase.oci.tar")
	r, err := e.Scan(context.Background(), "oci-archive:"+base, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Secrets) != 0 {
		t.Errorf("the plain Debian base reports %d secrets: %+v", len(r.Secrets), r.Secrets)
	}
	r, err = e.Scan(context.Background(), "oci-archive:"+kitchenSink(t), image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const secretsLayer = "sha256:ea3c986aba79774c1b7a792302de551af7b46d26a676dca6cd850856503a863e"
	var got []string
	for _, f := range r.Secrets {
		if f.Layer != secretsLayer {
			t.Errorf("finding outside the planted layer: %+v", f)
		}
		s := f.RuleID + " " + f.Path
		if f.Allowed != "" {
			s += " (allowed)"
		}
		got = append(got, s)
	}
	want := []string{
		"aws-access-token app/config.env (allowed)",
		"aws-secret-access-key app/config.env (allowed)",
		"private-key root/.ssh/id_rsa",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("kitchen-sink secrets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
