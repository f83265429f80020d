// Package osvfeed reads the OSV bulk feed: <base>/ecosystems.txt lists the
// ecosystems, <base>/<ECOSYSTEM>/all.zip holds one OSV JSON record per entry.
// The base is osv.dev's bucket by default, or any mirror URL or local folder
// laid out the same way; every ecosystem goes through the same code.
package osvfeed

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/vulndb/source"
)

// DefaultBase is where osv.dev publishes the feed.
const DefaultBase = "https://osv-vulnerabilities.storage.googleapis.com"

// maxRecordSize bounds one decompressed record: the largest real ones are a
// few hundred KiB; anything far beyond is a zip bomb, not a record.
const maxRecordSize = 32 << 20

// Source is the OSV feed at Base, optionally limited to some ecosystems.
type Source struct {
	Base string
	// Ecosystems, when set, limits the feed to these ecosystems.
	Ecosystems []string
}

// New returns the OSV feed at base.
func New(base string) *Source { return &Source{Base: base} }

// Name implements source.Source.
func (s *Source) Name() string { return "osv " + s.Base }

// Load implements source.Source.
func (s *Source) Load(ctx context.Context, f source.Fetcher, sink source.Sink) error {
	ecosystems, err := s.ecosystems(ctx, f)
	if err != nil {
		return err
	}
	for _, eco := range ecosystems {
		p, err := f.Fetch(ctx, source.Join(s.Base, eco, "all.zip"))
		if errors.Is(err, source.ErrNotFound) {
			sink.Skip(eco, "ecosystem listed without all.zip")
			continue
		}
		if err != nil {
			return fmt.Errorf("osv %s: %w", eco, err)
		}
		if err := ReadZip(ctx, p, sink); err != nil {
			return fmt.Errorf("osv %s: %w", eco, err)
		}
	}
	return nil
}

// ecosystems reads ecosystems.txt; a local folder without one stands for
// the subfolders that hold an all.zip.
func (s *Source) ecosystems(ctx context.Context, f source.Fetcher) ([]string, error) {
	var list []string
	p, err := f.Fetch(ctx, source.Join(s.Base, "ecosystems.txt"))
	switch {
	case err == nil:
		list, err = readLines(p)
		if err != nil {
			return nil, fmt.Errorf("osv ecosystems.txt: %w", err)
		}
	case errors.Is(err, source.ErrNotFound) && !source.IsRemote(s.Base):
		list, err = zipFolders(source.LocalPath(s.Base))
		if err != nil {
			return nil, err
		}
	case errors.Is(err, source.ErrNotFound):
		return nil, fmt.Errorf("osv %s: no ecosystems.txt: %w", s.Base, err)
	default:
		return nil, fmt.Errorf("osv: %w", err)
	}
	if len(s.Ecosystems) > 0 {
		list = slices.DeleteFunc(list, func(e string) bool { return !slices.Contains(s.Ecosystems, e) })
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("osv %s: no ecosystems to import", s.Base)
	}
	return list, nil
}

func readLines(p string) ([]string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		// A name that could climb out of the base is not an ecosystem.
		if line == "" || strings.HasPrefix(line, "#") || strings.Contains(line, "/") || strings.Contains(line, `\`) || line == ".." {
			continue
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

func zipFolders(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("osv %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(source.Join(dir, e.Name(), "all.zip")); err == nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// ReadZip hands every record in an all.zip to sink. A record that is not
// valid OSV JSON is skipped; a zip that is truncated or fails its checksums
// is an error, since the whole download is then suspect.
func ReadZip(ctx context.Context, p string, sink source.Sink) error {
	zr, err := zip.OpenReader(p)
	if err != nil {
		return fmt.Errorf("%s: not a readable zip: %w", path.Base(p), err)
	}
	defer zr.Close()
	buf := new(bytes.Buffer)
	for i, zf := range zr.File {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if zf.FileInfo().IsDir() || !strings.HasSuffix(zf.Name, ".json") {
			continue
		}
		buf.Reset()
		if err := readEntry(zf, buf); err != nil {
			return fmt.Errorf("zip entry %s: %w", zf.Name, err)
		}
		v := new(osv.Vulnerability)
		if err := json.Unmarshal(buf.Bytes(), v); err != nil {
			sink.Skip(strings.TrimSuffix(path.Base(zf.Name), ".json"), "invalid OSV JSON")
			continue
		}
		if err := sink.Add(v); err != nil {
			return err
		}
	}
	return nil
}

func readEntry(zf *zip.File, buf *bytes.Buffer) error {
	if zf.UncompressedSize64 > maxRecordSize {
		return fmt.Errorf("record of %d bytes exceeds the %d-byte limit", zf.UncompressedSize64, maxRecordSize)
	}
	rc, err := zf.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	// Reading to EOF is what makes archive/zip verify the CRC.
	n, err := io.Copy(buf, io.LimitReader(rc, maxRecordSize+1))
	if err != nil {
		return err
	}
	if n > maxRecordSize {
		return fmt.Errorf("record exceeds the %d-byte limit", maxRecordSize)
	}
	return nil
}
