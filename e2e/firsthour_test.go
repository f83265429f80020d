package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/testpeers"
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
	crane := testpeers.Tool(t, "crane")
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
	layout := untar(t, testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar"))
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
	crane := testpeers.Tool(t, "crane")
	s := startBerthAuth(t)
	layout := untar(t, testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar"))
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
	if !strings.Contains(out, "deleted repository team-a/app (1 manifest)") {
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

// TestFirstHourTrivyHabits runs berth scan as a Trivy user would in CI: a
// tarball crane pulled given to --input, no database yet (the first scan
// builds it from BERTH_DB_SOURCES), -q printing the report alone, a gate
// that fails on what the database could not judge (a Debian 12 image
// against records without bookworm) unless --allow-uncovered, and the
// image's own SBOM scanned with sbom:FILE.
func TestFirstHourTrivyHabits(t *testing.T) {
	crane := testpeers.Tool(t, "crane")
	vulndata := testpeers.Shared(t, "vulndata")
	s := startBerth(t)
	layout := untar(t, testpeers.Shared(t, "images", "kitchen-sink.oci.tar"))
	home := t.TempDir()
	env := []string{"HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"BERTH_DB_SOURCES=" + filepath.Join(vulndata, "osv") + " debian-tracker:" + filepath.Join(vulndata, "debian-tracker") +
			" nodejs-wg:" + filepath.Join(vulndata, "nodejs-security-wg", "vuln.zip")}
	run(t, env, crane, "push", layout, s.Addr+"/library/kitchen-sink:1")
	tarball := filepath.Join(t.TempDir(), "ks.tar")
	run(t, env, crane, "pull", s.Addr+"/library/kitchen-sink:1", tarball)

	stdout, stderr, code := berthRun(t, env, "", "scan", "-q", "-f", "json", "--input", tarball)
	if code != 0 || stderr != "" {
		t.Fatalf("scan -q --input of crane's tarball: exit %d, stderr %q", code, stderr)
	}
	var rep struct {
		Findings []struct{ ID string }
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Findings) != 26 {
		t.Fatalf("the report on stdout: %v, %d findings", err, len(rep.Findings))
	}
	if _, err := os.Stat(filepath.Join(home, ".cache", "berth", "db")); err != nil {
		t.Errorf("the first scan built no database: %v", err)
	}

	_, stderr, code = berthRun(t, env, "", "scan", "--exit-code", "2", "--severity", "CRITICAL", "-o", os.DevNull, "--input", tarball)
	if code != 3 || !strings.Contains(stderr, "131 packages could not be judged (the database holds no debian 12 records)") {
		t.Errorf("gate on an uncovered release: exit %d\n%s", code, stderr)
	}
	_, stderr, code = berthRun(t, env, "", "scan", "--exit-code", "2", "--severity", "CRITICAL", "--allow-uncovered", "-o", os.DevNull, "--input", tarball)
	if code != 2 || !strings.Contains(stderr, "1 vulnerability (CRITICAL 1)") {
		t.Errorf("gate with --allow-uncovered: exit %d\n%s", code, stderr)
	}

	sbom := filepath.Join(t.TempDir(), "ks.cdx.json")
	berthRun(t, env, "", "sbom", "-o", sbom, s.Addr+"/library/kitchen-sink:1")
	stdout, stderr, code = berthRun(t, env, "", "scan", "-q", "-f", "json", "sbom:"+sbom)
	rep.Findings = nil
	if err := json.Unmarshal([]byte(stdout), &rep); code != 0 || err != nil || len(rep.Findings) != 26 {
		t.Errorf("scan sbom:FILE of berth's own SBOM: exit %d, %d findings (want 26, as the image)\n%s", code, len(rep.Findings), stderr)
	}
}
