package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// testImage builds a two-layer image for arch with go-containerregistry.
func testImage(t *testing.T, arch string) v1.Image {
	t.Helper()
	var layers []v1.Layer
	for _, raw := range [][]byte{
		makeTar(t, tarEntry2{name: "etc/os-release", body: "ID=test\n"}, tarEntry2{name: "arch", body: arch}),
		makeTar(t, tarEntry2{name: ".wh.arch"}),
	} {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// multiArch is an index of an arm64 and an amd64 image.
func multiArch(t *testing.T) (v1.ImageIndex, map[string]v1.Image) {
	imgs := map[string]v1.Image{"arm64": testImage(t, "arm64"), "amd64": testImage(t, "amd64")}
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"arm64", "amd64"} {
		adds = append(adds, mutate.IndexAddendum{Add: imgs[arch], Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return mutate.AppendManifests(empty.Index, adds...), imgs
}

func writeLayout(t *testing.T, dir string, add func(layout.Path)) {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	add(p)
}

// tarDir packs a directory into a tar file, as skopeo's oci-archive does.
func tarDir(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// filesOf walks every layer and returns path → content of regular files,
// and the whiteouts, per layer.
func filesOf(t *testing.T, im *Image) []string {
	t.Helper()
	var out []string
	for _, l := range im.Layers {
		ch, err := Walk(context.Background(), l, WalkOptions{}, func(e *Entry, body io.Reader) error {
			if e.Kind == KindFile {
				b, _ := io.ReadAll(body)
				out = append(out, e.Path+"="+string(b))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ch.Whiteouts {
			out = append(out, "-"+w)
		}
	}
	return out
}

func TestSourcesAgree(t *testing.T) {
	idx, imgs := multiArch(t)
	want := imgs["amd64"]
	wantDigest, _ := want.Digest()
	wantCfg, _ := want.ConfigName()
	wantFiles := []string{"etc/os-release=ID=test\n", "arch=amd64", "-arch"}

	tmp := t.TempDir()
	ociDir := filepath.Join(tmp, "oci")
	writeLayout(t, ociDir, func(p layout.Path) {
		if err := p.AppendIndex(idx); err != nil {
			t.Fatal(err)
		}
	})
	ociTar := filepath.Join(tmp, "img.oci.tar")
	tarDir(t, ociDir, ociTar)
	dockerTar := filepath.Join(tmp, "img.docker.tar")
	tag, _ := name.NewTag("example.com/test:latest")
	if err := tarball.WriteToFile(dockerTar, tag, want); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref, _ := name.ParseReference(host + "/test:multi")
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		src        string
		manifestID bool // the source has the manifest digest
	}{
		{"oci-dir:" + ociDir, true},
		{"oci:" + ociDir, true},
		{ociDir, true},
		{"oci-archive:" + ociTar, true},
		{ociTar, true},
		{"docker-archive:" + dockerTar, false},
		{"docker-archive:" + dockerTar + ":example.com/test:latest", false},
		{dockerTar, false},
		{host + "/test:multi", true},
		{"docker://" + host + "/test:multi", true},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			im, err := Open(context.Background(), tt.src, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			if tt.manifestID && im.Digest != wantDigest.String() {
				t.Errorf("digest %s, want %s (the amd64 image)", im.Digest, wantDigest)
			}
			if im.ConfigDigest != wantCfg.String() || im.Config.Architecture != "amd64" || im.Source != tt.src {
				t.Errorf("config %s arch %s source %s", im.ConfigDigest, im.Config.Architecture, im.Source)
			}
			if got := filesOf(t, im); !reflect.DeepEqual(got, wantFiles) {
				t.Errorf("files %q, want %q", got, wantFiles)
			}
		})
	}

	t.Run("platform", func(t *testing.T) {
		for _, src := range []string{ociTar, host + "/test:multi"} {
			im, err := Open(context.Background(), src, Options{Platform: "linux/arm64"})
			if err != nil {
				t.Fatal(err)
			}
			if im.Config.Architecture != "arm64" {
				t.Errorf("%s: got %s, want arm64", src, im.Config.Architecture)
			}
			im.Close()
			if _, err := Open(context.Background(), src, Options{Platform: "linux/s390x"}); err == nil {
				t.Errorf("%s: linux/s390x found in an index without it", src)
			}
		}
	})
}

func TestMissingLayerBlob(t *testing.T) {
	img := testImage(t, "amd64")
	m, _ := img.Manifest()
	missing := m.Layers[1].Digest
	tmp := t.TempDir()
	ociDir := filepath.Join(tmp, "oci")
	writeLayout(t, ociDir, func(p layout.Path) {
		if err := p.AppendImage(img); err != nil {
			t.Fatal(err)
		}
	})
	if err := os.Remove(filepath.Join(ociDir, "blobs", "sha256", missing.Hex)); err != nil {
		t.Fatal(err)
	}
	ociTar := filepath.Join(tmp, "broken.oci.tar")
	tarDir(t, ociDir, ociTar)
	for _, src := range []string{"oci-dir:" + ociDir, "oci-archive:" + ociTar} {
		_, err := Open(context.Background(), src, Options{})
		if !errors.Is(err, ErrMissingBlob) || !strings.Contains(err.Error(), missing.String()) {
			t.Errorf("%s: error %v should be ErrMissingBlob naming %s", src, err, missing)
		}
	}

	// A docker archive without one of its layer files.
	full := filepath.Join(tmp, "full.docker.tar")
	tag, _ := name.NewTag("example.com/test:latest")
	if err := tarball.WriteToFile(full, tag, img); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(tmp, "broken.docker.tar")
	copyTarWithout(t, full, broken, missing.Hex+".tar.gz")
	diffIDs, _ := img.ConfigFile()
	_, err := Open(context.Background(), "docker-archive:"+broken, Options{})
	if !errors.Is(err, ErrMissingBlob) || !strings.Contains(err.Error(), diffIDs.RootFS.DiffIDs[1].String()) || !strings.Contains(err.Error(), missing.Hex) {
		t.Errorf("docker archive: error %v should be ErrMissingBlob naming the layer", err)
	}
}

// copyTarWithout copies a tar file, leaving out the entry named skip.
func copyTarWithout(t *testing.T, from, to, skip string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	tr, tw := tar.NewReader(in), tar.NewWriter(out)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == skip {
			found = true
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if !found {
		t.Fatalf("%s has no entry %s", from, skip)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBadSources(t *testing.T) {
	tmp := t.TempDir()
	notTar := filepath.Join(tmp, "x.tar")
	os.WriteFile(notTar, []byte("this is not a tar archive at all, not even close to one......"), 0o644)
	emptyTar := filepath.Join(tmp, "empty.tar")
	f, _ := os.Create(emptyTar)
	tw := tar.NewWriter(f)
	tw.WriteHeader(&tar.Header{Name: "hello", Typeflag: tar.TypeReg, Size: 2})
	tw.Write([]byte("hi"))
	tw.Close()
	f.Close()
	for _, src := range []string{
		notTar,
		emptyTar,
		"oci-archive:" + filepath.Join(tmp, "absent.tar"),
		"./absent.tar",
		"dir:" + notTar,
		"oci-dir:" + tmp,
	} {
		if _, err := Open(context.Background(), src, Options{}); !errors.Is(err, ErrBadSource) {
			t.Errorf("%s: %v, want ErrBadSource", src, err)
		}
	}
	if _, err := Open(context.Background(), "oci-dir:"+tmp, Options{Platform: "amd64"}); err == nil || !strings.Contains(err.Error(), "platform") {
		t.Errorf("a bad platform: %v", err)
	}
}

func TestRootFSSource(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(root, "etc", "os-release"), []byte("ID=debian\n"), 0o644))
	must(os.Symlink("/", filepath.Join(root, "rootlink")))
	must(os.Symlink("loop-b", filepath.Join(root, "loop-a")))
	must(os.Symlink("loop-a", filepath.Join(root, "loop-b")))
	must(os.Symlink("../../../../etc/passwd", filepath.Join(root, "etc", "passwd-out")))

	im, err := Open(context.Background(), "dir:"+root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if len(im.Layers) != 1 || im.Layers[0].DiffID != "" {
		t.Fatalf("layers %+v", im.Layers)
	}
	got := map[string]string{}
	_, err = Walk(context.Background(), im.Layers[0], WalkOptions{}, func(e *Entry, body io.Reader) error {
		b, _ := io.ReadAll(body)
		switch e.Kind {
		case KindFile:
			got[e.Path] = string(b)
		case KindSymlink:
			got[e.Path] = "→" + e.Link
		case KindDir:
			got[e.Path] = "dir"
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"etc": "dir", "etc/os-release": "ID=debian\n", "rootlink": "→/", "loop-a": "→loop-b",
		"loop-b": "→loop-a", "etc/passwd-out": "→../../../../etc/passwd"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// The links are inert: walking did not follow rootlink into the host.
	if _, err := fs.Stat(os.DirFS(root), "rootlink/etc/os-release"); err == nil {
		t.Log("host has /etc/os-release; the walk above did not visit it")
	}
}

// --insecure reaches a registry behind a self-signed certificate; without
// it the pull fails on the certificate.
func TestInsecureRegistry(t *testing.T) {
	srv := httptest.NewTLSServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	ref, _ := name.ParseReference(host + "/test:tls")
	if err := remote.Write(ref, testImage(t, "amd64"), remote.WithTransport(srv.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	// httptest listens on 127.0.0.1, which go-containerregistry treats as
	// loopback: it falls back to plain HTTP, which this server refuses, so
	// only a verified or skipped TLS check can succeed.
	im, err := Open(context.Background(), host+"/test:tls", Options{Insecure: true})
	if err != nil {
		t.Fatalf("--insecure: %v", err)
	}
	im.Close()
	if _, err := Open(context.Background(), host+"/test:tls", Options{}); err == nil {
		t.Error("a self-signed registry was trusted without --insecure")
	}
}
