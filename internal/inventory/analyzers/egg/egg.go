// Package egg reads zipped Python eggs (*.egg files, as easy_install and
// old setuptools installed them into site-packages): the distribution's
// metadata is EGG-INFO/PKG-INFO inside the zip. Unzipped egg directories
// are read by the python-installed analyzer.
package egg

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers/python"
)

// Analyzer reads *.egg files.
type Analyzer struct{}

// Name implements inventory.Analyzer.
func (Analyzer) Name() string { return "python-egg" }

// Version implements inventory.Analyzer.
func (Analyzer) Version() int { return 1 }

// maxEggBytes bounds a zipped egg: a Python distribution, read through its
// zip directory, a few MiB in practice.
const maxEggBytes = 256 << 20

// MaxFileBytes implements inventory.Analyzer.
func (Analyzer) MaxFileBytes() int64 { return maxEggBytes }

// maxEgg bounds the eggs read: they are a few MiB at most, and the
// scanner holds a required file whole.
const maxEgg = 64 << 20

// maxMetadata bounds PKG-INFO as inflated, so a zip bomb costs nothing.
const maxMetadata = 1 << 20

// Required implements inventory.Analyzer.
func (Analyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isEgg(p) && info.Size() <= maxEgg
}

// Analyze implements inventory.Analyzer.
func (a Analyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isEgg, Parse)
}

func isEgg(p string) bool { return strings.HasSuffix(p, ".egg") }

// Parse reads the EGG-INFO/PKG-INFO of a zipped egg.
func Parse(data []byte, location, analyzer string) ([]inventory.Package, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("open egg: %w", err)
	}
	for _, f := range zr.File {
		if f.Name != "EGG-INFO/PKG-INFO" {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("open EGG-INFO/PKG-INFO: %w", err)
		}
		meta, err := io.ReadAll(io.LimitReader(rc, maxMetadata+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("read EGG-INFO/PKG-INFO: %w", err)
		}
		if len(meta) > maxMetadata {
			return nil, errors.New("EGG-INFO/PKG-INFO is larger than 1 MiB")
		}
		return python.ParseMetadata(meta, location, analyzer)
	}
	return nil, errors.New("no EGG-INFO/PKG-INFO in the egg")
}
