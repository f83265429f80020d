package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/testpeers"
)

// TestPullTimePolicyCrane: a project policy trusting one key; images
// pushed before it are signed while it is enforced (signers may read what
// they sign); crane pulls through the registry as a robot that may only
// pull. Images signed by that key, with berth sign and with cosign v2 (tag
// scheme) and cosign v3 (sigstore bundle), are served; an unsigned image
// and one signed by another key are refused with DENIED and the rule; the
// signatures stay pullable, so cosign still verifies.
func TestPullTimePolicyCrane(t *testing.T) {
	crane := testpeers.Tool(t, "crane")
	cosign2 := testpeers.Tool(t, "cosign2")
	cosign3 := testpeers.Tool(t, "cosign3")
	layout := untar(t, testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar"))
	s := startBerthAuth(t)
	berthAdmin(t, s, "project", "create", "prod")
	home := t.TempDir()
	env := []string{"HOME=" + home, "BERTH_KEY_PASSWORD=e2e", "COSIGN_PASSWORD=e2e", "TUF_ROOT=" + filepath.Join(home, "tuf")}
	run(t, env, crane, "auth", "login", s.Addr, "-u", "admin", "-p", adminPassword)
	base := s.Addr + "/prod/debian"
	run(t, env, crane, "push", "--insecure", layout, base+":base")
	// Five images with their own digests.
	digests := map[string]string{}
	for _, tag := range []string{"berth", "cosign2", "cosign3", "unsigned", "wrong"} {
		out := run(t, env, crane, "mutate", "--insecure", "--label", "variant="+tag, "-t", base+":"+tag, base+":base")
		digests[tag] = strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "@")+1:])
	}
	keys := t.TempDir()
	run(t, env, berthBin, "key", "generate", "--output-key-prefix", filepath.Join(keys, "trusted"))
	run(t, env, berthBin, "key", "generate", "--output-key-prefix", filepath.Join(keys, "other"))
	trustedKey, otherKey := filepath.Join(keys, "trusted.key"), filepath.Join(keys, "other.key")
	flags := []string{"--allow-http-registry", "--allow-insecure-registry"}

	pub, err := os.ReadFile(filepath.Join(keys, "trusted.pub"))
	if err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: signed-only
spec:
  images:
  - glob: "**"
  authorities:
  - name: release
    key:
      data: |
        %s
`, strings.ReplaceAll(strings.TrimSpace(string(pub)), "\n", "\n        "))
	req, err := http.NewRequest("PUT", "http://"+s.Addr+"/api/v1/projects/prod/policy", bytes.NewReader([]byte(doc)))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", adminPassword)
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("put policy: %s", resp.Status)
	}

	// Signed while the policy is enforced, as a pipeline pushes, then
	// signs: the signers, who may push, read the unsigned images (by tag
	// too) with the refusal as a warning.
	run(t, env, berthBin, "sign", base+":berth", "--key", trustedKey)
	run(t, env, berthBin, "sign", base+"@"+digests["wrong"], "--key", otherKey)
	run(t, env, cosign2, append(append([]string{"sign", "--key", trustedKey, "-y", "--tlog-upload=false"}, flags...), base+":cosign2")...)
	sc := filepath.Join(home, "sc.json")
	run(t, env, cosign3, "signing-config", "create", "--out", sc)
	run(t, env, cosign3, append(append([]string{"sign", "--key", trustedKey, "-y", "--signing-config", sc}, flags...), base+"@"+digests["cosign3"])...)

	// The runtime pulls with an identity that may only pull.
	robot, secret := newRobot(t, s, "runtime", "prod=pull")
	runtimeHome := t.TempDir()
	env = []string{"HOME=" + runtimeHome}
	run(t, env, crane, "auth", "login", s.Addr, "-u", robot, "-p", secret)

	for _, tag := range []string{"berth", "cosign2", "cosign3"} {
		for _, ref := range []string{base + ":" + tag, base + "@" + digests[tag]} {
			out, err := runErr(env, crane, "manifest", "--insecure", ref)
			if err != nil {
				t.Errorf("signed by the trusted key (%s): crane manifest %s: %v\n%s", tag, ref, err, out)
			}
		}
	}
	out, err := runErr(env, crane, "pull", "--insecure", base+":berth", filepath.Join(t.TempDir(), "img.tar"))
	if err != nil {
		t.Errorf("crane pull of a signed image: %v\n%s", err, out)
	}
	for tag, want := range map[string]string{
		"unsigned": "authority release: not signed by [release]",
		"wrong":    "signature does not verify with any given key",
	} {
		for _, ref := range []string{base + ":" + tag, base + "@" + digests[tag]} {
			out, err := runErr(env, crane, "manifest", "--insecure", ref)
			expectRefusal(t, tag+" "+ref, out, err, "DENIED")
			if !strings.Contains(out, "ClusterImagePolicy/signed-only: authority: no authority passed") || !strings.Contains(out, want) {
				t.Errorf("%s: refusal does not name the rule (%q):\n%s", ref, want, out)
			}
		}
		out, err := runErr(env, crane, "pull", "--insecure", base+":"+tag, filepath.Join(t.TempDir(), "img.tar"))
		expectRefusal(t, "crane pull "+tag, out, err, "DENIED")
	}
	// The signatures themselves stay pullable: cosign verifies through
	// the policy.
	env = append(env, "TUF_ROOT="+filepath.Join(runtimeHome, "tuf"))
	out = run(t, env, cosign2, append(append([]string{"verify", "--key", filepath.Join(keys, "trusted.pub"), "--insecure-ignore-tlog"}, flags...), base+"@"+digests["cosign2"])...)
	if !strings.Contains(out, digests["cosign2"]) {
		t.Errorf("cosign verify through the policy:\n%s", out)
	}
}
