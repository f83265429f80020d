// Package vulndbtest holds what the vulnerability-database tests share: an
// upstream server that serves a fixture folder the way feeds are served
// (ETags, 304s, directory listings, and on demand a 500 or a hang), and the
// one test suite every source runs.
package vulndbtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

// Mode is how the upstream server answers.
type Mode int

const (
	// Serve answers with the fixture's files.
	Serve Mode = iota
	// Fail answers every request with 500.
	Fail
	// Hang never answers; the request ends only when the client gives up.
	Hang
)

// Server serves a fixture folder over loopback HTTP.
type Server struct {
	*httptest.Server
	dir  string
	stop chan struct{}

	mu          sync.Mutex
	mode        Mode
	hangOn      func(urlPath string) bool
	hanging     chan string
	requests    int
	notModified int
}

// NewServer serves dir until the test ends.
func NewServer(t testing.TB, dir string) *Server {
	t.Helper()
	s := &Server{dir: dir, stop: make(chan struct{}), hanging: make(chan string, 16)}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(func() {
		close(s.stop)
		s.Close()
	})
	return s
}

// SetMode changes how the server answers from now on.
func (s *Server) SetMode(m Mode) {
	s.mu.Lock()
	s.mode = m
	s.mu.Unlock()
}

// HangOn makes requests whose path satisfies match hang, and reports each
// on Hanging.
func (s *Server) HangOn(match func(urlPath string) bool) {
	s.mu.Lock()
	s.hangOn = match
	s.mu.Unlock()
}

// Hanging receives the path of every request the server holds.
func (s *Server) Hanging() <-chan string { return s.hanging }

// Counts returns how many requests arrived and how many got a 304.
func (s *Server) Counts() (requests, notModified int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, s.notModified
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	mode, hangOn := s.mode, s.hangOn
	s.mu.Unlock()
	if mode == Hang || (hangOn != nil && hangOn(r.URL.Path)) {
		select {
		case s.hanging <- r.URL.Path:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-s.stop:
		}
		return
	}
	if mode == Fail {
		http.Error(w, "upstream broke", http.StatusInternalServerError)
		return
	}
	p := filepath.Join(s.dir, filepath.FromSlash(path.Clean("/"+r.URL.Path)))
	fi, err := os.Stat(p)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	var b []byte
	if fi.IsDir() {
		b, err = listing(p)
	} else {
		b, err = os.ReadFile(p)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sum := sha256.Sum256(b)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	if r.Header.Get("If-None-Match") == etag {
		s.mu.Lock()
		s.notModified++
		s.mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	name := fi.Name()
	if fi.IsDir() {
		name = "index.html"
	}
	http.ServeContent(w, r, name, fi.ModTime(), bytes.NewReader(b))
}

// listing renders an autoindex page like nginx's, which is what
// secdb.alpinelinux.org serves.
func listing(dir string) ([]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintln(&b, "<html><body><pre>")
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			name += "/"
		}
		fmt.Fprintf(&b, "<a href=%q>%s</a>\n", name, html.EscapeString(name))
	}
	fmt.Fprintln(&b, "</pre></body></html>")
	return b.Bytes(), nil
}
