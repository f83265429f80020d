package inventory_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers/apk"
	"berth.dev/berth/internal/inventory/analyzers/dpkg"
	"berth.dev/berth/internal/inventory/analyzers/osrelease"
	"berth.dev/berth/internal/inventory/analyzers/rpm"
)

// entry is a tar entry of a test layer: a regular file, or a symlink to
// target.
type entry struct{ name, body, symlink string }

func layerOf(t *testing.T, entries ...entry) v1.Layer {
	return rawLayer(t, func(tw *tar.Writer, _ io.Writer) error {
		for _, e := range entries {
			h := &tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e.body))}
			if e.symlink != "" {
				h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.symlink, 0
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if _, err := io.WriteString(tw, e.body); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestPackageDatabaseBehindSymlinks: a runtime follows symlinks to the
// package database wherever they lead, within the image and across its
// layers; the scanner must see the same packages. Before, a dpkg status
// reached only through a symlink was not read at all.
func TestPackageDatabaseBehindSymlinks(t *testing.T) {
	tests := []struct {
		name   string
		layers [][]entry
		want   []string // located(): name@version@layer locations
		distro string
	}{
		{"file symlink in the same layer", [][]entry{{
			{name: "data/status", body: stanza("a", "1")},
			{name: "var/lib/dpkg/status", symlink: "/data/status"},
		}}, []string{"a@1@1 /var/lib/dpkg/status"}, ""},
		{"file symlink to an earlier layer", [][]entry{
			{{name: "data/status", body: stanza("a", "1")}},
			{{name: "var/lib/dpkg/status", symlink: "../../../data/status"}},
		}, []string{"a@1@2 /var/lib/dpkg/status"}, ""},
		{"directory symlink to an earlier layer", [][]entry{
			{{name: "opt/dpkg/status", body: stanza("b", "1")}},
			{{name: "var/lib/dpkg", symlink: "/opt/dpkg"}},
		}, []string{"b@1@2 /var/lib/dpkg/status"}, ""},
		{"directory symlink to a later layer", [][]entry{
			{{name: "var/lib/dpkg", symlink: "/opt/dpkg"}},
			{{name: "opt/dpkg/status", body: stanza("b", "1")}},
		}, []string{"b@1@2 /var/lib/dpkg/status"}, ""},
		{"chain of directory and file symlinks across three layers", [][]entry{
			{{name: "srv/db/real-status", body: stanza("c", "1")}},
			{{name: "var/lib", symlink: "/mnt/lib"}, {name: "mnt", symlink: "srv"}},
			{{name: "srv/lib/dpkg/status", symlink: "../../db/real-status"}},
		}, []string{"c@1@3 /var/lib/dpkg/status"}, ""},
		{"symlink out of the root resolves inside it", [][]entry{
			{{name: "x/status", body: stanza("d", "1")}},
			{{name: "var/lib/dpkg", symlink: "../../../../../../../x"}},
		}, []string{"d@1@2 /var/lib/dpkg/status"}, ""},
		{"a symlink replaces the status below it", [][]entry{
			{{name: "var/lib/dpkg/status", body: stanza("old", "1")}},
			{{name: "data/status", body: stanza("new", "1")}, {name: "var/lib/dpkg/status", symlink: "/data/status"}},
		}, []string{"new@1@2 /var/lib/dpkg/status"}, ""},
		{"a file replaces the symlink again", [][]entry{
			{{name: "data/status", body: stanza("linked", "1")}, {name: "var/lib/dpkg/status", symlink: "/data/status"}},
			{{name: "var/lib/dpkg/status", body: stanza("own", "1")}},
		}, []string{"own@1@2 /var/lib/dpkg/status"}, ""},
		{"target deleted by a later layer", [][]entry{
			{{name: "data/status", body: stanza("a", "1")}, {name: "var/lib/dpkg/status", symlink: "/data/status"}},
			{{name: "data/.wh.status"}},
		}, nil, ""},
		{"target's directory made opaque, then refilled", [][]entry{
			{{name: "data/status", body: stanza("a", "1")}, {name: "var/lib/dpkg/status", symlink: "/data/status"}},
			{{name: "data/.wh..wh..opq"}, {name: "data/status", body: stanza("b", "2")}},
		}, []string{"b@2@2 /var/lib/dpkg/status"}, ""},
		{"symlink loop", [][]entry{{
			{name: "var/lib/dpkg/status", symlink: "status2"}, {name: "var/lib/dpkg/status2", symlink: "status"},
		}}, nil, ""},
		{"symlink to a directory", [][]entry{{
			{name: "data/status/x", body: "not a database"}, {name: "var/lib/dpkg/status", symlink: "/data/status"},
		}}, nil, ""},
		{"usr-merged apk database (Wolfi): read where it is, once", [][]entry{
			{{name: "lib", symlink: "usr/lib"}, {name: "usr/lib/apk/db/installed", body: "P:e\nV:1\n"}},
		}, []string{"e@1@1 /usr/lib/apk/db/installed"}, ""},
		{"apk database behind a directory symlink", [][]entry{
			{{name: "opt/apk/db/installed", body: "P:f\nV:1\n"}},
			{{name: "lib/apk", symlink: "/opt/apk"}},
		}, []string{"f@1@2 /lib/apk/db/installed"}, ""},
		{"os-release behind a symlink", [][]entry{
			{{name: "srv/release", body: "ID=alpine\nVERSION_ID=3.20.1\n"}},
			{{name: "etc/os-release", symlink: "/srv/release"}},
		}, nil, "alpine 3.20.1"},
		{"os-release to usr/lib, as every distro has it", [][]entry{
			{{name: "usr/lib/os-release", body: "ID=debian\nVERSION_ID=12\n"}, {name: "etc/os-release", symlink: "../usr/lib/os-release"}},
		}, nil, "debian 12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var layers []v1.Layer
			for _, l := range tt.layers {
				layers = append(layers, layerOf(t, l...))
			}
			cache, err := inventory.OpenCache(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			s := &inventory.Scanner{Cache: cache, Analyzers: []inventory.Analyzer{osrelease.Analyzer{}, dpkg.Analyzer{}, apk.Analyzer{}}}
			var coldJSON string
			// Cold, then warm: what the probes found is cached with the
			// layers, and a warm scan reads no layer.
			for _, run := range []string{"cold", "warm"} {
				var reads atomic.Int64
				inv, err := s.Scan(context.Background(), synthetic(t, &reads, layers...))
				if err != nil {
					t.Fatalf("%s: %v", run, err)
				}
				if got := located(inv); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("%s: packages %q, want %q", run, got, tt.want)
				}
				distro := ""
				if inv.Distro != nil {
					distro = inv.Distro.ID + " " + inv.Distro.VersionID
				}
				if distro != tt.distro {
					t.Errorf("%s: distro %q, want %q", run, distro, tt.distro)
				}
				if len(inv.Warnings) > 0 {
					t.Errorf("%s: warnings %q", run, inv.Warnings)
				}
				inv.Source = ""
				switch run {
				case "cold":
					coldJSON = jsonOf(t, inv)
				case "warm":
					if reads.Load() != 0 {
						t.Errorf("warm scan read %d layers", reads.Load())
					}
					if w := jsonOf(t, inv); w != coldJSON {
						t.Errorf("warm inventory differs:\ncold %s\nwarm %s", coldJSON, w)
					}
				}
			}
		})
	}
}

// TestProbesReadOnlyWhatTheyMust: an image whose fixed paths lead nowhere
// new (the usual case) is read once per layer; one whose status sits
// behind a symlink is read again only down to the layer holding the file.
func TestProbesReadOnlyWhatTheyMust(t *testing.T) {
	base := layerOf(t, entry{name: "data/status", body: stanza("a", "1")}, entry{name: "usr/lib/os-release", body: "ID=debian\n"})
	middle := layerOf(t, entry{name: "etc/os-release", symlink: "../usr/lib/os-release"}, entry{name: "lib", symlink: "usr/lib"})
	link := layerOf(t, entry{name: "var/lib/dpkg/status", symlink: "/data/status"})
	top := layerOf(t, entry{name: "etc/motd", body: "hi"})
	tests := []struct {
		name   string
		layers []v1.Layer
		reads  int64
	}{
		{"nothing behind symlinks", []v1.Layer{base, middle, top}, 3},
		// Each layer once, then top, link, middle, base again, top down,
		// until base holds data/status.
		{"status behind a symlink", []v1.Layer{base, middle, link, top}, 4 + 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reads atomic.Int64
			s := &inventory.Scanner{Analyzers: []inventory.Analyzer{osrelease.Analyzer{}, dpkg.Analyzer{}, apk.Analyzer{}}}
			if _, err := s.Scan(context.Background(), synthetic(t, &reads, tt.layers...)); err != nil {
				t.Fatal(err)
			}
			if reads.Load() != tt.reads {
				t.Errorf("%d layer reads, want %d", reads.Load(), tt.reads)
			}
		})
	}
}

