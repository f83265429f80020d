package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/sign/attestation"
	"berth.dev/berth/internal/sign/keys"
	"berth.dev/berth/internal/testpeers"
	"berth.dev/berth/internal/vulndb/update"
)

const testKeyPassword = "attest-test"

// run executes a command as the binary would and returns what it printed.
func run(t *testing.T, cmd *cobra.Command, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// attestRegistry is go-containerregistry's in-process registry on loopback.
// Until a tag is moved (moveAfterFirstRead), it serves requests unchanged.
type attestRegistry struct {
	host  string
	inner http.Handler
	// moveTag, when set, is the manifest path whose first request moves
	// the tag, after the answer, by calling move.
	moveTag string
	move    func()
	moved   atomic.Bool
}

func (r *attestRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.inner.ServeHTTP(w, req)
	// CompareAndSwap rather than sync.Once: move pushes through this very
	// handler, and may ask for the same path.
	if r.moveTag != "" && req.URL.Path == r.moveTag && r.moved.CompareAndSwap(false, true) {
		r.move()
	}
}

func newAttestRegistry(t *testing.T) *attestRegistry {
	t.Helper()
	r := &attestRegistry{inner: registry.New(
		registry.WithReferrersSupport(true),
		registry.Logger(log.New(io.Discard, "", 0)),
	)}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	r.host = u.Host
	return r
}

// nodeImage is an image holding one installed npm package, for arch.
func nodeImage(t *testing.T, arch, lodashVersion string) v1.Image {
	t.Helper()
	layer, err := crane.Layer(map[string][]byte{
		"usr/lib/node_modules/lodash/package.json": fmt.Appendf(nil, `{"name":"lodash","version":%q}`, lodashVersion),
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: arch})
	if err != nil {
		t.Fatal(err)
	}
	// A history line with "&&", as most RUN lines have: the reports carry
	// it, and attestations must keep it byte for byte.
	if img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "RUN npm ci && npm cache clean --force"}}); err != nil {
		t.Fatal(err)
	}
	return img
}

// push writes img to reference and returns the reference by digest.
func (r *attestRegistry) push(t *testing.T, reference string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(r.host + "/" + reference)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context().Name() + "@" + d.String()
}

// testKeys is one key pair on disk: the private key unencrypted (runs pass
// --insecure-key) and, when asked, in cosign's encrypted form, whose scrypt
// costs about a second a use on a loaded machine.
type testKeys struct {
	encrypted, plain, pub string
}

// sign is the flags that sign with the unencrypted form.
func (k testKeys) sign() []string { return []string{"--key", k.plain, "--insecure-key"} }

// writeKeys writes a fresh key pair, and sets the password the commands
// read for the encrypted form.
func writeKeys(t *testing.T, encrypt bool) testKeys {
	t.Helper()
	priv, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := keys.EncodePublic(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k := testKeys{plain: filepath.Join(dir, "plain.key"), pub: filepath.Join(dir, "k.pub")}
	files := map[string][]byte{
		k.plain: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		k.pub:   pubPEM,
	}
	if encrypt {
		k.encrypted = filepath.Join(dir, "k.key")
		if files[k.encrypted], err = keys.EncodeEncryptedPrivate(priv, []byte(testKeyPassword)); err != nil {
			t.Fatal(err)
		}
		t.Setenv("BERTH_KEY_PASSWORD", testKeyPassword)
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// verifiedStatements runs berth verify-attestation and returns the
// statements it printed.
func verifiedStatements(t *testing.T, pubPath, kind, image string) ([]*attestation.Statement, error) {
	t.Helper()
	stdout, stderr, err := run(t, newVerifyAttestationCmd(), "--key", pubPath, "--type", kind, image)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, stderr)
	}
	var out []*attestation.Statement
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		st, err := attestation.ParseStatement([]byte(line))
		if err != nil {
			t.Fatalf("verify-attestation printed %q: %v", line, err)
		}
		out = append(out, st)
	}
	return out, nil
}

