package sign

// Interoperability with the real cosign, v2 and v3: each side verifies
// what the other wrote, keys move both ways, and `cosign tree` lists what
// berth attached. The binaries are looked up as cosign2 and cosign3 in
// $BERTH_PEERS or on PATH; a test skips when its binary is absent.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/sign/attestation"
	"berth.dev/berth/internal/sign/keys"
)

const cosignPassword = "interop"

// cosign is one cosign binary and the flags it needs to work offline
// against a plain-HTTP loopback registry.
type cosign struct {
	bin     string
	major   int
	workdir string
}

func findCosign(t *testing.T, major int) *cosign {
	t.Helper()
	name := map[int]string{2: "cosign2", 3: "cosign3"}[major]
	var bin string
	if dir := os.Getenv("BERTH_PEERS"); dir != "" {
		if p := filepath.Join(dir, name); fileExists(p) {
			bin = p
		}
	}
	if bin == "" {
		if home, err := os.UserHomeDir(); err == nil {
			if p := filepath.Join(home, ".cache", "berth-peers", name); fileExists(p) {
				bin = p
			}
		}
	}
	if bin == "" {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Skipf("%s not found in $BERTH_PEERS or PATH", name)
		}
		bin = p
	}
	c := &cosign{bin: bin, major: major, workdir: t.TempDir()}
	if major == 3 {
		// A signing config without services: sign with the key, upload
		// nothing to a transparency log.
		c.run(t, "signing-config", "create", "--out", filepath.Join(c.workdir, "sc.json"))
	}
	return c
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// run runs cosign and fails the test on a non-zero exit.
func (c *cosign) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.try(args...)
	if err != nil {
		t.Fatalf("cosign v%d %s: %v\n%s", c.major, strings.Join(args, " "), err, out)
	}
	return out
}

