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
