package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/admission"
	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/policy"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/sign/store"
	"berth.dev/berth/internal/sign/store/local"
)

// AdmissionPrefix is where berth serve mounts the admission webhook.
const AdmissionPrefix = "/admission/"

// openAdmission builds the webhook when admission.policy or
// admission.project_policies is set. Images of this registry (its
// address, the name the webhook is called by, admission.registry_hosts)
// are read from its own stores, and only as far as the caller may pull
// them: the apiserver can present credentials (a token in its admission
// kubeconfig); without them, only public projects' images are visible,
// exactly as to an anonymous pull. They must satisfy their project's
// stored policy too, decided by the enforcer the registry's pulls ask
// (and its verdict cache): a pod is refused with the pull's refusal
// rather than admitted to fail pulling. Unlike a pull, the refusal holds
// for whoever may push: the kubelet pulls as the runtime.
func (s *Server) openAdmission() (http.Handler, error) {
	cfg := s.cfg.Admission
	if cfg.Policy == "" && !cfg.ProjectPolicies {
		return nil, nil
	}
	enforcer := s.policies.enforcer
	if cfg.ProjectPolicies && enforcer == nil {
		return nil, errors.New("admission.project_policies: projects have no policies with authentication off (auth.disabled)")
	}
	var ownPolicy func() *policy.Policy
	if cfg.Policy != "" {
		p, err := policy.Load(cfg.Policy, policy.Options{})
		if err != nil {
			return nil, fmt.Errorf("admission.policy: %w", err)
		}
		ownPolicy = func() *policy.Policy { return p }
	}
	hosts := map[string]bool{s.cfg.Addr: true}
	if _, port, err := net.SplitHostPort(s.cfg.Addr); err == nil {
		hosts["localhost:"+port], hosts["127.0.0.1:"+port] = true, true
	}
	for _, h := range cfg.RegistryHosts {
		hosts[h] = true
	}
	reader := local.Reader{Meta: s.storage.Meta, Blobs: s.storage.Blobs}
	opts := admission.Options{Policy: ownPolicy, PodSecurity: cfg.PodSecurity, Logger: s.log,
		Local: func(ctx context.Context, registry, repo string) (store.Reader, func(string) func(context.Context) (*match.Report, error), bool) {
			if !hosts[registry] && registry != ctx.Value(admissionHost{}) {
				return nil, nil, false
			}
			if s.sec.auth != nil {
				project, _, _ := strings.Cut(repo, "/")
				who, _ := ctx.Value(admissionCaller{}).(*auth.Principal)
				if !s.sec.auth.Can(who, project, auth.Pull) {
					// The same answer as for a repository that is not there.
					return hidden{}, nil, true
				}
			}
			return reader, s.storedReport, true
		},
		Viewer: func(ctx context.Context) string {
			if who, _ := ctx.Value(admissionCaller{}).(*auth.Principal); who != nil {
				return who.Name
			}
			return ""
		}}
	if enforcer != nil {
		opts.ProjectPolicy = func(ctx context.Context, registry, repo, reference, d string) (string, []string, error) {
			// Named as the kubelet will name it when it pulls: the
			// registry is the Host its pull carries.
			return enforcer.CheckImage(ctx, registry, repo, reference, digest.Digest(d))
		}
	}
	h := admission.New(opts)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The name the webhook was called by names this registry too.
		r = r.WithContext(context.WithValue(r.Context(), admissionHost{}, r.Host))
		if s.sec.auth != nil {
			if who, err := s.sec.auth.Identify(r); err == nil && who != nil {
				r = r.WithContext(context.WithValue(r.Context(), admissionCaller{}, who))
			}
		}
		h.ServeHTTP(w, r)
	}), nil
}

type admissionCaller struct{}

type admissionHost struct{}

// storedReport reads the report the server stored for a digest.
func (s *Server) storedReport(d string) func(context.Context) (*match.Report, error) {
	return func(ctx context.Context) (*match.Report, error) {
		rec, err := s.bg.reports.Get(ctx, digest.Digest(d), true)
		if errors.Is(err, reports.ErrNotFound) || (err == nil && !rec.HasReport()) {
			return nil, policy.ErrNotScanned
		}
		if err != nil {
			return nil, err
		}
		return rec.Report, nil
	}
}

// hidden is a repository the caller may not see.
type hidden struct{}

func (hidden) Resolve(context.Context, string, string) (v1.Descriptor, error) {
	return v1.Descriptor{}, store.ErrNotFound
}
func (hidden) Manifest(context.Context, string, string) (store.Manifest, error) {
	return store.Manifest{}, store.ErrNotFound
}
func (hidden) Blob(context.Context, string, v1.Hash) ([]byte, error) { return nil, store.ErrNotFound }
func (hidden) Referrers(context.Context, string, v1.Hash) ([]v1.Descriptor, error) {
	return nil, store.ErrNotFound
}
