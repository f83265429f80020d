// Package image opens container images from the places users keep them (a
// registry, an OCI layout in a directory or a tar, a docker save archive, a
// plain root filesystem) and reads their layers safely: streamed, never
// extracted to disk, with hard limits against hostile archives.
package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Sentinel errors, so callers can tell bad input from failures.
var (
	// ErrMissingBlob: a manifest names a blob the source does not hold.
	ErrMissingBlob = errors.New("blob missing from image")
	// ErrNoMatchingPlatform: an index holds no image for the platform asked.
	ErrNoMatchingPlatform = errors.New("no image for the platform")
	// ErrBadSource: the image reference or path cannot be understood.
	ErrBadSource = errors.New("bad image source")
	// ErrLimit: a layer goes past one of the hard limits.
	ErrLimit = errors.New("layer exceeds a limit")
	// ErrDiffIDMismatch: a layer's content does not hash to its diffID.
	ErrDiffIDMismatch = errors.New("layer content does not match its diffID")
)

// DefaultPlatform is the platform picked from multi-arch indexes when the
// caller names none.
const DefaultPlatform = "linux/amd64"

// Options say how to open an image.
type Options struct {
	// Platform picks one image out of a multi-arch index, as "os/arch" or
	// "os/arch/variant". Empty means DefaultPlatform.
	Platform string
	// Insecure allows plain HTTP and unverified TLS for registries that
	// are not on the loopback interface (loopback registries are always
	// reached over plain HTTP when HTTPS fails, as crane does).
	Insecure bool
	// Auth, when set, is the registry's credentials (berth scan
	// --username/--password, --registry-token), used instead of those the
	// docker config holds.
	Auth authn.Authenticator
}

// Image is an opened image: its metadata and its layers, bottom first.
type Image struct {
	// Source is the name the user gave.
	Source string
	// Digest is the manifest digest, when the image came from a manifest.
	Digest       string
	ConfigDigest string
	Config       *v1.ConfigFile
	Layers       []Layer
	closers      []io.Closer
}

// Close releases the files the image holds open.
func (im *Image) Close() error {
	var errs []error
	for _, c := range im.closers {
		errs = append(errs, c.Close())
	}
	im.closers = nil
	return errors.Join(errs...)
}

// Layer is one layer of an image.
type Layer struct {
	// DiffID is the digest of the uncompressed tar; empty for a root
	// filesystem read from a directory, which has no stable identity.
	DiffID    string
	Digest    string // of the blob as stored; empty when unknown
	MediaType string
	Size      int64 // of the blob as stored; 0 when unknown
	CreatedBy string
	open      func(ctx context.Context) (io.ReadCloser, error)
	// dir is set for a root filesystem read in place from this directory;
	// it has no blob.
	dir string
}

// Open returns the blob of the layer as stored (possibly compressed).
// Use Walk to read it. A root filesystem read from a directory has no
// blob: Open fails, Walk reads the directory.
func (l Layer) Open(ctx context.Context) (io.ReadCloser, error) { return l.open(ctx) }

// Name identifies the layer in messages: its diffID, else its digest.
func (l Layer) Name() string {
	switch {
	case l.DiffID != "":
		return l.DiffID
	case l.Digest != "":
		return l.Digest
	}
	return "root filesystem"
}

// NewLayer makes a layer whose blob comes from open; for image sources
// outside this package (tests, the registry's own blob store).
func NewLayer(diffID, digest, mediaType string, size int64, open func(context.Context) (io.ReadCloser, error)) Layer {
	return Layer{DiffID: diffID, Digest: digest, MediaType: mediaType, Size: size, open: open}
}

// Transports, as skopeo and syft users write them.
const (
	transportOCIArchive    = "oci-archive:"
	transportDockerArchive = "docker-archive:"
	transportOCIDir        = "oci-dir:"
	transportOCI           = "oci:" // skopeo's name for oci-dir
	transportDir           = "dir:"
	transportRegistry      = "docker://" // skopeo's name for a registry
	transportRegistry2     = "registry:" // syft's name for a registry
)