// onlyStatement verifies that image carries exactly one attestation of
// kind, about its own digest, and returns it.
func onlyStatement(t *testing.T, pubPath, kind, byDigest string) *attestation.Statement {
	t.Helper()
	sts, err := verifiedStatements(t, pubPath, kind, byDigest)
	if err != nil {
		t.Fatalf("verify-attestation %s: %v", byDigest, err)
	}
	if len(sts) != 1 {
		t.Fatalf("%d %s attestations on %s, want 1", len(sts), kind, byDigest)
	}
	_, digest, _ := strings.Cut(byDigest, "@")
	if !sts[0].About(digest) {
		t.Fatalf("statement subjects %+v, want %s", sts[0].Subject, digest)
	}
	return sts[0]
}

func compactJSON(t *testing.T, data []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// firstDiff shows where two documents part.
func firstDiff(got, want string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-80)
	return fmt.Sprintf("at byte %d\ngot  …%.200s\nwant …%.200s", i, got[from:], want[from:])
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSBOMAttest(t *testing.T) {
	reg := newAttestRegistry(t)
	k := writeKeys(t, true)
	cache := t.TempDir()
	app := reg.push(t, "team/app:v1", nodeImage(t, "amd64", "4.17.15"))

	t.Run("cyclonedx, the file and the attestation hold the same document", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "sbom.cdx.json")
		_, stderr, err := run(t, newSBOMCmd(), "--cache-dir", cache, "-o", out, "--attest", "--key", k.encrypted, reg.host+"/team/app:v1")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		if !strings.Contains(stderr, "resolved to") || !strings.Contains(stderr, "attested "+app) {
			t.Errorf("stderr does not name the resolved digest and the attestation:\n%s", stderr)
		}
		st := onlyStatement(t, k.pub, "cyclonedx", app)
		if st.PredicateType != attestation.PredicateCycloneDX {
			t.Errorf("predicate type %s", st.PredicateType)
		}
		if got, want := string(st.Predicate), compactJSON(t, readFile(t, out)); got != want {
			t.Errorf("attested SBOM differs from the one written: %s", firstDiff(got, want))
		}
		if !strings.Contains(string(st.Predicate), "pkg:npm/lodash@4.17.15") {
			t.Errorf("attested SBOM does not list the image's package: %.500s", st.Predicate)
		}
	})

	t.Run("spdx attested while the output is berth's JSON", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "inventory.json")
		if _, stderr, err := run(t, newSBOMCmd(), slices.Concat([]string{"--cache-dir", cache, "-f", "json", "-o", out,
			"--attest", "--attest-type", "spdx-json", "docker://" + reg.host + "/team/app:v1"}, k.sign())...); err != nil {
			t.Fatalf("%v\n%s", err, stderr) // spdx-json: Trivy's and syft's name for spdx
		}
		st := onlyStatement(t, k.pub, "spdxjson", app)
		var doc struct {
			SPDXVersion string `json:"spdxVersion"`
		}
		if err := json.Unmarshal(st.Predicate, &doc); err != nil || doc.SPDXVersion != "SPDX-2.3" {
			t.Errorf("predicate is not an SPDX 2.3 document (%v): %.300s", err, st.Predicate)
		}
		var inv struct {
			Source, Digest string
		}
		if err := json.Unmarshal(readFile(t, out), &inv); err != nil {
			t.Fatal(err)
		}
		if inv.Source != "docker://"+reg.host+"/team/app:v1" || !strings.HasSuffix(app, "@"+inv.Digest) {
			t.Errorf("inventory names %s %s; want the reference given and the digest read", inv.Source, inv.Digest)
		}
	})

	t.Run("referrers", func(t *testing.T) {
		other := reg.push(t, "team/other:v1", nodeImage(t, "amd64", "4.17.20"))
		if _, stderr, err := run(t, newSBOMCmd(), slices.Concat([]string{"--cache-dir", cache, "-o", filepath.Join(t.TempDir(), "sbom.json"),
			"--attest", "--referrers", other}, k.sign())...); err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		onlyStatement(t, k.pub, "cyclonedx", other)
		ref, err := name.ParseReference(other)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := remote.Referrers(ref.(name.Digest))
		if err != nil {
			t.Fatal(err)
		}
		m, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		// go-containerregistry's registry lists the config's media type as
		// the artifactType; the annotations say what the referrer holds.
		if len(m.Manifests) != 1 || m.Manifests[0].Annotations["dev.sigstore.bundle.predicateType"] != attestation.PredicateCycloneDX {
			t.Errorf("referrers %+v, want one sigstore bundle of the SBOM", m.Manifests)
		}
	})

	t.Run("a tag that moves after it is resolved", func(t *testing.T) {
		first := reg.push(t, "team/moving:v1", nodeImage(t, "amd64", "4.17.15"))
		var second string
		reg.moveTag = "/v2/team/moving/manifests/v1"
		reg.move = func() { second = reg.push(t, "team/moving:v1", nodeImage(t, "amd64", "4.17.21")) }
		t.Cleanup(func() { reg.moveTag = "" })

		out := filepath.Join(t.TempDir(), "sbom.json")
		if _, stderr, err := run(t, newSBOMCmd(), slices.Concat([]string{"--cache-dir", cache, "-o", out, "--attest", reg.host + "/team/moving:v1"}, k.sign())...); err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		if second == "" || second == first {
			t.Fatal("the tag did not move")
		}
		if sbom := string(readFile(t, out)); !strings.Contains(sbom, "lodash@4.17.15") || strings.Contains(sbom, "lodash@4.17.21") {
			t.Error("the SBOM is not of the image the tag named when it was resolved")
		}
		st := onlyStatement(t, k.pub, "cyclonedx", first)
		if !strings.Contains(string(st.Predicate), "lodash@4.17.15") {
			t.Error("the attestation is not of the resolved image")
		}
		if _, err := verifiedStatements(t, k.pub, "cyclonedx", second); err == nil {
			t.Error("the image the tag moved to got an attestation")
		}
	})

	t.Run("an index: the platform's manifest is read and attested", func(t *testing.T) {
		amd, arm := nodeImage(t, "amd64", "4.17.15"), nodeImage(t, "arm64", "4.17.21")
		idx := mutate.AppendManifests(empty.Index,
			mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
			mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		)
		ref, err := name.ParseReference(reg.host + "/team/multi:v1")
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteIndex(ref, idx); err != nil {
			t.Fatal(err)
		}
		idxDigest, _ := idx.Digest()
		armDigest, _ := arm.Digest()
		if _, stderr, err := run(t, newSBOMCmd(), slices.Concat([]string{"--cache-dir", cache, "-o", filepath.Join(t.TempDir(), "sbom.json"),
			"--platform", "linux/arm64", "--attest", ref.String()}, k.sign())...); err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		repo := ref.Context().Name()
		st := onlyStatement(t, k.pub, "cyclonedx", repo+"@"+armDigest.String())
		if !strings.Contains(string(st.Predicate), "lodash@4.17.21") {
			t.Error("the arm64 manifest's attestation does not describe the arm64 image")
		}
		if _, err := verifiedStatements(t, k.pub, "cyclonedx", repo+"@"+idxDigest.String()); err == nil {
			t.Error("the index got an attestation of one platform's content")
		}
	})
}

