package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/riverqueue/river"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/jobs"
	"berth.dev/berth/internal/registry"
	"berth.dev/berth/internal/registry/access"
	"berth.dev/berth/internal/registry/event"
	"berth.dev/berth/internal/scanservice"
	"berth.dev/berth/internal/sign/store"
)

// openCustody opens the projects' signing keys when a master key is
// configured (keys.master_key) and authentication is on (keys belong to
// projects), and returns the scan stage's wiring; nil when there is none.
// The keys are in the store storage.meta names: meta.db, or the shared
// database, where every replica holds the same keys.
// The stage signs through a second registry handler over the same stores,
// in process: its writes are validated, recorded in the outbox and
// announced like any push, and invalidate the serving registry's cache.
func (s *Server) openCustody(ctx context.Context, bg *background, wake *wake) (*scanservice.Stages, error) {
	if s.cfg.Keys.MasterKey == "" {
		return nil, nil
	}
	if s.sec.auth == nil {
		return nil, fmt.Errorf("keys.master_key: signing keys belong to projects, which need authentication on")
	}
	m, err := custody.OpenMaster(s.cfg.Keys.MasterKey)
	if err != nil {
		return nil, fmt.Errorf("keys.master_key: %w", err)
	}
	bg.master = m
	keyStore, err := s.storage.Backends.OpenCustody(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys.master_key: %w", err)
	}
	if bg.custody, err = custody.Open(ctx, custody.Options{Store: keyStore, Master: m}); err != nil {
		return nil, fmt.Errorf("keys.master_key: %w", err)
	}
	inner, err := registry.New(registry.Options{Blobs: s.storage.Blobs, Meta: s.storage.Meta, Authorizer: serverWriter{},
		Notifier: event.Notifiers{s.reg, wake}, Logger: s.log, CacheSize: -1, MaxManifestSize: int64(s.cfg.Limits.MaxManifestSize)})
	if err != nil {
		return nil, err
	}
	host := s.registryHost()
	st, err := store.NewInProcess(inner, host)
	if err != nil {
		return nil, err
	}
	jobs.AddWorker(bg.queue, &rotateWorker{s: s})
	bg.queue.Every(time.Hour, true, func() (river.JobArgs, *river.InsertOpts) { return RotateKeysArgs{}, nil })
	return &scanservice.Stages{Custody: bg.custody, Store: st, Host: host,
		ProjectOf: func(repo string) (string, bool) {
			id := s.projectID(repo)
			return id, id != ""
		},
		Audit: func(ctx context.Context, action, repo, detail string, err error) {
			s.auditServer(scanservice.Scanner, action, auth.ProjectOf(repo), repo, detail, err)
		}}, nil
}

// registryHost is the registry's name as clients write it, for the
// payloads the server signs: the realm's host when one is configured,
// else the listen address.
func (s *Server) registryHost() string {
	if u, err := url.Parse(s.cfg.Auth.Realm); err == nil && u.Host != "" {
		return u.Host
	}
	return s.cfg.Addr
}

// auditServer records something the server did on its own.
func (s *Server) auditServer(actor, action, project, repo, detail string, err error) {
	result := audit.Success
	if err != nil {
		result = audit.Failure
		detail += " (" + err.Error() + ")"
	}
	if rerr := s.sec.audit.Record(audit.Entry{Actor: actor, Action: action, Project: project, Repository: repo,
		Result: result, Detail: detail}); rerr != nil {
		s.log.Warn("audit entry dropped", "error", rerr, "action", action)
	}
}

// serverWriter authorizes the server's own writes into its registry.
type serverWriter struct{}

func (serverWriter) Authenticate(*http.Request) (access.Subject, error) {
	return access.Subject{Name: scanservice.Scanner}, nil
}

func (serverWriter) Authorize(context.Context, access.Subject, access.Request) error { return nil }

// RotateKeysArgs is the hourly job that rotates the keys whose scheduled
// rotation is due.
type RotateKeysArgs struct{}

// Kind implements river.JobArgs.
func (RotateKeysArgs) Kind() string { return "rotate_keys" }

// InsertOpts: one at a time; the next hour's run retries a failure.
func (RotateKeysArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobs.QueueMaintenance, MaxAttempts: 1}
}

type rotateWorker struct {
	river.WorkerDefaults[RotateKeysArgs]
	s *Server
}

func (w *rotateWorker) Work(ctx context.Context, _ *river.Job[RotateKeysArgs]) error {
	c := w.s.bg.custody
	due, err := c.Due(ctx)
	if err != nil {
		return err
	}
	var failed error
	for _, k := range due {
		old, next, err := c.Rotate(ctx, k.ProjectID, k.Purpose, 0)
		w.s.auditServer("berth:scheduler", "key.rotate", k.Project, "",
			fmt.Sprintf("purpose=%s retired=%s current=%s (scheduled, every %s)", k.Purpose, old.ID, next.ID, time.Duration(k.RotateEvery)), err)
		if err != nil {
			failed = err
			continue
		}
		w.s.keysChanged(ctx, []string{k.ProjectID}, false)
	}
	return failed
}
