package sign

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// arrivals plays the registry's record of first arrivals: record stamps
// every signature layer next to the image that it has not seen yet.
type arrivals map[string]time.Time

func (a arrivals) record(t *testing.T, reg *testRegistry, img Target, at time.Time) {
	t.Helper()
	ctx := context.Background()
	var layers []v1.Descriptor
	for _, tl := range []struct {
		suffix string
		mt     types.MediaType
	}{{SignatureSuffix, SimpleSigningMediaType}, {AttestationSuffix, DSSEMediaType}} {
		ls, err := readTagLayers(ctx, reg.store, img.Repo, Tag(img.Manifest.Digest, tl.suffix), tl.mt)
		if err == nil {
			layers = append(layers, ls...)
		}
	}
	refs, err := reg.store.Referrers(ctx, img.Repo, img.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range refs {
		m, err := reg.store.Manifest(ctx, img.Repo, d.Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		var mf v1.Manifest
		if err := json.Unmarshal(m.Body, &mf); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, mf.Layers...)
	}
	for _, l := range layers {
		if key, ok := ArrivalKey(l); ok {
			if _, seen := a[key]; !seen {
				a[key] = at
			}
		}
	}
}

func (a arrivals) lookup(_ context.Context, key string) (time.Time, bool) {
	at, ok := a[key]
	return at, ok
}

// TestKeyWindowAtArrival: a key whose window has closed still vouches for
// the signatures and attestations the registry received inside it, in
// every layout; not for those received after, nor when the registry cannot
// say when they arrived.
func TestKeyWindowAtArrival(t *testing.T) {
	ctx := context.Background()
	cutover := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	later := cutover.Add(90 * 24 * time.Hour)
	for _, lt := range layouts {
		t.Run(lt.name, func(t *testing.T) {
			reg := newTestRegistry(t, lt.referrersAPI)
			old := newTestKey(t, "old")
			windowed, err := NewTrustedKey("old", old.key.Public(), time.Time{}, cutover)
			if err != nil {
				t.Fatal(err)
			}
			trust := Trust{Keys: []TrustedKey{windowed}, Require: 1}
			seen := arrivals{}
			signAt := func(seed string, at time.Time) Target {
				img := reg.image(t, "team/app", seed, seed)
				if _, err := Sign(ctx, reg.store, img, old.key, SignOptions{Referrers: lt.bundles}); err != nil {
					t.Fatal(err)
				}
				st, err := NewStatement(img, "cyclonedx", []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6"}`), at)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := Attest(ctx, reg.store, img, st, old.key, AttestOptions{Referrers: lt.bundles, Now: at}); err != nil {
					t.Fatal(err)
				}
				seen.record(t, reg, img, at)
				return img
			}
			inside := signAt("inside", cutover.Add(-time.Hour))
			after := signAt("after", cutover.Add(time.Hour))

			cases := []struct {
				name   string
				img    Target
				lookup func(context.Context, string) (time.Time, bool)
				verify bool
			}{
				{"arrived inside the window", inside, seen.lookup, true},
				{"arrived after the window", after, seen.lookup, false},
				{"arrival unknown to the registry", inside, func(context.Context, string) (time.Time, bool) { return time.Time{}, false }, false},
				{"no registry record asked", inside, nil, false},
			}
			for _, tc := range cases {
				opts := VerifyOptions{Now: later, ArrivedAt: tc.lookup}
				_, serr := Verify(ctx, reg.store, tc.img, trust, opts)
				_, aerr := VerifyAttestations(ctx, reg.store, tc.img, trust, opts)
				for what, err := range map[string]error{"signature": serr, "attestation": aerr} {
					switch {
					case tc.verify && err != nil:
						t.Errorf("%s: %s: %v, want verified", tc.name, what, err)
					case !tc.verify && !errors.Is(err, ErrKeyNotValid):
						t.Errorf("%s: %s: err = %v, want ErrKeyNotValid", tc.name, what, err)
					}
				}
			}
		})
	}
}

// TestArrivalKeyNamesTheSignature: a cosign v2 signature's key is its own,
// not its payload's (every signer of an image signs the same payload, so a
// signature made after the window must not inherit an earlier one's
// arrival); envelopes and bundles are named by their digest; other layers
// have none.
func TestArrivalKeyNamesTheSignature(t *testing.T) {
	payload := v1.Hash{Algorithm: "sha256", Hex: "aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11"}
	sigLayer := func(sig string) v1.Descriptor {
		return v1.Descriptor{MediaType: SimpleSigningMediaType, Digest: payload, Annotations: map[string]string{SignatureAnnotation: sig}}
	}
	first, ok1 := ArrivalKey(sigLayer("MEUCIQ-first"))
	second, ok2 := ArrivalKey(sigLayer("MEUCIQ-second"))
	if !ok1 || !ok2 || first == second {
		t.Errorf("two signatures over one payload: keys %q, %q; want two distinct keys", first, second)
	}
	cases := []struct {
		name string
		l    v1.Descriptor
		ok   bool
	}{
		{"simple signing without a signature", v1.Descriptor{MediaType: SimpleSigningMediaType, Digest: payload}, false},
		{"DSSE envelope", v1.Descriptor{MediaType: DSSEMediaType, Digest: payload}, true},
		{"sigstore bundle", v1.Descriptor{MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json", Digest: payload}, true},
		{"image layer", v1.Descriptor{MediaType: types.OCILayer, Digest: payload}, false},
	}
	for _, tc := range cases {
		if key, ok := ArrivalKey(tc.l); ok != tc.ok || (ok && key == "") {
			t.Errorf("%s: ArrivalKey = %q, %v; want ok %v", tc.name, key, ok, tc.ok)
		}
	}
}