// TestAttestBadInput: every refusal comes before the image is read, with
// a message naming the problem, and leaves no output file behind.
func TestAttestBadInput(t *testing.T) {
	reg := newAttestRegistry(t)
	k := writeKeys(t, true)
	priv := k.encrypted
	image := reg.host + "/team/app:v1"
	reg.push(t, "team/app:v1", nodeImage(t, "amd64", "4.17.15"))
	dir := t.TempDir()
	archive := filepath.Join(dir, "app.tar")
	if err := os.WriteFile(archive, []byte("not read"), 0o644); err != nil {
		t.Fatal(err)
	}
	commands := map[string]func() *cobra.Command{"sbom": newSBOMCmd, "scan": newScanCmd}
	tests := []struct {
		name     string
		commands []string
		args     []string
		password string // "" keeps the right one
		want     string
	}{
		{"no key", []string{"sbom", "scan"}, []string{"--attest", image}, "", "--attest needs --key"},
		{"key without attest", []string{"sbom", "scan"}, []string{"--key", priv, image}, "", "only means something with --attest"},
		{"referrers without attest", []string{"sbom", "scan"}, []string{"--referrers", image}, "", "only means something with --attest"},
		{"attest-type without attest", []string{"sbom"}, []string{"--attest-type", "spdx", image}, "", "only means something with --attest"},
		{"unknown attest-type", []string{"sbom"}, []string{"--attest", "--key", priv, "--attest-type", "swid", image}, "", "want cyclonedx or spdx"},
		{"oci archive", []string{"sbom", "scan"}, []string{"--attest", "--key", priv, "oci-archive:" + archive}, "", "not in a registry"},
		{"bare archive", []string{"sbom", "scan"}, []string{"--attest", "--key", priv, archive}, "", "not in a registry"},
		{"root filesystem", []string{"sbom", "scan"}, []string{"--attest", "--key", priv, "dir:" + dir}, "", "not in a registry"},
		{"bare directory", []string{"sbom", "scan"}, []string{"--attest", "--key", priv, dir}, "", "not in a registry"},
		{"wrong password", []string{"sbom", "scan"}, []string{"--attest", "--key", priv, image}, "wrong", "password"},
		{"unencrypted key", []string{"sbom", "scan"}, []string{"--attest", "--key", k.plain, image}, "", "--insecure-key"},
		{"missing image", []string{"sbom"}, []string{"--attest", "--key", k.plain, "--insecure-key", reg.host + "/team/app:nope"}, "", "resolve"},
		{"stored report", []string{"scan"}, []string{"--attest", "--key", priv, "--from-report", archive}, "", "--attest needs an IMAGE"},
		{"image tarball", []string{"scan"}, []string{"--attest", "--key", priv, "--input", archive}, "", "not in a registry"},
		{"SBOM file", []string{"scan"}, []string{"--attest", "--key", priv, "sbom:" + archive}, "", "--attest needs an IMAGE"},
	}
	dbDir := t.TempDir() // empty: scan must refuse before needing the DB
	for _, tc := range tests {
		for _, c := range tc.commands {
			t.Run(c+" "+tc.name, func(t *testing.T) {
				if tc.password != "" {
					t.Setenv("BERTH_KEY_PASSWORD", tc.password)
				}
				out := filepath.Join(t.TempDir(), "out.json")
				args := append([]string{"--cache-dir", t.TempDir(), "-o", out}, tc.args...)
				if c == "scan" {
					args = append([]string{"--db-dir", dbDir}, args...)
				}
				_, stderr, err := run(t, commands[c](), args...)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want one containing %q\n%s", err, tc.want, stderr)
				}
				if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
					t.Error("an output file was written")
				}
			})
		}
	}
}

