// Command imagebuild makes berth's container image from release binaries,
// without a container engine: an OCI image layout holding an index of one
// image per platform, each a static berth on an empty base.
//
//	go run ./scripts/imagebuild -o DIR --version V --revision SHA --created EPOCH \
//	    --ca /etc/ssl/certs/ca-certificates.crt linux/amd64=PATH [linux/arm64=PATH]
//
// scripts/release.sh --image runs it. Each image has two layers: the
// base (users, CA certificates, /data and /tmp) and the binary, so a new
// release changes only the second. Every byte depends only on the inputs
// (fixed times and owners, sorted entries, gzip without a timestamp): the
// same release builds the same digests.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// UID and GID the server runs as: no root inside the image (the Helm
// chart's securityContext uses the same numbers).
const (
	uid = 65532
	gid = 65532
)

// BinaryPath is where the image keeps berth.
const BinaryPath = "/usr/local/bin/berth"

// Options are what an image is made from.
type Options struct {
	Version  string
	Revision string
	Created  time.Time
	// CA is a PEM bundle of the certificate authorities berth trusts when
	// it dials TLS (S3, PostgreSQL, registries, webhook receivers).
	CA []byte
	// Binaries are berth for each platform ("linux/amd64").
	Binaries map[string][]byte
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("imagebuild", flag.ContinueOnError)
	out := fs.String("o", "", "OCI image layout directory to write (must not exist)")
	version := fs.String("version", "", "release version (the image's org.opencontainers.image.version)")
	revision := fs.String("revision", "", "source commit")
	created := fs.Int64("created", 0, "creation time, seconds since the epoch (SOURCE_DATE_EPOCH)")
	ca := fs.String("ca", "", "PEM bundle of trusted certificate authorities to put in the image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *version == "" || *ca == "" || fs.NArg() == 0 {
		return errors.New("usage: imagebuild -o DIR --version V --ca FILE [--revision SHA] [--created EPOCH] OS/ARCH=BINARY...")
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("%s exists: give a new directory", *out)
	}
	opts := Options{Version: *version, Revision: *revision, Created: time.Unix(*created, 0).UTC(), Binaries: map[string][]byte{}}
	var err error
	if opts.CA, err = os.ReadFile(*ca); err != nil {
		return fmt.Errorf("CA bundle: %w", err)
	}
	for _, a := range fs.Args() {
		platform, file, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("%q: want OS/ARCH=BINARY", a)
		}
		if opts.Binaries[platform], err = os.ReadFile(file); err != nil {
			return fmt.Errorf("binary for %s: %w", platform, err)
		}
	}
	idx, err := Build(opts)
	if err != nil {
		return err
	}
	// The layout's index names the image index by the version, as
	// skopeo's oci-archive:FILE:VERSION and crane push --index expect.
	lp, err := layout.Write(*out, empty.Index)
	if err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": opts.Version})); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s\n", d)
	return nil
}

// Build returns the index of berth's images, one per platform in sorted
// order.
func Build(opts Options) (v1.ImageIndex, error) {
	if len(opts.Binaries) == 0 {
		return nil, errors.New("no binaries")
	}
	if !bytes.Contains(opts.CA, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, errors.New("the CA bundle holds no PEM certificate")
	}
	base, err := layer(baseFiles(opts.CA), opts.Created)
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	platforms := make([]string, 0, len(opts.Binaries))
	for p := range opts.Binaries {
		platforms = append(platforms, p)
	}
	slices.Sort(platforms)
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, fmt.Errorf("platform %q: %w", p, err)
		}
		if plat.Architecture == "" {
			return nil, fmt.Errorf("platform %q: no architecture", p)
		}
		if plat.OS != "linux" {
			return nil, fmt.Errorf("platform %q: images are for linux", p)
		}
		bin, err := layer([]file{
			{name: "usr/", mode: 0o755, dir: true},
			{name: "usr/local/", mode: 0o755, dir: true},
			{name: "usr/local/bin/", mode: 0o755, dir: true},
			{name: strings.TrimPrefix(BinaryPath, "/"), mode: 0o755, body: opts.Binaries[p]},
		}, opts.Created)
		if err != nil {
			return nil, fmt.Errorf("binary layer for %s: %w", p, err)
		}
		img, err := image(opts, *plat, base, bin)
		if err != nil {
			return nil, fmt.Errorf("image for %s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: imageEntry{img}, Descriptor: v1.Descriptor{Platform: plat}})
	}
	return mutate.Annotations(idx, labels(opts)).(v1.ImageIndex), nil
}

// imageEntry is an image as the index lists it: without the artifactType
// go-containerregistry copies from the config's media type. An image is
// not an artifact (image-spec: artifactType is for artifacts), and skopeo
// rewrites an index whose entries carry one, so --preserve-digests fails.
type imageEntry struct{ v1.Image }

// ArtifactType is what go-containerregistry asks before it guesses one.
func (imageEntry) ArtifactType() (string, error) { return "", nil }

func image(opts Options, plat v1.Platform, layers ...v1.Layer) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	cf.Created = v1.Time{Time: opts.Created}
	cf.Config = v1.Config{
		User:       strconv.Itoa(uid) + ":" + strconv.Itoa(gid),
		Entrypoint: []string{BinaryPath},
		// Listening beyond loopback needs TLS or --insecure-http behind a
		// terminating proxy: the image does not choose for the user.
		Cmd:          []string{"serve", "--addr=0.0.0.0:5000", "--data=/data"},
		WorkingDir:   "/data",
		Env:          []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		ExposedPorts: map[string]struct{}{"5000/tcp": {}},
		Volumes:      map[string]struct{}{"/data": {}},
		Labels:       labels(opts),
	}
	// The history says where each layer came from, as a builder would.
	cf.History = []v1.History{
		{Created: v1.Time{Time: opts.Created}, CreatedBy: "berth imagebuild: base (passwd, group, CA certificates, /data, /tmp)"},
		{Created: v1.Time{Time: opts.Created}, CreatedBy: "berth imagebuild: " + BinaryPath + " " + opts.Version},
	}
	return mutate.ConfigFile(img, cf)
}

func labels(opts Options) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":   "berth",
		"org.opencontainers.image.version": opts.Version,
		"org.opencontainers.image.created": opts.Created.Format(time.RFC3339),
	}
	if opts.Revision != "" {
		l["org.opencontainers.image.revision"] = opts.Revision
	}
	return l
}

type file struct {
	name     string
	mode     int64
	dir      bool
	uid, gid int
	body     []byte
}

// baseFiles are what a static berth needs of an operating system: a user
// to run as, CA certificates, a data directory it owns and a /tmp.
func baseFiles(ca []byte) []file {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nberth:x:%d:%d:berth:/data:/sbin/nologin\n", uid, gid)
	group := fmt.Sprintf("root:x:0:\nberth:x:%d:\n", gid)
	return []file{
		{name: "data/", mode: 0o700, dir: true, uid: uid, gid: gid},
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, body: ca},
		{name: "tmp/", mode: 0o1777, dir: true},
	}
}

// layer makes a gzip layer of files in the order given, every time and
// owner fixed.
func layer(files []file, created time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: created, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.body))
		}
		if path.Clean("/"+f.name) == "/" {
			return nil, fmt.Errorf("bad name %q", f.name)
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
