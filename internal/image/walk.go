package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Limits bound what one layer may make us read. Every layer is untrusted
// input: a registry serves whatever was pushed to it.
type Limits struct {
	// MaxLayerBytes bounds the decompressed size of one layer. Sparse
	// files count at their full (logical) size: that is what reading
	// them, or extracting the layer, produces.
	MaxLayerBytes int64
	// MaxFileBytes bounds the (logical) size of one file in a layer.
	MaxFileBytes int64
	// MaxFiles bounds the number of entries in one layer.
	MaxFiles int
	// MaxRatio bounds decompressed/compressed bytes once a layer has
	// decompressed to more than ratioFloor: real layers compress 2–20×,
	// a gzip bomb 1000×. Sparse files count at their logical size here
	// too: a 10 KB layer declaring gigabytes of holes is the same bomb.
	MaxRatio int64
	// MaxLinkBytes bounds the bytes of the symlinks one layer records
	// (paths and targets, see Changes.Links): they are kept for the whole
	// scan, and cached.
	MaxLinkBytes int64
}

// DefaultLimits are generous for real images (CUDA and model layers reach
// several GiB) and still refuse bombs.
func DefaultLimits() Limits {
	return Limits{
		MaxLayerBytes: 32 << 30,
		MaxFileBytes:  8 << 30,
		MaxFiles:      2_000_000,
		MaxRatio:      200,
		MaxLinkBytes:  64 << 20,
	}
}

// orDefaults fills the limits left at zero with the defaults.
func (l Limits) orDefaults() Limits {
	d := DefaultLimits()
	if l.MaxLayerBytes <= 0 {
		l.MaxLayerBytes = d.MaxLayerBytes
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = d.MaxFileBytes
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = d.MaxFiles
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = d.MaxRatio
	}
	if l.MaxLinkBytes <= 0 {
		l.MaxLinkBytes = d.MaxLinkBytes
	}
	return l
}

// ratioFloor is how much a layer must decompress to before the ratio limit
// applies, so small, very compressible layers (empty files, zero pages)
// are never refused.
const ratioFloor = 64 << 20

// maxWarnings bounds the warnings kept per layer; a hostile layer could
// otherwise produce one per entry.
const maxWarnings = 100

// maxLinkTarget is the longest symlink target Linux stores (PATH_MAX
// less the terminating NUL): no lookup can follow a longer one, so a layer
// holding one is not describing a filesystem, and it is not kept.
const maxLinkTarget = 4095

// linkBytes is what one recorded symlink costs against MaxLinkBytes.
func linkBytes(p, target string) int64 { return int64(len(p) + len(target)) }

// Kind is what a tar entry is.
type Kind int

const (
	KindFile Kind = iota
	KindDir
	KindSymlink
	KindHardLink
	KindOther // devices, fifos
)

// Entry is one entry of a layer, with its name made safe: slash-separated,
// relative to the root, never escaping it.
type Entry struct {
	Path string
	Kind Kind
	Size int64
	Mode fs.FileMode
	// Link is a symlink's target as written (resolve it with
	// ResolveWithin) or a hard link's target path, made safe like Path.
	Link    string
	ModTime time.Time
	// HostPath is set for the regular files of a root filesystem read from
	// a directory: the file's own path on this machine, so a reader may
	// open it again later instead of keeping a copy of the body.
	HostPath string
}

// Info returns the entry as an fs.FileInfo.
func (e *Entry) Info() fs.FileInfo { return entryInfo{e} }

type entryInfo struct{ e *Entry }

func (i entryInfo) Name() string       { return path.Base(i.e.Path) }
func (i entryInfo) Size() int64        { return i.e.Size }
func (i entryInfo) Mode() fs.FileMode  { return i.e.Mode }
func (i entryInfo) ModTime() time.Time { return i.e.ModTime }
func (i entryInfo) IsDir() bool        { return i.e.Kind == KindDir }
func (i entryInfo) Sys() any           { return nil }

// Changes is what a layer does to the layers below it besides adding
// files: the paths it deletes.
type Changes struct {
	// Whiteouts are paths deleted from lower layers (".wh.NAME" entries).
	Whiteouts []string `json:"whiteouts,omitempty"`
	// Opaque are directories whose lower-layer contents are hidden
	// (".wh..wh..opq" entries); "" is the root.
	Opaque []string `json:"opaque,omitempty"`
	// Warnings name the entries that were skipped and why.
	Warnings []string `json:"warnings,omitempty"`
	// Links are the layer's symlinks (resolve paths through them with
	// ResolveWithin): a file reached only through a symlink, in this
	// layer or another, is found with them.
	Links *Links `json:"links,omitempty"`
}

// LinkBytes is what the layer's symlinks count against MaxLinkBytes.
func (c *Changes) LinkBytes() int64 { return c.Links.Bytes() }

