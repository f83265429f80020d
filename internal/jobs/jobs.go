// Package jobs is berth's one durable job layer: everything the server does
// in the background (scans, re-matches, webhook deliveries, garbage
// collection, scheduled database updates) is a job in a queue that survives
// restarts and kill -9, run by a bounded number of workers with retries,
// backoff and a dead-letter state.
//
// The queue is riverqueue/river. The embedded server keeps it in its own
// SQLite file beside meta.db (river's SQLite driver), so river's polling
// and completions never hold meta.db's single writer connection; the
// scale-out server keeps it in the shared PostgreSQL database (river's
// pgx v5 driver), where every replica works it, with the same job code.
// This package only wires river: workers live with the feature they serve
// and are registered with AddWorker before Start.
package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	prom "berth.dev/berth/internal/metrics"
)

// Queue names. Each has its own worker limit, so a burst of scans (CPU and
// disk bound) never delays webhook deliveries (waiting on the network), the
// re-matches a database update queues (thousands of reports) never delay
// the scans of new pushes, and none delays maintenance.
const (
	QueueScan        = "scan"
	QueueRematch     = "rematch"
	QueueDeliver     = "deliver"
	QueueMaintenance = river.QueueDefault
)

// Config says where the queue lives and how hard it works.
type Config struct {
	// Path is the SQLite file of the embedded queue.
	Path string
	// Postgres, when set, holds the queue instead of Path: river's tables
	// in the shared database, worked by every replica. River elects one
	// replica leader to schedule periodic jobs, and each job runs on one
	// replica. It cannot be Exclusive.
	Postgres *pgxpool.Pool
	// RescueAfter is how long a job may stay running before river takes it
	// for interrupted (its replica died) and runs it again. Zero means the
	// job timeout plus a minute.
	RescueAfter time.Duration
	// ScanWorkers, RematchWorkers, DeliverWorkers and MaintenanceWorkers
	// bound the jobs running at once per queue; zero means the default.
	ScanWorkers, RematchWorkers, DeliverWorkers, MaintenanceWorkers int
	// RetryBase is the first retry's delay; each further attempt doubles
	// it, up to RetryMax. Zero means 1s and 1h.
	RetryBase, RetryMax time.Duration
	// JobTimeout bounds one attempt of a job that sets no timeout of its
	// own. Zero means 15 minutes.
	JobTimeout time.Duration
	// PollInterval is how often idle workers look for new jobs (SQLite has
	// no LISTEN; on PostgreSQL river is also woken by notifications). Zero
	// means 200ms.
	PollInterval time.Duration
	// Exclusive says that this process is the only one using the queue
	// (the embedded server holds the data directory's lock): a job found
	// running at start was interrupted by a crash and runs again at once,
	// instead of after the rescuer's horizon.
	Exclusive bool
	Logger    *slog.Logger
	// Metrics, when set, receives the queue's series.
	Metrics *prom.Registry
}

// Queue is an open job queue. Register workers and periodic jobs, then
// Start it; Stop it before Close.
type Queue struct {
	cfg     Config
	db      *sql.DB // the SQLite queue's; nil on PostgreSQL
	workers *river.Workers
	client  riverClient
	log     *slog.Logger
	// newClient makes a river client over the queue's driver; rescue
	// makes interrupted jobs available (Exclusive, SQLite only).
	newClient func(*river.Config) (riverClient, error)
	rescue    func(context.Context, *riverdriver.JobRescueManyParams) error

	periodic []*river.PeriodicJob

	metrics  *queueMetrics
	stopOnce sync.Once
	done     chan struct{}
}

// riverClient is what the queue uses of a river client; river.Client has
// a type parameter per driver, and these methods do not depend on it.
type riverClient interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	InsertMany(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	Subscribe(kinds ...river.EventKind) (<-chan *river.Event, func())
}

var (
	_ riverClient = (*river.Client[*sql.Tx])(nil)
	_ riverClient = (*river.Client[pgx.Tx])(nil)
)

