package filesystem

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to begin writing a range of f to disk
// without waiting, so that the fsync at commit finds little left to flush
// and a large upload's disk writes overlap its network reads.
func startWriteback(f *os.File, off, n int64) {
	// Advisory: on failure the fsync at commit does all the work.
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
