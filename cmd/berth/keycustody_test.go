package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"berth.dev/berth/internal/api"
	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/sign/hsm/hsmtest"
	"berth.dev/berth/internal/testpeers"
)

// TestPKCS11Keys drives the commands with a key inside SoftHSM2: `key
// generate --key pkcs11:…` creates it there and writes only the public
// half, `key public` prints the same PEM, `sign` and `attest` sign through
// the token, and `berth verify` and cosign v2 accept the signature with
// the public key alone. A locked-out PIN and a slot without the key fail
// with their own messages, and no PIN appears in any output.
func TestPKCS11Keys(t *testing.T) {
	tk := hsmtest.New(t, "berth-cli")
	reg := newAttestRegistry(t)
	app := reg.push(t, "team/app:v1", nodeImage(t, "amd64", "4.17.15"))
	dir := t.TempDir()
	ref := tk.URI("release")
	prefix := filepath.Join(dir, "release")
	if _, stderr, err := run(t, newKeyCmd(), "generate", "--key", ref, "--output-key-prefix", prefix); err != nil {
		t.Fatalf("key generate --key pkcs11: %v\n%s", err, stderr)
	}
	if _, err := os.Stat(prefix + ".key"); !os.IsNotExist(err) {
		t.Errorf("a private key file was written for a token key: %v", err)
	}
	pubPEM := string(readFile(t, prefix+".pub"))
	out, stderr, err := run(t, newKeyCmd(), "public", ref)
	if err != nil || out != pubPEM {
		t.Fatalf("key public: %v\n%s\ngot %q\nwant %q", err, stderr, out, pubPEM)
	}
	// The public key of a file reference is the same PEM.
	if out, _, err := run(t, newKeyCmd(), "public", prefix+".pub"); err != nil || out != pubPEM {
		t.Errorf("key public FILE: %v, %q", err, out)
	}
	if _, stderr, err := run(t, newSignCmd(), "--key", ref, "-a", "env=prod", app); err != nil {
		t.Fatalf("sign --key pkcs11: %v\n%s", err, stderr)
	}
	pred := filepath.Join(dir, "pred.json")
	os.WriteFile(pred, []byte(`{"builder":{"id":"ci"},"buildType":"make"}`), 0o644)
	if _, stderr, err := run(t, newAttestCmd(), "--key", ref, "--predicate", pred, "--type", "slsaprovenance", app); err != nil {
		t.Fatalf("attest --key pkcs11: %v\n%s", err, stderr)
	}
	if _, stderr, err := run(t, newVerifyCmd(), "--key", prefix+".pub", "-a", "env=prod", app); err != nil {
		t.Fatalf("berth verify of the token's signature: %v\n%s", err, stderr)
	}
	if _, stderr, err := run(t, newVerifyAttestationCmd(), "--key", prefix+".pub", "--type", "slsaprovenance", app); err != nil {
		t.Fatalf("berth verify-attestation of the token's attestation: %v\n%s", err, stderr)
	}
	cosign := testpeers.Tool(t, "cosign2")
	c := exec.Command(cosign, "verify", "--key", prefix+".pub", "--insecure-ignore-tlog", "--allow-http-registry", app)
	c.Env = append(os.Environ(), "COSIGN_EXPERIMENTAL=0")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("cosign verify of the token's signature: %v\n%s", err, out)
	}

	for _, tc := range []struct{ ref, want string }{
		{strings.Replace(ref, "pin-value=1234", "pin-value=0000", 1), "PIN was refused"},
		{tk.URI("nothing-here"), "no matching key in the PKCS #11 token"},
		{strings.Replace(ref, "token="+tk.Label, "token=unplugged", 1), "no matching PKCS #11 token"},
		{"awskms:///arn:aws:kms:eu-west-1:000000000000:key/x", "awskms:// keys need a berth built with"},
	} {
		_, stderr, err := run(t, newSignCmd(), "--key", tc.ref, app)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sign --key %s: %v, want %q", tc.ref, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "0000") || strings.Contains(stderr, "0000")) {
			t.Errorf("the PIN appears in the output: %v %s", err, stderr)
		}
	}
}

// TestKeyGenerateKinds: --type makes Ed25519 and RSA-3072 key pairs whose
// public halves `key public` reads back from the private file; --master
// writes a master key only its owner may read, which the server accepts.
func TestKeyGenerateKinds(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BERTH_KEY_PASSWORD", "kinds-test")
	for _, kind := range []string{"ed25519", "rsa-3072"} {
		prefix := filepath.Join(dir, kind)
		if _, stderr, err := run(t, newKeyCmd(), "generate", "--type", kind, "--output-key-prefix", prefix); err != nil {
			t.Fatalf("%s: %v\n%s", kind, err, stderr)
		}
		out, _, err := run(t, newKeyCmd(), "public", prefix+".key")
		if err != nil || out != string(readFile(t, prefix+".pub")) {
			t.Errorf("%s: key public of the private key: %v\n%s", kind, err, out)
		}
	}
	if _, _, err := run(t, newKeyCmd(), "generate", "--type", "dsa", "--output-key-prefix", filepath.Join(dir, "dsa")); err == nil ||
		!strings.Contains(err.Error(), "unknown key type") {
		t.Errorf("--type dsa: %v", err)
	}
	prefix := filepath.Join(dir, "server")
	if _, stderr, err := run(t, newKeyCmd(), "generate", "--master", "--output-key-prefix", prefix); err != nil {
		t.Fatalf("--master: %v\n%s", err, stderr)
	}
	st, err := os.Stat(prefix + ".master")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("master key file: %v %v", st, err)
	}
	if _, err := custody.OpenMaster("file:" + prefix + ".master"); err != nil {
		t.Errorf("the server refuses the generated master key: %v", err)
	}
	if _, _, err := run(t, newKeyCmd(), "generate", "--master", "--output-key-prefix", prefix); err == nil {
		t.Error("--master overwrote an existing master key")
	}
}

