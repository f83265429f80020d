package inventory

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"sort"
	"sync"
	"time"

	"berth.dev/berth/internal/image"
)

// Files that analyzers asked for are kept in memory up to these sizes;
// larger ones, and any once a layer's in-memory share is spent, go to one
// temporary spool file per layer.
const (
	maxMemFile     = 4 << 20
	maxMemPerLayer = 64 << 20
)

// bufferedFile is one required file of a layer, read once and shared by
// every analyzer that asked for it.
type bufferedFile struct {
	path    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
	data    []byte            // in memory, or
	spooled *io.SectionReader // in the layer's spool file, or
	host    string            // left in place: a root filesystem's file on this machine
}

// open returns the file's content; close releases it.
func (b *bufferedFile) open() (r *io.SectionReader, close func() error, err error) {
	switch {
	case b.host != "":
		f, err := os.Open(b.host)
		if err != nil {
			return nil, nil, err
		}
		// Read no more than the walk announced, whatever the file became.
		return io.NewSectionReader(f, 0, b.size), f.Close, nil
	case b.spooled != nil:
		return io.NewSectionReader(b.spooled, 0, b.size), noClose, nil
	}
	return io.NewSectionReader(bytesReaderAt(b.data), 0, b.size), noClose, nil
}

func noClose() error { return nil }

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// spoolBudget bounds the temporary disk of one scan: the bytes spooled by
// all the layers it reads at once.
type spoolBudget struct {
	mu      sync.Mutex
	limit   int64
	held    int64 // by the layers being read
	peak    int64
	written int64
	skipped int
}

// Why a file is not spooled.
var (
	// errOverBudget: the file would take the layer past the scan's spool
	// budget even if the layer were the only one being read. It is
	// skipped, with a warning.
	errOverBudget = errors.New("over the spool budget")
	// errSpoolContended: the file would fit if other layers were not
	// holding part of the budget. Skipping it would make the result
	// depend on which layers happened to be read together, so the layer
	// is read again later, alone.
	errSpoolContended = errors.New("spool budget held by other layers")
)

// reserve takes n bytes for a layer that already holds own.
func (b *spoolBudget) reserve(own, n int64) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case own+n > b.limit:
		b.skipped++
		return errOverBudget
	case b.held+n > b.limit:
		return errSpoolContended
	}
	b.held += n
	b.written += n
	b.peak = max(b.peak, b.held)
	return nil
}

// release returns what a layer held, once its spool file is gone.
func (b *spoolBudget) release(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.held -= n
	b.mu.Unlock()
}

// layerBuffer holds the required files of one layer while it is analysed.
type layerBuffer struct {
	files map[string]*bufferedFile
	// links are the hard links analyzers read under their target's name,
	// as symlinks to it: path → "/target". (The layer's symlinks are in
	// its image.Changes.)
	links    map[string]string
	memUsed  int64
	spool    *os.File
	spoolEnd int64
	reserved int64        // of the budget, for a file being spooled
	budget   *spoolBudget // nil: no bound
}

func newLayerBuffer(budget *spoolBudget) *layerBuffer {
	return &layerBuffer{files: map[string]*bufferedFile{}, links: map[string]string{}, budget: budget}
}

// add keeps a required file: in memory, in the spool file, or (a root
// filesystem's) where it is. It fails with errOverBudget or
// errSpoolContended when the spool budget does not allow it, having read
// nothing.

func (lb *layerBuffer) add(e *image.Entry, body io.Reader) (*bufferedFile, error) {
	bf := &bufferedFile{path: e.Path, size: e.Size, mode: e.Mode, modTime: e.ModTime}
	// A file already on this machine's disk is read where it is, when an
	// analyzer opens it: "dir:/" costs neither memory nor a spooled copy
	// of every executable.
	if e.HostPath != "" {
		bf.host = e.HostPath
		lb.files[e.Path] = bf
		return bf, nil
	}
	if e.Size <= maxMemFile && lb.memUsed+e.Size <= maxMemPerLayer {
		bf.data = make([]byte, e.Size)
		if _, err := io.ReadFull(body, bf.data); err != nil {
			return nil, fmt.Errorf("read /%s: %w", e.Path, err)
		}
		lb.memUsed += e.Size
	} else {
		if err := lb.budget.reserve(lb.spoolEnd, e.Size); err != nil {
			return nil, err
		}
		// Reserved bytes stay held until close, even if the copy fails
		// half-way: close releases spoolEnd plus this file.
		lb.reserved = e.Size
		if lb.spool == nil {
			f, err := os.CreateTemp("", "berth-layer-*")
			if err != nil {
				return nil, fmt.Errorf("spool /%s: %w", e.Path, err)
			}
			lb.spool = f
		}
		n, err := io.Copy(io.NewOffsetWriter(lb.spool, lb.spoolEnd), io.LimitReader(body, e.Size))
		if err != nil {
			return nil, fmt.Errorf("spool /%s: %w", e.Path, err)
		}
		if n != e.Size {
			return nil, fmt.Errorf("read /%s: %w", e.Path, io.ErrUnexpectedEOF)
		}
		bf.spooled = io.NewSectionReader(lb.spool, lb.spoolEnd, e.Size)
		lb.spoolEnd += e.Size
		lb.reserved = 0
	}
	lb.files[e.Path] = bf
	return bf, nil
}