// Open opens (creating and migrating if needed) the queue's database.
func Open(ctx context.Context, cfg Config) (*Queue, error) {
	if cfg.Postgres != nil {
		return openPostgres(ctx, cfg)
	}
	if cfg.Path == "" || strings.ContainsAny(cfg.Path, "?#") {
		return nil, fmt.Errorf("job queue path %q: want a file path without '?' or '#'", cfg.Path)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := createPrivate(cfg.Path); err != nil {
		return nil, err
	}
	// One connection: SQLite has one writer, and river's own advice for its
	// SQLite driver is a pool of one. Immediate transactions take the write
	// lock at BEGIN, so two writers queue on busy_timeout instead of
	// failing to upgrade a read lock.
	db, err := sql.Open("sqlite", "file:"+cfg.Path+
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open job queue %s: %w", cfg.Path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	driver := riversqlite.New(db)
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: log})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("job queue %s: %w", cfg.Path, err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		db.Close()
		return nil, fmt.Errorf("job queue %s: migrate: %w", cfg.Path, err)
	}
	q := &Queue{cfg: cfg, db: db, workers: river.NewWorkers(), log: log, done: make(chan struct{}),
		newClient: func(c *river.Config) (riverClient, error) { return river.NewClient(driver, c) },
		rescue: func(ctx context.Context, p *riverdriver.JobRescueManyParams) error {
			_, err := driver.GetExecutor().JobRescueMany(ctx, p)
			return err
		},
	}
	if cfg.Metrics != nil {
		q.metrics = newQueueMetrics(cfg.Metrics)
	}
	return q, nil
}

// riverMigrationLock is the advisory lock replicas take around river's
// migrations ("berthriv"), so two starting together do not race.
const riverMigrationLock = 0x6265727468726976

// openPostgres opens the queue in the shared database.
func openPostgres(ctx context.Context, cfg Config) (*Queue, error) {
	if cfg.Exclusive {
		return nil, fmt.Errorf("job queue: a PostgreSQL queue is shared by replicas and cannot be exclusive")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	driver := riverpgxv5.New(cfg.Postgres)
	conn, err := cfg.Postgres.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(riverMigrationLock)); err != nil {
		return nil, fmt.Errorf("job queue: migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(riverMigrationLock))
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("job queue: migrate: %w", err)
	}
	q := &Queue{cfg: cfg, workers: river.NewWorkers(), log: log, done: make(chan struct{}),
		newClient: func(c *river.Config) (riverClient, error) { return river.NewClient(driver, c) },
	}
	if cfg.Metrics != nil {
		q.metrics = newQueueMetrics(cfg.Metrics)
	}
	return q, nil
}

// createPrivate creates the database file readable by its owner only
// before SQLite opens it (SQLite would create it with the umask's mode).
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("job queue: %w", err)
	}
	return f.Close()
}

// AddWorker registers the worker for one job kind. Call it before Start.
func AddWorker[T river.JobArgs](q *Queue, w river.Worker[T]) {
	river.AddWorker(q.workers, w)
}

// Every schedules a job built by args every interval (and once at start
// when onStart is set). Call it before Start.
func (q *Queue) Every(interval time.Duration, onStart bool, args func() (river.JobArgs, *river.InsertOpts)) {
	q.periodic = append(q.periodic, river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return args() },
		&river.PeriodicJobOpts{RunOnStart: onStart}))
}

