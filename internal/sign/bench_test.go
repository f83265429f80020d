package sign

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"berth.dev/berth/internal/sign/store"
)

// BenchmarkVerifyThreeSignatures verifies an image signed by three keys
// over a loopback registry: resolve the tag, read the signature manifest
// and payloads, verify all three. "cold" builds a new registry client each
// time, as one `berth verify` run does; "warm" reuses one, as the server
// does.
func BenchmarkVerifyThreeSignatures(b *testing.B) {
	ctx := context.Background()
	reg := newTestRegistry(b, true)
	img := reg.image(b, "bench/app", "v1", "bench")
	ks := []testKey{newTestKey(b, "a"), newTestKey(b, "b"), newTestKey(b, "c")}
	for _, k := range ks {
		if _, err := Sign(ctx, reg.store, img, k.key, SignOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	trust := trustOf(3, ks...)
	ref, err := name.ParseReference(reg.host+"/bench/app:v1", name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	verify := func(st store.Reader) error {
		t, err := Resolve(ctx, st, ref)
		if err != nil {
			return err
		}
		res, err := Verify(ctx, st, t, trust, VerifyOptions{})
		if err != nil {
			return err
		}
		if len(res.Verified) != 3 {
			return fmt.Errorf("verified %d signatures", len(res.Verified))
		}
		return nil
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			st, err := store.NewRemote(ref.Context().Registry)
			if err != nil {
				b.Fatal(err)
			}
			if err := verify(st); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		for b.Loop() {
			if err := verify(reg.store); err != nil {
				b.Fatal(err)
			}
		}
	})
}