// close removes the spool file and gives its bytes back to the budget.
func (lb *layerBuffer) close() error {
	defer lb.budget.release(lb.spoolEnd + lb.reserved)
	if lb.spool == nil {
		return nil
	}
	name := lb.spool.Name()
	err := lb.spool.Close()
	return errors.Join(err, os.Remove(name))
}

// analyzerFS is the fs.FS one analyzer gets for one layer: exactly the
// files it required, with their parent directories, and the layer's
// symlinks resolved (within the image root) to those files.
type analyzerFS struct {
	files map[string]*bufferedFile
	dirs  map[string][]string           // directory → sorted child names
	links []func(string) (string, bool) // path → symlink target, the first naming a path wins
	// notFollowed are paths found only where they are, never through a
	// symlink.
	notFollowed []string
}

// mapLookup is the symlink lookup of a map path → target.
func mapLookup(m map[string]string) func(string) (string, bool) {
	return func(p string) (string, bool) { t, ok := m[p]; return t, ok }
}

func newAnalyzerFS(files map[string]*bufferedFile, links ...func(string) (string, bool)) *analyzerFS {
	afs := &analyzerFS{files: files, dirs: map[string][]string{".": nil}, links: links}
	seen := map[string]bool{}
	for p := range files {
		for child := p; child != "."; {
			parent := path.Dir(child)
			key := parent + "\x00" + child
			if seen[key] {
				break
			}
			seen[key] = true
			afs.dirs[parent] = append(afs.dirs[parent], path.Base(child))
			child = parent
		}
	}
	for d := range afs.dirs {
		sort.Strings(afs.dirs[d])
	}
	return afs
}

func (a *analyzerFS) lookup(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if _, ok := a.files[name]; ok {
		return name, nil
	}
	if _, ok := a.dirs[name]; ok {
		return name, nil
	}
	if slices.Contains(a.notFollowed, name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	r, err := image.ResolveWithin(name, a.readlink)
	if err != nil {
		return "", &fs.PathError{Op: op, Path: name, Err: err}
	}
	if r == "" {
		r = "."
	}
	return r, nil
}

func (a *analyzerFS) readlink(p string) (string, bool) {
	for _, lookup := range a.links {
		if t, ok := lookup(p); ok {
			return t, true
		}
	}
	return "", false
}

func (a *analyzerFS) Open(name string) (fs.File, error) {
	p, err := a.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if bf, ok := a.files[p]; ok {
		r, closeFn, err := bf.open()
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &openFile{SectionReader: r, bf: bf, close: closeFn}, nil
	}
	if _, ok := a.dirs[p]; ok {
		return &openDir{afs: a, path: p}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (a *analyzerFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := a.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	children, ok := a.dirs[p]
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	out := make([]fs.DirEntry, 0, len(children))
	for _, c := range children {
		out = append(out, fs.FileInfoToDirEntry(a.info(path.Join(p, c))))
	}
	return out, nil
}

func (a *analyzerFS) Stat(name string) (fs.FileInfo, error) {
	p, err := a.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	if _, ok := a.files[p]; !ok {
		if _, ok := a.dirs[p]; !ok {
			return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
		}
	}
	return a.info(p), nil
}

func (a *analyzerFS) info(p string) fs.FileInfo {
	if bf, ok := a.files[p]; ok {
		return fileInfo{name: path.Base(p), size: bf.size, mode: bf.mode, mod: bf.modTime}
	}
	return fileInfo{name: path.Base(p), mode: fs.ModeDir | 0o755}
}

type fileInfo struct {
	name string
	size int64
	mode fs.FileMode
	mod  time.Time
}

func (f fileInfo) Name() string       { return f.name }
func (f fileInfo) Size() int64        { return f.size }
func (f fileInfo) Mode() fs.FileMode  { return f.mode }
func (f fileInfo) ModTime() time.Time { return f.mod }
func (f fileInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fileInfo) Sys() any           { return nil }

// openFile also implements io.ReaderAt and io.Seeker, through the
// embedded SectionReader.
type openFile struct {
	*io.SectionReader
	bf    *bufferedFile
	close func() error
}

func (f *openFile) Stat() (fs.FileInfo, error) {
	return fileInfo{name: path.Base(f.bf.path), size: f.bf.size, mode: f.bf.mode, mod: f.bf.modTime}, nil
}
func (f *openFile) Close() error { return f.close() }

type openDir struct {
	afs  *analyzerFS
	path string
	pos  int
}

func (d *openDir) Stat() (fs.FileInfo, error) { return d.afs.info(d.path), nil }
func (d *openDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: errors.New("is a directory")}
}
func (d *openDir) Close() error { return nil }

func (d *openDir) ReadDir(n int) ([]fs.DirEntry, error) {
	all, err := d.afs.ReadDir(d.path)
	if err != nil {
		return nil, err
	}
	rest := all[d.pos:]
	if n <= 0 {
		d.pos = len(all)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.pos += n
	return rest[:n], nil
}
