// Package python finds Python packages: the metadata of installed
// distributions (*.dist-info/METADATA, *.egg-info/PKG-INFO or a one-file
// *.egg-info) in site-packages and Debian's dist-packages, and the
// lockfiles requirements.txt (pinned lines), poetry.lock, Pipfile.lock and
// uv.lock.
//
// Names are kept as the files write them ("charset-normalizer",
// "PyYAML"); the engine normalises them for purls.
package python

import (
	"context"
	"fmt"
	"io/fs"

	"berth.dev/berth/internal/inventory"
)

// parseFunc reads one file; location is its absolute path.
type parseFunc func(data []byte, location, analyzer string) ([]inventory.Package, error)

// analyzeFiles parses every file of files that match accepts, one
// PackageSet per file. A file that does not parse becomes a warning naming
// it; the other files are still read.
func analyzeFiles(ctx context.Context, files fs.FS, analyzer string, match func(string) bool, parse parseFunc) (*inventory.Result, error) {
	res := &inventory.Result{}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !match(p) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := fs.ReadFile(files, p)
		if err != nil {
			return fmt.Errorf("read /%s: %w", p, err)
		}
		pkgs, err := parse(data, "/"+p, analyzer)
		if err != nil {
			res.Warns = append(res.Warns, fmt.Sprintf("/%s: %v", p, err))
			return nil
		}
		if len(pkgs) > 0 {
			res.Sets = append(res.Sets, inventory.PackageSet{Origin: p, Packages: pkgs})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", analyzer, err)
	}
	return res, nil
}

func pkg(name, version, location, analyzer string) inventory.Package {
	return inventory.Package{
		Ecosystem: inventory.PyPI,
		Name:      name,
		Version:   version,
		Locations: []string{location},
		Analyzer:  analyzer,
	}
}
