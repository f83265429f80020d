package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"berth.dev/berth/internal/testpeers"
)

// Manifest digests of the fixture images, from ../shared/images/README.md.
const (
	kitchenSinkDigest = "sha256:3167c5a45f029a23a7ad667739244fbcaf04072911c6e32cd6d2b8a0da440383"
	minbaseDigest     = "sha256:956bcf9c2c23329e1c717c01f71646fa5a20d19ed9ee3496f56ce11b2afb3754"
)

// untar extracts an OCI archive into a fresh directory.
func untar(t *testing.T, archive string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-C", dir, "-xf", archive).CombinedOutput(); err != nil {
		t.Fatalf("untar %s: %v\n%s", archive, err, out)
	}
	return dir
}

// blobSet lists the blobs of an OCI layout directory and checks that each
// file's sha256 equals its name.
func blobSet(t *testing.T, layout string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(layout, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != e.Name() {
			t.Errorf("blob %s has sha256 %s", e.Name(), got)
		}
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

func TestCrane(t *testing.T) {
	crane := testpeers.Tool(t, "crane")
	layout := untar(t, testpeers.Shared(t, "images", "kitchen-sink.oci.tar"))
	s := startBerth(t)
	ref := s.Addr + "/team-a/kitchen-sink:latest"
	env := []string{"HOME=" + t.TempDir()}

	run(t, env, crane, "push", "--insecure", layout, ref)
	if got := strings.TrimSpace(run(t, env, crane, "digest", "--insecure", ref)); got != kitchenSinkDigest {
		t.Fatalf("crane digest after push = %s, want %s", got, kitchenSinkDigest)
	}

	pulled := filepath.Join(t.TempDir(), "pulled")
	run(t, env, crane, "pull", "--insecure", "--format=oci", ref, pulled)
	if want, got := blobSet(t, layout), blobSet(t, pulled); !slices.Equal(want, got) {
		t.Errorf("pulled blobs differ from pushed:\npushed %v\npulled %v", want, got)
	}

	run(t, env, crane, "copy", "--insecure", ref, s.Addr+"/team-b/copy:v1")
	if got := strings.TrimSpace(run(t, env, crane, "digest", "--insecure", s.Addr+"/team-b/copy:v1")); got != kitchenSinkDigest {
		t.Errorf("copied digest = %s, want %s", got, kitchenSinkDigest)
	}
	run(t, env, crane, "tag", "--insecure", s.Addr+"/team-b/copy:v1", "v2")
	if got := strings.Fields(run(t, env, crane, "ls", "--insecure", s.Addr+"/team-b/copy")); !slices.Equal(got, []string{"v1", "v2"}) {
		t.Errorf("crane ls = %v, want [v1 v2]", got)
	}
	if got := strings.Fields(run(t, env, crane, "catalog", "--insecure", s.Addr)); !slices.Equal(got, []string{"team-a/kitchen-sink", "team-b/copy"}) {
		t.Errorf("crane catalog = %v", got)
	}

	run(t, env, crane, "delete", "--insecure", s.Addr+"/team-b/copy@"+kitchenSinkDigest)
	if out, err := runErr(env, crane, "manifest", "--insecure", s.Addr+"/team-b/copy:v1"); err == nil || !strings.Contains(out, "MANIFEST_UNKNOWN") {
		t.Errorf("manifest after delete: err=%v out=%s; want MANIFEST_UNKNOWN", err, out)
	}
	// The other repository still has its own copy.
	if got := strings.TrimSpace(run(t, env, crane, "digest", "--insecure", ref)); got != kitchenSinkDigest {
		t.Errorf("digest in the first repository after deleting the copy = %s", got)
	}
}

func TestSkopeo(t *testing.T) {
	skopeo := testpeers.Tool(t, "skopeo")
	archive := testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar")
	s := startBerth(t)
	ref := "docker://" + s.Addr + "/library/debian:bookworm"
	env := []string{"HOME=" + t.TempDir()}
	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}

	run(t, env, skopeo, "--policy", policy, "copy", "--dest-tls-verify=false", "oci-archive:"+archive+":latest", ref)
	digest := strings.TrimSpace(run(t, env, skopeo, "inspect", "--tls-verify=false", "--format", "{{.Digest}}", ref))
	if digest != minbaseDigest {
		t.Fatalf("skopeo inspect digest = %s, want %s", digest, minbaseDigest)
	}

	back := filepath.Join(t.TempDir(), "back.oci.tar")
	run(t, env, skopeo, "--policy", policy, "copy", "--src-tls-verify=false", ref, "oci-archive:"+back+":latest")
	if want, got := blobSet(t, untar(t, archive)), blobSet(t, untar(t, back)); !slices.Equal(want, got) {
		t.Errorf("blobs after the round trip differ:\nwant %v\ngot  %v", want, got)
	}
}

func TestOras(t *testing.T) {
	oras := testpeers.Tool(t, "oras")
	s := startBerth(t)
	work := t.TempDir()
	env := []string{"HOME=" + t.TempDir()}
	if err := os.WriteFile(filepath.Join(work, "chart.txt"), []byte("hello from oras\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "sbom.json"), []byte(`{"bomFormat":"CycloneDX"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := s.Addr + "/team-a/artifact:v1"
	orasIn := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(oras, args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("oras %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	orasIn("push", "--plain-http", "--artifact-type", "application/vnd.example.thing", ref, "chart.txt:text/plain")
	orasIn("attach", "--plain-http", "--artifact-type", "application/vnd.example.sbom", ref, "sbom.json:application/json")

	discovered := orasIn("discover", "--plain-http", "--format", "json", ref)
	if !strings.Contains(discovered, "application/vnd.example.sbom") {
		t.Errorf("oras discover does not list the attached artifact:\n%s", discovered)
	}
	filtered := orasIn("discover", "--plain-http", "--format", "json", "--artifact-type", "application/vnd.other", ref)
	if strings.Contains(filtered, "application/vnd.example.sbom") {
		t.Errorf("oras discover --artifact-type application/vnd.other still lists the sbom:\n%s", filtered)
	}

	out := t.TempDir()
	cmd := exec.Command(oras, "pull", "--plain-http", "-o", out, ref)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oras pull: %v\n%s", err, b)
	}
	got, err := os.ReadFile(filepath.Join(out, "chart.txt"))
	if err != nil || string(got) != "hello from oras\n" {
		t.Errorf("pulled chart.txt = %q, %v", got, err)
	}
}

func TestRegctl(t *testing.T) {
	regctl := testpeers.Tool(t, "regctl")
	crane := testpeers.Tool(t, "crane")
	layout := untar(t, testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar"))
	s := startBerth(t)
	env := []string{"HOME=" + t.TempDir()}
	run(t, env, crane, "push", "--insecure", layout, s.Addr+"/base/debian:12")

	run(t, env, regctl, "registry", "set", "--tls", "disabled", s.Addr)
	run(t, env, regctl, "image", "copy", s.Addr+"/base/debian:12", s.Addr+"/mirror/debian:12")
	if got := strings.TrimSpace(run(t, env, regctl, "image", "digest", s.Addr+"/mirror/debian:12")); got != minbaseDigest {
		t.Errorf("regctl image digest = %s, want %s", got, minbaseDigest)
	}
	if got := strings.Fields(run(t, env, regctl, "tag", "ls", s.Addr+"/mirror/debian")); !slices.Equal(got, []string{"12"}) {
		t.Errorf("regctl tag ls = %v", got)
	}
	sbom := filepath.Join(t.TempDir(), "sbom.json")
	if err := os.WriteFile(sbom, []byte(`{"spdxVersion":"SPDX-2.3"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, env, regctl, "artifact", "put", "--artifact-type", "application/spdx+json",
		"--subject", s.Addr+"/mirror/debian:12", "-f", sbom, s.Addr+"/mirror/debian")
	referrers := run(t, env, regctl, "artifact", "list", "--format", "body", s.Addr+"/mirror/debian:12")
	if !strings.Contains(referrers, `"artifactType":"application/spdx+json"`) {
		t.Errorf("regctl artifact list does not show the SBOM referrer:\n%s", referrers)
	}

	manifest := run(t, env, regctl, "manifest", "get", "--format", "raw-body", s.Addr+"/mirror/debian:12")
	sum := sha256.Sum256([]byte(manifest))
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != minbaseDigest {
		t.Errorf("raw manifest from regctl hashes to %s, want %s", got, minbaseDigest)
	}
}