// TestKeyStageBody: `berth key stage` sends --policy's file as the rule's
// policy, fail_on only when given (or, without --policy, CRITICAL), and
// prints the rule the server answers with.
func TestKeyStageBody(t *testing.T) {
	isolateCredentials(t)
	var got api.StageRule
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = api.StageRule{}
		stage, ok := strings.CutPrefix(r.URL.Path, "/api/v1/projects/team/stages/")
		if r.Method != http.MethodPut || !ok {
			http.Error(w, r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(custody.Rule{Stage: stage, KeyPurpose: got.Key, FailOn: match.Severity(strings.ToUpper(got.FailOn)),
			Policy: got.Policy, Attest: got.Attest, Requires: got.Requires})
	}))
	t.Cleanup(srv.Close)
	doc := "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: stage}\nspec:\n  secrets: {deny: true}\n"
	file := filepath.Join(t.TempDir(), "stage.yaml")
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(doc))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		name   string
		args   []string
		want   api.StageRule
		output string
	}{
		{"a threshold by default", nil, api.StageRule{Key: "scan", FailOn: "CRITICAL"}, "scan\tscan\tCRITICAL\tfalse\t-\tfalse\t-"},
		{"a policy alone", []string{"--policy", file, "--attest"}, api.StageRule{Key: "scan", Policy: doc, Attest: true}, "scan\tscan\t-\tfalse\t" + digest + "\ttrue\t-"},
		{"a policy and a threshold", []string{"--policy", file, "--fail-on", "high"}, api.StageRule{Key: "scan", FailOn: "high", Policy: doc},
			"scan\tscan\tHIGH\tfalse\t" + digest + "\tfalse\t-"},
		{"a stage people approve", []string{"--stage", "prod", "--requires", "scan,staging"}, api.StageRule{Key: "prod", Requires: []string{"scan", "staging"}},
			"prod\tprod\t-\tfalse\t-\tfalse\tscan,staging"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"stage", "team", "--server", srv.URL, "--password", "x"}, tc.args...)
			out, err := runCmd(t, newKeyCmd(), args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("sent %+v, want %+v", got, tc.want)
			}
			if fields := strings.Join(strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1]), "\t"); fields != tc.output {
				t.Errorf("printed %q, want the row %q", out, tc.output)
			}
		})
	}
	if out, err := runCmd(t, newKeyCmd(), "stage", "team", "--server", srv.URL, "--password", "x", "--policy", filepath.Join(t.TempDir(), "none.yaml")); err == nil {
		t.Errorf("a missing policy file: no error\n%s", out)
	}
}

// TestKeyApproveRequests: berth key approve sends the approval (or, with
// --revoke, its withdrawal and reason) for the image to the API's path,
// and refuses a reference it cannot split.
func TestKeyApproveRequests(t *testing.T) {
	isolateCredentials(t)
	var method, uri string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method, uri = r.Method, r.URL.RequestURI()
		json.NewEncoder(w).Encode(custody.Approval{Stage: "prod", State: custody.Approved, KeyID: "k1"})
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name, ref   string
		args        []string
		method, uri string
	}{
		{"by tag", "team/app/web:v1", nil, "POST", "/api/v1/projects/team/repositories/app%2Fweb/artifacts/v1/approvals/prod"},
		{"by digest", "team/app@sha256:" + strings.Repeat("a", 64), nil, "POST", "/api/v1/projects/team/repositories/app/artifacts/sha256:" + strings.Repeat("a", 64) + "/approvals/prod"},
		{"revoked", "team/app:v1", []string{"--revoke", "--reason", "rolled back"}, "DELETE", "/api/v1/projects/team/repositories/app/artifacts/v1/approvals/prod?reason=rolled+back"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"approve", tc.ref, "prod", "--server", srv.URL, "--password", "x"}, tc.args...)
			out, err := runCmd(t, newKeyCmd(), args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if method != tc.method || uri != tc.uri {
				t.Errorf("sent %s %s, want %s %s", method, uri, tc.method, tc.uri)
			}
			if !strings.Contains(out, "prod") || !strings.Contains(out, "approved") {
				t.Errorf("printed %q", out)
			}
		})
	}
	for _, bad := range []string{"app:v1", "team/app", "team/app@", ":v1"} {
		if out, err := runCmd(t, newKeyCmd(), "approve", bad, "prod", "--server", srv.URL, "--password", "x"); err == nil {
			t.Errorf("%s: no error\n%s", bad, out)
		}
	}
}