// WalkOptions tune Walk.
type WalkOptions struct {
	Limits Limits
	// Progress, when set, is called with the number of stored (compressed)
	// bytes read, as they are read.
	Progress func(n int64)
}

// EntryFunc is called for every entry of a layer except whiteouts. For a
// regular file, body reads its content; the walker skips whatever is
// left unread. Neither e nor body may be kept after the call returns.
type EntryFunc func(e *Entry, body io.Reader) error

// Walk streams one layer: decompresses it (gzip, zstd or none, told by
// its first bytes), reads the tar once, calls fn for each entry, records
// whiteouts, and checks that the content hashes to the layer's diffID.
// Nothing is written to disk. A root filesystem read from a directory is
// walked in place instead (see walkDirectory); Progress is not called for
// it, as it has no stored bytes.
func Walk(ctx context.Context, l Layer, opts WalkOptions, fn EntryFunc) (*Changes, error) {
	if l.dir != "" {
		return walkDirectory(ctx, l.dir, opts, fn)
	}
	rc, err := l.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	w := &walker{layer: l.Name(), limits: opts.Limits, compressed: &countingReader{r: rc, progress: opts.Progress}}
	w.limits = w.limits.orDefaults()
	if strings.HasPrefix(l.DiffID, "sha256:") {
		w.hash = sha256.New()
	}
	defer func() {
		if w.closeStream != nil {
			w.closeStream()
		}
	}()
	changes, err := w.walk(ctx, fn)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", w.layer, err)
	}
	if err := w.verify(l.DiffID); err != nil {
		return nil, fmt.Errorf("layer %s: %w", w.layer, err)
	}
	return changes, nil
}

type walker struct {
	layer        string
	limits       Limits
	compressed   *countingReader
	decompressed int64
	// sparse is the logical size of the sparse files met so far. Their
	// holes are not in the stream; reading them yields zeros nonetheless.
	sparse      int64
	links       map[string]string // becomes Changes.Links
	linkBytes   int64
	hash        hash.Hash
	stream      io.Reader // decompressed, counted and hashed
	closeStream func()
}

func (w *walker) walk(ctx context.Context, fn EntryFunc) (*Changes, error) {
	if err := w.openStream(); err != nil {
		return nil, err
	}
	tr := tar.NewReader(w.stream)
	ch := &Changes{}
	var dropped int
	warn := func(format string, args ...any) {
		if len(ch.Warnings) < maxWarnings {
			ch.Warnings = append(ch.Warnings, fmt.Sprintf("layer %s: ", w.layer)+fmt.Sprintf(format, args...))
		} else {
			dropped++
		}
	}
	var e Entry
	files := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		files++
		if files > w.limits.MaxFiles {
			return nil, fmt.Errorf("%w: more than %d entries (limit MaxFiles)", ErrLimit, w.limits.MaxFiles)
		}
		if h.Size > w.limits.MaxFileBytes {
			return nil, fmt.Errorf("%w: %q is %d bytes, more than the %d allowed for one file (limit MaxFileBytes)",
				ErrLimit, h.Name, h.Size, w.limits.MaxFileBytes)
		}
		if isSparse(h) {
			// Counted at its full size, though the stream holds only its
			// data: an upper bound, as the stored data is also counted
			// once the stream passes it.
			w.sparse += h.Size
			if err := w.checkSize(); err != nil {
				return nil, fmt.Errorf("%w (sparse file %q declares %d bytes)", err, h.Name, h.Size)
			}
		}
		p, ok := safePath(h.Name)
		if !ok {
			warn("entry %q escapes the root; skipped", h.Name)
			continue
		}
		if p == "" {
			continue // the root directory itself
		}
		dir, base := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		if strings.HasPrefix(base, whiteoutPrefix) {
			if base == opaqueWhiteout {
				ch.Opaque = append(ch.Opaque, dir)
				continue
			}
			target := base[len(whiteoutPrefix):]
			if target == "" || target == "." || target == ".." {
				warn("whiteout %q names no file; skipped", h.Name)
				continue
			}
			ch.Whiteouts = append(ch.Whiteouts, path.Join(dir, target))
			continue
		}
		e = Entry{Path: p, Size: h.Size, Mode: h.FileInfo().Mode(), ModTime: h.ModTime}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
			e.Kind = KindFile
		case tar.TypeDir:
			e.Kind = KindDir
		case tar.TypeSymlink:
			e.Kind, e.Link = KindSymlink, h.Linkname
			if len(h.Linkname) > maxLinkTarget {
				warn("symlink %q has a target of %d bytes, longer than any system resolves; skipped", h.Name, len(h.Linkname))
				continue
			}
			if err := w.recordLink(p, h.Linkname); err != nil {
				return nil, err
			}
		case tar.TypeLink:
			target, ok := safePath(h.Linkname)
			if !ok || target == "" {
				warn("hard link %q → %q escapes the root; skipped", h.Name, h.Linkname)
				continue
			}
			e.Kind, e.Link, e.Size = KindHardLink, target, 0
		default:
			e.Kind = KindOther
		}
		var body io.Reader = tr
		if e.Kind != KindFile {
			body = eofReader{}
		}
		if err := fn(&e, body); err != nil {
			return nil, err
		}
	}
	if dropped > 0 {
		ch.Warnings = append(ch.Warnings, fmt.Sprintf("layer %s: %d more warnings not shown", w.layer, dropped))
	}
	if len(w.links) > 0 {
		ch.Links = NewLinks(w.links)
	}
	return ch, nil
}

