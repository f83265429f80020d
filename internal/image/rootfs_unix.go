//go:build unix

package image

import (
	"io/fs"
	"syscall"
)

// fileID is a file on disk, whatever its name: device and inode.
type fileID struct{ dev, ino uint64 }

// identity returns the file behind info and whether it has other names.
func identity(info fs.FileInfo) (fileID, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, st.Nlink > 1
}
