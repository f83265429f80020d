// Package backend opens the stores a berth server runs on, chosen by URL
// as distribution's storage drivers are chosen by name:
//
//	storage.meta   sqlite (default)   meta.db in the data directory
//	               postgres://...     a shared PostgreSQL database
//	storage.blobs  file (default)     blobs/ in the data directory
//	               s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION
//
// The metadata URL decides where everything else shared lives too: with
// PostgreSQL the reports, accounts, audit log, webhooks, project policies,
// key custody and the job queue are tables of the same database (one pool), so any replica serves any
// request; with SQLite they are meta.db's (and jobs.db's) as before.
//
// Each store lives beside the interface it implements; this package only
// chooses and opens them, so internal/server wires without knowing which.
package backend

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/audit"
	auditpostgres "berth.dev/berth/internal/audit/postgres"
	auditsqlite "berth.dev/berth/internal/audit/sqlite"
	"berth.dev/berth/internal/auth"
	authpostgres "berth.dev/berth/internal/auth/postgres"
	authsqlite "berth.dev/berth/internal/auth/sqlite"
	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/blob/filesystem"
	"berth.dev/berth/internal/blob/s3"
	"berth.dev/berth/internal/custody"
	custodypostgres "berth.dev/berth/internal/custody/postgres"
	"berth.dev/berth/internal/jobs"
	"berth.dev/berth/internal/meta"
	metapostgres "berth.dev/berth/internal/meta/postgres"
	metasqlite "berth.dev/berth/internal/meta/sqlite"
	"berth.dev/berth/internal/pgdb"
	"berth.dev/berth/internal/policy"
	policypostgres "berth.dev/berth/internal/policy/postgres"
	policysqlite "berth.dev/berth/internal/policy/sqlite"
	"berth.dev/berth/internal/registry/event"
	"berth.dev/berth/internal/reports"
	reportspostgres "berth.dev/berth/internal/reports/postgres"
	reportsqlite "berth.dev/berth/internal/reports/sqlite"
	"berth.dev/berth/internal/vulndb/shared"
	vulndbpostgres "berth.dev/berth/internal/vulndb/shared/postgres"
	"berth.dev/berth/internal/webhook"
	webhookpostgres "berth.dev/berth/internal/webhook/postgres"
	webhooksqlite "berth.dev/berth/internal/webhook/sqlite"
)

// The default backends.
const (
	SQLite = "sqlite"
	File   = "file"
)

// Config says which backends to open.
type Config struct {
	// Dir is the data directory: the embedded stores' files, and in any
	// mode what stays local (the layer cache, TLS files, the audit
	// anchor file, the vulnerability database).
	Dir string
	// Meta is SQLite (or empty) or a postgres:// URL.
	Meta string
	// Blobs is File (or empty) or an s3:// URL.
	Blobs string
	// S3AccessKey and S3SecretKey are the bucket's credentials; when both
	// are empty, the AWS_* environment variables are used.
	S3AccessKey, S3SecretKey string
}

