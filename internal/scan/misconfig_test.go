package scan

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/licensepolicy"
)

type entry struct {
	name string
	mode int64
	typ  byte
	body string
}

func layerWith(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.body)), Typeflag: typ}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	raw := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func writeImage(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return "oci-dir:" + dir
}

// TestMisconfigurationsOfAnImage: each image rule fires on an image made
// to break it, and the evidence masks the secret it names.
func TestMisconfigurationsOfAnImage(t *testing.T) {
	layers := []mutate.Addendum{
		{Layer: layerWith(t,
			entry{name: "etc/os-release", mode: 0o644, body: "ID=debian\n"},
			entry{name: "usr/bin/passwd", mode: 0o4755, body: "elf"}, // the base's own setuid: not reported
		), History: v1.History{CreatedBy: "COPY rootfs /"}},
		{Layer: layerWith(t,
			entry{name: "usr/bin/sudo", mode: 0o4755, body: "elf"},
			entry{name: "var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease", mode: 0o644, body: "x"},
			entry{name: "var/lib/apt/lists/lock", mode: 0o640},
			entry{name: "srv/shared", mode: 0o777, typ: tar.TypeDir},
			entry{name: "tmp", mode: 0o1777, typ: tar.TypeDir},
			entry{name: "app/run.sh", mode: 0o777, body: "#!/bin/sh\n"},
			entry{name: "app/helper", mode: 0o2755, body: "elf"},
		), History: v1.History{CreatedBy: "RUN /bin/sh -c apt-get update && apt-get install -y sudo && curl -fsSL https://get.example.com/install | sh"}},
		{Layer: layerWith(t, entry{name: "app/.wh.helper"}), History: v1.History{CreatedBy: "RUN /bin/sh -c rm /app/helper"}},
	}
	img, err := mutate.Append(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Env = []string{"PATH=/usr/bin", "DB_PASSWORD=s3cr3t-hunter2", "GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D", "PASSWORD_FILE=/run/secrets/db", "API_TOKEN=$TOKEN"}
	cfg.Config.ExposedPorts = map[string]struct{}{"22/tcp": {}, "8080/tcp": {}}
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.base.name": "docker.io/library/debian:latest"}
	cfg.History = append(cfg.History,
		v1.History{CreatedBy: "ADD https://example.com/tool.tar.gz /opt/ # buildkit", EmptyLayer: true},
		v1.History{CreatedBy: "RUN |1 NPM_TOKEN=npm_abcdefghijklmnop /bin/sh -c npm ci", EmptyLayer: true},
	)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := secretEngine(t, t.TempDir())
	e.Secrets, e.Misconfig = nil, true
	r, err := e.Scan(context.Background(), writeImage(t, img), image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range r.Misconfigurations {
		got = append(got, f.ID+" "+f.Evidence)
	}
	slices.Sort(got)
	want := []string{
		"BI001 no USER: the default user is root",
		"BI002 ENV DB_PASSWORD=s3c***********",
		"BI002 build argument NPM_TOKEN=npm_************ kept in the history",
		"BI003 no HEALTHCHECK in the config",
		"BI004 EXPOSE 22/tcp",
		"BI005 ADD from a URL: ADD https://example.com/tool.tar.gz /opt/ # buildkit",
		"BI005 download piped into a shell: curl -fsSL https://get.example.com/install | sh",
		"BI006 base image docker.io/library/debian:latest",
		"BI007 /usr/bin/sudo (mode 4755)",
		"BI008 /app/run.sh (mode 0777)",
		"BI008 /srv/shared (mode 0777)",
		"BI009 /var/lib/apt/lists/: 1 files",
		"BI010 /usr/bin/sudo",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestMisconfigurationsOfSharedImages: kitchen-sink runs as root, with no
// health check; the Debian base too; neither adds setuid files or
// leaves apt lists.
func TestMisconfigurationsOfSharedImages(t *testing.T) {
	e := secretEngine(t, t.TempDir())
	e.Secrets, e.Misconfig = nil, true
	for _, name := range []string{"debian-bookworm-minbase", "kitchen-sink"} {
		r, err := e.Scan(context.Background(), "oci-archive:"+sharedImage(t, name+".oci.tar"), image.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, f := range r.Misconfigurations {
			ids = append(ids, f.ID)
		}
		if strings.Join(ids, ",") != "BI001,BI003" {
			t.Errorf("%s: %v\n%+v", name, ids, r.Misconfigurations)
		}
	}
}

// TestMisconfigDirFindsDockerfiles: `berth scan --scanners misconfig
// dir:PATH` lints the Dockerfiles of a source tree, and one that does
// not parse is a finding that says so, not silence.
func TestMisconfigDirFindsDockerfiles(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"Dockerfile":           "FROM debian:latest\nCMD run\n",
		"deploy/Containerfile": "FROM x\nRUN <<EOF\nnever ends\n",
		"README.md":            "FROM is a word\n",
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := secretEngine(t, "")
	e.Secrets, e.Misconfig = nil, true
	r, err := e.Scan(context.Background(), "dir:"+dir, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range r.Misconfigurations {
		got = append(got, fmt.Sprintf("%s %s:%d", f.ID, f.Path, f.Line))
	}
	slices.Sort(got)
	want := []string{"BD000 deploy/Containerfile:0", "BD001 Dockerfile:1", "BD003 Dockerfile:1", "BD012 Dockerfile:2", "BD014 Dockerfile:1"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestLicensesOfKitchenSink: every package gets a class; a deny list
// marks exactly the packages whose every license choice it refuses.
func TestLicensesOfKitchenSink(t *testing.T) {
	e := secretEngine(t, t.TempDir())
	e.Secrets = nil
	p, err := licensepolicy.ParsePolicy(nil, []string{"MIT"})
	if err != nil {
		t.Fatal(err)
	}
	e.Licenses = &p
	r, err := e.Scan(context.Background(), "oci-archive:"+kitchenSink(t), image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Licenses) != len(r.Inventory.Packages) {
		t.Fatalf("%d licenses for %d packages", len(r.Licenses), len(r.Inventory.Packages))
	}
	byName := map[string]licensepolicy.Finding{}
	for _, l := range r.Licenses {
		byName[l.Ecosystem+"/"+l.Name] = l
	}
	for name, want := range map[string]licensepolicy.Class{
		"npm/lodash": licensepolicy.Permissive, "pypi/certifi": licensepolicy.WeakCopyleft,
		"deb/bash": licensepolicy.StrongCopyleft, "golang/stdlib": licensepolicy.Unknown,
	} {
		if got := byName[name]; got.Class != want {
			t.Errorf("%s: %+v, want class %s", name, got, want)
		}
	}
	if byName["npm/lodash"].Violation == "" || byName["pypi/certifi"].Violation != "" {
		t.Errorf("deny MIT: lodash %q, certifi %q", byName["npm/lodash"].Violation, byName["pypi/certifi"].Violation)
	}
	if !slices.Contains(r.Scanners, "license") {
		t.Errorf("scanners %v", r.Scanners)
	}
}
