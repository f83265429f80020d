package sign

import (
	"context"
	"encoding/json"
	"testing"

	"berth.dev/berth/internal/sign/attestation"
)

func TestServiceSignsAndAttestsByDigest(t *testing.T) {
	ctx := context.Background()
	for _, referrers := range []bool{false, true} {
		reg := newTestRegistry(t, true)
		img := reg.image(t, "team/app", "v1", "service")
		k := newTestKey(t, "registry")
		svc := NewService(reg.store, k.key, reg.host, referrers)
		w, err := svc.SignManifest(ctx, "team/app", img.Manifest.Digest, map[string]string{"scan": "clean"})
		if err != nil {
			t.Fatal(err)
		}
		if w.Target.Name != img.Name || w.Target.Manifest.Digest != img.Manifest.Digest {
			t.Fatalf("service target %+v, want %+v", w.Target, img)
		}
		if _, err := Verify(ctx, reg.store, img, trustOf(1, k), VerifyOptions{Annotations: map[string]string{"scan": "clean"}}); err != nil {
			t.Fatalf("referrers=%v: %v", referrers, err)
		}
		if _, err := svc.AttestManifest(ctx, "team/app", img.Manifest.Digest, "vuln", []byte(`{"scanner":{"uri":"berth"}}`),
			map[string]string{"dev.berth.stage": "scan"}); err != nil {
			t.Fatal(err)
		}
		res, err := VerifyAttestations(ctx, reg.store, img, trustOf(1, k), VerifyOptions{PredicateType: attestation.PredicateVuln})
		if err != nil || len(res.Verified) != 1 {
			t.Fatalf("referrers=%v: %v %+v", referrers, err, res)
		}
		// The annotations are on the subject, inside what is signed.
		var st attestation.Statement
		if err := json.Unmarshal(res.Verified[0].Payload, &st); err != nil || len(st.Subject) != 1 || st.Subject[0].Annotations["dev.berth.stage"] != "scan" {
			t.Errorf("referrers=%v: attested statement %s (%v), want its subject annotated dev.berth.stage=scan", referrers, res.Verified[0].Payload, err)
		}
	}
}
