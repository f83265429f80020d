package main

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestRegistryFlagsOpen(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "app.tar")
	if err := os.WriteFile(archive, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		image      string
		flags      registryFlags
		wantScheme string // "" means refused as not in a registry
	}{
		{"registry.example/team/app:v1", registryFlags{}, "https"},
		{"registry.example/team/app:v1", registryFlags{allowHTTP: true}, "http"},
		{"registry.example/team/app:v1", registryFlags{insecure: true}, "http"},
		{"registry.example/team/app:v1", registryFlags{allowInsecure: true}, "https"},
		{"docker://registry.example/team/app:v1", registryFlags{}, "https"},
		{"registry:registry.example/team/app:v1", registryFlags{}, "https"},
		{"127.0.0.1:5000/team/app:v1", registryFlags{}, "http"}, // loopback: no flag needed
		{"localhost:5000/team/app:v1", registryFlags{}, "http"},
		{"[::1]:5000/team/app:v1", registryFlags{}, "http"},
		{"oci-archive:" + archive, registryFlags{}, ""},
		{"docker-archive:" + archive, registryFlags{}, ""},
		{"oci:" + dir, registryFlags{}, ""},
		{"oci-dir:" + dir, registryFlags{}, ""},
		{"dir:" + dir, registryFlags{}, ""},
		{archive, registryFlags{}, ""},
		{dir, registryFlags{}, ""},
		{"./missing.tar", registryFlags{}, ""},
	}
	for _, tc := range tests {
		ref, _, err := tc.flags.open(tc.image)
		switch {
		case tc.wantScheme == "":
			if err == nil || !strings.Contains(err.Error(), "not in a registry") {
				t.Errorf("%s: err = %v, want it refused as not in a registry", tc.image, err)
			}
		case err != nil:
			t.Errorf("%s %+v: %v", tc.image, tc.flags, err)
		case ref.Context().Registry.Scheme() != tc.wantScheme:
			t.Errorf("%s %+v: scheme %s, want %s", tc.image, tc.flags, ref.Context().Registry.Scheme(), tc.wantScheme)
		}
	}
}

// TestInsecureFlag: a registry with a certificate nobody trusts is refused
// by default, and reached with --insecure (berth's spelling) as with
// cosign's --allow-insecure-registry.
func TestInsecureFlag(t *testing.T) {
	srv := httptest.NewTLSServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(u.Host + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	if err := remote.Write(ref, nodeImage(t, "amd64", "4.17.15"), remote.WithTransport(tr)); err != nil {
		t.Fatal(err)
	}
	k := writeKeys(t, false)
	image := ref.String()

	if _, _, err := run(t, newSignCmd(), "--key", k.plain, "--insecure-key", image); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: err = %v", err)
	}
	if _, stderr, err := run(t, newSignCmd(), "--key", k.plain, "--insecure-key", "--insecure", image); err != nil {
		t.Fatalf("sign --insecure: %v\n%s", err, stderr)
	}
	for _, flag := range []string{"--insecure", "--allow-insecure-registry"} {
		if _, stderr, err := run(t, newVerifyCmd(), "--key", k.pub, flag, image); err != nil {
			t.Errorf("verify %s: %v\n%s", flag, err, stderr)
		}
	}
	if _, _, err := run(t, newAttestCmd(), "--key", k.plain, "--insecure-key", "--predicate", k.pub, image); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("attest without --insecure: err = %v", err)
	}
}

// TestKeyPasswordVariables holds each secret to its own variable: the key
// password is BERTH_KEY_PASSWORD, else COSIGN_PASSWORD, and never
// BERTH_PASSWORD (the login password), which key generate used to encrypt
// keys with silently.
func TestKeyPasswordVariables(t *testing.T) {
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	saved := os.Stdin
	os.Stdin = devNull // no terminal to ask on, whatever runs the tests
	defer func() { os.Stdin = saved }()

	generate := func(t *testing.T, env map[string]string) (string, error) {
		t.Helper()
		for _, v := range []string{"BERTH_KEY_PASSWORD", "COSIGN_PASSWORD", "BERTH_PASSWORD"} {
			os.Unsetenv(v)
			t.Cleanup(func() { os.Unsetenv(v) })
		}
		for k, v := range env {
			t.Setenv(k, v)
		}
		prefix := filepath.Join(t.TempDir(), "k")
		cmd := newKeyCmd()
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		cmd.SetArgs([]string{"generate", "--output-key-prefix", prefix})
		return prefix, cmd.Execute()
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		opensBy string // the password the key opens with
	}{
		{"BERTH_KEY_PASSWORD", map[string]string{"BERTH_KEY_PASSWORD": "key-pw", "BERTH_PASSWORD": "login-pw"}, "", "key-pw"},
		{"COSIGN_PASSWORD", map[string]string{"COSIGN_PASSWORD": "cosign-pw", "BERTH_PASSWORD": "login-pw"}, "", "cosign-pw"},
		{"BERTH_KEY_PASSWORD before COSIGN_PASSWORD", map[string]string{"BERTH_KEY_PASSWORD": "key-pw", "COSIGN_PASSWORD": "cosign-pw"}, "", "key-pw"},
		{"only the login password", map[string]string{"BERTH_PASSWORD": "login-pw"}, "BERTH_PASSWORD is the login password", ""},
		{"nothing", nil, "set BERTH_KEY_PASSWORD (or COSIGN_PASSWORD)", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefix, err := generate(t, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if _, err := os.Stat(prefix + ".key"); !os.IsNotExist(err) {
					t.Errorf("a key was written without a key password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			os.Unsetenv("COSIGN_PASSWORD")
			t.Setenv("BERTH_KEY_PASSWORD", tc.opensBy)
			if _, err := loadSigningKey(prefix+".key", false); err != nil {
				t.Errorf("the key does not open with %q: %v", tc.opensBy, err)
			}
			if login := tc.env["BERTH_PASSWORD"]; login != "" {
				t.Setenv("BERTH_KEY_PASSWORD", login)
				if _, err := loadSigningKey(prefix+".key", false); err == nil {
					t.Errorf("the key opens with the login password %q", login)
				}
			}
		})
	}
}
