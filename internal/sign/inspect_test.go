package sign

import (
	"context"
	"testing"

	"berth.dev/berth/internal/sign/attestation"
)

// TestInspectListsWhatIsThere: in every layout, Inspect finds each
// signature (with its signed-in annotations) and attestation (with its
// predicate type) without any trusted key, and finds nothing beside an
// unsigned image.
func TestInspectListsWhatIsThere(t *testing.T) {
	ctx := context.Background()
	for _, lt := range layouts {
		t.Run(lt.name, func(t *testing.T) {
			reg := newTestRegistry(t, lt.referrersAPI)
			img := reg.image(t, "team/app", "v1", "inspect")
			bare := reg.image(t, "team/app", "v2", "inspect-bare")
			alice := newTestKey(t, "alice")
			if _, err := Sign(ctx, reg.store, img, alice.key, SignOptions{Annotations: map[string]string{"signer": "<release>"}, Referrers: lt.bundles}); err != nil {
				t.Fatal(err)
			}
			st, err := NewStatement(img, "cyclonedx", []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6"}`), fixedNow)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Attest(ctx, reg.store, img, st, alice.key, AttestOptions{Referrers: lt.bundles, Now: fixedNow}); err != nil {
				t.Fatal(err)
			}
			found, err := Inspect(ctx, reg.store, img)
			if err != nil {
				t.Fatal(err)
			}
			var sigs, atts int
			for _, f := range found {
				if f.Err != nil {
					t.Errorf("%s: %v", f.Source, f.Err)
				}
				switch f.Kind {
				case "signature":
					sigs++
					if !lt.bundles && f.Annotations["signer"] != "<release>" {
						t.Errorf("signature annotations %v", f.Annotations)
					}
				case "attestation":
					atts++
					if f.PredicateType != attestation.PredicateCycloneDX {
						t.Errorf("attestation predicate type %q", f.PredicateType)
					}
				}
			}
			if sigs != 1 || atts != 1 {
				t.Errorf("found %d signatures and %d attestations, want 1 and 1: %+v", sigs, atts, found)
			}
			if found, err := Inspect(ctx, reg.store, bare); err != nil || len(found) != 0 {
				t.Errorf("beside an unsigned image: %+v, %v", found, err)
			}
		})
	}
}
