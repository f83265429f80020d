package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// outputFile says how writeOutput creates a file.
type outputFile struct {
	// Perm is the mode of a file writeOutput creates.
	Perm fs.FileMode
	// ForcePerm also gives Perm to a file that already exists; otherwise
	// a file replaced keeps its own mode. A private key must never keep
	// the mode of a world-readable file it replaces.
	ForcePerm bool
}

// ownStreams are the names of this process's standard output and error.
// Opening them again would start a new open file description: at offset 0
// and, with O_TRUNC, emptying a file the shell opened for appending
// (`>> log`). Writing to the descriptor itself is what the user meant.
var ownStreams = map[string]func() *os.File{
	"/dev/stdout": stdout, "/dev/fd/1": stdout, "/proc/self/fd/1": stdout,
	"/dev/stderr": stderr, "/dev/fd/2": stderr, "/proc/self/fd/2": stderr,
}

func stdout() *os.File { return os.Stdout }
func stderr() *os.File { return os.Stderr }

// writeOutput writes what write produces to path, for every command's
// -o/--output (and the other files berth writes for the user):
//
//   - a regular file, or a path where nothing is yet, is written beside
//     its destination and renamed into place, so a failed run never
//     leaves a half-written file behind and a replaced file keeps its
//     mode (unless opts.ForcePerm);
//   - a symlink to a regular file replaces that file the same way and
//     leaves the symlink as it was;
//   - anything else (a character device such as /dev/null, a FIFO, a
//     terminal, a symlink to one of them, a dangling symlink) is written
//     straight into: renaming a regular file over /dev/null, which root
//     may do, would destroy the device for every other program;
//   - /dev/stdout, /dev/stderr and their /dev/fd and /proc/self/fd names
//     are this process's own streams, written without reopening them.
//
// Errors of write itself are returned as they are; the others name path.
func writeOutput(path string, opts outputFile, write func(io.Writer) error) error {
	writeFailed := false
	err := writeOutputTo(path, opts, func(w io.Writer) error {
		err := write(w)
		writeFailed = err != nil
		return err
	})
	if err != nil && !writeFailed {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return err
}

func writeOutputTo(path string, opts outputFile, write func(io.Writer) error) error {
	if stream, ok := ownStreams[filepath.Clean(path)]; ok {
		return write(stream())
	}
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return replaceFile(path, opts.Perm, write)
	case err != nil:
		return err
	case st.Mode().IsRegular():
		perm := st.Mode().Perm()
		if opts.ForcePerm {
			perm = opts.Perm
		}
		return replaceFile(path, perm, write)
	case st.Mode()&fs.ModeSymlink != 0:
		if target, err := filepath.EvalSymlinks(path); err == nil {
			if tst, err := os.Stat(target); err == nil && tst.Mode().IsRegular() {
				perm := tst.Mode().Perm()
				if opts.ForcePerm {
					perm = opts.Perm
				}
				return replaceFile(target, perm, write)
			}
		}
		// A link to a device or FIFO, or a dangling one: open through
		// it, as a shell redirection would.
		return writeInPlace(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, opts.Perm, write)
	case st.IsDir():
		return errors.New("is a directory")
	}
	// Devices and FIFOs: O_TRUNC means nothing to them, and O_CREATE
	// cannot apply.
	return writeInPlace(path, os.O_WRONLY, 0, write)
}

// writeInPlace opens path and writes into it.
func writeInPlace(path string, flag int, perm fs.FileMode, write func(io.Writer) error) error {
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// replaceFile writes a temporary file beside path, syncs it and renames it
// over path.
func replaceFile(path string, perm fs.FileMode, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	// CreateTemp makes the file 0600; Chmod sets the mode exactly, not
	// filtered by the umask, as the file it replaces had it.
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	done = true
	return nil
}

// writeBytes is a writeOutput body that writes data.
func writeBytes(data []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}
}
