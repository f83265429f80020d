package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/riverqueue/river"

	"berth.dev/berth/internal/backend"
	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers"
	"berth.dev/berth/internal/jobs"
	prom "berth.dev/berth/internal/metrics"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/scanservice"
	"berth.dev/berth/internal/vulndb"
	"berth.dev/berth/internal/vulndb/live"
	"berth.dev/berth/internal/vulndb/shared"
	"berth.dev/berth/internal/webhook"
)

// background is the server's background work: the job queue and what runs
// on it (scans, re-matches, database updates, garbage collection), and the
// outbox relay that turns registry changes into jobs.
//
// Data directory layout added here:
//
//	<data>/jobs.db    the job queue (river, SQLite; on PostgreSQL, river's tables)
//	<data>/vulndb/    the server's vulnerability database
//	<data>/cache/     the layer cache of server-side scans
type background struct {
	started bool
	queue   *jobs.Queue
	reports reports.Store
	vulndb  *live.DB // nil when the server does not scan
	scans   *scanservice.Service
	relay   *relay
	// sharedDB keeps vulndb the database every replica scans with; nil
	// on SQLite or when the server does not scan.
	sharedDB      *shared.Replica
	sharedDBStore shared.Store
	stopSharedDB  context.CancelFunc
	sharedDBDone  chan struct{}
	// hooks and deliveries are the project webhooks; nil when
	// authentication is off (webhooks belong to projects).
	hooks      backend.WebhookStore
	deliveries *webhook.Dispatcher
	// custody holds the projects' signing keys under master; nil without
	// keys.master_key.
	custody *custody.Service
	master  custody.Master
}

// VulnDBDir is where a data directory keeps the server's vulnerability
// database; `berth db import --db-dir` into it gives an air-gapped server
// its database.
func VulnDBDir(dataDir string) string { return filepath.Join(dataDir, "vulndb") }

// openBackground opens the queue and the scanning pieces; workers start
// with startBackground.
func (s *Server) openBackground(ctx context.Context, reg *prom.Registry, wake *wake) (*background, error) {
	cfg := s.cfg
	dir := s.storage.Dir
	// jobs.db in the data directory, whose lock is held; or river's
	// tables in the shared database.
	q, err := jobs.Open(ctx, s.storage.Backends.Jobs(jobs.Config{
		ScanWorkers: cfg.Scan.Workers,
		RetryBase:   cfg.Jobs.RetryBase, RetryMax: cfg.Jobs.RetryMax,
		Logger: s.log, Metrics: reg,
	}))
	if err != nil {
		return nil, err
	}
	bg := &background{queue: q}
	fail := func(err error) (*background, error) {
		bg.close()
		return nil, err
	}
	if bg.reports, err = s.storage.Backends.OpenReports(ctx); err != nil {
		return fail(err)
	}
	// On a shared database every replica scans, sources or not: river
	// hands scan and re-match jobs to any replica, and each installs the
	// published database before a job.
	shareDB := s.storage.Backends.Shared()
	if scanning(cfg, dir) || shareDB {
		// On a shared database the replicas compare digests with the
		// published database's.
		if bg.vulndb, err = live.Open(live.Config{Dir: VulnDBDir(dir), Sources: cfg.Scan.DBSources, Logger: s.log,
			Digests: shareDB}); err != nil {
			return fail(err)
		}
		if shareDB {
			if bg.sharedDBStore, err = s.storage.Backends.OpenSharedVulnDB(ctx); err != nil {
				return fail(err)
			}
			bg.sharedDB = shared.NewReplica(bg.sharedDBStore, bg.vulndb, s.log)
		}
	}
	var scanner *inventory.Scanner
	if bg.vulndb != nil {
		cache, err := inventory.OpenCache(filepath.Join(dir, "cache"))
		if err != nil {
			return fail(err)
		}
		scanner = &inventory.Scanner{Analyzers: analyzers.All(), Cache: cache, Parallel: cfg.Scan.Workers}
	}
	stages, err := s.openCustody(ctx, bg, wake)
	if err != nil {
		return fail(err)
	}
	bg.scans = scanservice.New(scanservice.Options{
		Meta: s.storage.Meta, Blobs: s.storage.Blobs, Reports: bg.reports, DB: bg.vulndb, Shared: bg.scanShared(), Queue: q,
		Inventory: scanner, SBOMReferrers: cfg.Scan.SBOMReferrers, ToolVersion: s.version,
		Secrets: slices.Contains(cfg.Scan.Scanners, "secret"), Misconfig: slices.Contains(cfg.Scan.Scanners, "misconfig"),
		Notify: s.announce, Stored: s.policies.reportStored, Logger: s.log, Metrics: reg, Stages: stages,
		NoUpdate: shareDB && len(cfg.Scan.DBSources) == 0,
	})
	if bg.vulndb != nil {
		bg.scans.Register(q)
		// River's elected leader inserts periodic jobs, and may be a
		// replica without sources: on a shared database every replica
		// schedules the update (one is queued at a time) and a replica
		// with sources runs it.
		if cfg.Scan.DBUpdateInterval > 0 && (len(cfg.Scan.DBSources) > 0 || shareDB) {
			q.Every(cfg.Scan.DBUpdateInterval, true, func() (river.JobArgs, *river.InsertOpts) {
				return scanservice.UpdateDBArgs{}, nil
			})
		}
	}
	if s.sec.auth != nil {
		if bg.hooks, err = s.storage.Backends.OpenWebhooks(ctx); err != nil {
			return fail(err)
		}
		if bg.deliveries, err = webhook.New(webhook.Options{Store: bg.hooks, Queue: q, Metrics: reg, Logger: s.log,
			Version: s.version, AllowPrivate: cfg.Webhooks.AllowPrivate}); err != nil {
			return fail(err)
		}
	}
	jobs.AddWorker(q, &gcWorker{s: s})
	if cfg.GC.Interval > 0 {
		q.Every(cfg.GC.Interval, false, func() (river.JobArgs, *river.InsertOpts) { return GCArgs{}, nil })
	}
	bg.relay = newRelay(s, bg, wake)
	return bg, nil
}

