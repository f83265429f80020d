package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// berthRun runs the berth binary and returns its standard output and
// error apart, and its exit code.
func berthRun(t *testing.T, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(berthBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// cleanEnv is this process's environment without berth's own variables,
// so a developer's BERTH_PASSWORD cannot change what a test sees.
func cleanEnv() []string {
	var out []string
	for _, kv := range exec.Command("true").Environ() {
		if !strings.HasPrefix(kv, "BERTH_") && !strings.HasPrefix(kv, "DOCKER_CONFIG=") {
			out = append(out, kv)
		}
	}
	return out
}

// TestFirstHourLogin is issue 18's newcomer without credentials: every
// command says plainly that it is not logged in, or that the password is
// wrong, and exits 1; after berth login the same commands work, crane
// included; after berth logout they fail again.
func TestFirstHourLogin(t *testing.T) {
	crane := peer(t, "crane")
	s := startBerthAuth(t)
	home := t.TempDir()
	env := []string{"HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, ".cache")}
	image := s.Addr + "/team-a/app:1"
	server := "--server=http://" + s.Addr

	notLoggedIn := "not logged in to " + s.Addr + ": run 'berth login " + s.Addr + "'"
	for _, args := range [][]string{
		{"admin", "project", "list", server},
		{"audit", "query", server},
		{"sbom", "--no-cache", image},
	} {
		_, stderr, code := berthRun(t, env, "", args...)
		if code != 1 || !strings.Contains(stderr, notLoggedIn) {
			t.Errorf("berth %s without credentials: exit %d\n%s", strings.Join(args, " "), code, stderr)
		}
	}

	_, stderr, code := berthRun(t, env, "wrong-password\n", "login", s.Addr, "-u", "admin", "--password-stdin")
	if code != 1 || strings.TrimSpace(stderr) != "berth: wrong username or password for admin at "+s.Addr {
		t.Errorf("login with a wrong password: exit %d\n%s", code, stderr)
	}
	stdout, stderr, code := berthRun(t, env, s.Password+"\n", "login", s.Addr, "-u", "admin", "--password-stdin")
	if code != 0 || !strings.Contains(stdout, "logged in to "+s.Addr+" as admin") {
		t.Fatalf("login: exit %d\n%s%s", code, stdout, stderr)
	}
	// crane reads what berth login stored.
	layout := untar(t, sharedImage(t, "debian-bookworm-minbase.oci.tar"))
	run(t, env, crane, "push", layout, image)
	if _, stderr, code := berthRun(t, env, "", "admin", "project", "list", server); code != 0 {
		t.Errorf("admin after login: exit %d\n%s", code, stderr)
	}
	if stdout, stderr, code := berthRun(t, env, "", "sbom", "--no-cache", "-f", "json", image); code != 0 || !strings.Contains(stdout, `"packages"`) {
		t.Errorf("sbom of a private image after login: exit %d\n%s", code, stderr)
	}

	if stdout, _, code := berthRun(t, env, "", "logout", s.Addr); code != 0 || !strings.Contains(stdout, "logged out of "+s.Addr) {
		t.Errorf("logout: exit %d\n%s", code, stdout)
	}
	if _, stderr, code := berthRun(t, env, "", "admin", "user", "list", server); code != 1 || !strings.Contains(stderr, notLoggedIn) {
		t.Errorf("admin after logout: exit %d\n%s", code, stderr)
	}
}

// TestFirstHourHarborGaps: a repository is deleted with berth admin repo
// delete (crane then finds nothing), a project with repositories with
// --force, and a robot's refused `crane ls` is in the audit log as the
// list it was.
func TestFirstHourHarborGaps(t *testing.T) {
	crane := peer(t, "crane")
	s := startBerthAuth(t)
	layout := untar(t, sharedImage(t, "debian-bookworm-minbase.oci.tar"))
	admin := []string{"HOME=" + t.TempDir()}
	run(t, admin, crane, "auth", "login", s.Addr, "-u", "admin", "-p", s.Password)
	run(t, admin, crane, "push", layout, s.Addr+"/team-a/app:1")
	run(t, admin, crane, "push", layout, s.Addr+"/team-b/tool:1")

	robot, secret := newRobot(t, s, "puller", "team-a=pull")
	bot := []string{"HOME=" + t.TempDir()}
	run(t, bot, crane, "auth", "login", s.Addr, "-u", robot, "-p", secret)
	run(t, bot, crane, "digest", s.Addr+"/team-a/app:1")
	out, err := runErr(bot, crane, "ls", s.Addr+"/team-a/app")
	expectRefusal(t, "a robot without list lists tags", out, err, "DENIED")
	entries := run(t, []string{"BERTH_PASSWORD=" + s.Password}, berthBin, "audit", "query", "--server", "http://"+s.Addr,
		"--actor", robot, "--result", "denied")
	if !strings.Contains(entries, " list ") || strings.Contains(entries, " pull ") {
		t.Errorf("the robot's refused crane ls is not audited as list:\n%s", entries)
	}

	out = berthAdmin(t, s, "repo", "delete", "team-a/app")
	if !strings.Contains(out, "deleted repository team-a/app (1 manifests)") {
		t.Errorf("repo delete said %q", out)
	}
	out, err = runErr(admin, crane, "ls", s.Addr+"/team-a/app")
	expectRefusal(t, "crane ls of a deleted repository", out, err, "NAME_UNKNOWN")
	if cat := run(t, admin, crane, "catalog", s.Addr); strings.Contains(cat, "team-a/app") {
		t.Errorf("the catalog still lists team-a/app:\n%s", cat)
	}
	// The name is free again.
	run(t, admin, crane, "push", layout, s.Addr+"/team-a/app:2")

	out = berthAdmin(t, s, "project", "delete", "team-b", "--force")
	if !strings.Contains(out, "deleted repository team-b/tool") || !strings.Contains(out, "deleted project team-b") {
		t.Errorf("project delete --force said %q", out)
	}
}
