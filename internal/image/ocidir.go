package image

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// ociDir is an OCI image layout in a directory.
type ociDir struct{ p layout.Path }

func (d ociDir) openBlob(h v1.Hash) (io.ReadCloser, int64, error) {
	rc, err := d.p.Blob(h)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s has no blobs/%s/%s", ErrMissingBlob, d.p, h.Algorithm, h.Hex)
	}
	if err != nil {
		return nil, 0, err
	}
	var size int64 = -1
	if f, ok := rc.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
	}
	return rc, size, nil
}

func openOCIDir(p, ref string, plat *v1.Platform) (*Image, error) {
	lp, err := layout.FromPath(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not an OCI layout: %v", ErrBadSource, p, err)
	}
	idx, err := os.ReadFile(filepath.Join(p, "index.json"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSource, err)
	}
	im, err := imageFromLayout(idx, ociDir{lp}, ref, plat)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return im, nil
}