// npmDB builds a vulnerability DB from the real npm records of the shared
// vulndata, through the update path, and returns its directory.
func npmDB(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(testpeers.Shared(t, "vulndata", "osv", "npm", "all.zip"))
	if err != nil {
		t.Fatal(err)
	}
	feed := t.TempDir()
	if err := os.MkdirAll(filepath.Join(feed, "npm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(feed, "npm", "all.zip"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	dbDir := t.TempDir()
	if _, err := update.Run(context.Background(), update.Options{
		Dir: dbDir, Sources: []string{feed}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}); err != nil {
		t.Fatal(err)
	}
	return dbDir
}

func TestScanAttest(t *testing.T) {
	dbDir := npmDB(t)
	reg := newAttestRegistry(t)
	k := writeKeys(t, false)
	app := reg.push(t, "team/app:v1", nodeImage(t, "amd64", "4.17.15"))
	t.Chdir(t.TempDir()) // no default ignore file
	base := slices.Concat([]string{"--db-dir", dbDir, "--cache-dir", t.TempDir(), "-q"}, k.sign())

	t.Run("the report as cosign's vuln predicate", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "report.json")
		start := time.Now().UTC().Truncate(time.Second)
		r := runScan(t, slices.Concat(base, []string{"-f", "json", "-o", out, "--severity", "LOW+", "--attest", reg.host + "/team/app:v1"})...)
		if r.err != nil {
			t.Fatalf("%v\n%s", r.err, r.stderr)
		}
		st := onlyStatement(t, k.pub, "vuln", app)
		if st.PredicateType != attestation.PredicateVuln {
			t.Errorf("predicate type %s", st.PredicateType)
		}
		var p attestation.VulnPredicate
		dec := json.NewDecoder(bytes.NewReader(st.Predicate))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("predicate does not decode as cosign's vuln predicate: %v", err)
		}
		if got, want := string(p.Scanner.Result), compactJSON(t, readFile(t, out)); got != want {
			t.Errorf("attested result differs from the report written: %s", firstDiff(got, want))
		}
		var rep match.Report
		if err := json.Unmarshal(p.Scanner.Result, &rep); err != nil {
			t.Fatal(err)
		}
		found := slices.ContainsFunc(rep.Findings, func(f match.Finding) bool {
			return f.ID == "CVE-2020-8203" || slices.Contains(f.Aliases, "CVE-2020-8203")
		})
		if !found || !strings.HasSuffix(app, "@"+rep.Inventory.Digest) {
			t.Errorf("result: digest %s, findings %v; want %s with CVE-2020-8203", rep.Inventory.Digest, ids(rep.Findings), app)
		}
		if p.Scanner.URI != "pkg:golang/berth.dev/berth@"+version || p.Scanner.Version != version {
			t.Errorf("scanner %s %s", p.Scanner.URI, p.Scanner.Version)
		}
		if _, err := time.Parse(time.RFC3339, p.Scanner.DB.Version); err != nil || p.Scanner.DB.URI == "" {
			t.Errorf("db %+v: want the sources and the update time", p.Scanner.DB)
		}
		if p.Metadata.ScanStartedOn.Before(start) || p.Metadata.ScanFinishedOn.Before(p.Metadata.ScanStartedOn) {
			t.Errorf("metadata %+v", p.Metadata)
		}
		if params, _ := json.Marshal(p.Invocation.Parameters); string(params) != `["--severity=LOW+"]` {
			t.Errorf("invocation parameters %s, want the filter used", params)
		}
	})

	t.Run("findings over --exit-code are still attested", func(t *testing.T) {
		other := reg.push(t, "team/gate:v1", nodeImage(t, "amd64", "4.17.15"))
		r := runScan(t, slices.Concat(base, []string{"-f", "json", "-o", filepath.Join(t.TempDir(), "r.json"), "--exit-code", "2",
			"--attest", "--referrers", other})...)
		if r.code != 2 {
			t.Fatalf("exit %d (%v), want 2\n%s", r.code, r.err, r.stderr)
		}
		onlyStatement(t, k.pub, "vuln", other)
	})
}

