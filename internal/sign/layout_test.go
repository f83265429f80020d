package sign

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"berth.dev/berth/internal/golden"
	"berth.dev/berth/internal/sign/attestation"
)

// checkGolden compares got, indented, with testdata/name.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatalf("%s is not JSON: %v", name, err)
	}
	pretty.WriteByte('\n')
	golden.Check(t, filepath.Join("testdata", name), pretty.Bytes())
}

func fixedTarget() Target {
	return Target{Name: "registry.test/team/app", Repo: "team/app", Manifest: v1.Descriptor{
		MediaType: types.OCIManifestSchema1,
		Digest:    v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)},
		Size:      1234,
	}}
}

// The documents that make up cosign's storage layout, pinned.
func TestLayoutGolden(t *testing.T) {
	l1 := describe(SimpleSigningMediaType, []byte("payload one"))
	l1.Annotations = map[string]string{SignatureAnnotation: "MEUCIQsig1"}
	l2 := describe(SimpleSigningMediaType, []byte("payload two"))
	l2.Annotations = map[string]string{SignatureAnnotation: "MEUCIQsig2"}
	cfg, manifest, err := signatureImage([]v1.Descriptor{l1, l2})
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "sig-config.json", cfg)
	checkGolden(t, "sig-manifest.json", manifest)

	ref, err := bundleReferrerManifest(fixedTarget(), []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`), attestation.PredicateCosignSign, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "bundle-referrer-manifest.json", ref)

	p, err := SimpleSigningPayload(fixedTarget(), map[string]string{"env": "prod"})
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "simple-signing-payload.json", p)

	st, err := NewStatement(fixedTarget(), "custom", []byte("hello"), fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	stJSON, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "custom-statement.json", stJSON)
}
