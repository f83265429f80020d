package audit

import (
	"bufio"
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// AnchorFileName is the anchor file's name in a data directory.
const AnchorFileName = "audit-anchors.log"

// Anchored is a Store whose tip is also recorded outside it, in the
// append-only anchor file at AnchorPath (one signed checkpoint a line, as
// a Log with Options.AnchorFile writes it). Verify of an Anchored store
// also checks the chain against that file, which is what catches a log
// wiped or rolled back inside the store together with its own anchor.
type Anchored struct {
	Store
	AnchorPath string
}

// anchorFile appends signed tips, one JSON line each, to a file that lives
// outside the store. Every line is fsynced: a line on disk promises that
// the store holds the chain up to it.
type anchorFile struct {
	path string
	f    *os.File
	// size is the length of the file's good content: a failed append is
	// cut back to it.
	size int64
	// torn is set when a failed append left a partial line that could
	// not be cut off; the next line then starts on a fresh line.
	torn bool
}

func openAnchorFile(path string) (*anchorFile, error) {
	_, statErr := os.Lstat(path)
	created := errors.Is(statErr, fs.ErrNotExist)
	// O_APPEND: every write lands at the end, also when the operator has
	// made the file append-only (chattr +a), which then refuses anything
	// else.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit anchor file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit anchor file: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("audit anchor file %s is not a regular file", path)
	}
	// A file created under a permissive umask, or by hand, is narrowed:
	// the anchors reveal nothing secret, but only berth should write them.
	if st.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("audit anchor file: %w", err)
		}
	}
	if created {
		// The file's name must survive a power cut as well as its lines.
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, fmt.Errorf("audit anchor file: %w", err)
		}
	}
	return &anchorFile{path: path, f: f, size: st.Size()}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// append writes cp as one line and fsyncs it.
func (a *anchorFile) append(cp Checkpoint) error {
	line, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("audit anchor file: %w", err)
	}
	line = append(line, '\n')
	if a.torn {
		line = append([]byte{'\n'}, line...)
	}
	n, err := a.f.Write(line)
	if err == nil {
		if err = a.f.Sync(); err != nil {
			// The line is complete in the file, only perhaps not yet on
			// disk: keep it (a later line repeats what it says).
			a.size += int64(n)
			a.torn = false
			return fmt.Errorf("append to %s: %w", a.path, err)
		}
		a.size += int64(n)
		a.torn = false
		return nil
	}
	// A full disk can cut a write short: remove the partial line so that
	// the next one is whole, or, when the file refuses truncation
	// (append-only attribute), start the next one on a fresh line.
	if n > 0 {
		if terr := a.f.Truncate(a.size); terr != nil {
			a.torn = true
		}
	}
	return fmt.Errorf("append to %s: %w", a.path, err)
}

func (a *anchorFile) close() error { return a.f.Close() }

// maxAnchorLine bounds a line worth parsing: a real one is ~230 bytes.
const maxAnchorLine = 4096

// parseAnchorLine reads one line; ok is false for a damaged one.
func parseAnchorLine(b []byte) (cp Checkpoint, ok bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || len(b) > maxAnchorLine {
		return cp, false
	}
	if err := json.Unmarshal(b, &cp); err != nil || cp.Seq <= 0 || cp.Hash == "" || len(cp.Signature) == 0 {
		return Checkpoint{}, false
	}
	return cp, true
}

// anchorReader reads an anchor file's lines in order, up to the size the
// file had when it was opened: lines a running writer adds meanwhile name
// entries the caller's walk may not have seen.
type anchorReader struct {
	name string
	f    *os.File
	br   *bufio.Reader
	line int
}

// openAnchorReader opens path; it returns nil and no error when the file
// does not exist.
func openAnchorReader(path string) (*anchorReader, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit anchor file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit anchor file: %w", err)
	}
	return &anchorReader{name: filepath.Base(path), f: f, br: bufio.NewReader(io.LimitReader(f, st.Size()))}, nil
}

// next returns the next line that parses; damaged lines (a write torn by
// a full disk) are skipped. ok is false at the end.
func (r *anchorReader) next() (cp Checkpoint, line int, ok bool, err error) {
	for {
		b, err := r.br.ReadSlice('\n')
		long := false
		for errors.Is(err, bufio.ErrBufferFull) {
			long = true
			_, err = r.br.ReadSlice('\n')
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return cp, 0, false, fmt.Errorf("read %s: %w", r.name, err)
		}
		if len(b) == 0 && err != nil {
			return cp, 0, false, nil
		}
		r.line++
		if !long {
			if cp, ok := parseAnchorLine(b); ok {
				return cp, r.line, true, nil
			}
		}
		if err != nil {
			return cp, 0, false, nil
		}
	}
}

func (r *anchorReader) close() {
	if r != nil {
		r.f.Close()
	}
}

// lastAnchor returns the last line of the anchor file at path that parses
// and is signed by pub, reading backwards from the end so that a start
// does not read a file that grows with every busy second. ok is false
// when the file is missing or holds no such line.
func lastAnchor(path string, pub crypto.PublicKey) (cp Checkpoint, ok bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cp, false, nil
	}
	if err != nil {
		return cp, false, fmt.Errorf("audit anchor file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return cp, false, fmt.Errorf("audit anchor file: %w", err)
	}
	const chunk = 64 << 10
	var carry []byte // the start of a line whose beginning lies before end
	for end := st.Size(); end > 0; {
		start := max(0, end-chunk)
		buf := make([]byte, end-start, end-start+int64(len(carry)))
		if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
			return cp, false, fmt.Errorf("read %s: %w", path, err)
		}
		buf = append(buf, carry...)
		lines := bytes.Split(buf, []byte{'\n'})
		first := 0
		if start > 0 {
			// The first piece may be the tail of a line that begins in
			// the chunk before; it is completed there. A line longer than
			// maxAnchorLine is damaged anyway and is not carried.
			first = 1
			carry = nil
			if len(lines[0]) <= maxAnchorLine {
				carry = append(carry, lines[0]...)
			}
		}
		for i := len(lines) - 1; i >= first; i-- {
			if c, ok := parseAnchorLine(lines[i]); ok && checkSignature(pub, kindAnchor, c) == nil {
				return c, true, nil
			}
		}
		end = start
	}
	return cp, false, nil
}