// TestAttestCosignVerifies: cosign v2 verifies what `berth sbom --attest`
// and `berth scan --attest` attached, with the --type names its users know.
func TestAttestCosignVerifies(t *testing.T) {
	cosign := testpeers.Tool(t, "cosign2")
	dbDir := npmDB(t)
	reg := newAttestRegistry(t)
	k := writeKeys(t, false)
	app := reg.push(t, "team/app:v1", nodeImage(t, "amd64", "4.17.15"))
	t.Chdir(t.TempDir())
	cache := t.TempDir()
	if _, stderr, err := run(t, newSBOMCmd(), slices.Concat([]string{"--cache-dir", cache, "-o", filepath.Join(t.TempDir(), "sbom.json"),
		"--attest", reg.host + "/team/app:v1"}, k.sign())...); err != nil {
		t.Fatalf("sbom --attest: %v\n%s", err, stderr)
	}
	if r := runScan(t, slices.Concat([]string{"--db-dir", dbDir, "--cache-dir", cache, "-q", "-o", filepath.Join(t.TempDir(), "r.txt"),
		"--attest", reg.host + "/team/app:v1"}, k.sign())...); r.err != nil {
		t.Fatalf("scan --attest: %v\n%s", r.err, r.stderr)
	}
	home := t.TempDir()
	for _, tc := range []struct{ kind, predicateType string }{
		{"cyclonedx", attestation.PredicateCycloneDX},
		{"vuln", attestation.PredicateVuln},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, cosign, "verify-attestation", "--key", k.pub, "--type", tc.kind,
				"--insecure-ignore-tlog", "--allow-http-registry", "--allow-insecure-registry", app)
			cmd.Env = append(os.Environ(), "HOME="+home, "TUF_ROOT="+filepath.Join(home, "tuf"))
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("cosign verify-attestation --type %s: %v\n%s%s", tc.kind, err, stdout.String(), stderr.String())
			}
			var env struct {
				PayloadType string `json:"payloadType"`
				Payload     string `json:"payload"`
			}
			if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &env); err != nil {
				t.Fatalf("cosign printed %q: %v", stdout.String(), err)
			}
			payload, err := base64.StdEncoding.DecodeString(env.Payload)
			if err != nil {
				t.Fatal(err)
			}
			st, err := attestation.ParseStatement(payload)
			if err != nil {
				t.Fatal(err)
			}
			_, digest, _ := strings.Cut(app, "@")
			if st.PredicateType != tc.predicateType || !st.About(digest) {
				t.Errorf("cosign verified a %s statement about %+v", st.PredicateType, st.Subject)
			}
		})
	}
}
