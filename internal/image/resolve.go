package image

import (
	"errors"
	"path"
	"strings"
)

// ErrSymlinkLoop: resolving a path followed more links than any real
// filesystem allows, as ELOOP.
var ErrSymlinkLoop = errors.New("too many levels of symbolic links")

// maxSymlinkHops matches Linux's limit of 40 links per lookup.
const maxSymlinkHops = 40

// ResolveWithin resolves p (relative to the image root) through the
// symlinks readlink reports, as a lookup inside a chroot would: absolute
// targets start again at the image root and ".." stops at the root, so no
// result ever leaves the image. readlink returns a path's symlink target,
// or false when the path is not a symlink. The result is relative, with no
// leading slash; "" is the root.
func ResolveWithin(p string, readlink func(string) (string, bool)) (string, error) {
	var resolved []string
	pending := splitPath(p)
	hops := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case ".":
			continue
		case "..":
			if len(resolved) > 0 {
				resolved = resolved[:len(resolved)-1]
			}
			continue
		}
		candidate := strings.Join(append(resolved, c), "/")
		target, isLink := readlink(candidate)
		if !isLink {
			resolved = append(resolved, c)
			continue
		}
		hops++
		if hops > maxSymlinkHops {
			return "", &PathError{Path: p, Err: ErrSymlinkLoop}
		}
		if strings.HasPrefix(target, "/") {
			resolved = resolved[:0]
		}
		pending = append(splitPath(target), pending...)
	}
	return strings.Join(resolved, "/"), nil
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// PathError is a failed lookup of a path inside an image.
type PathError struct {
	Path string
	Err  error
}

func (e *PathError) Error() string { return "/" + path.Clean(e.Path) + ": " + e.Err.Error() }
func (e *PathError) Unwrap() error { return e.Err }