const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
)

// isSparse reports whether h is a sparse file, in any of the GNU forms
// archive/tar expands: the old GNU type, or PAX records (0.0, 0.1, 1.0).
func isSparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for _, k := range []string{"GNU.sparse.major", "GNU.sparse.map", "GNU.sparse.size", "GNU.sparse.realsize", "GNU.sparse.numblocks"} {
		if _, ok := h.PAXRecords[k]; ok {
			return true
		}
	}
	return false
}

// recordLink keeps a symlink for Changes.Links, within MaxLinkBytes. A
// later entry of the same path replaces the earlier one, as extraction
// would.
func (w *walker) recordLink(p, target string) error {
	if w.links == nil {
		w.links = map[string]string{}
	}
	if old, ok := w.links[p]; ok {
		w.linkBytes -= linkBytes(p, old)
	}
	w.linkBytes += linkBytes(p, target)
	if w.linkBytes > w.limits.MaxLinkBytes {
		return fmt.Errorf("%w: symlinks take more than %d bytes (limit MaxLinkBytes)", ErrLimit, w.limits.MaxLinkBytes)
	}
	w.links[p] = target
	return nil
}

// safePath makes a tar entry name relative to the root: "./a", "/a" and
// "a/" are all "a". A name that climbs out of the root ("../x",
// "a/../../x") is refused: ok is false.
func safePath(name string) (string, bool) {
	n := strings.TrimLeft(name, "/")
	c := path.Clean(n)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", false
	}
	if c == "." {
		return "", true
	}
	return c, true
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// openStream sets up decompression, told by the first bytes rather than by
// the media type: docker archives written by skopeo hold uncompressed
// layers, and some registries mislabel zstd layers.
func (w *walker) openStream() error {
	br := bufio.NewReaderSize(w.compressed, 64<<10)
	magic, _ := br.Peek(4)
	var dec io.Reader
	w.closeStream = func() {}
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		dec, w.closeStream = zr, func() { zr.Close() }
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(128<<20),
			zstd.WithDecoderMaxMemory(uint64(w.limits.MaxLayerBytes)))
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		dec, w.closeStream = zr, zr.Close
	default:
		dec = br
	}
	w.stream = &limitedStream{w: w, r: dec}
	return nil
}

// limitedStream counts and hashes decompressed bytes and enforces the size
// and ratio limits as they stream, so a bomb stops after at most
// MaxLayerBytes, in constant memory.
type limitedStream struct {
	w *walker
	r io.Reader
}

func (s *limitedStream) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	w := s.w
	if n > 0 {
		w.decompressed += int64(n)
		if w.hash != nil {
			w.hash.Write(p[:n])
		}
		if err := w.checkSize(); err != nil {
			return n, err
		}
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("decompress: %w", err)
	}
	return n, err
}

// checkSize enforces MaxLayerBytes and MaxRatio on what the layer expands
// to: the decompressed stream plus the holes of its sparse files.
func (w *walker) checkSize() error {
	total := w.decompressed + w.sparse
	if total > w.limits.MaxLayerBytes {
		return fmt.Errorf("%w: decompresses to more than %d bytes (limit MaxLayerBytes)", ErrLimit, w.limits.MaxLayerBytes)
	}
	if total > ratioFloor && total > w.limits.MaxRatio*max(w.compressed.n, 1) {
		sparse := ""
		if w.sparse > 0 {
			sparse = fmt.Sprintf(", %d of them in sparse files", w.sparse)
		}
		return fmt.Errorf("%w: %d bytes decompressed from %d%s, a ratio above %d (limit MaxRatio): a decompression bomb",
			ErrLimit, total, w.compressed.n, sparse, w.limits.MaxRatio)
	}
	return nil
}

// verify reads what the tar reader left (the end-of-archive padding, and
// anything a hostile layer hides after it) and checks the diffID.
func (w *walker) verify(diffID string) error {
	if _, err := io.Copy(io.Discard, w.stream); err != nil {
		return err
	}
	if w.hash == nil {
		return nil
	}
	got := "sha256:" + hex.EncodeToString(w.hash.Sum(nil))
	if got != diffID {
		return fmt.Errorf("%w: content hashes to %s", ErrDiffIDMismatch, got)
	}
	return nil
}

type countingReader struct {
	r        io.Reader
	n        int64
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(int64(n))
	}
	return n, err
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
