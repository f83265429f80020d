// Package benchserver runs `berth serve` for the benchmark programs that
// measure the server end to end (bench/scanpush, bench/advisory): a fresh
// data directory on a free loopback port, its vulnerability database
// built from a served copy of ../shared/vulndata before anything is
// measured, and the few API calls they make.
package benchserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Server is a running berth serve. The programs are benchmarks: every
// failure ends them (log.Fatal) with berth's log.
type Server struct {
	Addr string
	// Password is the first administrator's, when authentication is on;
	// requests then carry it.
	Password string
	data     string
	cmd      *exec.Cmd
	logs     bytes.Buffer
}

// Start starts berth serve with flags, its database fed from feed (an
// HTTP server of the vulndata folder: its osv and nodejs-security-wg
// sources) and updated only on request, and returns once the first
// database is built.
func Start(berth, feed string, flags ...string) *Server {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	data, err := os.MkdirTemp("", "benchserver-")
	if err != nil {
		log.Fatal(err)
	}
	s := &Server{Addr: addr, data: data}
	args := append([]string{"serve", "--addr", addr, "--data", data, "--db-update-interval", "0",
		"--db-source", feed + "/osv", "--db-source", "nodejs-wg:" + feed + "/nodejs-security-wg/vuln.zip"}, flags...)
	s.cmd = exec.Command(berth, args...)
	s.cmd.Stdout, s.cmd.Stderr = &s.logs, &s.logs
	if err := s.cmd.Start(); err != nil {
		log.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil && resp.StatusCode == http.StatusOK {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("berth did not start:\n%s", s.Logs())
		}
	}
	pw, err := os.ReadFile(filepath.Join(data, "initial-admin-password"))
	switch {
	case err == nil:
		s.Password = strings.TrimSpace(string(pw))
	case !errors.Is(err, fs.ErrNotExist): // none with --no-auth
		log.Fatalf("the first admin password: %v", err)
	}
	s.Call("POST", "/api/v1/vulndb/update", nil, http.StatusAccepted)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var st struct{ Ready bool }
		s.Get("/api/v1/vulndb", &st)
		if st.Ready {
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("no vulnerability database:\n%s", s.Logs())
		}
	}
	return s
}

// Stop stops berth and removes its data directory.
func (s *Server) Stop() {
	s.cmd.Process.Signal(os.Interrupt)
	s.cmd.Wait()
	os.RemoveAll(s.data)
}

// Logs is what berth has logged so far.
func (s *Server) Logs() string { return s.logs.String() }

func (s *Server) do(method, path string, body any) *http.Response {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			log.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+s.Addr+path, rd)
	if err != nil {
		log.Fatal(err)
	}
	if s.Password != "" {
		req.SetBasicAuth("admin", s.Password)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	return resp
}

// Call sends body (JSON, when not nil) and ends the program unless the
// answer has status want.
func (s *Server) Call(method, path string, body any, want int) {
	resp := s.do(method, path, body)
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		log.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
}

// Get decodes a 200 answer's JSON into v (when not nil) and returns the
// status.
func (s *Server) Get(path string, v any) int {
	resp := s.do("GET", path, nil)
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			log.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// ReportPath is the API path of the stored report of repo:ref (repo is
// project/name).
func ReportPath(repo, ref string) string {
	project, rest, _ := strings.Cut(repo, "/")
	return "/api/v1/projects/" + project + "/repositories/" + strings.ReplaceAll(rest, "/", "%2F") + "/artifacts/" + ref + "/vulnerabilities"
}

// WaitReport polls the stored report of repo:ref until its scan is done
// (a failed scan, or none within five minutes, ends the program).
func (s *Server) WaitReport(repo, ref string) {
	path := ReportPath(repo, ref)
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
		var r struct {
			Scan struct{ Status, Error string }
		}
		if s.Get(path, &r) == http.StatusOK {
			switch r.Scan.Status {
			case "done":
				return
			case "failed":
				log.Fatalf("scan of %s:%s failed: %s", repo, ref, r.Scan.Error)
			}
		}
		if time.Now().After(deadline) {
			log.Fatalf("no report for %s:%s:\n%s", repo, ref, s.Logs())
		}
	}
}
