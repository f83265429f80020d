package inventory

import (
	"context"
	"fmt"
	"io/fs"
)

// ParseFunc reads one file of an analyzer's; location is its absolute
// path. A parser that skips entries it cannot read (one malformed line of
// a lockfile) returns the packages it did read together with an error
// naming what it skipped.
type ParseFunc func(data []byte, location, analyzer string) ([]Package, error)

// AnalyzeFiles parses every file of files that match accepts, one
// PackageSet per file. A file that does not parse becomes a warning naming
// it; the other files are still read. A file that parses in part keeps the
// packages read and gives the warning too: one bad entry must not hide the
// rest of the file.
func AnalyzeFiles(ctx context.Context, files fs.FS, analyzer string, match func(string) bool, parse ParseFunc) (*Result, error) {
	res := &Result{}
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
		}
		if len(pkgs) > 0 {
			res.Sets = append(res.Sets, PackageSet{Origin: p, Packages: pkgs})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", analyzer, err)
	}
	return res, nil
}