// try runs cosign and returns its combined output.
func (c *cosign) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir = c.workdir
	cmd.Env = append(os.Environ(),
		"COSIGN_PASSWORD="+cosignPassword,
		"HOME="+c.workdir, // no docker credentials, no TUF cache outside the test
		"TUF_ROOT="+filepath.Join(c.workdir, "tuf"),
		"COSIGN_EXPERIMENTAL=0",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

var registryFlags = []string{"--allow-http-registry", "--allow-insecure-registry"}

func (c *cosign) sign(t *testing.T, keyPath, image string, extra ...string) {
	t.Helper()
	args := append([]string{"sign", "--key", keyPath, "-y"}, registryFlags...)
	if c.major == 2 {
		args = append(args, "--tlog-upload=false")
	} else {
		args = append(args, "--signing-config", filepath.Join(c.workdir, "sc.json"))
	}
	c.run(t, append(append(args, extra...), image)...)
}

func (c *cosign) attest(t *testing.T, keyPath, image, kind, predicatePath string) {
	t.Helper()
	args := append([]string{"attest", "--key", keyPath, "-y", "--type", kind, "--predicate", predicatePath}, registryFlags...)
	if c.major == 2 {
		args = append(args, "--tlog-upload=false")
	} else {
		args = append(args, "--signing-config", filepath.Join(c.workdir, "sc.json"))
	}
	c.run(t, append(args, image)...)
}

func (c *cosign) verify(image, pubPath string, extra ...string) (string, error) {
	args := append([]string{"verify", "--key", pubPath, "--insecure-ignore-tlog"}, registryFlags...)
	return c.try(append(append(args, extra...), image)...)
}

func (c *cosign) verifyAttestation(image, pubPath, kind string) (string, error) {
	args := append([]string{"verify-attestation", "--key", pubPath, "--insecure-ignore-tlog", "--type", kind}, registryFlags...)
	return c.try(append(args, image)...)
}

// keyPair writes a berth-generated encrypted key pair into dir.
func berthKeyPair(t *testing.T, dir, prefix string) (priv, pub string, k testKey) {
	t.Helper()
	sk, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	privPEM, err := keys.EncodeEncryptedPrivate(sk, []byte(cosignPassword))
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := keys.EncodePublic(sk.Public())
	if err != nil {
		t.Fatal(err)
	}
	priv, pub = filepath.Join(dir, prefix+".key"), filepath.Join(dir, prefix+".pub")
	if err := os.WriteFile(priv, privPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return priv, pub, loadTestKey(t, priv, pub)
}

// cosignKeyPair has cosign generate a key pair and loads it into berth.
func (c *cosign) keyPair(t *testing.T, prefix string) (priv, pub string, k testKey) {
	t.Helper()
	c.run(t, "generate-key-pair", "--output-key-prefix", prefix)
	priv, pub = filepath.Join(c.workdir, prefix+".key"), filepath.Join(c.workdir, prefix+".pub")
	return priv, pub, loadTestKey(t, priv, pub)
}

// loadTestKey reads a key pair from files the way the berth commands do.
func loadTestKey(t *testing.T, privPath, pubPath string) testKey {
	t.Helper()
	privPEM, err := os.ReadFile(privPath)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := keys.ParsePrivate(privPEM, func() ([]byte, error) { return []byte(cosignPassword), nil }, false)
	if err != nil {
		t.Fatalf("berth cannot read %s: %v", privPath, err)
	}
	k, err := NewKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := keys.ParsePublic(pubPEM)
	if err != nil {
		t.Fatalf("berth cannot read %s: %v", pubPath, err)
	}
	tk, err := NewTrustedKey(filepath.Base(pubPath), pub, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return testKey{name: filepath.Base(pubPath), key: k, trusted: tk}
}

func TestInteropSignatures(t *testing.T) {
	for _, major := range []int{2, 3} {
		t.Run("cosign v"+string(rune('0'+major)), func(t *testing.T) {
			c := findCosign(t, major)
			ctx := context.Background()
			for _, lt := range layouts {
				if lt.bundles && major == 2 {
					continue // cosign v2 verifies bundles only with flags that need a trusted root
				}
				t.Run(lt.name, func(t *testing.T) {
					reg := newTestRegistry(t, lt.referrersAPI)

					// berth key → berth signs → cosign verifies.
					img := reg.image(t, "interop/berth-signed", "v1", "berth signs "+lt.name)
					_, berthPub, berthKey := berthKeyPair(t, c.workdir, "berth-"+strings.ReplaceAll(lt.name, " ", "-"))
					if _, err := Sign(ctx, reg.store, img, berthKey.key, SignOptions{Annotations: map[string]string{"by": "berth"}, Referrers: lt.bundles}); err != nil {
						t.Fatal(err)
					}
					out, err := c.verify(img.String(), berthPub, "-a", "by=berth")
					if err != nil {
						t.Fatalf("cosign v%d rejects berth's signature: %v\n%s", major, err, out)
					}
					if !strings.Contains(out, img.Manifest.Digest.String()) {
						t.Fatalf("cosign output does not name the digest:\n%s", out)
					}
					// A key that did not sign must fail in cosign too.
					_, otherPub, _ := berthKeyPair(t, c.workdir, "other")
					if out, err := c.verify(img.String(), otherPub); err == nil {
						t.Fatalf("cosign accepted the wrong key:\n%s", out)
					}

					// cosign key → cosign signs → berth verifies.
					img2 := reg.image(t, "interop/cosign-signed", "v1", "cosign signs "+lt.name)
					cosignPriv, _, cosignKey := c.keyPair(t, "cosign-"+strings.ReplaceAll(lt.name, " ", "-"))
					var extra []string
					if major == 3 && !lt.bundles {
						extra = []string{"--new-bundle-format=false", "--use-signing-config=false"}
					}
					c.sign(t, cosignPriv, img2.String(), append([]string{"-a", "by=cosign"}, extra...)...)
					res, err := Verify(ctx, reg.store, img2, trustOf(1, cosignKey), VerifyOptions{Annotations: map[string]string{"by": "cosign"}})
					if err != nil {
						t.Fatalf("berth rejects cosign's signature: %v", err)
					}
					if len(res.Verified) != 1 {
						t.Fatalf("verified %+v", res.Verified)
					}

					// Keys cross over: berth signs with cosign's key, cosign
					// signs with berth's key, and both signatures verify.
					if _, err := Sign(ctx, reg.store, img2, cosignKey.key, SignOptions{Referrers: lt.bundles}); err != nil {
						t.Fatal(err)
					}
					berthPriv := strings.TrimSuffix(berthPub, ".pub") + ".key"
					c.sign(t, berthPriv, img2.String(), extra...)
					if _, err := Verify(ctx, reg.store, img2, trustOf(2, cosignKey, berthKey), VerifyOptions{}); err != nil {
						t.Fatalf("berth after key crossover: %v", err)
					}
					if out, err := c.verify(img2.String(), berthPub); err != nil {
						t.Fatalf("cosign after key crossover: %v\n%s", err, out)
					}
				})
			}
		})
	}
}

func TestInteropAttestations(t *testing.T) {
	for _, major := range []int{2, 3} {
		t.Run("cosign v"+string(rune('0'+major)), func(t *testing.T) {
			c := findCosign(t, major)
			ctx := context.Background()
			bundles := major == 3
			reg := newTestRegistry(t, true)
			sbom := filepath.Join(c.workdir, "sbom.json")
			if err := os.WriteFile(sbom, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":[]}`), 0o644); err != nil {
				t.Fatal(err)
			}

			// berth attests → cosign verifies.
			img := reg.image(t, "interop/berth-attested", "v1", "berth attests")
			_, berthPub, berthKey := berthKeyPair(t, c.workdir, "berth-att")
			predicate, err := os.ReadFile(sbom)
			if err != nil {
				t.Fatal(err)
			}
			st, err := NewStatement(img, "cyclonedx", predicate, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Attest(ctx, reg.store, img, st, berthKey.key, AttestOptions{Referrers: bundles}); err != nil {
				t.Fatal(err)
			}
			if out, err := c.verifyAttestation(img.String(), berthPub, "cyclonedx"); err != nil {
				t.Fatalf("cosign v%d rejects berth's attestation: %v\n%s", major, err, out)
			}

			// cosign attests → berth verifies.
			img2 := reg.image(t, "interop/cosign-attested", "v1", "cosign attests")
			cosignPriv, _, cosignKey := c.keyPair(t, "cosign-att")
			c.attest(t, cosignPriv, img2.String(), "cyclonedx", sbom)
			res, err := VerifyAttestations(ctx, reg.store, img2, trustOf(1, cosignKey), VerifyOptions{PredicateType: attestation.PredicateCycloneDX})
			if err != nil {
				t.Fatalf("berth rejects cosign's attestation: %v", err)
			}
			got, err := attestation.ParseStatement(res.Verified[0].Payload)
			if err != nil {
				t.Fatal(err)
			}
			if !got.About(img2.Manifest.Digest.String()) || !strings.Contains(string(got.Predicate), "CycloneDX") {
				t.Fatalf("statement %s", res.Verified[0].Payload)
			}
		})
	}
}

func TestInteropTree(t *testing.T) {
	for _, major := range []int{2, 3} {
		t.Run("cosign v"+string(rune('0'+major)), func(t *testing.T) {
			c := findCosign(t, major)
			ctx := context.Background()
			reg := newTestRegistry(t, true)
			img := reg.image(t, "interop/tree", "v1", "tree")
			k := newTestKey(t, "k")
			if _, err := Sign(ctx, reg.store, img, k.key, SignOptions{}); err != nil {
				t.Fatal(err)
			}
			st, err := NewStatement(img, "openvex", []byte(`{"@context":"https://openvex.dev/ns/v0.2.0","statements":[]}`), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Attest(ctx, reg.store, img, st, k.key, AttestOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := Sign(ctx, reg.store, img, k.key, SignOptions{Referrers: true}); err != nil {
				t.Fatal(err)
			}
			out := c.run(t, append(append([]string{"tree"}, registryFlags...), img.String())...)
			for _, want := range []string{
				Tag(img.Manifest.Digest, SignatureSuffix),
				Tag(img.Manifest.Digest, AttestationSuffix),
			} {
				if !strings.Contains(out, want) {
					t.Errorf("cosign tree does not list %s:\n%s", want, out)
				}
			}
			if major == 3 && !strings.Contains(out, "application/vnd.dev.sigstore.bundle") {
				t.Errorf("cosign v3 tree does not list the bundle referrer:\n%s", out)
			}
		})
	}
}
