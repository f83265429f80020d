//go:build !unix

package image

import "io/fs"

// fileID is a file on disk whatever its name; outside Unix, where the
// standard library exposes no link count, every name is its own file.
type fileID struct{}

// identity reports that info has no other names.
func identity(fs.FileInfo) (fileID, bool) { return fileID{}, false }