// Start begins working jobs.
func (q *Queue) Start(ctx context.Context) error {
	cfg := q.cfg
	timeout := cfg.JobTimeout
	if timeout <= 0 {
		timeout = 15 * time.Minute
	}
	poll := cfg.PollInterval
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	rescueAfter := cfg.RescueAfter
	if rescueAfter <= 0 {
		rescueAfter = timeout + time.Minute
	}
	client, err := q.newClient(&river.Config{
		Queues: map[string]river.QueueConfig{
			QueueScan: {MaxWorkers: orDefault(cfg.ScanWorkers, 2)},
			// Re-matching is CPU work with a short write at the end of
			// each job, which the database takes one job at a time: one
			// worker more than the CPUs keeps them busy while one writes.
			QueueRematch:     {MaxWorkers: orDefault(cfg.RematchWorkers, runtime.GOMAXPROCS(0)+1)},
			QueueDeliver:     {MaxWorkers: orDefault(cfg.DeliverWorkers, 8)},
			QueueMaintenance: {MaxWorkers: orDefault(cfg.MaintenanceWorkers, 2)},
		},
		Workers:              q.workers,
		PeriodicJobs:         q.periodic,
		RetryPolicy:          &Backoff{Base: cfg.RetryBase, Max: cfg.RetryMax},
		JobTimeout:           timeout,
		RescueStuckJobsAfter: rescueAfter,
		FetchPollInterval:    poll,
		FetchCooldown:        min(poll, 20*time.Millisecond),
		// Finished jobs stay a week: the API shows recent runs and failures
		// (the dead letters) from them.
		CompletedJobRetentionPeriod: 24 * time.Hour,
		DiscardedJobRetentionPeriod: 7 * 24 * time.Hour,
		Logger:                      q.log.With("component", "jobs"),
		ErrorHandler:                &errorLogger{log: q.log},
	})
	if err != nil {
		return fmt.Errorf("job queue: %w", err)
	}
	q.client = client
	if cfg.Exclusive {
		if err := q.rescueInterrupted(ctx); err != nil {
			return err
		}
	}
	if err := client.Start(ctx); err != nil {
		return fmt.Errorf("job queue: start: %w", err)
	}
	if q.metrics != nil {
		events, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed,
			river.EventKindJobCancelled, river.EventKindJobSnoozed)
		go func() {
			defer cancel()
			q.metrics.follow(events)
		}()
		go q.sampleDepth()
	}
	return nil
}

// rescueInterrupted makes every job left running by a process that died
// available again at once. Only safe when no other process works the
// queue (Config.Exclusive).
func (q *Queue) rescueInterrupted(ctx context.Context) error {
	res, err := q.client.JobList(ctx, river.NewJobListParams().States(rivertype.JobStateRunning).First(10_000))
	if err != nil {
		return fmt.Errorf("job queue: list interrupted jobs: %w", err)
	}
	if len(res.Jobs) == 0 {
		return nil
	}
	now := time.Now().UTC()
	// Every running job was attempted before now: the horizon takes them all.
	p := &riverdriver.JobRescueManyParams{StuckHorizon: now.Add(time.Second)}
	for _, j := range res.Jobs {
		msg, _ := json.Marshal(rivertype.AttemptError{At: now, Attempt: j.Attempt,
			Error: "interrupted: the server stopped while the job ran"})
		p.ID = append(p.ID, j.ID)
		p.Error = append(p.Error, msg)
		p.FinalizedAt = append(p.FinalizedAt, nil)
		p.ScheduledAt = append(p.ScheduledAt, now)
		p.State = append(p.State, string(rivertype.JobStateAvailable))
	}
	if err := q.rescue(ctx, p); err != nil {
		return fmt.Errorf("job queue: rescue interrupted jobs: %w", err)
	}
	q.log.Info("jobs interrupted by the last stop run again", "jobs", len(res.Jobs))
	return nil
}

// Insert adds a job. A unique job that already exists is not added again;
// the result says so.
func (q *Queue) Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	res, err := q.inserter().Insert(ctx, args, opts)
	if err != nil {
		return nil, fmt.Errorf("queue %s job: %w", args.Kind(), err)
	}
	return res, nil
}

// InsertMany adds several jobs in one transaction.
func (q *Queue) InsertMany(ctx context.Context, params []river.InsertManyParams) error {
	if len(params) == 0 {
		return nil
	}
	if _, err := q.inserter().InsertMany(ctx, params); err != nil {
		return fmt.Errorf("queue %d jobs: %w", len(params), err)
	}
	return nil
}

// inserter is the started client, or an insert-only one before Start
// (river inserts without workers running).
func (q *Queue) inserter() riverClient {
	if q.client != nil {
		return q.client
	}
	c, err := q.newClient(&river.Config{Logger: q.log})
	if err != nil {
		// Only a malformed config fails, and this one is fixed.
		panic(err)
	}
	return c
}

