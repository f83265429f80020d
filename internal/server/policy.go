package server

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/policy/pull"
	policysqlite "berth.dev/berth/internal/policy/sqlite"
	"berth.dev/berth/internal/registry"
)

// policies are the projects' pull-time policies: their store (in
// meta.db) and the enforcer the registry asks before serving a manifest.
// Both nil when authentication is off: policies belong to projects.
type policies struct {
	store    *policysqlite.Store
	enforcer *pull.Enforcer
}

func openPolicies(ctx context.Context, storage *Storage, sec *security, log *slog.Logger) (*policies, error) {
	if sec.auth == nil {
		return &policies{}, nil
	}
	st, err := policysqlite.Open(ctx, filepath.Join(storage.Dir, "meta.db"))
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
