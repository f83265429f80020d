package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/server"
)

const cmdAdminPassword = "cmd-admin-password"

// runningBerth starts a server with auth on in dir and returns its URL and
// a function that stops it.
func runningBerth(t *testing.T, dir string) (string, func()) {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Data = dir
	cfg.Auth.AdminPassword = cmdAdminPassword
	s, err := server.New(context.Background(), cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			srv.Close()
			s.Close()
		}
	}
	t.Cleanup(stop)
	return srv.URL, stop
}

func runCmd(t *testing.T, cmd *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestAdminCommands(t *testing.T) {
	url, _ := runningBerth(t, t.TempDir())
	as := func(user, password string) func(args ...string) (string, error) {
		return func(args ...string) (string, error) {
			t.Helper()
			return runCmd(t, newAdminCmd(), append(args, "--server", url, "--username", user, "--password", password)...)
		}
	}
	admin := as("admin", cmdAdminPassword)
	must := func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out
	}
	out := must(admin("user", "create", "alice"))
	m := regexp.MustCompile(`password \(shown only now\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no generated password in %q", out)
	}
	alice := as("alice", m[1])
	must(admin("user", "create", "bob", "--new-password", "bob-password", "--allowed-cidr", "10.0.0.0/8"))
	if out := must(admin("user", "list")); !strings.Contains(out, "alice") || !strings.Contains(out, "10.0.0.0/8") {
		t.Errorf("user list:\n%s", out)
	}
	must(admin("project", "create", "team-a"))
	must(admin("member", "add", "team-a", "alice", "--role", "developer"))
	if out := must(alice("member", "list", "team-a")); !strings.Contains(out, "alice") || !strings.Contains(out, "developer") {
		t.Errorf("member list:\n%s", out)
	}
	if _, err := alice("member", "add", "team-a", "bob", "--role", "guest"); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Errorf("a developer adds a member: %v", err)
	}
	out = must(admin("robot", "create", "ci", "--permission", "team-a=pull,push", "--expires-in", "720h"))
	if !regexp.MustCompile(`created robot robot\$ci\nsecret \(shown only now\): bsr_\S+`).MatchString(out) {
		t.Errorf("robot create:\n%s", out)
	}
	if out := must(admin("robot", "list", "--project", "team-a")); !strings.Contains(out, "team-a=pull,push") {
		t.Errorf("robot list:\n%s", out)
	}
	if out := must(admin("robot", "revoke", "ci")); !strings.Contains(out, "robot$ci") || !strings.Contains(out, "yes") {
		t.Errorf("robot revoke:\n%s", out)
	}
	if out := must(admin("project", "update", "team-a", "--public=true", "--json")); !strings.Contains(out, `"public": true`) {
		t.Errorf("project update --json:\n%s", out)
	}
	must(admin("user", "update", "alice", "--disabled"))
	if _, err := alice("project", "list"); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Errorf("disabled user: %v", err)
	}
	if _, err := runCmd(t, newAdminCmd(), "user", "list", "--server", url); err == nil || !strings.Contains(err.Error(), "BERTH_PASSWORD") {
		t.Errorf("no password: %v", err)
	}
	if _, err := admin("user", "update", "alice"); err == nil || !strings.Contains(err.Error(), "nothing to change") {
		t.Errorf("empty update: %v", err)
	}
	if _, err := admin("robot", "create", "x", "--permission", "team-a"); err == nil {
		t.Error("a permission without actions was accepted")
	}
	if _, err := runCmd(t, newAdminCmd(), "user", "list", "--server", "ftp://x"); err == nil {
		t.Error("a non-HTTP server URL was accepted")
	}

	auditCmd := func(args ...string) (string, error) {
		return runCmd(t, newAuditCmd(), append(args, "--server", url, "--password", cmdAdminPassword)...)
	}
	out = must(auditCmd("query", "--project", "team-a", "--since", "1h"))
	for _, want := range []string{"member.put", "robot.create", "robot.revoke", "project.update", "alice "} {
		if !strings.Contains(out, want) {
			t.Errorf("audit query lacks %q:\n%s", want, out)
		}
	}
	if out := must(auditCmd("query", "--action", "login", "--result", "failure")); !strings.Contains(out, "alice") {
		t.Errorf("failed logins:\n%s", out)
	}
	if _, err := auditCmd("query", "--since", "last tuesday"); err == nil {
		t.Error("a bad --since was accepted")
	}
	if out := must(auditCmd("verify")); !strings.Contains(out, "audit log verified") {
		t.Errorf("verify:\n%s", out)
	}
}

// TestAuditVerifyOffline tampers with the rows of a stopped server's data
// directory and expects berth audit verify --data to say so and exit 1.
func TestAuditVerifyOffline(t *testing.T) {
	dir := t.TempDir()
	url, stop := runningBerth(t, dir)
	for _, name := range []string{"p1", "p2", "p3"} {
		if out, err := runCmd(t, newAdminCmd(), "project", "create", name, "--server", url, "--password", cmdAdminPassword); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	if _, err := runCmd(t, newAuditCmd(), "verify", "--data", dir); err == nil || !strings.Contains(err.Error(), "stop the server first") {
		t.Errorf("offline verify of a running server's directory: %v", err)
	}
	stop()
	out, err := runCmd(t, newAuditCmd(), "verify", "--data", dir)
	if err != nil || !strings.Contains(out, "audit log verified") {
		t.Fatalf("verify = %v\n%s", err, out)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE audit_entries SET project = 'p9' WHERE project = 'p2'"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out, err = runCmd(t, newAuditCmd(), "verify", "--data", dir)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(out, "AUDIT LOG TAMPERED WITH") || !strings.Contains(out, "was modified") {
		t.Errorf("verify after tampering = %v\n%s", err, out)
	}
	if _, err := runCmd(t, newAuditCmd(), "verify", "--data", t.TempDir()); err == nil {
		t.Error("verify of an empty directory succeeded")
	}
}

// get sends a GET with Basic credentials and returns the status.
func get(t *testing.T, url, user, password string) int {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAdminUnlock locks the administrator out with wrong guesses, finds the
// lockout still there after a restart, clears it with berth admin unlock on
// the stopped server's directory, and logs in.
func TestAdminUnlock(t *testing.T) {
	dir := t.TempDir()
	url, stop := runningBerth(t, dir)
	for range 10 {
		if st := get(t, url+"/v2/", "admin", "a-wrong-guess"); st != http.StatusUnauthorized {
			t.Fatalf("wrong guess = %d", st)
		}
	}
	if st := get(t, url+"/v2/", "admin", cmdAdminPassword); st != http.StatusTooManyRequests {
		t.Fatalf("right password after 10 wrong guesses = %d, want 429", st)
	}
	unlock := func(args ...string) (string, error) {
		return runCmd(t, newAdminCmd(), append([]string{"unlock"}, args...)...)
	}
	if _, err := unlock("admin", "--data", dir); err == nil || !strings.Contains(err.Error(), "stop the server first") {
		t.Errorf("unlock beside a running server: %v", err)
	}
	stop()
	url, stop = runningBerth(t, dir)
	if st := get(t, url+"/v2/", "admin", cmdAdminPassword); st != http.StatusTooManyRequests {
		t.Errorf("right password after a restart = %d, want 429: the lockout must survive a restart", st)
	}
	stop()
	if out, err := unlock("admin", "--data", dir); err != nil || !strings.Contains(out, "unlocked admin") || !strings.Contains(out, "lockout 1 in a row") {
		t.Errorf("unlock = %v\n%s", err, out)
	}
	if out, err := unlock("admin", "--data", dir); err != nil || !strings.Contains(out, "admin is not locked out") {
		t.Errorf("second unlock = %v\n%s", err, out)
	}
	if _, err := unlock("nobody", "--data", dir); err == nil || !strings.Contains(err.Error(), "no user nobody") {
		t.Errorf("unlock of a missing user: %v", err)
	}
	empty := t.TempDir()
	if _, err := unlock("admin", "--data", empty); err == nil || !strings.Contains(err.Error(), "not a berth data directory") {
		t.Errorf("unlock of an empty directory: %v", err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("unlock wrote into a directory that is not a data directory: %v", entries)
	}
	if _, err := unlock("admin"); err == nil || !strings.Contains(err.Error(), `"data" not set`) {
		t.Errorf("unlock without --data: %v", err)
	}
	url, _ = runningBerth(t, dir)
	if st := get(t, url+"/v2/", "admin", cmdAdminPassword); st != http.StatusOK {
		t.Errorf("right password after unlock = %d, want 200", st)
	}
	out, err := runCmd(t, newAuditCmd(), "query", "--action", "user.unlock", "--server", url, "--password", cmdAdminPassword)
	if err != nil || !strings.Contains(out, "cleared the login lockout of admin (offline") {
		t.Errorf("the unlock is not in the audit log: %v\n%s", err, out)
	}
}
