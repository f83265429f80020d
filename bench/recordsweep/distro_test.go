package main

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers/apk"
	"berth.dev/berth/internal/inventory/analyzers/dpkg"
	"berth.dev/berth/internal/testpeers"
)

// TestImagesReadBack: the image of a release holds os-release and a
// package database that berth's own analyzers read back, one package per
// swept version, each naming its source package.
func TestImagesReadBack(t *testing.T) {
	pkgs := []inventory.Package{{Name: "openssl", Version: "1.1.1n-0+deb11u3"}, {Name: "openssl", Version: "1.1.1k-1+deb11u1"}}
	tests := []struct {
		feed     distroFeed
		distro   *inventory.Distro
		analyzer inventory.Analyzer
		release  string
	}{
		{debianFeed(""), &inventory.Distro{ID: "debian", VersionID: "11"}, dpkg.Analyzer{}, `VERSION_ID="11"`},
		{alpineFeed(""), &inventory.Distro{ID: "alpine", VersionID: "3.10.0"}, apk.Analyzer{}, "VERSION_ID=3.10.0"},
	}
	for _, tc := range tests {
		t.Run(tc.distro.ID, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "img.docker.tar")
			if err := writeImage(path, tc.feed.rootfs(tc.distro, pkgs)); err != nil {
				t.Fatal(err)
			}
			files := layerFiles(t, path)
			if !strings.Contains(files["etc/os-release"], tc.release) {
				t.Errorf("os-release %q lacks %s", files["etc/os-release"], tc.release)
			}
			dbPath, _ := tc.feed.database(nil)
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, dbPath)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, dbPath), []byte(files[dbPath]), 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := tc.analyzer.Analyze(context.Background(), os.DirFS(dir))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range res.Sets {
				for _, p := range s.Packages {
					got = append(got, p.Name+" "+p.SourceName+" "+p.Version)
				}
			}
			want := []string{"openssl-sweep0 openssl 1.1.1n-0+deb11u3", "openssl-sweep1 openssl 1.1.1k-1+deb11u1"}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("packages read back:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func layerFiles(t *testing.T, path string) map[string]string {
	t.Helper()
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = string(b)
	}
}

// TestSweepDistroFixtures converts the shared Debian tracker and writes an
// image per release, leaving out Debian 3.0 and 3.1, which predate
// os-release; the records zip holds what the source converted.
func TestSweepDistroFixtures(t *testing.T) {
	tracker := testpeers.Shared(t, "vulndata", "debian-tracker")
	out := t.TempDir()
	if err := sweepDistro(context.Background(), debianFeed(tracker), out); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"debian-11.docker.tar", "debian-4.docker.tar", "osv/Debian/all.zip"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "debian-3.0.docker.tar")); err == nil {
		t.Error("an image for Debian 3.0")
	}
	files := layerFiles(t, filepath.Join(out, "debian-11.docker.tar"))
	// DSA-5380-1: xorg-server fixed in bullseye by 2:1.20.11-1+deb11u6.
	if !strings.Contains(files["var/lib/dpkg/status"], "Source: xorg-server\nVersion: 2:1.20.11-1+deb11u6\n") {
		t.Error("the bullseye image lacks xorg-server 2:1.20.11-1+deb11u6")
	}
}
