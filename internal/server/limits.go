package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/registry/gc"
)

// What a connection costs in file descriptors: its socket, and a blob or
// upload file while it transfers one. reservedFiles are kept for the
// database (a writer, readers, auth and audit connections, WAL and shared
// memory), the data directory lock, logs and the listener.
const (
	filesPerConnection = 2
	reservedFiles      = 64
	minConnections     = 16
	// maxDerivedConnections caps the derived limit when the file limit is
	// huge: each connection costs memory too (a goroutine and buffers).
	maxDerivedConnections = 16384
)

// connectionLimits are the effective limits of a server: the configured
// ones, with zeros derived from the open-file limit.
type connectionLimits struct {
	max, perIP, uploads int
}

// deriveLimits fills the limits left at 0. nofile is the soft open-file
// limit (Go raises it to the hard limit at start).
func deriveLimits(cfg Limits, nofile uint64) connectionLimits {
	l := connectionLimits{max: cfg.MaxConnections, perIP: cfg.MaxConnectionsPerIP, uploads: cfg.MaxUploads}
	if l.max == 0 {
		n := uint64(maxDerivedConnections)
		if nofile < reservedFiles+n*filesPerConnection {
			n = 0
			if nofile > reservedFiles {
				n = (nofile - reservedFiles) / filesPerConnection
			}
		}
		l.max = max(int(n), minConnections)
	}
	if l.perIP == 0 {
		l.perIP = max(l.max/4, 1)
	}
	if l.uploads == 0 {
		l.uploads = max(l.max/2, 1)
	}
	return l
}

// openFileLimit reads the soft RLIMIT_NOFILE; 1024 if it cannot.
func openFileLimit() uint64 {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil || r.Cur == unix.RLIM_INFINITY {
		if err == nil {
			return maxDerivedConnections*filesPerConnection + reservedFiles
		}
		return 1024
	}
	return r.Cur
}

// limitListener bounds open connections, in all and per peer address, so
// that a few clients holding many connections cannot keep everyone else
// out (and the process never runs out of file descriptors for its own
// files). At the global limit Accept waits for a connection to close,
// leaving new ones in the kernel's queue; a connection past its address's
// share is closed at once, so it does not wait in that queue either.
type limitListener struct {
	net.Listener
	perIP  int
	exempt []netip.Prefix // trusted proxies: many clients behind one address
	slots  chan struct{}
	done   chan struct{}
	closed sync.Once

	mu     sync.Mutex
	byAddr map[netip.Addr]int

	open    atomic.Int64
	peak    atomic.Int64 // the most connections open at once
	metrics *metrics
}

func newLimitListener(ln net.Listener, limits connectionLimits, exempt []netip.Prefix, m *metrics) *limitListener {
	return &limitListener{Listener: ln, perIP: limits.perIP, exempt: exempt, metrics: m,
		slots: make(chan struct{}, limits.max), done: make(chan struct{}), byAddr: map[netip.Addr]int{}}
}

// Accept implements net.Listener.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.slots
			return nil, err
		}
		addr := peerAddr(c)
		if !l.admit(addr) {
			<-l.slots
			c.Close()
			l.metrics.connsRefused.Inc()
			continue
		}
		n := l.open.Add(1)
		for p := l.peak.Load(); n > p && !l.peak.CompareAndSwap(p, n); p = l.peak.Load() {
		}
		l.metrics.connsOpen.Inc()
		return &limitConn{Conn: c, release: func() { l.release(addr) }}, nil
	}
}

// admit counts a connection from addr, unless addr has its share already.
func (l *limitListener) admit(addr netip.Addr) bool {
	if !addr.IsValid() {
		return true
	}
	for _, p := range l.exempt {
		if p.Contains(addr) {
			return true
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddr[addr] >= l.perIP {
		return false
	}
	l.byAddr[addr]++
	return true
}

func (l *limitListener) release(addr netip.Addr) {
	if addr.IsValid() {
		l.mu.Lock()
		if l.byAddr[addr] > 0 {
			if l.byAddr[addr]--; l.byAddr[addr] == 0 {
				delete(l.byAddr, addr)
			}
		}
		l.mu.Unlock()
	}
	l.open.Add(-1)
	l.metrics.connsOpen.Dec()
	<-l.slots
}

// fromAddr counts the open connections from addr.
func (l *limitListener) fromAddr(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byAddr[addr]
}

// Close implements net.Listener; a waiting Accept returns.
func (l *limitListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func peerAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		addr, _ := netip.AddrFromSlice(a.IP)
		return addr.Unmap()
	}
	return netip.Addr{}
}

// limitConn gives its slot back once, when closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// idleBody fails a request body read that waits longer than idle for data:
// before every read it moves the connection's read deadline, so a client
// that sends a byte now and then is still served, one that stops is cut
// (its connection closed once the handler answers). A minimum rate would
// also cut honest clients on slow links; an idle bound only cuts those
// that send nothing.
type idleBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	idle  time.Duration
	armed bool
}

func (b *idleBody) Read(p []byte) (int, error) {
	if err := b.rc.SetReadDeadline(time.Now().Add(b.idle)); err == nil {
		b.armed = true
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil && b.armed {
		// The body is over: the connection's reads (the next request's
		// headers, or net/http's watch for a closed connection) are the
		// server's to time again.
		b.rc.SetReadDeadline(time.Time{})
		b.armed = false
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("no request body data for %s: %w", b.idle, err)
	}
	return n, err
}

// bodyUnread runs before an HTTP/1 answer is written when the handler may
// not have read the request's body to its end (a refusal: 401, 403, 429, a
// bad digest). net/http then reads up to 256 KiB of the rest before
// answering, with no deadline of ours: a client trickling its body would
// hold the connection, and a refused client would keep its place. With a
// known length and bytes left, the connection is closed after the answer
// instead; a chunked body may have only its terminator left (an honest
// client keeps its connection), so that read gets the idle bound.
func bodyUnread(h http.Header, r *http.Request, body *countingBody, rc *http.ResponseController, idle time.Duration) {
	switch {
	case body.eof || (r.ContentLength > 0 && body.n >= r.ContentLength):
	case r.ContentLength < 0 && idle > 0 && rc.SetReadDeadline(time.Now().Add(idle)) == nil:
	default:
		h.Set("Connection", "close")
	}
}

// uploadExpiryInterval is how often idle upload sessions are looked for:
// often enough that a session outlives its TTL by at most a quarter of it,
// rarely enough to cost nothing (a directory listing).
func uploadExpiryInterval(ttl time.Duration) time.Duration {
	return min(max(ttl/4, 50*time.Millisecond), 5*time.Minute)
}

// expireUploadsLoop removes idle upload sessions on a timer of its own:
// garbage collection may be scheduled rarely or not at all, and abandoned
// sessions hold a place under the session limits and disk space.
func (s *Server) expireUploadsLoop(ctx context.Context) {
	ttl := s.cfg.Registry.UploadTTL
	t := time.NewTicker(uploadExpiryInterval(ttl))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := gc.ExpireUploads(ctx, s.storage.Meta, s.storage.Blobs, time.Now().Add(-ttl), s.reg.LockUpload)
		if err != nil && ctx.Err() == nil {
			s.log.Error("expiring idle upload sessions failed", "error", err)
		}
		if n > 0 {
			s.metrics.uploadsExpired.Add(float64(n))
			s.log.Info("expired idle upload sessions", "sessions", n, "idle_for", ttl)
		}
	}
}
