package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// archiveFormat is what a tar file holds.
type archiveFormat int

const (
	formatSniff  archiveFormat = iota
	formatOCI                  // an OCI image layout
	formatDocker               // docker save / crane tarball
)

// tarArchive is an image archive indexed once: every regular file's offset
// and size, so blobs are read in place (io.SectionReader), concurrently,
// without extracting anything. go-containerregistry's tarball package
// rescans the whole tar for every blob it opens and computes digests it
// is not given by recompressing layers, which is why this is our own.
type tarArchive struct {
	f       *os.File
	path    string
	entries map[string]tarEntry
}

type tarEntry struct{ offset, size int64 }

// maxArchiveEntries bounds the index of an archive; image archives hold a
// few blobs per image.
const maxArchiveEntries = 1 << 20

func indexArchive(p string) (*tarArchive, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSource, err)
	}
	a := &tarArchive{f: f, path: p, entries: map[string]tarEntry{}}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: %s is not a readable tar archive: %v", ErrBadSource, p, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		// tar.Reader has consumed exactly the header blocks here, so the
		// file position is the start of the entry's data.
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		if len(a.entries) >= maxArchiveEntries {
			f.Close()
			return nil, fmt.Errorf("%w: %s holds more than %d files", ErrBadSource, p, maxArchiveEntries)
		}
		a.entries[cleanArchiveName(h.Name)] = tarEntry{offset: off, size: h.Size}
	}
	if len(a.entries) == 0 {
		f.Close()
		return nil, fmt.Errorf("%w: %s is not an image archive (no files in it)", ErrBadSource, p)
	}
	return a, nil
}

func cleanArchiveName(n string) string {
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}

func (a *tarArchive) Close() error { return a.f.Close() }

func (a *tarArchive) open(name string) (*io.SectionReader, error) {
	e, ok := a.entries[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s has no %s", ErrMissingBlob, a.path, name)
	}
	return io.NewSectionReader(a.f, e.offset, e.size), nil
}

func (a *tarArchive) readFile(name string) ([]byte, error) {
	sr, err := a.open(name)
	if err != nil {
		return nil, err
	}
	if sr.Size() > maxManifestBytes {
		return nil, fmt.Errorf("%w: %s in %s is %d bytes, too large", ErrBadSource, name, a.path, sr.Size())
	}
	return io.ReadAll(sr)
}

// openBlob implements blobReader for an OCI layout inside the archive.
func (a *tarArchive) openBlob(h v1.Hash) (io.ReadCloser, int64, error) {
	sr, err := a.open("blobs/" + h.Algorithm + "/" + h.Hex)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(sr), sr.Size(), nil
}

func openArchive(p, ref string, plat *v1.Platform, format archiveFormat) (*Image, error) {
	a, err := indexArchive(p)
	if err != nil {
		return nil, err
	}
	if format == formatSniff {
		_, hasLayout := a.entries["oci-layout"]
		_, hasIndex := a.entries["index.json"]
		_, hasManifest := a.entries["manifest.json"]
		switch {
		case hasLayout && hasIndex:
			format = formatOCI
		case hasManifest:
			format = formatDocker
		default:
			a.Close()
			return nil, fmt.Errorf("%w: %s is neither an OCI layout (oci-layout, index.json) nor a docker archive (manifest.json)", ErrBadSource, p)
		}
	}
	var im *Image
	if format == formatOCI {
		var idx []byte
		idx, err = a.readFile("index.json")
		if err == nil {
			im, err = imageFromLayout(idx, a, ref, plat)
		}
	} else {
		im, err = a.dockerImage(ref)
	}
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	im.closers = append(im.closers, a)
	return im, nil
}

// dockerImage reads a docker save archive: manifest.json names the config
// file and one file per layer.
func (a *tarArchive) dockerImage(ref string) (*Image, error) {
	raw, err := a.readFile("manifest.json")
	if err != nil {
		return nil, err
	}
	var mf tarball.Manifest
	if err := json.Unmarshal(raw, &mf); err != nil {
		return nil, fmt.Errorf("%w: manifest.json: %v", ErrBadSource, err)
	}
	d, err := pickDockerImage(mf, ref)
	if err != nil {
		return nil, err
	}
	rawCfg, err := a.readFile(cleanArchiveName(d.Config))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("%w: config %s: %v", ErrBadSource, d.Config, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(d.Layers) {
		return nil, fmt.Errorf("%w: manifest.json lists %d layers, the config %d diffIDs", ErrBadSource, len(d.Layers), len(cfg.RootFS.DiffIDs))
	}
	sum := sha256.Sum256(rawCfg)
	im := &Image{ConfigDigest: "sha256:" + hex.EncodeToString(sum[:]), Config: cfg}
	cb := createdBy(cfg, len(d.Layers))
	for i, name := range d.Layers {
		name = cleanArchiveName(name)
		diffID := cfg.RootFS.DiffIDs[i].String()
		sr, err := a.open(name)
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i+1, diffID, err)
		}
		im.Layers = append(im.Layers, Layer{
			DiffID:    diffID,
			Digest:    digestFromName(name),
			Size:      sr.Size(),
			CreatedBy: cb[i],
			open: func(context.Context) (io.ReadCloser, error) {
				return io.NopCloser(io.NewSectionReader(sr, 0, sr.Size())), nil
			},
		})
	}
	return im, nil
}

func pickDockerImage(mf tarball.Manifest, ref string) (tarball.Descriptor, error) {
	if len(mf) == 0 {
		return tarball.Descriptor{}, fmt.Errorf("%w: manifest.json lists no image", ErrBadSource)
	}
	if ref == "" {
		if len(mf) > 1 {
			return tarball.Descriptor{}, fmt.Errorf("%w: the archive holds %d images; name one as docker-archive:PATH:REPO:TAG", ErrBadSource, len(mf))
		}
		return mf[0], nil
	}
	for _, d := range mf {
		for _, t := range d.RepoTags {
			if t == ref || strings.TrimPrefix(t, "docker.io/library/") == ref {
				return d, nil
			}
		}
	}
	return tarball.Descriptor{}, fmt.Errorf("%w: no image tagged %q in manifest.json", ErrBadSource, ref)
}

// digestFromName recovers a blob digest from the names crane and docker
// give layer files ("<hex>.tar.gz", "blobs/sha256/<hex>"); empty when the
// name does not carry one (skopeo names uncompressed layers by diffID).
func digestFromName(name string) string {
	base := path.Base(name)
	if strings.HasSuffix(base, ".tar.gz") {
		hexPart := strings.TrimSuffix(base, ".tar.gz")
		if _, err := v1.NewHash("sha256:" + hexPart); err == nil {
			return "sha256:" + hexPart
		}
	}
	if strings.HasPrefix(name, "blobs/sha256/") {
		if _, err := v1.NewHash("sha256:" + base); err == nil {
			return "sha256:" + base
		}
	}
	return ""
}

func blobOpener(b blobReader, h v1.Hash) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) {
		rc, _, err := b.openBlob(h)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", h, err)
		}
		return rc, nil
	}
}