// Job returns one job by id.
func (q *Queue) Job(ctx context.Context, id int64) (*rivertype.JobRow, error) {
	return q.inserter().JobGet(ctx, id)
}

// List lists jobs; see river.JobListParams.
func (q *Queue) List(ctx context.Context, params *river.JobListParams) ([]*rivertype.JobRow, error) {
	res, err := q.inserter().JobList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return res.Jobs, nil
}

// Counts returns how many jobs are in each state, by queue.
func (q *Queue) Counts(ctx context.Context) (map[string]map[rivertype.JobState]int, error) {
	const query = `SELECT queue, state::text, count(*) FROM river_job GROUP BY queue, state`
	out := map[string]map[rivertype.JobState]int{}
	add := func(queue, state string, n int) {
		if out[queue] == nil {
			out[queue] = map[rivertype.JobState]int{}
		}
		out[queue][rivertype.JobState(state)] = n
	}
	if q.cfg.Postgres != nil {
		rows, err := q.cfg.Postgres.Query(ctx, query)
		if err != nil {
			return nil, fmt.Errorf("count jobs: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var queue, state string
			var n int
			if err := rows.Scan(&queue, &state, &n); err != nil {
				return nil, fmt.Errorf("count jobs: %w", err)
			}
			add(queue, state, n)
		}
		return out, rows.Err()
	}
	rows, err := q.db.QueryContext(ctx, strings.Replace(query, "state::text", "state", 1))
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var queue, state string
		var n int
		if err := rows.Scan(&queue, &state, &n); err != nil {
			return nil, fmt.Errorf("count jobs: %w", err)
		}
		add(queue, state, n)
	}
	return out, rows.Err()
}

// Stop stops fetching jobs and waits for running ones until ctx ends, then
// cancels them (they run again after the restart).
func (q *Queue) Stop(ctx context.Context) error {
	var err error
	q.stopOnce.Do(func() {
		close(q.done)
		if q.client == nil {
			return
		}
		if err = q.client.Stop(ctx); err != nil && ctx.Err() != nil {
			hard, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = q.client.StopAndCancel(hard)
		}
	})
	if err != nil {
		return fmt.Errorf("stop job queue: %w", err)
	}
	return nil
}

// Close releases the database (a PostgreSQL pool stays open for its
// owner); Stop first.
func (q *Queue) Close() error {
	q.Stop(context.Background())
	if q.db == nil {
		return nil
	}
	return q.db.Close()
}

// Backoff is the retry policy: Base, then doubling, up to Max, with up to a
// tenth of jitter so that jobs failing together do not retry together.
type Backoff struct{ Base, Max time.Duration }

// NextRetry implements river.ClientRetryPolicy.
func (b *Backoff) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(b.Delay(job.Attempt))
}

// Delay is the wait before retrying after the attempt-th failure.
func (b *Backoff) Delay(attempt int) time.Duration {
	base, ceiling := b.Base, b.Max
	if base <= 0 {
		base = time.Second
	}
	if ceiling <= 0 {
		ceiling = time.Hour
	}
	d := base
	for i := 1; i < attempt && d < ceiling; i++ {
		d *= 2
	}
	d = min(d, ceiling)
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

// errorLogger logs a job's failure once per attempt, with its kind and id.
type errorLogger struct{ log *slog.Logger }

func (e *errorLogger) HandleError(ctx context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	e.log.WarnContext(ctx, "job failed", "kind", job.Kind, "id", job.ID, "attempt", job.Attempt,
		"max_attempts", job.MaxAttempts, "error", err)
	return nil
}

func (e *errorLogger) HandlePanic(ctx context.Context, job *rivertype.JobRow, v any, trace string) *river.ErrorHandlerResult {
	e.log.ErrorContext(ctx, "job panicked", "kind", job.Kind, "id", job.ID, "attempt", job.Attempt,
		"panic", fmt.Sprint(v), "trace", trace)
	return nil
}

func orDefault(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}
