package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"berth.dev/berth/internal/server"
)

const cmdAdminPassword = "cmd-admin-password"

// runningBerth starts a server with auth on in dir and returns its URL and
// a function that stops it.
func runningBerth(t *testing.T, dir string) (string, func()) {
	t.Helper()
	return runningBerthWith(t, dir, cmdAdminPassword)
}

// runningBerthWith is runningBerth with the first administrator's password
// (empty: generated).
func runningBerthWith(t *testing.T, dir, adminPassword string) (string, func()) {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Data = dir
	cfg.Auth.AdminPassword = adminPassword
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
	isolateCredentials(t)
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
	if _, err := alice("project", "list"); err == nil || !strings.Contains(err.Error(), "wrong username or password for alice") {
		t.Errorf("disabled user: %v", err)
	}
	if _, err := runCmd(t, newAdminCmd(), "user", "list", "--server", url); err == nil || !strings.Contains(err.Error(), "not logged in") {
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

// TestAdminResetPassword loses nothing when the first administrator's
// generated password is lost and the account locked out: berth admin
// reset-password on the stopped server's directory sets a new one
// (generated, from BERTH_ADMIN_PASSWORD or from stdin), clears the lockout
// and removes the kept first password.
func TestAdminResetPassword(t *testing.T) {
	dir := t.TempDir()
	url, stop := runningBerthWith(t, dir, "")
	raw, err := os.ReadFile(server.InitialPasswordPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	first := strings.TrimSpace(string(raw))
	if st := get(t, url+"/v2/", "admin", first); st != http.StatusOK {
		t.Fatalf("the kept first password = %d", st)
	}
	for range 10 {
		get(t, url+"/v2/", "admin", "a-wrong-guess")
	}
	reset := func(stdin string, args ...string) (string, error) {
		cmd := newAdminCmd()
		cmd.SetIn(strings.NewReader(stdin))
		return runCmd(t, cmd, append([]string{"reset-password"}, args...)...)
	}
	if _, err := reset("", "admin", "--data", dir); err == nil || !strings.Contains(err.Error(), "stop the server first") {
		t.Errorf("reset beside a running server: %v", err)
	}
	stop()

	out, err := reset("", "admin", "--data", dir)
	m := regexp.MustCompile(`new password \(shown only now\): (\S+)`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("reset with a generated password = %v\n%s", err, out)
	}
	if _, err := os.Stat(server.InitialPasswordPath(dir)); !os.IsNotExist(err) {
		t.Errorf("the kept first password outlived the reset: %v", err)
	}
	url, stop = runningBerth(t, dir)
	if st := get(t, url+"/v2/", "admin", m[1]); st != http.StatusOK {
		t.Errorf("the new password (the lockout cleared) = %d, want 200", st)
	}
	if st := get(t, url+"/v2/", "admin", first); st != http.StatusUnauthorized {
		t.Errorf("the old password = %d, want 401", st)
	}
	stop()

	t.Setenv(server.AdminPasswordEnv, "password-from-the-environment")
	if out, err := reset("", "admin", "--data", dir); err != nil || !strings.Contains(out, "reset the password of admin") || strings.Contains(out, "password-from") {
		t.Errorf("reset from %s = %v\n%s", server.AdminPasswordEnv, err, out)
	}
	t.Setenv(server.AdminPasswordEnv, "")
	if out, err := reset("password-from-stdin\n", "admin", "--data", dir, "--password-stdin"); err != nil || strings.Contains(out, "password-from") {
		t.Errorf("reset from stdin = %v\n%s", err, out)
	}
	for name, tc := range map[string]struct{ stdin, user, want string }{
		"a short password": {"short\n", "admin", "at least 8"},
		"a missing user":   {"long-enough-password", "nobody", "not found"},
		"a robot":          {"long-enough-password", "robot$ci", "robots have secrets"},
	} {
		if _, err := reset(tc.stdin, tc.user, "--data", dir, "--password-stdin"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	if _, err := reset("long-enough-password", "admin", "--data", t.TempDir(), "--password-stdin"); err == nil || !strings.Contains(err.Error(), "not a berth data directory") {
		t.Errorf("reset in an empty directory: %v", err)
	}
	url, _ = runningBerth(t, dir)
	if st := get(t, url+"/v2/", "admin", "password-from-stdin"); st != http.StatusOK {
		t.Errorf("the password from stdin = %d, want 200 (refused resets must change nothing)", st)
	}
	out, err = runCmd(t, newAuditCmd(), "query", "--action", "user.update", "--server", url, "--password", "password-from-stdin")
	if err != nil || strings.Count(out, "user admin: password reset (offline") != 3 {
		t.Errorf("the three resets are not in the audit log: %v\n%s", err, out)
	}
}

// TestServeOnATakenPortKeepsThePassword is issue 18's lost password: the
// first berth serve of a fresh data directory fails because its port is
// taken. It must not print the generated password (the next start would
// not show it again) but keep it in <data>/initial-admin-password.
func TestServeOnATakenPortKeepsThePassword(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	t.Setenv(server.AdminPasswordEnv, "")
	t.Setenv("BERTH_CONFIG", "")
	var logs bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	dir := t.TempDir()
	out, err := runCmd(t, newServeCmd(), "--addr", taken.Addr().String(), "--data", dir)
	if err == nil || !strings.Contains(err.Error(), "listen on") {
		t.Fatalf("serve on a taken port = %v\n%s", err, out)
	}
	raw, err := os.ReadFile(server.InitialPasswordPath(dir))
	if err != nil {
		t.Fatalf("the generated password was not kept: %v", err)
	}
	password := strings.TrimSpace(string(raw))
	if len(password) < 20 || strings.Contains(logs.String()+out, password) {
		t.Errorf("password %q printed by a start that never served:\n%s%s", password, logs.String(), out)
	}
	if !strings.Contains(logs.String(), server.InitialPasswordPath(dir)) {
		t.Errorf("the log does not say where the password is kept:\n%s", logs.String())
	}
	url, _ := runningBerthWith(t, dir, "")
	if st := get(t, url+"/v2/", "admin", password); st != http.StatusOK {
		t.Errorf("the kept password = %d, want 200", st)
	}
}

// TestAdminRepoDelete is the Harbor user's day-one gap: a repository can be
// deleted (berth admin repo delete), and a project with repositories with
// --force; what was in them is gone from the registry.
func TestAdminRepoDelete(t *testing.T) {
	isolateCredentials(t)
	srvURL, _ := runningBerth(t, t.TempDir())
	host := strings.TrimPrefix(srvURL, "http://")
	admin := func(args ...string) (string, error) {
		t.Helper()
		return runCmd(t, newAdminCmd(), append(args, "--server", srvURL, "--password", cmdAdminPassword)...)
	}
	creds := remote.WithAuth(&authn.Basic{Username: "admin", Password: cmdAdminPassword})
	push := func(repo string) {
		t.Helper()
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(host + "/" + repo + ":v1")
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, creds); err != nil {
			t.Fatalf("push %s: %v", repo, err)
		}
	}
	exists := func(repo string) bool {
		t.Helper()
		ref, err := name.ParseReference(host + "/" + repo + ":v1")
		if err != nil {
			t.Fatal(err)
		}
		_, err = remote.Head(ref, creds)
		return err == nil
	}
	push("team-a/app")
	push("team-a/web/frontend")
	push("team-b/tool")

	if out, err := admin("repo", "list", "team-a"); err != nil || !strings.Contains(out, "team-a/app") || !strings.Contains(out, "team-a/web/frontend") {
		t.Fatalf("repo list = %v\n%s", err, out)
	}
	out, err := admin("repo", "delete", "team-a/web/frontend")
	if err != nil || out != "deleted repository team-a/web/frontend (1 manifest)\n" {
		t.Fatalf("repo delete = %v\n%s", err, out)
	}
	if exists("team-a/web/frontend") || !exists("team-a/app") {
		t.Errorf("after deleting team-a/web/frontend: it exists %v, team-a/app exists %v", exists("team-a/web/frontend"), exists("team-a/app"))
	}
	if _, err := admin("repo", "delete", "team-a/web/frontend"); err == nil || !strings.Contains(err.Error(), "NOT_FOUND") {
		t.Errorf("second delete = %v", err)
	}

	if _, err := admin("project", "delete", "team-b"); err == nil || !strings.Contains(err.Error(), "--force deletes its repositories") {
		t.Errorf("project delete of a project with repositories = %v", err)
	}
	out, err = admin("project", "delete", "team-b", "--force")
	if err != nil || out != "deleted repository team-b/tool (1 manifest)\ndeleted project team-b\n" {
		t.Fatalf("project delete --force = %v\n%s", err, out)
	}
	if exists("team-b/tool") {
		t.Error("team-b/tool outlived its project")
	}
	out, err = runCmd(t, newAuditCmd(), "query", "--action", "repository.delete", "--server", srvURL, "--password", cmdAdminPassword)
	if err != nil || !strings.Contains(out, "team-a/web/frontend: 1 manifests") || !strings.Contains(out, "team-b/tool: 1 manifests") {
		t.Errorf("audit of the deletes = %v\n%s", err, out)
	}
}
