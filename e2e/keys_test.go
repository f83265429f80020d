package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testpeers"
)

// keyServer starts a server with a master key and a database built from
// ../shared/vulndata plus one CRITICAL advisory of our own, and waits
// until the database is in place.
func keyServer(t *testing.T, feedURL, master string) *server {
	t.Helper()
	s := startBerthAuth(t, "--db-source", feedURL+"/osv", "--db-update-interval", "0", "--master-key", "file:"+master)
	waitDB(t, s)
	return s
}

func waitDB(t *testing.T, s *server) {
	t.Helper()
	apiCall(t, s, "POST", "/api/v1/vulndb/update", nil, http.StatusAccepted, nil)
	var status struct {
		Ready bool `json:"ready"`
	}
	for deadline := time.Now().Add(2 * time.Minute); !status.Ready && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		apiCall(t, s, "GET", "/api/v1/vulndb", nil, http.StatusOK, &status)
	}
	if !status.Ready {
		t.Fatal("vulnerability database not ready")
	}
}

func newMasterKey(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	p := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(k)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// npmLayer writes a layer tar holding one installed npm package.
func npmLayer(t *testing.T, name, version string) string {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	body := fmt.Sprintf(`{"name":%q,"version":%q,"license":"MIT"}`, name, version)
	tw.WriteHeader(&tar.Header{Name: "app/node_modules/" + name + "/package.json", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write([]byte(body))
	tw.Close()
	p := filepath.Join(t.TempDir(), name+".tar")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// berthKey runs `berth key …` against s as the administrator.
func berthKey(t *testing.T, s *server, env []string, args ...string) (string, error) {
	t.Helper()
	return runErr(append([]string{"BERTH_PASSWORD=" + s.Password}, env...), berthBin,
		append(append([]string{"key"}, args[:1]...), append([]string{"--server", "http://" + s.Addr}, args[1:]...)...)...)
}

// approval polls an artifact's approvals until the scan stage has said
// something, and returns its state ("" if it never does within wait).
func approval(t *testing.T, s *server, project, repo, ref string, wait time.Duration) string {
	t.Helper()
	for deadline := time.Now().Add(wait); ; time.Sleep(200 * time.Millisecond) {
		var list []struct{ Stage, State string }
		apiCall(t, s, "GET", "/api/v1/projects/"+project+"/repositories/"+repo+"/artifacts/"+ref+"/approvals", nil, http.StatusOK, &list)
		for _, a := range list {
			if a.Stage == "scan" {
				return a.State
			}
		}
		if time.Now().After(deadline) {
			return ""
		}
	}
}

// digestOf returns the manifest digest crane resolves ref to.
func digestOf(t *testing.T, env []string, crane, ref string) string {
	t.Helper()
	return strings.TrimSpace(run(t, env, crane, "digest", "--insecure", ref))
}

// TestScanStageSignature is issue 14's proof with the real binary and
// cosign v2: the server holds the project's scan key; a pushed image
// whose scan passes is signed by the server, and the signature verifies
// with `cosign verify --key` and `berth verify` given the public key
// fetched from the API; an image with a CRITICAL finding gets no
// signature (the stage's rule is a policy: no CRITICAL finding and no
// secret; one requiring signatures is refused); a production policy
// requiring the ci key and the scan key
// (berth verify --require 2 with a trust file) admits only the first.
// Then the disaster drill: back up the keys, destroy the data directory,
// restore into a new server under another master key; the old signature
// (kept in a mirror) verifies with the restored server's public key and
// the new server signs with the same identity. A wrong passphrase
// restores nothing; the private key is never served.
func TestScanStageSignature(t *testing.T) {
	crane, cosign := testpeers.Tool(t, "crane"), testpeers.Tool(t, "cosign2")
	feed, feedSrv := copyFeed(t)
	addAdvisory(t, feed, "GHSA-e2e-crit-0001", "berth-e2e-bad", "2.0.0")
	s := keyServer(t, feedSrv.URL, newMasterKey(t))
	home := t.TempDir()
	env := []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker")}
	run(t, env, crane, "auth", "login", "-u", "admin", "-p", s.Password, s.Addr)

	berthAdmin(t, s, "project", "create", "team")
	if out, err := berthKey(t, s, env, "create", "team", "scan"); err != nil || !strings.Contains(out, "BEGIN PUBLIC KEY") {
		t.Fatalf("key create: %v\n%s", err, out)
	}
	// The stage's rule is a policy (judged by the policy engine, as a
	// project policy is); one that requires signatures is refused.
	stagePolicy := filepath.Join(t.TempDir(), "stage.yaml")
	os.WriteFile(stagePolicy, []byte("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: stage}\nspec:\n"+
		"  vulnerabilities: {severity: CRITICAL}\n  secrets: {deny: true}\n"), 0o644)
	signers := filepath.Join(t.TempDir(), "signers.yaml")
	os.WriteFile(signers, []byte("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: prod}\nspec:\n  signers:\n    keys:\n    - ref: scan\n"), 0o644)
	if out, err := berthKey(t, s, env, "stage", "team", "--key", "scan", "--policy", signers); err == nil || !strings.Contains(out, "cannot require signatures") {
		t.Errorf("key stage with a policy requiring signatures: %v\n%s", err, out)
	}
	if out, err := berthKey(t, s, env, "stage", "team", "--key", "scan", "--policy", stagePolicy, "--attest"); err != nil {
		t.Fatalf("key stage: %v\n%s", err, out)
	}
	good, bad := s.Addr+"/team/good:v1", s.Addr+"/team/bad:v1"
	run(t, env, crane, "append", "--insecure", "-f", npmLayer(t, "berth-e2e-good", "1.0.0"), "-t", good)
	run(t, env, crane, "append", "--insecure", "-f", npmLayer(t, "berth-e2e-bad", "1.0.0"), "-t", bad)
	goodRef := s.Addr + "/team/good@" + digestOf(t, env, crane, good)
	badRef := s.Addr + "/team/bad@" + digestOf(t, env, crane, bad)
	waitReport(t, s, "/api/v1/projects/team/repositories/bad/artifacts/v1/vulnerabilities")
	if st := approval(t, s, "team", "good", "v1", 2*time.Minute); st != "approved" {
		t.Fatalf("scan stage of the clean image: %q, want approved", st)
	}

	// The public key, as anyone who may pull fetches it.
	dir := t.TempDir()
	scanPub := filepath.Join(dir, "scan.pub")
	pem, err := berthKey(t, s, env, "list", "team", "--pem", "scan")
	if err != nil {
		t.Fatalf("key list --pem: %v\n%s", err, pem)
	}
	os.WriteFile(scanPub, []byte(pem), 0o644)
	cosignEnv := append(env, "COSIGN_PASSWORD=")
	if out, err := runErr(cosignEnv, cosign, "verify", "--key", scanPub, "--insecure-ignore-tlog", "--allow-http-registry",
		"-a", "dev.berth.stage=scan", goodRef); err != nil {
		t.Fatalf("cosign verify of the scan stage's signature: %v\n%s", err, out)
	}
	if out, err := runErr(cosignEnv, cosign, "verify-attestation", "--key", scanPub, "--insecure-ignore-tlog", "--allow-http-registry",
		"--type", "vuln", goodRef); err != nil {
		t.Fatalf("cosign verify-attestation of the scan stage's vuln attestation: %v\n%s", err, out)
	}
	if out, err := runErr(env, berthBin, "verify", "--key", scanPub, "-a", "dev.berth.stage=scan", goodRef); err != nil {
		t.Fatalf("berth verify: %v\n%s", err, out)
	}
	if out, err := runErr(env, berthBin, "verify", "--key", scanPub, badRef); err == nil || !strings.Contains(out, "no signatures") {
		t.Errorf("the image with a CRITICAL finding verifies (or fails otherwise): %v\n%s", err, out)
	}
	if st := approval(t, s, "team", "bad", "v1", 0); st != "" {
		t.Errorf("the failing image has a scan approval: %s", st)
	}

	// Production: ci AND scan. The ci key is the pipeline's own.
	ciEnv := append(env, "BERTH_KEY_PASSWORD=ci-key-password")
	run(t, ciEnv, berthBin, "key", "generate", "--output-key-prefix", filepath.Join(dir, "ci"))
	for _, ref := range []string{goodRef, badRef} {
		run(t, ciEnv, berthBin, "sign", "--key", filepath.Join(dir, "ci.key"), ref)
	}
	scanTrust, err := berthKey(t, s, env, "list", "team", "--trust", "scan")
	if err != nil {
		t.Fatalf("key list --trust: %v\n%s", err, scanTrust)
	}
	prod := filepath.Join(dir, "prod.yaml")
	os.WriteFile(prod, []byte("require: 2\nkeys:\n  - name: ci\n    path: ci.pub\n  - name: scan\n    path: scan.pub\n"), 0o644)
	if out, err := runErr(env, berthBin, "verify", "--trust", prod, goodRef); err != nil {
		t.Fatalf("production policy (ci and scan) refuses the clean image: %v\n%s", err, out)
	}
	if out, err := runErr(env, berthBin, "verify", "--trust", prod, badRef); err == nil {
		t.Errorf("production policy (ci and scan) admits the image with a CRITICAL finding:\n%s", out)
	}
	// The trust file the server publishes verifies too.
	served := filepath.Join(dir, "served.yaml")
	os.WriteFile(served, []byte(scanTrust), 0o644)
	if out, err := runErr(env, berthBin, "verify", "--trust", served, goodRef); err != nil {
		t.Fatalf("berth verify --trust with the served trust file: %v\n%s", err, out)
	}

	// A stage people approve: staging requires the scan stage; an
	// approval is the server's signature with the staging key, which
	// cosign verifies.
	if out, err := berthKey(t, s, env, "create", "team", "staging"); err != nil {
		t.Fatalf("key create staging: %v\n%s", err, out)
	}
	if out, err := berthKey(t, s, env, "stage", "team", "--stage", "staging", "--requires", "scan"); err != nil || !strings.Contains(out, "scan") {
		t.Fatalf("key stage --stage staging: %v\n%s", err, out)
	}
	if out, err := berthKey(t, s, env, "approve", "team/bad:v1", "staging"); err == nil || !strings.Contains(out, "the scan stage has not approved it") {
		t.Errorf("approving the image the scan stage refused: %v\n%s", err, out)
	}
	if out, err := berthKey(t, s, env, "approve", "team/good:v1", "staging"); err != nil || !strings.Contains(out, "approved") {
		t.Fatalf("key approve: %v\n%s", err, out)
	}
	stagingPub := filepath.Join(dir, "staging.pub")
	if pem, err := berthKey(t, s, env, "list", "team", "--pem", "staging"); err != nil {
		t.Fatalf("key list --pem staging: %v\n%s", err, pem)
	} else {
		os.WriteFile(stagingPub, []byte(pem), 0o644)
	}
	if out, err := runErr(cosignEnv, cosign, "verify", "--key", stagingPub, "--insecure-ignore-tlog", "--allow-http-registry",
		"-a", "dev.berth.stage=staging", goodRef); err != nil {
		t.Fatalf("cosign verify of the staging approval's signature: %v\n%s", err, out)
	}

	// Nobody gets a private key.
	apiCall(t, s, "GET", "/api/v1/projects/team/keys/scan/private", nil, http.StatusForbidden, nil)

	// The drill. A mirror keeps the signed image (as a registry backup
	// would); the keys are backed up; the data directory is destroyed.
	mirror := startBerth(t)
	sigTag := "sha256-" + strings.TrimPrefix(goodRef[strings.Index(goodRef, "@sha256:")+1:], "sha256:") + ".sig"
	run(t, env, crane, "copy", "--insecure", goodRef, mirror.Addr+"/team/good:v1")
	run(t, env, crane, "copy", "--insecure", s.Addr+"/team/good:"+sigTag, mirror.Addr+"/team/good:"+sigTag)
	backup := filepath.Join(dir, "keys.backup")
	passEnv := append(env, "BERTH_BACKUP_PASSPHRASE=drill passphrase 2026")
	if out, err := berthKey(t, s, passEnv, "backup", "--out", backup); err != nil {
		t.Fatalf("key backup: %v\n%s", err, out)
	}
	if raw, _ := os.ReadFile(backup); !bytes.HasPrefix(raw, []byte("-----BEGIN BERTH KEY BACKUP-----")) || bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Fatalf("backup file:\n%s", raw)
	}
	stopBerth(t, s)
	if err := os.RemoveAll(s.Data); err != nil {
		t.Fatal(err)
	}

	s2 := keyServer(t, feedSrv.URL, newMasterKey(t))
	run(t, env, crane, "auth", "login", "-u", "admin", "-p", s2.Password, s2.Addr)
	berthAdmin(t, s2, "project", "create", "team")
	wrong := append(env, "BERTH_BACKUP_PASSPHRASE=not the passphrase")
	if out, err := berthKey(t, s2, wrong, "restore", backup); err == nil || !strings.Contains(out, "wrong passphrase") {
		t.Fatalf("restore with a wrong passphrase: %v\n%s", err, out)
	}
	if out, _ := berthKey(t, s2, env, "list", "team", "--json"); strings.Contains(out, "BEGIN PUBLIC KEY") {
		t.Fatalf("a failed restore left keys:\n%s", out)
	}
	if out, err := berthKey(t, s2, passEnv, "restore", backup); err != nil {
		t.Fatalf("key restore: %v\n%s", err, out)
	}
	if out, err := berthKey(t, s2, passEnv, "restore", backup); err == nil || !strings.Contains(out, "already holds signing keys") {
		t.Errorf("a second restore over the keys: %v\n%s", err, out)
	}
	restoredPub := filepath.Join(dir, "restored.pub")
	pem2, err := berthKey(t, s2, env, "list", "team", "--pem", "scan")
	if err != nil || pem2 != pem {
		t.Fatalf("restored scan key differs: %v\n%s\nwant\n%s", err, pem2, pem)
	}
	os.WriteFile(restoredPub, []byte(pem2), 0o644)
	oldRef := mirror.Addr + "/team/good@" + goodRef[strings.Index(goodRef, "@")+1:]
	if out, err := runErr(cosignEnv, cosign, "verify", "--key", restoredPub, "--insecure-ignore-tlog", "--allow-http-registry", oldRef); err != nil {
		t.Fatalf("the old signature does not verify with the restored server's key: %v\n%s", err, out)
	}
	// New signatures come from the same identity: the restored rule signs a
	// fresh push with the restored key.
	good2 := s2.Addr + "/team/good:v2"
	run(t, env, crane, "append", "--insecure", "-f", npmLayer(t, "berth-e2e-good", "1.0.1"), "-t", good2)
	if st := approval(t, s2, "team", "good", "v2", 2*time.Minute); st != "approved" {
		t.Fatalf("scan stage on the restored server: %q", st)
	}
	if out, err := runErr(cosignEnv, cosign, "verify", "--key", scanPub, "--insecure-ignore-tlog", "--allow-http-registry",
		"-a", "dev.berth.stage=scan", s2.Addr+"/team/good@"+digestOf(t, env, crane, good2)); err != nil {
		t.Fatalf("the restored server's new signature does not verify with the original key: %v\n%s", err, out)
	}
}
