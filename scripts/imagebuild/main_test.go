package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

const testCA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

func testOptions() Options {
	return Options{
		Version: "v1.2.3", Revision: "abc123", Created: time.Unix(1700000000, 0).UTC(), CA: []byte(testCA),
		Binaries: map[string][]byte{"linux/arm64": []byte("arm64 berth"), "linux/amd64": []byte("amd64 berth")},
	}
}

type entry struct {
	mode     int64
	uid, gid int
	body     string
}

// files lists a layer's entries by name.
func files(t *testing.T, l v1.Layer) map[string]entry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if !h.ModTime.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s: time %v, want the release's", h.Name, h.ModTime)
		}
		out[h.Name] = entry{mode: h.Mode, uid: h.Uid, gid: h.Gid, body: string(body)}
	}
}

func TestBuild(t *testing.T) {
	idx, err := Build(testOptions())
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if string(im.MediaType) != "application/vnd.oci.image.index.v1+json" || len(im.Manifests) != 2 {
		t.Fatalf("index %s with %d manifests", im.MediaType, len(im.Manifests))
	}
	if im.Annotations["org.opencontainers.image.version"] != "v1.2.3" {
		t.Errorf("index annotations %v", im.Annotations)
	}
	for i, arch := range []string{"amd64", "arm64"} {
		d := im.Manifests[i]
		if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != arch {
			t.Fatalf("manifest %d platform %+v, want linux/%s", i, d.Platform, arch)
		}
		if d.ArtifactType != "" {
			t.Errorf("manifest %d listed as an artifact of type %s", i, d.ArtifactType)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != arch || cf.OS != "linux" || cf.Config.User != "65532:65532" ||
			!slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/berth"}) ||
			!slices.Equal(cf.Config.Cmd, []string{"serve", "--addr=0.0.0.0:5000", "--data=/data"}) ||
			cf.Config.Labels["org.opencontainers.image.revision"] != "abc123" || !cf.Created.Time.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s config %+v", arch, cf)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 2 || len(cf.History) != 2 {
			t.Fatalf("%s: %d layers, %d history entries, %v", arch, len(layers), len(cf.History), err)
		}
		base := files(t, layers[0])
		if e := base["data/"]; e.uid != 65532 || e.mode != 0o700 {
			t.Errorf("/data %+v, want the server's own, 0700", e)
		}
		if e := base["tmp/"]; e.mode != 0o1777 {
			t.Errorf("/tmp mode %o", e.mode)
		}
		if e := base["etc/ssl/certs/ca-certificates.crt"]; e.body != testCA {
			t.Errorf("CA bundle %q", e.body)
		}
		if !strings.Contains(base["etc/passwd"].body, "berth:x:65532:65532:") {
			t.Errorf("passwd %q", base["etc/passwd"].body)
		}
		bin := files(t, layers[1])
		if e := bin["usr/local/bin/berth"]; e.body != arch+" berth" || e.mode != 0o755 || e.uid != 0 {
			t.Errorf("%s binary %+v", arch, e)
		}
	}
}

// The same inputs make the same digests: a release can be rebuilt and
// checked.
func TestBuildReproducible(t *testing.T) {
	a, err := Build(testOptions())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(testOptions())
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("two builds: %s and %s", da, db)
	}
	changed := testOptions()
	changed.Binaries["linux/amd64"] = []byte("other")
	c, err := Build(changed)
	if err != nil {
		t.Fatal(err)
	}
	if dc, _ := c.Digest(); dc == da {
		t.Errorf("another binary made the same index %s", dc)
	}
}

func TestBuildRefuses(t *testing.T) {
	for name, change := range map[string]func(*Options){
		"no binaries":  func(o *Options) { o.Binaries = nil },
		"no CA":        func(o *Options) { o.CA = []byte("not a certificate") },
		"not linux":    func(o *Options) { o.Binaries["darwin/arm64"] = []byte("x") },
		"bad platform": func(o *Options) { o.Binaries["linux/"] = []byte("x") },
	} {
		t.Run(name, func(t *testing.T) {
			o := testOptions()
			change(&o)
			if _, err := Build(o); err == nil {
				t.Error("built")
			}
		})
	}
}

// The command writes an OCI layout that go-containerregistry reads back,
// and refuses to write over a directory.
func TestRunWritesLayout(t *testing.T) {
	dir := t.TempDir()
	ca, bin := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "berth")
	os.WriteFile(ca, []byte(testCA), 0o644)
	os.WriteFile(bin, []byte("amd64 berth"), 0o755)
	out := filepath.Join(dir, "image")
	args := []string{"-o", out, "--version", "v1.2.3", "--created", "1700000000", "--ca", ca, "linux/amd64=" + bin}
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	outer, err := idx.IndexManifest()
	if err != nil || len(outer.Manifests) != 1 || outer.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v1.2.3" {
		t.Fatalf("layout index %+v, %v", outer, err)
	}
	inner, err := idx.ImageIndex(outer.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if im, err := inner.IndexManifest(); err != nil || len(im.Manifests) != 1 || im.Manifests[0].Platform.Architecture != "amd64" {
		t.Errorf("image index %+v, %v", im, err)
	}
	if err := run(args); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second run into the same directory: %v", err)
	}
	if err := run([]string{"-o", filepath.Join(dir, "x"), "--version", "v", "--ca", ca, "linux/amd64"}); err == nil {
		t.Error("a platform without a binary was accepted")
	}
}
