// Package interop_test checks that berth and the real cosign, v2 and v3,
// understand each other: each verifies what the other wrote, keys move both
// ways, and `cosign tree` lists what berth attached. It is apart from the
// unit tests of package sign because every cosign run takes about a second.
//
// The binaries are looked up as cosign2 and cosign3 in $BERTH_PEERS
// (default ~/.cache/berth-peers) or on PATH; a test skips when its binary
// is absent.
package interop_test

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"

	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/attestation"
	"berth.dev/berth/internal/sign/keys"
	"berth.dev/berth/internal/sign/store"
	"berth.dev/berth/internal/sign/store/storetest"
	"berth.dev/berth/internal/testpeers"
)

const cosignPassword = "interop"

var registryFlags = []string{"--allow-http-registry", "--allow-insecure-registry"}

// cosign is one cosign binary with a scratch directory of its own.
type cosign struct {
	bin     string
	major   int
	workdir string
}

func findCosign(t *testing.T, major int) *cosign {
	t.Helper()
	bin := testpeers.Tool(t, fmt.Sprintf("cosign%d", major))
	c := &cosign{bin: bin, major: major, workdir: t.TempDir()}
	if major == 3 {
		// A signing config without services: sign with the key and upload
		// nothing to a transparency log.
		c.run(t, "signing-config", "create", "--out", filepath.Join(c.workdir, "sc.json"))
	}
	return c
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
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// sign has cosign sign image. cosign v3 writes a bundle referrer unless
// legacy asks for the .sig tag.
func (c *cosign) sign(t *testing.T, keyPath, image string, legacy bool, extra ...string) {
	t.Helper()
	args := append([]string{"sign", "--key", keyPath, "-y"}, registryFlags...)
	switch {
	case c.major == 2:
		args = append(args, "--tlog-upload=false")
	case legacy:
		args = append(args, "--new-bundle-format=false", "--use-signing-config=false", "--tlog-upload=false")
	default:
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

// testRegistry is go-containerregistry's registry on a loopback port that
// cosign can reach.
type testRegistry struct {
	host  string
	store *store.Remote
}

func newRegistry(t *testing.T, referrersAPI bool) *testRegistry {
	t.Helper()
	srv := httptest.NewServer(registry.New(
		registry.WithReferrersSupport(referrersAPI),
		registry.Logger(log.New(io.Discard, "", 0)),
	))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := name.NewRegistry(u.Host, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.NewRemote(reg)
	if err != nil {
		t.Fatal(err)
	}
	return &testRegistry{host: u.Host, store: s}
}

func (r *testRegistry) image(t *testing.T, repo, seed string) sign.Target {
	t.Helper()
	storetest.Image(t, r.store, repo, "v1", seed)
	ref, err := name.ParseReference(r.host+"/"+repo+":v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	target, err := sign.Resolve(context.Background(), r.store, ref)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// keyPair is a key pair on disk, loaded the way the berth commands load it.
type keyPair struct {
	priv, pub string
	key       *sign.Key
	trusted   sign.TrustedKey
}

// berthKeyPair writes a key pair as `berth key generate` does. (Reading
// such files back is the keys package's test; scrypt is too slow under the
// race detector to repeat it here.)
func berthKeyPair(t *testing.T, dir, prefix string) keyPair {
	t.Helper()
	sk, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	privPEM, err := keys.EncodeEncryptedPrivate(sk, []byte(cosignPassword))
	if err != nil {
		t.Fatal(err)
	}
	kp := publicOnly(t, dir, prefix, sk)
	kp.priv = filepath.Join(dir, prefix+".key")
	if err := os.WriteFile(kp.priv, privPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if kp.key, err = sign.NewKey(sk); err != nil {
		t.Fatal(err)
	}
	return kp
}

// publicOnly writes just the public half of sk, for a key that only
// verifies.
func publicOnly(t *testing.T, dir, prefix string, sk crypto.Signer) keyPair {
	t.Helper()
	pubPEM, err := keys.EncodePublic(sk.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, prefix+".pub")
	if err := os.WriteFile(pub, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	tk, err := sign.NewTrustedKey(filepath.Base(pub), sk.Public(), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{pub: pub, trusted: tk}
}

// strangerKey is a key that signed nothing.
func strangerKey(t *testing.T, dir string) keyPair {
	t.Helper()
	sk, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return publicOnly(t, dir, "stranger", sk)
}

// cosignKeyPair has `cosign generate-key-pair` make the pair.
func (c *cosign) keyPair(t *testing.T, prefix string) keyPair {
	t.Helper()
	c.run(t, "generate-key-pair", "--output-key-prefix", prefix)
	return loadKeyPair(t, filepath.Join(c.workdir, prefix+".key"), filepath.Join(c.workdir, prefix+".pub"))
}

func loadKeyPair(t *testing.T, privPath, pubPath string) keyPair {
	t.Helper()
	privPEM, err := os.ReadFile(privPath)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := keys.ParsePrivate(privPEM, func() ([]byte, error) { return []byte(cosignPassword), nil }, false)
	if err != nil {
		t.Fatalf("berth cannot read %s: %v", privPath, err)
	}
	k, err := sign.NewKey(sk)
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
	tk, err := sign.NewTrustedKey(filepath.Base(pubPath), pub, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{priv: privPath, pub: pubPath, key: k, trusted: tk}
}

func trust(require int, ks ...keyPair) sign.Trust {
	tr := sign.Trust{Require: require}
	for _, k := range ks {
		tr.Keys = append(tr.Keys, k.trusted)
	}
	return tr
}

// layouts: cosign v2's tag scheme, and bundles found through the
// referrers API or through the referrers tag schema.
var layouts = []struct {
	name         string
	referrersAPI bool
	bundles      bool
}{
	{"tag-scheme", true, false},
	{"bundle-referrers-api", true, true},
	{"bundle-referrers-tag-schema", false, true},
}

func TestSignatures(t *testing.T) {
	for _, major := range []int{2, 3} {
		for _, lt := range layouts {
			if lt.bundles && major == 2 {
				continue // cosign v2 writes and reads bundles only with a trusted root
			}
			t.Run(fmt.Sprintf("cosign-v%d/%s", major, lt.name), func(t *testing.T) {
				t.Parallel()
				c := findCosign(t, major)
				ctx := context.Background()
				reg := newRegistry(t, lt.referrersAPI)

				// berth key, berth signs, cosign verifies.
				img := reg.image(t, "interop/berth-signed", "berth signs")
				berthKey := berthKeyPair(t, c.workdir, "berth")
				if _, err := sign.Sign(ctx, reg.store, img, berthKey.key, sign.SignOptions{Annotations: map[string]string{"by": "berth"}, Referrers: lt.bundles}); err != nil {
					t.Fatal(err)
				}
				out, err := c.verify(img.String(), berthKey.pub, "-a", "by=berth")
				if err != nil {
					t.Fatalf("cosign rejects berth's signature: %v\n%s", err, out)
				}
				if !strings.Contains(out, img.Manifest.Digest.String()) {
					t.Fatalf("cosign's output does not name the digest:\n%s", out)
				}
				other := strangerKey(t, c.workdir)
				if out, err := c.verify(img.String(), other.pub); err == nil {
					t.Fatalf("cosign accepted a key that did not sign:\n%s", out)
				}

				// cosign key, cosign signs, berth verifies.
				img2 := reg.image(t, "interop/cosign-signed", "cosign signs")
				cosignKey := c.keyPair(t, "cosign")
				c.sign(t, cosignKey.priv, img2.String(), !lt.bundles, "-a", "by=cosign")
				res, err := sign.Verify(ctx, reg.store, img2, trust(1, cosignKey), sign.VerifyOptions{Annotations: map[string]string{"by": "cosign"}})
				if err != nil {
					t.Fatalf("berth rejects cosign's signature: %v", err)
				}
				if len(res.Verified) != 1 {
					t.Fatalf("verified %+v", res.Verified)
				}
				if _, err := sign.Verify(ctx, reg.store, img2, trust(1, other), sign.VerifyOptions{}); err == nil {
					t.Fatal("berth accepted a key that did not sign")
				}

				// Keys cross over: berth signs with cosign's key, cosign with
				// berth's; both sides see both signatures.
				if _, err := sign.Sign(ctx, reg.store, img2, cosignKey.key, sign.SignOptions{Referrers: lt.bundles}); err != nil {
					t.Fatal(err)
				}
				c.sign(t, berthKey.priv, img2.String(), !lt.bundles)
				res, err = sign.Verify(ctx, reg.store, img2, trust(2, cosignKey, berthKey), sign.VerifyOptions{})
				if err != nil {
					t.Fatalf("berth after the key crossover: %v", err)
				}
				if len(res.Verified) != 3 {
					t.Fatalf("berth sees %d signatures, want 3", len(res.Verified))
				}
				if out, err := c.verify(img2.String(), berthKey.pub); err != nil {
					t.Fatalf("cosign after the key crossover: %v\n%s", err, out)
				}
			})
		}
	}
}

func TestAttestations(t *testing.T) {
	for _, major := range []int{2, 3} {
		for _, bundles := range []bool{false, true} {
			if bundles && major == 2 {
				continue
			}
			t.Run(fmt.Sprintf("cosign-v%d/bundles=%v", major, bundles), func(t *testing.T) {
				t.Parallel()
				c := findCosign(t, major)
				ctx := context.Background()
				reg := newRegistry(t, true)
				sbom := filepath.Join(c.workdir, "sbom.json")
				predicate := []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":[]}`)
				if err := os.WriteFile(sbom, predicate, 0o644); err != nil {
					t.Fatal(err)
				}

				// berth attests, cosign verifies.
				img := reg.image(t, "interop/berth-attested", "berth attests")
				berthKey := berthKeyPair(t, c.workdir, "berth")
				st, err := sign.NewStatement(img, "cyclonedx", predicate, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				if _, err := sign.Attest(ctx, reg.store, img, st, berthKey.key, sign.AttestOptions{Referrers: bundles}); err != nil {
					t.Fatal(err)
				}
				if out, err := c.verifyAttestation(img.String(), berthKey.pub, "cyclonedx"); err != nil {
					t.Fatalf("cosign rejects berth's attestation: %v\n%s", err, out)
				}
				if out, err := c.verifyAttestation(img.String(), berthKey.pub, "slsaprovenance"); err == nil {
					t.Fatalf("cosign found a provenance attestation berth never wrote:\n%s", out)
				}

				// cosign attests (v2: .att tag, v3: bundle), berth verifies.
				img2 := reg.image(t, "interop/cosign-attested", "cosign attests")
				cosignKey := c.keyPair(t, "cosign")
				c.attest(t, cosignKey.priv, img2.String(), "cyclonedx", sbom)
				res, err := sign.VerifyAttestations(ctx, reg.store, img2, trust(1, cosignKey), sign.VerifyOptions{PredicateType: attestation.PredicateCycloneDX})
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
}

func TestTree(t *testing.T) {
	for _, major := range []int{2, 3} {
		t.Run(fmt.Sprintf("cosign-v%d", major), func(t *testing.T) {
			t.Parallel()
			c := findCosign(t, major)
			ctx := context.Background()
			reg := newRegistry(t, true)
			img := reg.image(t, "interop/tree", "tree")
			k := berthKeyPair(t, c.workdir, "k")
			if _, err := sign.Sign(ctx, reg.store, img, k.key, sign.SignOptions{}); err != nil {
				t.Fatal(err)
			}
			st, err := sign.NewStatement(img, "openvex", []byte(`{"@context":"https://openvex.dev/ns/v0.2.0","statements":[]}`), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sign.Attest(ctx, reg.store, img, st, k.key, sign.AttestOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := sign.Sign(ctx, reg.store, img, k.key, sign.SignOptions{Referrers: true}); err != nil {
				t.Fatal(err)
			}
			out := c.run(t, append(append([]string{"tree"}, registryFlags...), img.String())...)
			want := []string{
				sign.Tag(img.Manifest.Digest, sign.SignatureSuffix),
				sign.Tag(img.Manifest.Digest, sign.AttestationSuffix),
			}
			if major == 3 {
				want = append(want, attestation.PredicateCosignSign+" artifacts via OCI referrer")
			}
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("cosign tree does not list %s:\n%s", w, out)
				}
			}
		})
	}
}
