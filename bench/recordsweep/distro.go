package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/vulndb/fetch"
	"berth.dev/berth/internal/vulndb/source"
	"berth.dev/berth/internal/vulndb/source/alpine"
	"berth.dev/berth/internal/vulndb/source/debian"
)

// Distro feeds come in their native formats. berth converts them to OSV on
// import; osv-scanner reads OSV only. So the sweep converts them with
// berth's own sources and writes the records as osv-scanner's offline
// database (distro/osv/<Debian|Alpine>/all.zip): both tools then match the
// same records, and what differs is the matching (version ordering,
// releases, source packages), not the conversion.
//
// The packages go into one image per release (distro/debian-11.docker.tar),
// a single layer holding os-release and the package database, because an
// SBOM cannot carry a distro release to osv-scanner (it matches a
// pkg:deb purl against every Debian release) and its source scan does not
// run the OS extractors on a folder. Both tools read the same archive.

// distroFeed is one native distro feed and how its releases map to images.
type distroFeed struct {
	src    source.Source
	osvEco string // "Debian", "Alpine"
	// distro turns a release ("11", "v3.10") into an image's os-release,
	// false for releases no image describes that way.
	distro func(release string) (*inventory.Distro, bool)
	eco    inventory.Ecosystem
	// osRelease is the image's /etc/os-release.
	osRelease func(d *inventory.Distro) string
	// database is the package database naming pkgs, and where it lives.
	database func(pkgs []inventory.Package) (path, content string)
}

// rootfs is the one layer of a release's image: os-release and the package
// database, each swept version a package of its own whose source is the
// package the records name (binary names must be unique in a database).
func (f distroFeed) rootfs(d *inventory.Distro, pkgs []inventory.Package) map[string]string {
	path, db := f.database(pkgs)
	return map[string]string{"etc/os-release": f.osRelease(d), path: db}
}

// binaryName is the unique binary package name of the i-th swept version.
func binaryName(source string, i int) string { return fmt.Sprintf("%s-sweep%d", source, i) }

func dpkgStatus(pkgs []inventory.Package) (string, string) {
	var b strings.Builder
	for i, p := range pkgs {
		fmt.Fprintf(&b, "Package: %s\nStatus: install ok installed\nArchitecture: amd64\nSource: %s\nVersion: %s\nDescription: recordsweep\n\n",
			binaryName(p.Name, i), p.Name, p.Version)
	}
	return "var/lib/dpkg/status", b.String()
}

func apkInstalled(pkgs []inventory.Package) (string, string) {
	var b strings.Builder
	for i, p := range pkgs {
		fmt.Fprintf(&b, "P:%s\nV:%s\nA:x86_64\no:%s\n\n", binaryName(p.Name, i), p.Version, p.Name)
	}
	return "lib/apk/db/installed", b.String()
}

func debianFeed(dir string) distroFeed {
	return distroFeed{src: debian.New(dir), osvEco: "Debian", eco: inventory.Deb, database: dpkgStatus,
		osRelease: func(d *inventory.Distro) string {
			return fmt.Sprintf("PRETTY_NAME=\"Debian GNU/Linux %s\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"%[1]s\"\nID=debian\n", d.VersionID)
		},
		distro: func(rel string) (*inventory.Distro, bool) {
			// Debian 3.0 and 3.1 predate os-release.
			if strings.Contains(rel, ".") {
				return nil, false
			}
			return &inventory.Distro{ID: "debian", VersionID: rel}, true
		}}
}

func alpineFeed(dir string) distroFeed {
	return distroFeed{src: alpine.New(dir), osvEco: "Alpine", eco: inventory.APK, database: apkInstalled,
		osRelease: func(d *inventory.Distro) string {
			return fmt.Sprintf("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=%s\nPRETTY_NAME=\"Alpine Linux v%s\"\n", d.VersionID, strings.TrimSuffix(d.VersionID, ".0"))
		},
		distro: func(rel string) (*inventory.Distro, bool) {
			v, ok := strings.CutPrefix(rel, "v")
			return &inventory.Distro{ID: "alpine", VersionID: v + ".0"}, ok
		}}
}

// collector is a source.Sink that keeps every record.
type collector struct{ recs []*osv.Vulnerability }

func (c *collector) Add(v *osv.Vulnerability) error { c.recs = append(c.recs, v); return nil }
func (c *collector) Skip(string, string)            {}

// sweepDistro converts one feed, writes its records for osv-scanner and,
// per release, an inventory and SBOM of every source package version the
// records name.
func sweepDistro(ctx context.Context, feed distroFeed, out string) error {
	tmp, err := os.MkdirTemp("", "recordsweep-fetch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var c collector
	if err := feed.src.Load(ctx, fetch.New(tmp), &c); err != nil {
		return err
	}
	if err := writeRecordsZip(filepath.Join(out, "osv", feed.osvEco, "all.zip"), c.recs); err != nil {
		return err
	}
	byRelease := map[string]map[pkgKey]map[string]bool{}
	for _, rec := range c.recs {
		for _, aff := range rec.Affected {
			eco, rel, ok := strings.Cut(aff.Package.Ecosystem, ":")
			if !ok || eco != feed.osvEco {
				continue
			}
			if byRelease[rel] == nil {
				byRelease[rel] = map[pkgKey]map[string]bool{}
			}
			k := pkgKey{feed.eco, aff.Package.Name}
			for _, v := range mentioned(aff) {
				if byRelease[rel][k] == nil {
					byRelease[rel][k] = map[string]bool{}
				}
				byRelease[rel][k][v] = true
			}
		}
	}
	for _, rel := range slices.Sorted(func(yield func(string) bool) {
		for r := range byRelease {
			if !yield(r) {
				return
			}
		}
	}) {
		d, ok := feed.distro(rel)
		if !ok {
			continue
		}
		inv := inventoryOf(byRelease[rel])
		path := filepath.Join(out, d.ID+"-"+strings.TrimSuffix(d.VersionID, ".0")+".docker.tar")
		if err := writeImage(path, feed.rootfs(d, inv.Packages)); err != nil {
			return err
		}
		fmt.Printf("%s %s: %d package versions\n", feed.osvEco, rel, len(inv.Packages))
	}
	return nil
}

// writeRecordsZip writes records as an OSV bulk feed zip: <ID>.json each.
func writeRecordsZip(path string, recs []*osv.Vulnerability) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return writeFile(path, func(w io.Writer) error {
		zw := zip.NewWriter(w)
		for _, rec := range recs {
			f, err := zw.Create(rec.ID + ".json")
			if err != nil {
				return err
			}
			if err := json.NewEncoder(f).Encode(rec); err != nil {
				return fmt.Errorf("record %s: %w", rec.ID, err)
			}
		}
		return zw.Close()
	})
}

// writeImage writes a one-layer linux/amd64 image holding files as a
// docker-archive, the form osv-scanner's scan image --archive reads.
func writeImage(path string, files map[string]string) error {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	dirs := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		for dir := filepath.Dir(name); dir != "." && !dirs[dir]; dir = filepath.Dir(dir) {
			dirs[dir] = true
		}
	}
	for _, dir := range slices.Sorted(maps.Keys(dirs)) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(files[name]))}); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, files[name]); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layer.Bytes())), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{Architecture: "amd64", OS: "linux", RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		return err
	}
	if img, err = mutate.AppendLayers(img, l); err != nil {
		return err
	}
	tag, err := name.NewTag("recordsweep:" + strings.TrimSuffix(filepath.Base(path), ".docker.tar"))
	if err != nil {
		return err
	}
	return writeFile(path, func(w io.Writer) error { return tarball.Write(tag, img, w) })
}
