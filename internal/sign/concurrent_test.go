package sign

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"berth.dev/berth/internal/sign/attestation"
	"berth.dev/berth/internal/sign/store"
)

// concurrentSigners is how many parties sign one image at the same moment
// in the tests below.
const concurrentSigners = 8

// runTogether starts fn(i) for i in [0, n) in goroutines released at the
// same instant and returns their errors joined.
func runTogether(n int, fn func(i int) error) error {
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errors.Join(errs...)
}

func signerKeys(t *testing.T, n int) []testKey {
	t.Helper()
	ks := make([]testKey, n)
	for i := range ks {
		ks[i] = newTestKey(t, fmt.Sprintf("signer-%d", i))
	}
	return ks
}

// tagLayers returns the layers of the manifest at tag.
func tagLayers(t *testing.T, reg *testRegistry, img Target, tag string) []v1.Descriptor {
	t.Helper()
	m, err := reg.store.Manifest(context.Background(), img.Repo, tag)
	if err != nil {
		t.Fatal(err)
	}
	var mf v1.Manifest
	if err := json.Unmarshal(m.Body, &mf); err != nil {
		t.Fatal(err)
	}
	return mf.Layers
}

// Several parties (CI, scanner, staging…) sign one image at the same
// moment into the .sig tag: every signature must survive the concurrent
// read-modify-write of the one manifest, and production's `berth verify
// --key …` with all their keys must pass.
func TestConcurrentTagSignersKeepEverySignature(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t, true)
	img := reg.image(t, "team/app", "v1", "concurrent tag signers")
	ks := signerKeys(t, concurrentSigners)
	err := runTogether(len(ks), func(i int) error {
		_, err := Sign(ctx, reg.store, img, ks[i].key, SignOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Verify(ctx, reg.store, img, trustOf(len(ks), ks...), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Keys(); len(got) != len(ks) {
		t.Fatalf("verified keys %v, want all %d", got, len(ks))
	}
	if n := len(tagLayers(t, reg, img, Tag(img.Manifest.Digest, SignatureSuffix))); n != len(ks) {
		t.Fatalf("signature manifest has %d layers, want %d", n, len(ks))
	}
}

// The same for attestations, which share the .att tag.
func TestConcurrentTagAttestersKeepEveryAttestation(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t, true)
	img := reg.image(t, "team/app", "v1", "concurrent tag attesters")
	ks := signerKeys(t, concurrentSigners)
	err := runTogether(len(ks), func(i int) error {
		st, err := NewStatement(img, "vuln", []byte(fmt.Sprintf(`{"scanner":{"uri":"scanner-%d"}}`, i)), fixedNow)
		if err != nil {
			return err
		}
		_, err = Attest(ctx, reg.store, img, st, ks[i].key, AttestOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := VerifyAttestations(ctx, reg.store, img, trustOf(len(ks), ks...), VerifyOptions{PredicateType: attestation.PredicateVuln})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Verified) != len(ks) || len(res.Keys()) != len(ks) {
		t.Fatalf("verified %d attestations by keys %v, want %d", len(res.Verified), res.Keys(), len(ks))
	}
	if n := len(tagLayers(t, reg, img, Tag(img.Manifest.Digest, AttestationSuffix))); n != len(ks) {
		t.Fatalf("attestation manifest has %d layers, want %d", n, len(ks))
	}
}

func TestMergeLayer(t *testing.T) {
	layer := func(content, sig, predicateType string) v1.Descriptor {
		d := describe(DSSEMediaType, []byte(content))
		d.Annotations = map[string]string{SignatureAnnotation: sig}
		if predicateType != "" {
			d.Annotations[PredicateTypeAnnotation] = predicateType
		}
		return d
	}
	a, b := layer("a", "sig-a", ""), layer("b", "sig-b", "")
	backing := make([]v1.Descriptor, 2, 8) // room to append in place
	copy(backing, []v1.Descriptor{a, b})
	existing := backing[:2]

	ours := layer("c", "sig-c", "")
	got := mergeLayer(existing, ours)
	if len(got) != 3 || got[0].Digest != a.Digest || got[1].Digest != b.Digest || got[2].Digest != ours.Digest {
		t.Fatalf("merged %v, want a, b, ours", got)
	}
	if backing[:3][2].Digest == ours.Digest {
		t.Fatal("mergeLayer wrote into the caller's array")
	}
	if got := mergeLayer(got, layer("c", "sig-c", "")); len(got) != 3 {
		t.Fatalf("an identical layer was added again: %d layers", len(got))
	}
	// Same content, another signature (ECDSA signs differently each time):
	// a signature of its own, kept.
	if got := mergeLayer(got, layer("c", "sig-c2", "")); len(got) != 4 {
		t.Fatalf("same payload, other signature: %d layers, want 4", len(got))
	}
	// Same envelope under another predicate type annotation: kept too.
	if got := mergeLayer(got, layer("c", "sig-c", "https://example.com/p")); len(got) != 4 {
		t.Fatalf("other predicate type: %d layers, want 4", len(got))
	}
	if got := mergeLayer(nil, ours); len(got) != 1 || got[0].Digest != ours.Digest {
		t.Fatalf("merge into no manifest: %v", got)
	}
}

// hookStore plays a concurrent writer at chosen moments of an append: it
// calls beforeRead before the n-th read of tag and afterPut after the n-th
// write of it (n from 1). Appends run one at a time here. The wrapped store
// must be a store.ReferrerWriter (a Remote is).
type hookStore struct {
	store.Store
	tag        string
	beforeRead func(n int)
	afterPut   func(n int)
	reads      int
	puts       int
}

func (h *hookStore) Manifest(ctx context.Context, repo, reference string) (store.Manifest, error) {
	if reference == h.tag {
		h.reads++
		if h.beforeRead != nil {
			h.beforeRead(h.reads)
		}
	}
	return h.Store.Manifest(ctx, repo, reference)
}

func (h *hookStore) PutTag(ctx context.Context, repo, tag string, mediaType types.MediaType, body []byte) (v1.Descriptor, error) {
	d, err := h.Store.PutTag(ctx, repo, tag, mediaType, body)
	if err == nil && tag == h.tag {
		h.puts++
		if h.afterPut != nil {
			h.afterPut(h.puts)
		}
	}
	return d, err
}

// PutReferrer passes through to the wrapped store, so that appends to the
// referrers tag schema's index go through Manifest and PutTag above.
func (h *hookStore) PutReferrer(ctx context.Context, repo string, mediaType types.MediaType, body []byte) (v1.Descriptor, bool, error) {
	return h.Store.(store.ReferrerWriter).PutReferrer(ctx, repo, mediaType, body)
}

// manifestBody returns the current manifest at tag.
func manifestBody(t *testing.T, s store.Reader, img Target, tag string) store.Manifest {
	t.Helper()
	m, err := s.Manifest(context.Background(), img.Repo, tag)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A writer that read the tag before our push and writes after our
// read-back drops our signature; the read-back alone cannot see that, the
// check after the settle time does, and the signature is merged back in.
func TestAppendRepairsSignatureDroppedAfterReadBack(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t, true)
	img := reg.image(t, "team/app", "v1", "late writer")
	tag := Tag(img.Manifest.Digest, SignatureSuffix)
	early, ours := newTestKey(t, "early"), newTestKey(t, "ours")
	if _, err := Sign(ctx, reg.store, img, early.key, SignOptions{}); err != nil {
		t.Fatal(err)
	}
	// The slow writer's manifest: what it read (early's signature) plus
	// its own layer, here the same payload signed again by early.
	p, err := SimpleSigningPayload(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := early.key.sv.SignMessage(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	slow := describe(SimpleSigningMediaType, p)
	slow.Annotations = map[string]string{SignatureAnnotation: base64.StdEncoding.EncodeToString(sig)}
	slowCfg, slowManifest, err := signatureImage(append(tagLayers(t, reg, img, tag), slow))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.store.PutBlob(ctx, img.Repo, slowCfg); err != nil {
		t.Fatal(err)
	}

	h := &hookStore{Store: reg.store, tag: tag}
	clobbered := false
	h.beforeRead = func(n int) {
		// Read 1 is ours before the push, read 2 the read-back that finds
		// our layer; before the check after the settle time, the slow
		// writer lands.
		if n == 3 {
			if _, err := reg.store.PutTag(ctx, img.Repo, tag, types.OCIManifestSchema1, slowManifest); err != nil {
				t.Error(err)
			}
			clobbered = true
		}
	}
	if _, err := Sign(ctx, h, img, ours.key, SignOptions{}); err != nil {
		t.Fatal(err)
	}
	if !clobbered || h.puts != 2 {
		t.Fatalf("clobbered %v, %d pushes: the scenario did not play out", clobbered, h.puts)
	}
	layers := tagLayers(t, reg, img, tag)
	if len(layers) != 3 || indexOfLayer(layers, slow) != 1 {
		t.Fatalf("layers %v, want early's, the slow writer's and ours", layers)
	}
	if _, err := Verify(ctx, reg.store, img, trustOf(2, early, ours), VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A writer that replaces the manifest after every push of ours, forever:
// the append gives up with an error that names the tag.
func TestAppendGivesUpWhenTheTagNeverHoldsOurs(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t, true)
	img := reg.image(t, "team/app", "v1", "hostile writer")
	tag := Tag(img.Manifest.Digest, SignatureSuffix)
	other := newTestKey(t, "other")
	if _, err := Sign(ctx, reg.store, img, other.key, SignOptions{}); err != nil {
		t.Fatal(err)
	}
	theirs := manifestBody(t, reg.store, img, tag)
	h := &hookStore{Store: reg.store, tag: tag}
	h.afterPut = func(int) {
		if _, err := reg.store.PutTag(ctx, img.Repo, tag, theirs.Descriptor.MediaType, theirs.Body); err != nil {
			t.Error(err)
		}
	}
	_, err := Sign(ctx, h, img, newTestKey(t, "ours").key, SignOptions{})
	if !errors.Is(err, ErrTagUnsettled) || !strings.Contains(err.Error(), img.Name+":"+tag) {
		t.Fatalf("err = %v, want ErrTagUnsettled naming %s", err, tag)
	}
	if h.puts != appendAttempts {
		t.Fatalf("%d pushes, want %d", h.puts, appendAttempts)
	}
}
