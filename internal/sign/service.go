package sign

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"berth.dev/berth/internal/sign/store"
)

// Service signs and attests manifests on a registry's behalf, for instance
// after a clean scan. It writes through the same store interfaces as the
// CLI, so what it writes is what `berth verify` and cosign read.
type Service struct {
	store     store.Store
	key       *Key
	host      string
	referrers bool
}

// NewService returns a Service writing to st with key. host is the
// registry's name as clients use it ("registry.example.com" or
// "localhost:5000"); it goes into payloads as part of the repository name.
// referrers selects sigstore bundles as OCI 1.1 referrers over cosign's tag
// scheme.
func NewService(st store.Store, key *Key, host string, referrers bool) *Service {
	return &Service{store: st, key: key, host: host, referrers: referrers}
}

func (s *Service) target(ctx context.Context, repo string, digest v1.Hash) (Target, error) {
	d, err := s.store.Resolve(ctx, repo, digest.String())
	if err != nil {
		return Target{}, fmt.Errorf("resolve %s/%s@%s: %w", s.host, repo, digest, err)
	}
	return Target{Name: s.host + "/" + repo, Repo: repo, Manifest: d}, nil
}

// SignManifest signs the manifest with digest in repo.
func (s *Service) SignManifest(ctx context.Context, repo string, digest v1.Hash, annotations map[string]string) (Written, error) {
	t, err := s.target(ctx, repo, digest)
	if err != nil {
		return Written{}, err
	}
	return Sign(ctx, s.store, t, s.key, SignOptions{Annotations: annotations, Referrers: s.referrers})
}

// AttestManifest attaches a predicate of the given kind (a cosign --type
// name or a URI) about the manifest with digest in repo. annotations go
// on the statement's subject (in-toto v1 ResourceDescriptor annotations),
// inside what is signed, as SignManifest's go in the signed payload.
func (s *Service) AttestManifest(ctx context.Context, repo string, digest v1.Hash, kind string, predicate []byte, annotations map[string]string) (Written, error) {
	t, err := s.target(ctx, repo, digest)
	if err != nil {
		return Written{}, err
	}
	st, err := NewStatement(t, kind, predicate, time.Now())
	if err != nil {
		return Written{}, err
	}
	for i := range st.Subject {
		for k, v := range annotations {
			if st.Subject[i].Annotations == nil {
				st.Subject[i].Annotations = map[string]any{}
			}
			st.Subject[i].Annotations[k] = v
		}
	}
	return Attest(ctx, s.store, t, st, s.key, AttestOptions{Referrers: s.referrers})
}
