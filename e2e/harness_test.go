// Package e2e drives a real berth binary with the real clients users run
// against registries: the OCI conformance suite, crane, skopeo, oras, regctl,
// cosign and helm.
// scripts/peers.sh installs them into $BERTH_PEERS; the tests find them
// with testpeers.Tool, and scripts/test.sh sets BERTH_REQUIRE_PEERS=1 so
// that a missing tool fails the run instead of skipping it. The shared
// fixtures (../shared) come from testpeers.Shared: missing, they fail.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// berthBin is the binary built once by TestMain.
var berthBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	berthBin = filepath.Join(dir, "berth")
	// Built as scripts/release.sh builds (static, -trimpath), so that the
	// release test's build reuses these compiled packages.
	build := exec.Command("go", "build", "-trimpath", "-o", berthBin, "../cmd/berth")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build berth:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running berth serve.
type server struct {
	Addr string // host:port
	Data string
	// Password is the administrator's ("admin"); empty when auth is off.
	Password string
	cmd      *exec.Cmd
	logs     *bytes.Buffer
	stopOnce sync.Once
}

// stop interrupts the server and waits for it to exit (killing it after
// ten seconds).
func (s *server) stop() {
	s.stopOnce.Do(func() {
		s.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-done
		}
	})
}

// stopBerth stops s now, so that its data directory can be opened offline.
func stopBerth(t *testing.T, s *server) {
	t.Helper()
	s.stop()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startBerth starts berth serve with auth off (--no-auth) on a free
// loopback port with a fresh data directory and waits until it is ready:
// the client tests check the protocol; auth_test.go runs them with auth.
func startBerth(t *testing.T, extraArgs ...string) *server {
	t.Helper()
	return launchBerth(t, "", append([]string{"--no-auth"}, extraArgs...)...)
}

// adminPassword is the administrator's password of startBerthAuth's
// servers, given on first start through BERTH_ADMIN_PASSWORD.
const adminPassword = "e2e-admin-password"

// startBerthAuth starts berth serve with auth on (the default), the
// administrator "admin" having adminPassword.
func startBerthAuth(t *testing.T, extraArgs ...string) *server {
	t.Helper()
	return launchBerth(t, adminPassword, extraArgs...)
}

func launchBerth(t *testing.T, password string, extraArgs ...string) *server {
	t.Helper()
	return launchBerthOn(t, freeAddr(t), t.TempDir(), password, extraArgs...)
}

// launchBerthOn starts berth serve on addr with the data directory data
// (a restart of a server that stopped or was killed).
func launchBerthOn(t *testing.T, addr, data, password string, extraArgs ...string) *server {
	t.Helper()
	return launchBerthEnv(t, addr, data, password, nil, extraArgs...)
}

// launchBerthEnv is launchBerthOn with environment variables added.
func launchBerthEnv(t *testing.T, addr, data, password string, env []string, extraArgs ...string) *server {
	t.Helper()
	s := &server{Addr: addr, Data: data, Password: password, logs: &bytes.Buffer{}}
	args := append([]string{"serve", "--addr", s.Addr, "--data", s.Data}, extraArgs...)
	s.cmd = exec.Command(berthBin, args...)
	s.cmd.Env = append(os.Environ(), env...)
	if password != "" {
		s.cmd.Env = append(s.cmd.Env, "BERTH_ADMIN_PASSWORD="+password)
	}
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start berth: %v", err)
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("berth logs:\n%s", s.logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.Addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("berth did not become ready on %s; logs:\n%s", s.Addr, s.logs.String())
	return nil
}

// run runs a command, failing the test with its output on error, and
// returns its stdout.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(env []string, name string, args ...string) (string, error) {
	return runIn("", env, name, args...)
}

// runIn is runErr in directory dir (empty: the current one).
func runIn(dir string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}
