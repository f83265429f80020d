// Package bundle moves a vulnerability database as one file, for air-gapped
// machines and OCI registries: a zstd-compressed tar holding the DB file and a
// manifest with its size and sha256. Import verifies the manifest, the file's
// checksum and the DB's own consistency before the DB replaces the current one.
package bundle

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"

	"berth.dev/berth/internal/vulndb"
)

// Format names the bundle layout in its manifest.
const Format = "berth-vulndb-bundle/1"

// MediaType is the bundle's media type as an OCI layer.
const MediaType = "application/vnd.berth.vulndb.v1.tar+zstd"

const manifestName = "manifest.json"

// maxManifest bounds the manifest read from an untrusted bundle.
const maxManifest = 1 << 20

// Manifest lists the bundle's files with their checksums, and the DB's Info.
type Manifest struct {
	Format  string      `json:"format"`
	Created time.Time   `json:"created"`
	Files   []File      `json:"files"`
	Info    vulndb.Info `json:"info"`
}

// File is one file of the bundle.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Export writes the DB in dir to w as a bundle and returns its manifest.
// The DB is checked first: a damaged DB is not exported.
func Export(ctx context.Context, dir string, w io.Writer, now time.Time) (*Manifest, error) {
	db, err := vulndb.Open(dir)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		return nil, err
	}
	info := db.Info()
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return nil, err
	}
	defer zw.Close()
	tw := tar.NewWriter(zw)
	m := &Manifest{Format: Format, Created: now.UTC(), Info: info}
	size := db.Size()
	if err := tw.WriteHeader(&tar.Header{Name: vulndb.FileName, Mode: 0o644, Size: size, ModTime: info.UpdatedAt, Typeflag: tar.TypeReg}); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	h := sha256.New()
	n, err := db.WriteTo(io.MultiWriter(tw, h, ctxWriter{ctx}))
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if n != size {
		return nil, fmt.Errorf("export: wrote %d of %d bytes", n, size)
	}
	m.Files = append(m.Files, File{Name: vulndb.FileName, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))})
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: manifestName, Mode: 0o644, Size: int64(len(mb)), ModTime: m.Created, Typeflag: tar.TypeReg}); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if _, err := tw.Write(mb); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return m, nil
}

// ctxWriter stops a long copy when the context ends.
type ctxWriter struct{ ctx context.Context }

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Import reads a bundle from r, verifies it and installs its DB in the
// workspace. Nothing changes unless every check passes.
func Import(ctx context.Context, r io.Reader, ws *vulndb.Workspace) (*vulndb.Info, error) {
	tmp, err := extract(ctx, r, ws)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	db, err := vulndb.OpenFile(tmp)
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("import: %w", err)
	}
	err = db.Check()
	db.Close()
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("import: %w", err)
	}
	info, err := ws.Install(tmp)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	return info, nil
}

// extract writes the bundle's DB file to a temporary path and checks it
// against the manifest that follows it.
func extract(ctx context.Context, r io.Reader, ws *vulndb.Workspace) (string, error) {
	zr, err := zstd.NewReader(r)
	if err != nil {
		return "", fmt.Errorf("not a bundle: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)

	tmp, err := ws.TempPath()
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	var got *File
	var m *Manifest
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("not a bundle (or truncated): %w", err)
		}
		switch {
		case hdr.Name == vulndb.FileName && got == nil && hdr.Typeflag == tar.TypeReg:
			got, err = writeFile(ctx, tmp, tr)
			if err != nil {
				return "", err
			}
		case hdr.Name == manifestName && m == nil && hdr.Typeflag == tar.TypeReg:
			b, err := io.ReadAll(io.LimitReader(tr, maxManifest+1))
			if err != nil {
				return "", fmt.Errorf("manifest: %w", err)
			}
			if len(b) > maxManifest {
				return "", errors.New("manifest too large")
			}
			m = new(Manifest)
			if err := json.Unmarshal(b, m); err != nil {
				return "", fmt.Errorf("manifest: %w", err)
			}
		default:
			return "", fmt.Errorf("unexpected entry %q in bundle", hdr.Name)
		}
	}
	if m == nil {
		return "", errors.New("bundle has no manifest")
	}
	if m.Format != Format {
		return "", fmt.Errorf("bundle format %q, want %q", m.Format, Format)
	}
	if got == nil {
		return "", errors.New("bundle has no database file")
	}
	var want *File
	for i := range m.Files {
		if m.Files[i].Name == vulndb.FileName {
			want = &m.Files[i]
		}
	}
	if want == nil {
		return "", fmt.Errorf("manifest does not list %s", vulndb.FileName)
	}
	if want.Size != got.Size || want.SHA256 != got.SHA256 {
		return "", fmt.Errorf("checksum mismatch: manifest says %d bytes sha256 %s, bundle holds %d bytes sha256 %s",
			want.Size, want.SHA256, got.Size, got.SHA256)
	}
	ok = true
	return tmp, nil
}

func writeFile(ctx context.Context, path string, r io.Reader) (*File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h, ctxWriter{ctx}), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("reading database from bundle: %w", err)
	}
	return &File{Name: vulndb.FileName, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