// Check reports a URL that names no backend, before anything is opened.
func (c Config) Check() error {
	var errs []error
	switch {
	case c.Meta == "" || c.Meta == SQLite:
	case strings.HasPrefix(c.Meta, "postgres://") || strings.HasPrefix(c.Meta, "postgresql://"):
		if _, err := pgxpool.ParseConfig(c.Meta); err != nil {
			errs = append(errs, fmt.Errorf("storage.meta %s: %w", pgdb.Redact(c.Meta), errors.Unwrap(err)))
		}
	default:
		errs = append(errs, fmt.Errorf("storage.meta %q: want %q or a postgres:// URL", redactAny(c.Meta), SQLite))
	}
	switch {
	case c.Blobs == "" || c.Blobs == File:
	case strings.HasPrefix(c.Blobs, "s3://"):
		if _, err := s3.ParseURL(c.Blobs); err != nil {
			errs = append(errs, fmt.Errorf("storage.blobs: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("storage.blobs %q: want %q or an s3:// URL", redactAny(c.Blobs), File))
	}
	return errors.Join(errs...)
}

// redactAny keeps a mistyped URL's password out of an error.
func redactAny(raw string) string {
	if strings.Contains(raw, "@") {
		return pgdb.Redact(raw)
	}
	return raw
}

// SharedMeta reports whether the metadata lives in a shared database.
func (c Config) SharedMeta() bool { return c.Meta != "" && c.Meta != SQLite }

// SharedBlobs reports whether the blobs live in a shared bucket.
func (c Config) SharedBlobs() bool { return c.Blobs != "" && c.Blobs != File }

// Local reports whether the data directory holds state a second process
// must not touch: the SQLite database or the blob files. Such a directory
// is locked by one process; a scale-out replica's is not.
func (c Config) Local() bool { return !c.SharedMeta() || !c.SharedBlobs() }

// Set is the opened backends.
type Set struct {
	cfg   Config
	Meta  meta.Store
	Blobs blob.Store
	// Pool is the shared database's; nil with SQLite.
	Pool *pgxpool.Pool
}

// Open opens the metadata and blob stores (migrating the database) and
// checks that both answer: wrong credentials or a missing bucket fail
// here, at start, with the server's reason.
func Open(ctx context.Context, cfg Config) (*Set, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	s := &Set{cfg: cfg}
	var err error
	if cfg.SharedMeta() {
		if s.Pool, err = pgdb.Open(ctx, cfg.Meta); err != nil {
			return nil, fmt.Errorf("storage.meta: %w", err)
		}
		if s.Meta, err = metapostgres.New(ctx, s.Pool); err != nil {
			s.Pool.Close()
			return nil, err
		}
	} else if s.Meta, err = metasqlite.Open(ctx, s.sqlitePath()); err != nil {
		return nil, err
	}
	if cfg.SharedBlobs() {
		bc, _ := s3.ParseURL(cfg.Blobs) // checked above
		bc.AccessKey, bc.SecretKey = cfg.S3AccessKey, cfg.S3SecretKey
		if s.Blobs, err = s3.Open(ctx, bc); err != nil {
			s.Close()
			return nil, fmt.Errorf("storage.blobs: %w", err)
		}
	} else if s.Blobs, err = filesystem.New(filepath.Join(cfg.Dir, "blobs")); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Set) sqlitePath() string { return filepath.Join(s.cfg.Dir, "meta.db") }

// Shared reports whether the metadata (and with it accounts, audit, jobs)
// lives in the shared database.
func (s *Set) Shared() bool { return s.Pool != nil }

// Close closes the metadata store and the pool. Stores opened with the
// Open* methods are their opener's to close, before this.
func (s *Set) Close() error {
	var err error
	if s.Meta != nil {
		err = s.Meta.Close()
	}
	if s.Pool != nil {
		s.Pool.Close()
	}
	return err
}

// OpenReports opens the scan reports store.
func (s *Set) OpenReports(ctx context.Context) (reports.Store, error) {
	if s.Shared() {
		return nilOnError[reports.Store](reportspostgres.New(ctx, s.Pool))
	}
	return nilOnError[reports.Store](reportsqlite.Open(ctx, s.sqlitePath()))
}

// nilOnError converts a store to the interface I, which is nil when err
// is set (not an interface holding a nil pointer, whose Close would
// panic).
func nilOnError[I any, S any](store S, err error) (I, error) {
	var zero I
	if err != nil {
		return zero, err
	}
	return any(store).(I), nil
}

// Unavailable reports whether err means a shared backend cannot be
// reached or is failing for now (PostgreSQL restarting, S3 answering 5xx
// or not at all), so a request is answered 503 with Retry-After. The
// embedded backends have no such state: their errors are failures.
func (s *Set) Unavailable(err error) bool {
	if s.Shared() && pgdb.Unavailable(err) {
		return true
	}
	return s.cfg.SharedBlobs() && s3.Unavailable(err)
}

// Stores the server closes.
type (
	AuthStore interface {
		auth.Store
		Close() error
	}
	AuditStore interface {
		audit.Store
		Close() error
	}
	WebhookStore interface {
		webhook.Store
		Close() error
	}
)

// Every store nilOnError converts implements its interface.
var (
	_ reports.Store = (*reportspostgres.Store)(nil)
	_ reports.Store = (*reportsqlite.Store)(nil)
	_ AuthStore     = (*authpostgres.Store)(nil)
	_ AuthStore     = (*authsqlite.Store)(nil)
	_ AuditStore    = (*auditpostgres.Store)(nil)
	_ AuditStore    = (*auditsqlite.Store)(nil)
	_ WebhookStore  = (*webhookpostgres.Store)(nil)
	_ WebhookStore  = (*webhooksqlite.Store)(nil)
	_ policy.Store  = (*policypostgres.Store)(nil)
	_ policy.Store  = (*policysqlite.Store)(nil)
	_ custody.Store = (*custodypostgres.Store)(nil)
	_ custody.Store = (*custody.SQLiteStore)(nil)
)

// OpenAuth opens the accounts store.
func (s *Set) OpenAuth(ctx context.Context) (AuthStore, error) {
	if s.Shared() {
		return nilOnError[AuthStore](authpostgres.New(ctx, s.Pool))
	}
	return nilOnError[AuthStore](authsqlite.Open(ctx, s.sqlitePath()))
}

// OpenAudit opens the audit log's store. The shared one is an
// audit.SealingStore: every replica's entries join one chain.
func (s *Set) OpenAudit(ctx context.Context) (AuditStore, error) {
	if s.Shared() {
		return nilOnError[AuditStore](auditpostgres.New(ctx, s.Pool))
	}
	return nilOnError[AuditStore](auditsqlite.Open(ctx, s.sqlitePath()))
}

// OpenWebhooks opens the webhooks store.
func (s *Set) OpenWebhooks(ctx context.Context) (WebhookStore, error) {
	if s.Shared() {
		return nilOnError[WebhookStore](webhookpostgres.New(ctx, s.Pool))
	}
	return nilOnError[WebhookStore](webhooksqlite.Open(ctx, s.sqlitePath()))
}

// OpenPolicies opens the project policies' store. The shared one
// announces every change (Changes.Policies).
func (s *Set) OpenPolicies(ctx context.Context) (policy.Store, error) {
	if s.Shared() {
		return nilOnError[policy.Store](policypostgres.New(ctx, s.Pool))
	}
	return nilOnError[policy.Store](policysqlite.Open(ctx, s.sqlitePath()))
}

// OpenCustody opens the key custody store: the projects' signing keys
// (sealed under the master key), stage rules and approvals. The shared
// one gives every replica the same keys.
func (s *Set) OpenCustody(ctx context.Context) (custody.Store, error) {
	if s.Shared() {
		return nilOnError[custody.Store](custodypostgres.New(ctx, s.Pool))
	}
	return nilOnError[custody.Store](custody.OpenSQLite(ctx, s.sqlitePath()))
}

// OpenSharedVulnDB opens the store of the vulnerability database every
// replica scans with: the shared database's, or nil with SQLite (the
// replica's own database is the only one).
func (s *Set) OpenSharedVulnDB(ctx context.Context) (shared.Store, error) {
	if !s.Shared() {
		return nil, nil
	}
	return nilOnError[shared.Store](vulndbpostgres.New(ctx, s.Pool))
}

// Jobs returns c with the queue's place filled in: river's tables in the
// shared database, or jobs.db in the data directory, which this process
// alone uses (its lock is held), so jobs a crash left running are run
// again at once.
func (s *Set) Jobs(c jobs.Config) jobs.Config {
	if s.Shared() {
		c.Postgres = s.Pool
		c.Exclusive = false
		return c
	}
	c.Path = filepath.Join(s.cfg.Dir, "jobs.db")
	c.Exclusive = true
	return c
}

// Exclusive runs fn as the only holder of the work key among the
// processes sharing the backends (garbage collection: pgdb.LockGC). With
// SQLite the data directory's lock already makes this process the only
// one, and fn just runs.
func (s *Set) Exclusive(ctx context.Context, key int32, fn func(context.Context) error) error {
	if !s.Shared() {
		return fn(ctx)
	}
	return pgdb.Exclusive(ctx, s.Pool, key, fn)
}

// Lead runs fn while this process leads the work key (pgdb.Lead) among
// the replicas, retrying every retry, until ctx ends. With SQLite it runs
// fn(ctx) once.
func (s *Set) Lead(ctx context.Context, key int32, retry time.Duration, fn func(context.Context), onLead func(bool)) {
	if !s.Shared() {
		if onLead != nil {
			onLead(true)
		}
		fn(ctx)
		return
	}
	pgdb.Lead(ctx, s.Pool, key, retry, fn, onLead)
}

// Changes receives what other processes sharing the backends change, for
// the caches a process keeps in memory.
type Changes struct {
	// Registry hears each registry change (manifest pushed or deleted,
	// tag deleted) committed by any process, this one included; all says
	// the change could not be described and everything cached must go.
	Registry func(e event.Event, all bool)
	// Accounts reloads what users, projects, memberships or robots
	// changed; it runs once for a burst of changes, before a Sync waiting
	// for them returns.
	Accounts func(context.Context) error
	// Policies reloads the policies of the projects whose ids it is given
	// (every project's when all), as Accounts does: once for a burst of
	// changes, before a Sync waiting for them returns.
	Policies func(ctx context.Context, projectIDs []string, all bool) error
	// Report hears of each digest whose scan report was stored,
	// re-matched or deleted by any process, this one included (what
	// changed while not listening is for Listening to forget).
	Report func(d digest.Digest)
	// VulnDB hears of each vulnerability database published by any
	// process, this one included (its digest).
	VulnDB func(digest string)
	// Listening hears true once changes are heard (at start and after a
	// lost connection came back: what happened meanwhile was missed) and
	// false when they may be missed.
	Listening func(bool)
}

// Follower delivers changes to a process's caches.
type Follower struct {
	l      *pgdb.Listener
	cancel context.CancelFunc
	done   chan struct{}
}

// Follow starts delivering changes and waits until they are heard (or
// ctx ends: the database, which answered a moment ago, does not take
// notifications). With SQLite no other process shares the stores, and it
// returns nil (whose methods do nothing).
func (s *Set) Follow(ctx context.Context, c Changes) (*Follower, error) {
	if !s.Shared() {
		return nil, nil
	}
	// On the listener's goroutine only.
	var accountsChanged, allPolicies bool
	policiesChanged := map[string]struct{}{}
	heard := make(chan struct{})
	var heardOnce sync.Once
	l := &pgdb.Listener{
		Channels: []string{metapostgres.ChangesChannel, authpostgres.ChangesChannel, policypostgres.ChangesChannel,
			reportspostgres.ChangesChannel, vulndbpostgres.ChangesChannel},
		Notify: func(channel, payload string) {
			switch channel {
			case metapostgres.ChangesChannel:
				if c.Registry != nil {
					e, all := metapostgres.DecodeChange(payload)
					c.Registry(e, all)
				}
			case authpostgres.ChangesChannel:
				accountsChanged = true
			case reportspostgres.ChangesChannel:
				if c.Report != nil {
					c.Report(digest.Digest(payload))
				}
			case vulndbpostgres.ChangesChannel:
				if c.VulnDB != nil {
					c.VulnDB(payload)
				}
			case policypostgres.ChangesChannel:
				if payload == "" {
					allPolicies = true
				} else {
					policiesChanged[payload] = struct{}{}
				}
			}
		},
		Settle: func(ctx context.Context) error {
			// Accounts first: a policy belongs to a project by id, which
			// the accounts snapshot maps its name to.
			if accountsChanged && c.Accounts != nil {
				if err := c.Accounts(ctx); err != nil {
					return err
				}
			}
			accountsChanged = false
			if (allPolicies || len(policiesChanged) > 0) && c.Policies != nil {
				ids := make([]string, 0, len(policiesChanged))
				for id := range policiesChanged {
					ids = append(ids, id)
				}
				if err := c.Policies(ctx, ids, allPolicies); err != nil {
					return err
				}
			}
			allPolicies = false
			clear(policiesChanged)
			return nil
		},
		Listening: func(on bool) {
			// Whatever changed while deaf is unknown: reload it all.
			accountsChanged = accountsChanged || on
			allPolicies = allPolicies || on
			if on {
				heardOnce.Do(func() { close(heard) })
			}
			if c.Listening != nil {
				c.Listening(on)
			}
		},
	}
	runCtx, cancel := context.WithCancel(context.Background())
	f := &Follower{l: l, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		l.Run(runCtx, s.Pool)
	}()
	select {
	case <-heard:
		return f, nil
	case <-ctx.Done():
		f.Stop()
		return nil, fmt.Errorf("listen for other replicas' changes: %w", ctx.Err())
	}
}

// Sync returns once every change committed before it was called has been
// delivered (registry changes) and applied (accounts reloaded): a request
// that waits for it sees every change acknowledged to anyone before it
// arrived. It fails while changes cannot be heard.
func (f *Follower) Sync(ctx context.Context) error {
	if f == nil {
		return nil
	}
	return f.l.Sync(ctx)
}

// Stop stops delivering changes.
func (f *Follower) Stop() {
	if f == nil {
		return
	}
	f.cancel()
	<-f.done
}