// scanning reports whether the server scans: it has database sources, or
// its data directory already holds a database.
func scanning(cfg Config, dir string) bool {
	if len(cfg.Scan.DBSources) > 0 {
		return true
	}
	_, err := os.Stat(vulndb.Path(VulnDBDir(dir)))
	return err == nil
}

// scanShared is the shared database as the scan service takes it: nil
// when there is none (a nil *Replica in the interface would not be nil).
func (bg *background) scanShared() scanservice.SharedDB {
	if bg.sharedDB == nil {
		return nil
	}
	return bg.sharedDB
}

// start starts the workers and the relay; they run until stop, whatever
// becomes of ctx.
func (bg *background) start(ctx context.Context) error {
	if err := bg.queue.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	bg.started = true
	bg.relay.start()
	if bg.sharedDB != nil {
		// Installs the published database now and whenever another is
		// announced, in the background.
		run, cancel := context.WithCancel(context.WithoutCancel(ctx))
		bg.stopSharedDB, bg.sharedDBDone = cancel, make(chan struct{})
		go func() {
			defer close(bg.sharedDBDone)
			bg.sharedDB.Run(run)
		}()
	}
	return nil
}

// vulnDBPublished hears of a database published by any replica.
func (bg *background) vulnDBPublished() {
	if bg != nil && bg.sharedDB != nil {
		bg.sharedDB.Kick()
	}
}

// stop ends the relay, then lets running jobs finish until ctx ends.
func (bg *background) stop(ctx context.Context) error {
	if !bg.started {
		return nil
	}
	bg.started = false
	bg.relay.stop()
	if bg.stopSharedDB != nil {
		bg.stopSharedDB()
		<-bg.sharedDBDone
	}
	return bg.queue.Stop(ctx)
}

func (bg *background) close() error {
	var errs []error
	if bg.queue != nil {
		errs = append(errs, bg.queue.Close())
	}
	if bg.vulndb != nil {
		errs = append(errs, bg.vulndb.Close())
	}
	if bg.sharedDBStore != nil {
		errs = append(errs, bg.sharedDBStore.Close())
	}
	if bg.reports != nil {
		errs = append(errs, bg.reports.Close())
	}
	if bg.hooks != nil {
		errs = append(errs, bg.hooks.Close())
	}
	if bg.custody != nil {
		errs = append(errs, bg.custody.Close())
	}
	if bg.master != nil {
		errs = append(errs, bg.master.Close())
	}
	return errors.Join(errs...)
}

// GCArgs is the garbage collection job, scheduled every gc.interval and
// queued by SIGUSR1.
type GCArgs struct{}

// Kind implements river.JobArgs.
func (GCArgs) Kind() string { return "gc" }

// InsertOpts: a failed collection is not retried (the next run does its
// work). Collections are not unique: one asked for while another runs
// must still run after it (collections take turns on a lock).
func (GCArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobs.QueueMaintenance, MaxAttempts: 1}
}

type gcWorker struct {
	river.WorkerDefaults[GCArgs]
	s *Server
}

func (w *gcWorker) Timeout(*river.Job[GCArgs]) time.Duration { return time.Hour }

func (w *gcWorker) Work(ctx context.Context, _ *river.Job[GCArgs]) error {
	_, err := w.s.CollectGarbage(ctx)
	if err != nil {
		return fmt.Errorf("garbage collection: %w", err)
	}
	return nil
}

// TriggerGC queues a garbage collection now.
func (s *Server) TriggerGC() {
	if _, err := s.bg.queue.Insert(context.Background(), GCArgs{}, nil); err != nil {
		s.log.Error("could not queue garbage collection", "error", err)
	}
}

// announce hands a scan notice to the project's webhooks.
func (s *Server) announce(ctx context.Context, n scanservice.Notice) {
	s.log.LogAttrs(ctx, slog.LevelDebug, "notice", slog.String("type", n.Type),
		slog.String("repository", n.Repository), slog.String("digest", n.Digest.String()))
	s.notifyWebhooks(ctx, n)
}

// webhookStore is the webhook store as the API takes it: nil when there
// is none (a nil *Store in the interface would not be nil).
func (bg *background) webhookStore() webhook.Store {
	if bg.hooks == nil {
		return nil
	}
	return bg.hooks
}