// TestFixedPathFileTooLarge: the file a fixed path leads to is held to the
// analyzer's size like any other.
func TestFixedPathFileTooLarge(t *testing.T) {
	layer := sparseFiles(t, sparse{"data/status", 0o644, 1 << 30, stanza("a", "1")})
	linkLayer := layerOf(t, entry{name: "var/lib/dpkg/status", symlink: "/data/status"})
	var stats inventory.ScanStats
	s := &inventory.Scanner{Analyzers: []inventory.Analyzer{dpkg.Analyzer{}}, Stats: &stats, Limits: image.Limits{MaxRatio: 1 << 40}}
	inv, err := s.Scan(context.Background(), synthetic(t, nil, layer, linkLayer))
	if err != nil {
		t.Fatal(err)
	}
	want := "dpkg: /data/status (where /var/lib/dpkg/status leads) skipped: 1073741824 bytes, more than the 67108864 it reads from one file"
	if len(inv.Packages) != 0 || len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], want) {
		t.Errorf("packages %q, warnings %q; want none and %q", names(inv), inv.Warnings, want)
	}
	if stats.SpoolWritten != 0 {
		t.Errorf("%d bytes spooled", stats.SpoolWritten)
	}
}

func gunzip(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestFixedPathsLinkingToEachOther: on Fedora var/lib/rpm links to
// ../../usr/lib/sysimage/rpm, on Wolfi lib to usr/lib; both paths are
// fixed paths of the analyzer. The database is one file: read once, under
// its real name, so a later layer that updates it replaces all it said.
func TestFixedPathsLinkingToEachOther(t *testing.T) {
	rpmdb := gunzip(t, filepath.Join("analyzers", "rpm", "testdata", "rpmdb.sqlite.gz"))
	tests := []struct {
		name   string
		layers [][]entry
		want   []string
	}{
		{"rpm under usr/lib/sysimage", [][]entry{{
			{name: "usr/lib/sysimage/rpm/rpmdb.sqlite", body: rpmdb},
			{name: "var/lib/rpm", symlink: "../../usr/lib/sysimage/rpm"},
		}}, []string{
			"alpha@1.2.3-1.el9@1 /usr/lib/sysimage/rpm/rpmdb.sqlite",
			"beta@2:4.5-1.el9@1 /usr/lib/sysimage/rpm/rpmdb.sqlite",
			"gamma-libs@7.0-3.el9@1 /usr/lib/sysimage/rpm/rpmdb.sqlite",
			"gamma@7.0-3.el9@1 /usr/lib/sysimage/rpm/rpmdb.sqlite",
			"gpg-pubkey@123e6514-6b169b37@1 /usr/lib/sysimage/rpm/rpmdb.sqlite",
		}},
		{"usr-merged apk database updated by a later layer", [][]entry{
			{{name: "lib", symlink: "usr/lib"}, {name: "usr/lib/apk/db/installed", body: "P:e\nV:1\n"}},
			{{name: "usr/lib/apk/db/installed", body: "P:e\nV:2\n"}},
		}, []string{"e@2@2 /usr/lib/apk/db/installed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var layers []v1.Layer
			for _, l := range tt.layers {
				layers = append(layers, layerOf(t, l...))
			}
			s := &inventory.Scanner{Analyzers: []inventory.Analyzer{rpm.Analyzer{}, apk.Analyzer{}}}
			inv, err := s.Scan(context.Background(), synthetic(t, nil, layers...))
			if err != nil {
				t.Fatal(err)
			}
			if got := located(inv); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("packages\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestOtherPathsStillFollowLinks: only an analyzer's fixed paths are kept
// from the layer's own symlink resolution; dpkg still reads the copyright
// of a package whose doc directory links to another's.
func TestOtherPathsStillFollowLinks(t *testing.T) {
	mr := "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: MIT\n"
	layer := layerOf(t,
		entry{name: "var/lib/dpkg/status", body: stanza("a", "1") + stanza("b", "1")},
		entry{name: "usr/share/doc/a/copyright", body: mr},
		entry{name: "usr/share/doc/b", symlink: "a"},
	)
	s := &inventory.Scanner{Analyzers: []inventory.Analyzer{dpkg.Analyzer{}}}
	inv, err := s.Scan(context.Background(), synthetic(t, nil, layer))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range inv.Packages {
		got[p.Name] = strings.Join(p.Licenses, ",")
	}
	if want := map[string]string{"a": "MIT", "b": "MIT"}; !reflect.DeepEqual(got, want) {
		t.Errorf("licenses %v, want %v", got, want)
	}
}
