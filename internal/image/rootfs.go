package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// openRootFS presents a directory as an image of one layer, read in place
// by walkDirectory. The directory may be given through a symlink; inside
// it, symlinks are recorded and never followed, so a link to / or a loop
// cannot lead the walk out of the directory or round in circles.
func openRootFS(dir string) (*Image, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSource, err)
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSource, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrBadSource, dir)
	}
	l := Layer{
		MediaType: "application/vnd.oci.image.layer.v1.tar",
		dir:       root,
		open: func(context.Context) (io.ReadCloser, error) {
			return nil, fmt.Errorf("%w: root filesystem %s has no layer blob; read it with Walk", ErrBadSource, root)
		},
	}
	return &Image{Layers: []Layer{l}}, nil
}

// systemDirs are the directories right below a root filesystem that hold
// the kernel's views of a running system (procfs, sysfs, device nodes),
// never installed software. Scanning "dir:/" would otherwise walk every
// process's files and meet /proc/kcore's 128 TiB; Trivy skips the same
// three.
var systemDirs = map[string]bool{"proc": true, "sys": true, "dev": true}

// walkDirectory walks a root filesystem on disk as Walk walks a layer:
// fn sees every entry, with paths relative to root. Only regular files
// are ever opened, and only what fn reads of them is read, so a large tree
// costs one stat per entry and the content of the files analyzers want;
// memory does not grow with the tree. A file that cannot be read, or is
// larger than Limits.MaxFileBytes, is skipped with a warning: the tree is
// the user's own disk, not an untrusted layer. A file with several links
// is passed as a regular file at its first path and as a hard link to it
// at the others.
func walkDirectory(ctx context.Context, root string, opts WalkOptions, fn EntryFunc) (*Changes, error) {
	limits := opts.Limits.orDefaults()
	ch := &Changes{}
	dropped := 0
	warn := func(format string, args ...any) {
		if len(ch.Warnings) < maxWarnings {
			ch.Warnings = append(ch.Warnings, fmt.Sprintf("root filesystem %s: ", root)+fmt.Sprintf(format, args...))
		} else {
			dropped++
		}
	}
	links := map[fileID]string{} // files with several links → the path they were first seen at
	entries := 0
	var symlinkBytes int64
	symlinks := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if err != nil {
			if p == root {
				return err
			}
			// An unreadable directory is visited once more with the
			// error; returning nil skips its contents.
			warn("%s: %v; skipped", p, err)
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		if d.IsDir() && systemDirs[name] {
			return fs.SkipDir
		}
		entries++
		if entries > limits.MaxFiles {
			return fmt.Errorf("%w: more than %d entries (limit MaxFiles)", ErrLimit, limits.MaxFiles)
		}
		info, err := d.Info()
		if err != nil {
			warn("%s: %v; skipped", p, err) // removed while we walked
			return nil
		}
		e := Entry{Path: name, Size: info.Size(), Mode: info.Mode(), ModTime: info.ModTime()}
		switch {
		case info.IsDir():
			e.Kind, e.Size = KindDir, 0
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				warn("%s: %v; skipped", p, err)
				return nil
			}
			e.Kind, e.Link, e.Size = KindSymlink, target, 0
			// Past the limit, later links are not recorded (nothing is
			// found through them) rather than failing the scan of the
			// user's own tree.
			if n := linkBytes(name, target); symlinkBytes+n <= limits.MaxLinkBytes {
				symlinks[name] = target
				symlinkBytes += n
			} else {
				warn("%s: symlinks past %d bytes are not recorded (limit MaxLinkBytes); files reached through it are not read", p, limits.MaxLinkBytes)
			}
		case info.Mode().IsRegular():
			id, linked := identity(info)
			if first, ok := links[id]; linked && ok {
				e.Kind, e.Link, e.Size = KindHardLink, first, 0
				return fn(&e, eofReader{})
			}
			if info.Size() > limits.MaxFileBytes {
				warn("%s is %d bytes, more than the %d read from one file (limit MaxFileBytes); skipped", p, info.Size(), limits.MaxFileBytes)
				return nil
			}
			f, err := os.Open(p)
			if err != nil {
				warn("%v; skipped", err)
				return nil
			}
			defer f.Close()
			if linked {
				links[id] = name
			}
			e.Kind, e.HostPath = KindFile, p
			return fn(&e, &fileBody{f: f, left: info.Size()})
		default:
			// Devices, fifos and sockets: announced, never opened.
			e.Kind, e.Size = KindOther, 0
		}
		return fn(&e, eofReader{})
	})
	if err != nil {
		return nil, fmt.Errorf("root filesystem %s: %w", root, err)
	}
	if dropped > 0 {
		ch.Warnings = append(ch.Warnings, fmt.Sprintf("root filesystem %s: %d more warnings not shown", root, dropped))
	}
	if len(symlinks) > 0 {
		ch.Links = NewLinks(symlinks)
	}
	return ch, nil
}

// fileBody reads a file as big as it was when the walk saw it: never more,
// and zeros for what it lost since, so a file that changes under the walk
// cannot contradict the size fn was told.
type fileBody struct {
	f    *os.File
	left int64
}

func (b *fileBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.f.Read(p)
	if errors.Is(err, io.EOF) {
		clear(p[n:])
		n, err = len(p), nil
	}
	b.left -= int64(n)
	if err != nil {
		err = fmt.Errorf("read %s: %w", b.f.Name(), err)
	}
	return n, err
}
