package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// openRootFS presents a directory as an image of one layer. The layer is
// a tar stream made on the fly as it is read, so the rest of the pipeline
// (limits, analyzers) is the same as for real layers. Symlinks are
// recorded, never followed, so a link to / or a loop cannot lead the walk
// out of the directory or round in circles.
func openRootFS(dir string) (*Image, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSource, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrBadSource, dir)
	}
	l := Layer{
		MediaType: "application/vnd.oci.image.layer.v1.tar",
		open: func(ctx context.Context) (io.ReadCloser, error) {
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(tarDirectory(ctx, dir, pw)) }()
			return pr, nil
		},
	}
	return &Image{Layers: []Layer{l}}, nil
}

func tarDirectory(ctx context.Context, root string, w io.Writer) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, 64<<10)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				slog.Warn("skipping unreadable path", "path", p, "err", err)
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			// Sockets cannot be put in a tar; nothing reads them anyway.
			return nil
		}
		h.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			h.Name += "/"
		}
		if !info.Mode().IsRegular() {
			return tw.WriteHeader(h)
		}
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrPermission) {
			slog.Warn("skipping unreadable file", "path", p, "err", err)
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		// The file may shrink or grow while we read it; write exactly the
		// size announced in the header.
		n, err := io.CopyBuffer(tw, io.LimitReader(f, h.Size), buf)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		if n < h.Size {
			_, err = io.CopyN(tw, zeroReader{}, h.Size-n)
		}
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
