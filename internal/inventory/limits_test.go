package inventory_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers"
)

// rawLayer is a layer made of the tar that write produces; write gets the
// tar.Writer and the writer under it, for entries archive/tar cannot
// write itself (see imagetest.WriteSparse).
func rawLayer(t *testing.T, write func(tw *tar.Writer, w io.Writer) error) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := write(tw, &buf); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// symlinks is a layer of n symlinks dir/000000… with targets of
// targetLen bytes.
func symlinks(t *testing.T, dir string, n, targetLen int) v1.Layer {
	target := "/" + strings.Repeat("t", targetLen-1)
	return rawLayer(t, func(tw *tar.Writer, _ io.Writer) error {
		for i := range n {
			h := &tar.Header{Name: fmt.Sprintf("%s/%06d", dir, i), Typeflag: tar.TypeSymlink, Linkname: target}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestScanBoundsSymlinks: every layer's symlinks are kept for the scan (a
// file reached through one, in any layer, must be found). 200,000 links
// with 10 KB targets took berth sbom to 2.8 GiB; what is kept is now
// bounded per layer (image.Limits.MaxLinkBytes) and per image
// (Scanner.MaxLinkBytes), and measured.
func TestScanBoundsSymlinks(t *testing.T) {
	const pathLen = len("a/000000")
	tests := []struct {
		name     string
		layers   []v1.Layer
		maxImage int64
		kept     int64  // Stats.LinkBytes
		err      string // "" for a scan that succeeds
		warnings int
	}{
		{"targets no system resolves are not kept", []v1.Layer{symlinks(t, "a", 2000, 10_000)}, 1 << 20, 0, "", 101},
		{"two layers within the image's bound", []v1.Layer{symlinks(t, "a", 200, 4000), symlinks(t, "b", 200, 4000)},
			2 << 20, 2 * 200 * int64(pathLen+4000), "", 0},
		{"two layers past it", []v1.Layer{symlinks(t, "a", 200, 4000), symlinks(t, "b", 200, 4000)},
			1 << 20, 0, "Scanner.MaxLinkBytes", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stats inventory.ScanStats
			s := &inventory.Scanner{Analyzers: analyzers.All(), MaxLinkBytes: tt.maxImage, Stats: &stats}
			inv, err := s.Scan(context.Background(), synthetic(t, nil, tt.layers...))
			if tt.err != "" {
				if !errors.Is(err, image.ErrLimit) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want ErrLimit naming %s", err, tt.err)
				}
				if stats.LinkBytes > tt.maxImage+int64(200*(pathLen+4000)) {
					t.Errorf("%d bytes of links kept past the bound", stats.LinkBytes)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if stats.LinkBytes != tt.kept {
				t.Errorf("links kept: %d bytes, want %d", stats.LinkBytes, tt.kept)
			}
			if len(inv.Warnings) != tt.warnings {
				t.Errorf("%d warnings, want %d: %.300q", len(inv.Warnings), tt.warnings, inv.Warnings)
			}
		})
	}
}
