package sign

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"berth.dev/berth/internal/sign/store"
)

// Target is the manifest a signature or attestation is about.
type Target struct {
	// Name is the repository as clients name it, registry included
	// ("registry.example/team/app"): the docker-reference of simple signing
	// payloads and the subject name of statements.
	Name string
	// Repo is the repository path inside the registry ("team/app").
	Repo string
	// Manifest describes the manifest itself.
	Manifest v1.Descriptor
}

// String names the target by digest, the only name a signature binds to.
func (t Target) String() string { return t.Name + "@" + t.Manifest.Digest.String() }

// Resolve turns a reference into a Target by asking the registry for the
// manifest's descriptor. A tag is resolved once, here; everything after
// works on the digest, so a tag that moves later cannot redirect a
// signature.
func Resolve(ctx context.Context, r store.Reader, ref name.Reference) (Target, error) {
	repo := ref.Context()
	d, err := r.Resolve(ctx, repo.RepositoryStr(), ref.Identifier())
	if err != nil {
		return Target{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	if dg, ok := ref.(name.Digest); ok && dg.DigestStr() != d.Digest.String() {
		return Target{}, fmt.Errorf("resolve %s: registry answered with digest %s", ref, d.Digest)
	}
	return Target{Name: repo.Name(), Repo: repo.RepositoryStr(), Manifest: d}, nil
}