// Open opens the image named by src:
//
//	host:port/repo:tag, repo@sha256:…     a registry (also docker://…, registry:…)
//	oci-archive:PATH[:REF]                an OCI layout in a tar
//	docker-archive:PATH[:REPO:TAG]        a docker save / crane tarball archive
//	oci-dir:PATH[:REF], oci:PATH[:REF]    an OCI layout directory
//	dir:PATH                              a root filesystem
//
// A bare path to an existing .tar file is sniffed (OCI layout or docker
// archive); a bare path to a directory holding an oci-layout file is an OCI
// layout, any other directory a root filesystem.
func Open(ctx context.Context, src string, opts Options) (*Image, error) {
	plat, err := parsePlatform(opts.Platform)
	if err != nil {
		return nil, err
	}
	var im *Image
	switch {
	case strings.HasPrefix(src, transportOCIArchive):
		p, ref := splitPathRef(strings.TrimPrefix(src, transportOCIArchive))
		im, err = openArchive(p, ref, plat, formatOCI)
	case strings.HasPrefix(src, transportDockerArchive):
		p, ref := splitPathRef(strings.TrimPrefix(src, transportDockerArchive))
		im, err = openArchive(p, ref, plat, formatDocker)
	case strings.HasPrefix(src, transportOCIDir):
		p, ref := splitPathRef(strings.TrimPrefix(src, transportOCIDir))
		im, err = openOCIDir(p, ref, plat)
	case strings.HasPrefix(src, transportOCI):
		p, ref := splitPathRef(strings.TrimPrefix(src, transportOCI))
		im, err = openOCIDir(p, ref, plat)
	case strings.HasPrefix(src, transportDir):
		im, err = openRootFS(strings.TrimPrefix(src, transportDir))
	case strings.HasPrefix(src, transportRegistry):
		im, err = openRemote(ctx, strings.TrimPrefix(src, transportRegistry), plat, opts)
	case strings.HasPrefix(src, transportRegistry2):
		im, err = openRemote(ctx, strings.TrimPrefix(src, transportRegistry2), plat, opts)
	default:
		im, err = openBare(ctx, src, plat, opts)
	}
	if err != nil {
		return nil, err
	}
	im.Source = src
	return im, nil
}

// openBare handles a name without a transport: an existing file or
// directory is read from disk, anything else is a registry reference.
func openBare(ctx context.Context, src string, plat *v1.Platform, opts Options) (*Image, error) {
	st, err := os.Stat(src)
	switch {
	case err == nil && st.IsDir():
		if _, err := os.Stat(src + "/oci-layout"); err == nil {
			return openOCIDir(src, "", plat)
		}
		return openRootFS(src)
	case err == nil:
		return openArchive(src, "", plat, formatSniff)
	case looksLikePath(src):
		return nil, fmt.Errorf("%w: %s: %v", ErrBadSource, src, err)
	}
	return openRemote(ctx, src, plat, opts)
}

// looksLikePath tells a mistyped file name from a registry reference, so
// "./img.tar" that does not exist is reported as a missing file rather
// than a failed pull.
func looksLikePath(s string) bool {
	return strings.HasPrefix(s, "/") || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") ||
		strings.HasSuffix(s, ".tar") || strings.HasSuffix(s, ".tar.gz")
}

// splitPathRef splits "PATH[:REF]". A colon belongs to the path when the
// whole string names an existing file.
func splitPathRef(s string) (path, ref string) {
	if _, err := os.Stat(s); err == nil {
		return s, ""
	}
	if i := strings.Index(s, ":"); i > 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

func parsePlatform(s string) (*v1.Platform, error) {
	if s == "" {
		s = DefaultPlatform
	}
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return nil, fmt.Errorf("%w: platform %q: want os/arch[/variant]", ErrBadSource, s)
	}
	return p, nil
}

// createdBy pairs the non-empty history entries with the layers, as the
// image spec lays them out.
func createdBy(cfg *v1.ConfigFile, n int) []string {
	out := make([]string, n)
	if cfg == nil {
		return out
	}
	i := 0
	for _, h := range cfg.History {
		if h.EmptyLayer {
			continue
		}
		if i >= n {
			break
		}
		out[i] = h.CreatedBy
		i++
	}
	return out
}
