package server

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"
)

// minFreeBytes is the free space below which the data directory's disk
// counts as full: changes are refused (503) and /readyz says not ready,
// while what remains is enough for the audit entries and metadata of the
// requests already admitted.
const minFreeBytes = 16 << 20

// diskCheckEvery bounds how often the free space is read (statfs is
// cheap, but every change asks).
const diskCheckEvery = time.Second

// diskCheck remembers whether the data directory's disk is full.
type diskCheck struct {
	// free reports the bytes an unprivileged writer may still use under
	// dir; nil means statfs. Tests replace it.
	free      func(dir string) (uint64, error)
	checkedAt atomic.Int64 // unix nanoseconds of the last reading
	avail     atomic.Uint64
}

func statfsFree(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// diskFull reports whether the data directory has less than minFreeBytes
// left, and how much it has. A disk whose space cannot be read is not
// called full: the writes themselves then report what is wrong.
func (s *Server) diskFull() (bool, uint64) {
	now := time.Now().UnixNano()
	if last := s.disk.checkedAt.Load(); now-last >= int64(diskCheckEvery) && s.disk.checkedAt.CompareAndSwap(last, now) {
		free := s.disk.free
		if free == nil {
			free = statfsFree
		}
		n, err := free(s.storage.Dir)
		if err != nil {
			s.log.Warn("cannot read the data directory's free space", "error", err)
			n = minFreeBytes
		}
		s.disk.avail.Store(n)
	}
	avail := s.disk.avail.Load()
	return avail < minFreeBytes, avail
}

// auditRefusal returns a handler that refuses r (503) when what r would
// do could not be audited, or nil to serve it. A change (any method but
// GET and HEAD on the registry or the admin API) is refused while the
// audit log cannot be written or the disk is full: it must not succeed
// without its entry. Reads stay served (their entries wait in memory)
// until the audit log holds as many waiting entries as it may; then
// everything it would audit is refused.
func (s *Server) auditRefusal(r *http.Request, route string, registryRoute bool) http.Handler {
	api := route == "api"
	if !registryRoute && !api && route != "token" {
		return nil
	}
	h := s.sec.audit.Health()
	var msg string
	switch {
	case h.Full:
		msg = "the audit log cannot be written and holds all the entries it may; requests are refused until they are stored"
	case (registryRoute || api) && r.Method != http.MethodGet && r.Method != http.MethodHead:
		if h.Err != nil {
			msg = "the audit log cannot be written; changes are refused until it can (see the server's log)"
		} else if full, _ := s.diskFull(); full {
			msg = "the data disk is full; changes are refused until space is freed"
		}
	}
	if msg == "" {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", strconv.Itoa(30))
		w.WriteHeader(http.StatusServiceUnavailable)
		if api {
			fmt.Fprintf(w, `{"error":{"code":"UNAVAILABLE","message":%q}}`+"\n", msg)
			return
		}
		fmt.Fprintf(w, `{"errors":[{"code":"UNAVAILABLE","message":%q}]}`+"\n", msg)
	})
}

// auditUnready says why the server cannot take changes now, for /readyz;
// "" when it can.
func (s *Server) auditUnready() string {
	h := s.sec.audit.Health()
	switch {
	case h.Full:
		return fmt.Sprintf("audit log cannot be written: %d entries waiting, at the bound", h.Waiting)
	case h.Err != nil:
		return fmt.Sprintf("audit log cannot be written: %d entries waiting", h.Waiting)
	}
	if full, avail := s.diskFull(); full {
		return fmt.Sprintf("data disk full: %s free", humanize.IBytes(avail))
	}
	return ""
}
