package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/keys"
)

// TestCosignHabits runs berth sign and verify the way scripts written for
// cosign call them: the flags that mean nothing for berth are accepted with
// a one-line note (and refused when they ask for what berth cannot do), the
// signature and payload land in the files named, and --referrers warns
// about cosign v2.
func TestCosignHabits(t *testing.T) {
	reg := newAttestRegistry(t)
	image := reg.push(t, "team/app:1", nodeImage(t, "amd64", "4.17.15"))
	k := writeKeys(t, false)
	dir := t.TempDir()
	sigFile, payloadFile, certFile := filepath.Join(dir, "sig"), filepath.Join(dir, "payload"), filepath.Join(dir, "cert")

	_, stderr, err := run(t, newSignCmd(), append(k.sign(), "--tlog-upload=false", "-y",
		"--output-signature", sigFile, "--output-payload", payloadFile, "--output-certificate", certFile, image)...)
	if err != nil {
		t.Fatalf("sign with cosign's flags: %v\n%s", err, stderr)
	}
	for _, want := range []string{
		"note: --tlog-upload=false changes nothing: berth never uploads to a transparency log\n",
		"note: --yes changes nothing: berth asks for no confirmation\n",
		"note: --output-certificate: a key signature has no certificate; " + certFile + " is not written\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if _, err := os.Stat(certFile); !os.IsNotExist(err) {
		t.Errorf("a certificate file was written: %v", err)
	}
	sig, err := base64.StdEncoding.DecodeString(string(readFile(t, sigFile)))
	if err != nil {
		t.Fatalf("--output-signature is not base64: %v", err)
	}
	payload := readFile(t, payloadFile)
	if _, digest, _ := strings.Cut(image, "@"); !strings.Contains(string(payload), digest) {
		t.Errorf("payload does not name the digest: %s", payload)
	}
	pub, err := keys.ParsePublic(readFile(t, k.pub))
	if err != nil {
		t.Fatal(err)
	}
	if err := sign.VerifyBlob(pub, sig, strings.NewReader(string(payload))); err != nil {
		t.Errorf("the written signature does not verify the written payload: %v", err)
	}

	stdout, stderr, err := run(t, newVerifyCmd(), "--key", k.pub, "--insecure-ignore-tlog", image)
	if err != nil || !strings.Contains(stderr, "note: --insecure-ignore-tlog changes nothing") || !strings.Contains(stdout, "docker-manifest-digest") {
		t.Errorf("verify --insecure-ignore-tlog = %v\n%s%s", err, stdout, stderr)
	}

	refused := []struct {
		name string
		args []string
		want string
	}{
		{"tlog upload", append(k.sign(), "--tlog-upload=true", image), "berth does not upload to a transparency log"},
		{"tlog upload, bare", append(k.sign(), "--tlog-upload", image), "berth does not upload to a transparency log"},
		{"outputs with referrers", append(k.sign(), "--referrers", "--output-signature", sigFile, image), "not with --referrers"},
	}
	for _, tc := range refused {
		if _, stderr, err := run(t, newSignCmd(), tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q\n%s", tc.name, err, tc.want, stderr)
		}
	}
	if _, _, err := run(t, newVerifyCmd(), "--key", k.pub, "--insecure-ignore-tlog=false", image); err == nil ||
		!strings.Contains(err.Error(), "berth does not read a transparency log") {
		t.Errorf("verify --insecure-ignore-tlog=false: %v", err)
	}

	_, stderr, err = run(t, newSignCmd(), append(k.sign(), "--referrers", image)...)
	if err != nil || !strings.Contains(stderr, "warning: --referrers: once an image has a sigstore bundle among its referrers, cosign v2 refuses to verify it") {
		t.Errorf("sign --referrers = %v, no warning about cosign v2:\n%s", err, stderr)
	}
}

// TestSignBlobCommands signs a file and verifies it, and a changed file or
// another key fails with exit status 1.
func TestSignBlobCommands(t *testing.T) {
	k := writeKeys(t, false)
	other := writeKeys(t, false)
	dir := t.TempDir()
	file, sigFile := filepath.Join(dir, "SHA256SUMS"), filepath.Join(dir, "SHA256SUMS.sig")
	writeTestFile(t, file, "abc  berth_linux_amd64.tar.gz\n", 0o644)

	stdout, _, err := run(t, newSignBlobCmd(), append(k.sign(), "--tlog-upload=false", file)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := base64.StdEncoding.DecodeString(strings.TrimSpace(stdout)); err != nil {
		t.Fatalf("sign-blob printed %q, not base64", stdout)
	}
	if _, _, err := run(t, newSignBlobCmd(), append(k.sign(), "--output-signature", sigFile, file)...); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := run(t, newVerifyBlobCmd(), "--key", k.pub, "--signature", sigFile, "--insecure-ignore-tlog", file); err != nil || !strings.Contains(stderr, "Verified OK") {
		t.Errorf("verify-blob = %v\n%s", err, stderr)
	}
	if _, _, err := run(t, newVerifyBlobCmd(), "--key", other.pub, "--signature", sigFile, file); err == nil {
		t.Error("verify-blob with another key succeeded")
	}
	writeTestFile(t, file, "abd  berth_linux_amd64.tar.gz\n", 0o644)
	if _, _, err := run(t, newVerifyBlobCmd(), "--key", k.pub, "--signature", sigFile, file); err == nil {
		t.Error("verify-blob of a changed file succeeded")
	}
}
