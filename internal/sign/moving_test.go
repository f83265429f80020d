package sign

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"berth.dev/berth/internal/sign/store"
	"berth.dev/berth/internal/sign/store/storetest"
)

// movingStore moves a tag to another image right after the first Resolve
// of that tag, as a concurrent push would.
type movingStore struct {
	store.Store
	tag    string
	moveTo func()
	once   sync.Once
}

func (m *movingStore) Resolve(ctx context.Context, repo, reference string) (v1.Descriptor, error) {
	d, err := m.Store.Resolve(ctx, repo, reference)
	if reference == m.tag {
		m.once.Do(m.moveTo)
	}
	return d, err
}

func TestTagMovesBetweenResolveAndSign(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t, true)
	first := reg.image(t, "team/app", "latest", "first")
	var second v1.Descriptor
	ms := &movingStore{Store: reg.store, tag: "latest", moveTo: func() {
		second = storetest.Image(t, reg.store, "team/app", "latest", "second")
	}}
	alice := newTestKey(t, "alice")
	ref, err := name.ParseReference(reg.host+"/team/app:latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	w, err := SignReference(ctx, ms, ref, alice.key, SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w.Target.Manifest.Digest != first.Manifest.Digest {
		t.Fatalf("signed %s, want the resolved digest %s", w.Target.Manifest.Digest, first.Manifest.Digest)
	}
	if second.Digest == first.Manifest.Digest {
		t.Fatal("the tag did not move")
	}
	if _, err := Verify(ctx, reg.store, first, trustOf(1, alice), VerifyOptions{}); err != nil {
		t.Fatalf("resolved digest: %v", err)
	}
	now, err := Resolve(ctx, reg.store, ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, reg.store, now, trustOf(1, alice), VerifyOptions{}); !errors.Is(err, ErrNoSignatures) {
		t.Fatalf("the image the tag moved to must be unsigned: err = %v", err)
	}
}
