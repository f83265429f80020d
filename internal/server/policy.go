package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/policy"
	"berth.dev/berth/internal/policy/pull"
	"berth.dev/berth/internal/registry"
	"berth.dev/berth/internal/sign"
)

// policies are the projects' pull-time policies: their store (in
// meta.db, or the shared database) and the enforcer the registry asks
// before serving a manifest. Both nil when authentication is off:
// policies belong to projects.
type policies struct {
	store    policy.Store
	enforcer *pull.Enforcer
}

func openPolicies(ctx context.Context, storage *Storage, sec *security, log *slog.Logger) (*policies, error) {
	if sec.auth == nil {
		return &policies{}, nil
	}
	st, err := storage.Backends.OpenPolicies(ctx)
	if err != nil {
		return nil, err
	}
	auth := sec.auth
	e, err := pull.New(ctx, pull.Options{Policies: st, Meta: storage.Meta, Blobs: storage.Blobs, Logger: log,
		ProjectID: func(name string) string {
			p, err := auth.Project(name)
			if err != nil {
				return ""
			}
			return p.ID
		}})
	if err != nil {
		st.Close()
		return nil, err
	}
	return &policies{store: st, enforcer: e}, nil
}

// policyKeys resolves the key references of a project's policy
// (key.secretRef.name, keys[].ref): the project's signing keys the server
// holds, by purpose ("scan", "release"; every key of a rotation), then the
// keys of its trust file in trust_dir by name (the project's name: all of
// them).
func (s *Server) policyKeys(project string) policy.KeyResolver {
	return func(name string) ([]sign.TrustedKey, error) {
		var found []sign.TrustedKey
		if s.bg.custody != nil && s.sec.auth != nil {
			if p, err := s.sec.auth.Project(project); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t, err := s.bg.custody.Trust(ctx, p.ID, name)
				cancel()
				if err != nil && !errors.Is(err, custody.ErrNotFound) {
					return nil, err
				}
				found = append(found, t.Keys...)
			}
		}
		t, err := s.projectTrust(project)
		if err != nil {
			return nil, err
		}
		if t != nil {
			for _, k := range t.Keys {
				if k.Name == name || name == project {
					found = append(found, k)
				}
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("project %s has no key %q (neither a signing key the server holds for that purpose nor a key of its trust file)", project, name)
		}
		return found, nil
	}
}

// stageRevoked reads the approval a stage signature or attestation
// stands for (pull.Options.Revoked): one annotated with the stage, made by
// a signing key the server holds for repo's project (any of its
// versions: keyID is the public key's id), does not count once
// the server revoked its approval of d in repo for that stage. Signatures
// by other keys are not the server's to withdraw.
func (s *Server) stageRevoked(ctx context.Context, repo string, d digest.Digest, stage, keyID string) (string, bool, error) {
	a, err := s.bg.custody.Approval(ctx, repo, d, stage)
	if errors.Is(err, custody.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read the %s approval of %s@%s: %w", stage, repo, d, err)
	}
	if a.State != custody.Revoked {
		return "", false, nil
	}
	pid := s.projectID(repo)
	if pid == "" {
		return "", false, nil
	}
	held, err := s.bg.custody.List(ctx, pid)
	if err != nil {
		return "", false, fmt.Errorf("list the signing keys of %s: %w", auth.ProjectOf(repo), err)
	}
	for _, k := range held {
		if k.KeyHint == keyID {
			return a.Reason, true, nil
		}
	}
	return "", false, nil
}

// keysChanged loads again the policies of projects whose signing keys
// the server holds changed (all: every project's), so that a key
// reference counts a key created, rotated in or restored since the
// policy loaded. A policy that no longer loads refuses its project's
// pulls (fail closed) and is logged by the enforcer; an error reading the
// store keeps the policies as they were and is logged here.
func (s *Server) keysChanged(ctx context.Context, projectIDs []string, all bool) {
	if s.policies == nil || s.policies.enforcer == nil {
		return
	}
	if err := s.policies.enforcer.Reload(ctx, projectIDs, all); err != nil {
		s.log.ErrorContext(ctx, "policies not loaded again after a change of signing keys; they count the keys they loaded with", "error", err)
	}
}

// pullPolicy is the registry's pull step, or nil (a nil *Enforcer in the
// interface would not be nil).
func (p *policies) pullPolicy() registry.PullPolicy {
	if p.enforcer == nil {
		return nil
	}
	return p.enforcer
}

// reportStored forgets verdicts made on a digest's previous report.
func (p *policies) reportStored(d digest.Digest) {
	if p.enforcer != nil {
		p.enforcer.ReportStored(d)
	}
}

func (p *policies) close() error {
	if p.store == nil {
		return nil
	}
	return p.store.Close()
}
