package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"berth.dev/berth/internal/testpeers"
)

// berthAdmin runs `berth admin …` against s as the administrator.
func berthAdmin(t *testing.T, s *server, args ...string) string {
	t.Helper()
	return run(t, []string{"BERTH_PASSWORD=" + s.Password}, berthBin,
		append([]string{"admin", "--server", "http://" + s.Addr}, args...)...)
}

// newUser creates a user with a role in project (created if needed) and
// returns its password.
func newUser(t *testing.T, s *server, name, project, role string) string {
	t.Helper()
	password := name + "-e2e-password"
	berthAdmin(t, s, "user", "create", name, "--new-password", password)
	if project != "" {
		if _, err := runErr([]string{"BERTH_PASSWORD=" + s.Password}, berthBin, "admin", "--server", "http://"+s.Addr, "project", "get", project); err != nil {
			berthAdmin(t, s, "project", "create", project)
		}
		berthAdmin(t, s, "member", "add", project, name, "--role", role)
	}
	return password
}

// newRobot creates a robot and returns its name and secret.
func newRobot(t *testing.T, s *server, name string, permissions ...string) (string, string) {
	t.Helper()
	args := []string{"robot", "create", name}
	for _, p := range permissions {
		args = append(args, "--permission", p)
	}
	out := berthAdmin(t, s, args...)
	m := regexp.MustCompile(`secret \(shown only now\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no secret in %q", out)
	}
	return "robot$" + name, m[1]
}

// expectRefusal checks a failing client run and that its output names one
// of the registry's refusal codes.
func expectRefusal(t *testing.T, what, out string, err error, codes ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s succeeded:\n%s", what, out)
		return
	}
	for _, c := range codes {
		if strings.Contains(out, c) {
			return
		}
	}
	t.Errorf("%s failed without %v:\n%s", what, codes, out)
}

func TestAuthCrane(t *testing.T) {
	crane := testpeers.Tool(t, "crane")
	layout := untar(t, testpeers.Shared(t, "images", "kitchen-sink.oci.tar"))
	s := startBerthAuth(t)
	devPassword := newUser(t, s, "dev", "team-a", "developer")
	admin := []string{"HOME=" + t.TempDir()}
	dev := []string{"HOME=" + t.TempDir()}
	anon := []string{"HOME=" + t.TempDir()}
	run(t, admin, crane, "auth", "login", s.Addr, "-u", "admin", "-p", s.Password)
	run(t, dev, crane, "auth", "login", s.Addr, "-u", "dev", "-p", devPassword)

	private := s.Addr + "/team-a/kitchen-sink:latest"
	run(t, dev, crane, "push", "--insecure", layout, private)
	if got := strings.TrimSpace(run(t, dev, crane, "digest", "--insecure", private)); got != kitchenSinkDigest {
		t.Fatalf("digest = %s", got)
	}
	pulled := filepath.Join(t.TempDir(), "pulled")
	run(t, dev, crane, "pull", "--insecure", "--format=oci", private, pulled)
	if want, got := blobSet(t, layout), blobSet(t, pulled); !slices.Equal(want, got) {
		t.Errorf("pulled blobs differ from pushed")
	}
	// A developer may not delete; the administrator may.
	out, err := runErr(dev, crane, "delete", "--insecure", s.Addr+"/team-a/kitchen-sink@"+kitchenSinkDigest)
	expectRefusal(t, "developer delete", out, err, "DENIED")

	// Anonymous: the private project answers UNAUTHORIZED, the public
	// library serves.
	out, err = runErr(anon, crane, "manifest", "--insecure", private)
	expectRefusal(t, "anonymous pull of a private project", out, err, "UNAUTHORIZED")
	public := s.Addr + "/library/kitchen-sink:latest"
	out, err = runErr(dev, crane, "copy", "--insecure", private, public)
	expectRefusal(t, "developer push to library", out, err, "DENIED")
	run(t, admin, crane, "copy", "--insecure", private, public)
	if got := strings.TrimSpace(run(t, anon, crane, "digest", "--insecure", public)); got != kitchenSinkDigest {
		t.Errorf("anonymous pull from the public project = %s", got)
	}
	// The catalog shows each caller what it may see.
	if got := strings.Fields(run(t, anon, crane, "catalog", "--insecure", s.Addr)); !slices.Equal(got, []string{"library/kitchen-sink"}) {
		t.Errorf("anonymous catalog = %v", got)
	}
	if got := strings.Fields(run(t, dev, crane, "catalog", "--insecure", s.Addr)); !slices.Equal(got, []string{"library/kitchen-sink", "team-a/kitchen-sink"}) {
		t.Errorf("developer catalog = %v", got)
	}
	run(t, admin, crane, "delete", "--insecure", s.Addr+"/team-a/kitchen-sink@"+kitchenSinkDigest)

	// A wrong password is refused, never retried into a lockout.
	bad := []string{"HOME=" + t.TempDir()}
	run(t, bad, crane, "auth", "login", s.Addr, "-u", "dev", "-p", "wrong-password")
	out, err = runErr(bad, crane, "digest", "--insecure", public)
	expectRefusal(t, "wrong password", out, err, "UNAUTHORIZED", "401")
}

func TestAuthSkopeo(t *testing.T) {
	skopeo := testpeers.Tool(t, "skopeo")
	archive := testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar")
	s := startBerthAuth(t)
	env := []string{"HOME=" + t.TempDir()}
	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := "docker://" + s.Addr + "/team-b/debian:bookworm"
	creds := "admin:" + s.Password
	run(t, env, skopeo, "--policy", policy, "copy", "--dest-tls-verify=false", "--dest-creds", creds, "oci-archive:"+archive+":latest", ref)
	if got := strings.TrimSpace(run(t, env, skopeo, "inspect", "--tls-verify=false", "--creds", creds, "--format", "{{.Digest}}", ref)); got != minbaseDigest {
		t.Errorf("inspect = %s", got)
	}
	back := filepath.Join(t.TempDir(), "back.oci.tar")
	run(t, env, skopeo, "--policy", policy, "copy", "--src-tls-verify=false", "--src-creds", creds, ref, "oci-archive:"+back+":latest")
	out, err := runErr(env, skopeo, "inspect", "--tls-verify=false", ref)
	expectRefusal(t, "anonymous inspect of a private project", out, err, "unauthorized", "authentication required")
	outsider := newUser(t, s, "outsider", "", "")
	out, err = runErr(env, skopeo, "inspect", "--tls-verify=false", "--creds", "outsider:"+outsider, ref)
	expectRefusal(t, "non-member inspect", out, err, "denied", "DENIED")
}

func TestAuthOras(t *testing.T) {
	oras := testpeers.Tool(t, "oras")
	s := startBerthAuth(t)
	work := t.TempDir()
	env := []string{"HOME=" + t.TempDir()}
	if err := os.WriteFile(filepath.Join(work, "chart.txt"), []byte("hello with auth\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	berthAdmin(t, s, "project", "create", "team-c")
	robot, secret := newRobot(t, s, "ci", "library=pull,push", "team-c=pull")
	orasRun := func(args ...string) (string, error) { return runIn(work, env, oras, args...) }
	if out, err := orasRun("login", "--plain-http", "-u", robot, "-p", secret, s.Addr); err != nil {
		t.Fatalf("oras login: %v\n%s", err, out)
	}
	ref := s.Addr + "/library/artifact:v1"
	if out, err := orasRun("push", "--plain-http", "--artifact-type", "application/vnd.example.thing", ref, "chart.txt:text/plain"); err != nil {
		t.Fatalf("oras push as a robot: %v\n%s", err, out)
	}
	dest := t.TempDir()
	if out, err := orasRun("pull", "--plain-http", "-o", dest, ref); err != nil {
		t.Fatalf("oras pull: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(filepath.Join(dest, "chart.txt")); err != nil || string(got) != "hello with auth\n" {
		t.Errorf("pulled %q, %v", got, err)
	}
	out, err := orasRun("push", "--plain-http", s.Addr+"/team-c/artifact:v1", "chart.txt:text/plain")
	expectRefusal(t, "robot push beyond its scope", out, err, "denied", "DENIED", "403")
	berthAdmin(t, s, "robot", "revoke", robot)
	out, err = orasRun("push", "--plain-http", ref, "chart.txt:text/plain")
	expectRefusal(t, "revoked robot push", out, err, "unauthorized", "UNAUTHORIZED", "401")
}

func TestAuthRegctl(t *testing.T) {
	regctl := testpeers.Tool(t, "regctl")
	crane := testpeers.Tool(t, "crane")
	layout := untar(t, testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar"))
	s := startBerthAuth(t)
	env := []string{"HOME=" + t.TempDir()}
	run(t, env, crane, "auth", "login", s.Addr, "-u", "admin", "-p", s.Password)
	run(t, env, crane, "push", "--insecure", layout, s.Addr+"/base/debian:12")
	maintainer := newUser(t, s, "maint", "mirror", "maintainer")
	renv := []string{"HOME=" + t.TempDir()}
	run(t, renv, regctl, "registry", "set", "--tls", "disabled", s.Addr)
	run(t, renv, regctl, "registry", "login", s.Addr, "-u", "maint", "-p", maintainer)
	out, err := runErr(renv, regctl, "image", "copy", s.Addr+"/base/debian:12", s.Addr+"/mirror/debian:12")
	expectRefusal(t, "copy from a project the maintainer is not in", out, err, "denied", "unauthorized", "403", "401")
	berthAdmin(t, s, "member", "add", "base", "maint", "--role", "guest")
	run(t, renv, regctl, "image", "copy", s.Addr+"/base/debian:12", s.Addr+"/mirror/debian:12")
	if got := strings.TrimSpace(run(t, renv, regctl, "image", "digest", s.Addr+"/mirror/debian:12")); got != minbaseDigest {
		t.Errorf("digest = %s", got)
	}
	if got := strings.Fields(run(t, renv, regctl, "tag", "ls", s.Addr+"/mirror/debian")); !slices.Equal(got, []string{"12"}) {
		t.Errorf("tag ls = %v", got)
	}
	run(t, renv, regctl, "tag", "delete", s.Addr+"/mirror/debian:12")
}

func TestAuthCosign(t *testing.T) {
	cosign := testpeers.Tool(t, "cosign2")
	crane := testpeers.Tool(t, "crane")
	layout := untar(t, testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar"))
	s := startBerthAuth(t)
	berthAdmin(t, s, "project", "create", "signed")
	robot, secret := newRobot(t, s, "signer", "signed=pull,push,list")
	home := t.TempDir()
	env := []string{"HOME=" + home, "COSIGN_PASSWORD=e2e", "TUF_ROOT=" + filepath.Join(home, "tuf")}
	run(t, env, crane, "auth", "login", s.Addr, "-u", robot, "-p", secret)
	image := s.Addr + "/signed/debian:12"
	run(t, env, crane, "push", "--insecure", layout, image)
	ref := s.Addr + "/signed/debian@" + minbaseDigest
	run(t, env, cosign, "login", s.Addr, "-u", robot, "-p", secret)
	keyDir := t.TempDir()
	out, err := runIn(keyDir, env, cosign, "generate-key-pair")
	if err != nil {
		t.Fatalf("generate-key-pair: %v\n%s", err, out)
	}
	flags := []string{"--allow-http-registry", "--allow-insecure-registry"}
	run(t, env, cosign, append(append([]string{"sign", "--key", filepath.Join(keyDir, "cosign.key"), "-y", "--tlog-upload=false"}, flags...), ref)...)
	out = run(t, env, cosign, append(append([]string{"verify", "--key", filepath.Join(keyDir, "cosign.pub"), "--insecure-ignore-tlog"}, flags...), ref)...)
	if !strings.Contains(out, minbaseDigest) {
		t.Errorf("verify output lacks the digest:\n%s", out)
	}
	// Without credentials the private project's signature is out of reach.
	anon := []string{"HOME=" + t.TempDir(), "TUF_ROOT=" + filepath.Join(home, "tuf2")}
	out, err = runErr(anon, cosign, append(append([]string{"verify", "--key", filepath.Join(keyDir, "cosign.pub"), "--insecure-ignore-tlog"}, flags...), ref)...)
	expectRefusal(t, "anonymous verify in a private project", out, err, "UNAUTHORIZED", "401")
	// The signature tag is there (the robot holds the list action).
	if tags := run(t, env, crane, "ls", "--insecure", s.Addr+"/signed/debian"); !strings.Contains(tags, strings.Replace(minbaseDigest, ":", "-", 1)+".sig") {
		t.Errorf("no signature tag:\n%s", tags)
	}
}

// TestAuthAuditTrail checks that what the clients did is in the audit
// log, queried with the CLI, and that the chain verifies offline after
// the server stops.
func TestAuthAuditTrail(t *testing.T) {
	crane := testpeers.Tool(t, "crane")
	layout := untar(t, testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar"))
	s := startBerthAuth(t)
	env := []string{"HOME=" + t.TempDir()}
	run(t, env, crane, "auth", "login", s.Addr, "-u", "admin", "-p", s.Password)
	run(t, env, crane, "push", "--insecure", layout, s.Addr+"/audited/debian:12")
	run(t, env, crane, "manifest", "--insecure", s.Addr+"/audited/debian:12")
	out := run(t, []string{"BERTH_PASSWORD=" + s.Password}, berthBin, "audit", "query", "--server", "http://"+s.Addr,
		"--project", "audited", "--json")
	var page struct {
		Entries []struct{ Actor, Action, Result, Digest string }
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	seen := map[string]bool{}
	for _, e := range page.Entries {
		if e.Actor == "admin" && e.Digest == minbaseDigest {
			seen[e.Action] = true
		}
	}
	if !seen["push"] || !seen["pull"] {
		t.Errorf("audit lacks the push or the pull: %s", out)
	}
	resp, err := http.Get("http://" + s.Addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous /v2/ = %d", resp.StatusCode)
	}
	stopBerth(t, s)
	out = run(t, nil, berthBin, "audit", "verify", "--data", s.Data)
	if !strings.Contains(out, "audit log verified") {
		t.Errorf("offline verify:\n%s", out)
	}
}
