package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	prom "berth.dev/berth/internal/metrics"
	"berth.dev/berth/internal/pgdb"
	"berth.dev/berth/internal/testpeers"
)

// effectArgs is a job whose effect is one row in a table of its own
// database, written idempotently: the worker's pattern for exactly-once
// effects on an at-least-once queue.
type effectArgs struct {
	N     int `json:"n"`
	Sleep int `json:"sleep_ms"`
}

func (effectArgs) Kind() string { return "test_effect" }

type effectWorker struct {
	river.WorkerDefaults[effectArgs]
	effects *sql.DB
	started atomic.Int64
}

func (w *effectWorker) Work(ctx context.Context, j *river.Job[effectArgs]) error {
	w.started.Add(1)
	select {
	case <-time.After(time.Duration(j.Args.Sleep) * time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	// The effect and its record commit together; a second run finds the
	// record and does nothing.
	tx, err := w.effects.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var done int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM effects WHERE n = ?`, j.Args.N).Scan(&done); err != nil {
		return err
	}
	if done > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO effects (n, job) VALUES (?, ?)`, j.Args.N, j.ID); err != nil {
		return err
	}
	return tx.Commit()
}

func openEffects(t testing.TB, path string) *sql.DB {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS effects (n INTEGER NOT NULL, job INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// backend is a database the queue's tests run on: each test that does not
// depend on the embedded file runs on every one.
type backend struct {
	name string
	open func(t testing.TB, cfg Config) *Queue
}

func backends() []backend {
	return []backend{
		{"sqlite", func(t testing.TB, cfg Config) *Queue { return openQueue(t, t.TempDir(), cfg) }},
		{"postgres", func(t testing.TB, cfg Config) *Queue {
			cfg.Postgres = testPool(t, testpeers.Postgres(t))
			if cfg.PollInterval == 0 {
				cfg.PollInterval = 20 * time.Millisecond
			}
			q, err := Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return q
		}},
	}
}

func testPool(t testing.TB, url string) *pgxpool.Pool {
	pool, err := pgdb.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func openQueue(t testing.TB, dir string, cfg Config) *Queue {
	cfg.Path = filepath.Join(dir, "jobs.db")
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	q, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// flakyArgs fails until its attempt reaches Succeed (0: always fails).
type flakyArgs struct {
	Succeed int `json:"succeed"`
}

func (flakyArgs) Kind() string { return "test_flaky" }

func (flakyArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 3} }

type flakyWorker struct {
	river.WorkerDefaults[flakyArgs]
	mu       sync.Mutex
	attempts []time.Time
}

func (w *flakyWorker) Work(_ context.Context, j *river.Job[flakyArgs]) error {
	w.mu.Lock()
	w.attempts = append(w.attempts, time.Now())
	w.mu.Unlock()
	if j.Args.Succeed == 0 || j.Attempt < j.Args.Succeed {
		return fmt.Errorf("attempt %d fails", j.Attempt)
	}
	return nil
}

func waitState(t *testing.T, q *Queue, id int64, want rivertype.JobState) *rivertype.JobRow {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		j, err := q.Job(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == want {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d is %s, want %s (errors %v)", id, j.State, want, j.Errors)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRetriesWithBackoffThenDeadLetter(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { testRetries(t, b) })
	}
}

func testRetries(t *testing.T, b backend) {
	reg := prom.NewRegistry()
	q := b.open(t, Config{RetryBase: 50 * time.Millisecond, RetryMax: time.Second, Metrics: reg})
	defer q.Close()
	w := &flakyWorker{}
	AddWorker(q, w)
	ctx := context.Background()
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ok, err := q.Insert(ctx, flakyArgs{Succeed: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := q.Insert(ctx, flakyArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, q, ok.Job.ID, rivertype.JobStateCompleted)
	j := waitState(t, q, dead.Job.ID, rivertype.JobStateDiscarded)
	if j.Attempt != 3 || len(j.Errors) != 3 || !strings.Contains(j.Errors[2].Error, "attempt 3 fails") {
		t.Errorf("dead job: attempt %d, errors %+v", j.Attempt, j.Errors)
	}
	w.mu.Lock()
	n := len(w.attempts)
	w.mu.Unlock()
	if n != 5 {
		t.Errorf("%d attempts, want 2 + 3", n)
	}
	// The dead letter is listed by state.
	discarded, err := q.List(ctx, river.NewJobListParams().States(rivertype.JobStateDiscarded))
	if err != nil || len(discarded) != 1 || discarded[0].ID != dead.Job.ID {
		t.Errorf("discarded = %v, %v", discarded, err)
	}
	q.Stop(ctx)
	text := string(reg.AppendText(nil))
	for _, want := range []string{
		`berth_job_attempts_total{kind="test_flaky",outcome="completed"} 1`,
		`berth_job_attempts_total{kind="test_flaky",outcome="failed"} 4`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s:\n%s", want, text)
		}
	}
}

func TestBackoffDoublesUpToMax(t *testing.T) {
	b := &Backoff{Base: time.Second, Max: 10 * time.Second}
	for _, c := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, time.Second, 1100 * time.Millisecond},
		{2, 2 * time.Second, 2200 * time.Millisecond},
		{4, 8 * time.Second, 8800 * time.Millisecond},
		{5, 10 * time.Second, 11 * time.Second},
		{60, 10 * time.Second, 11 * time.Second},
	} {
		for range 20 {
			if d := b.Delay(c.attempt); d < c.min || d > c.max {
				t.Errorf("attempt %d: delay %v outside [%v, %v]", c.attempt, d, c.min, c.max)
			}
		}
	}
}

func TestUniqueJobsCollapse(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { testUnique(t, b) })
	}
}

func testUnique(t *testing.T, b backend) {
	q := b.open(t, Config{})
	defer q.Close()
	ctx := context.Background()
	opts := &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
	first, err := q.Insert(ctx, effectArgs{N: 1}, opts)
	if err != nil {
		t.Fatal(err)
	}
	again, err := q.Insert(ctx, effectArgs{N: 1}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !again.UniqueSkippedAsDuplicate || again.Job.ID != first.Job.ID {
		t.Errorf("second insert: skipped %v, id %d (first %d)", again.UniqueSkippedAsDuplicate, again.Job.ID, first.Job.ID)
	}
	counts, err := q.Counts(ctx)
	if err != nil || counts[QueueMaintenance][rivertype.JobStateAvailable] != 1 {
		t.Errorf("counts = %v, %v", counts, err)
	}
}

// The kill -9 test runs the queue in a child process (this test binary,
// re-executed), kills it while jobs run, and starts another.
const childEnv = "BERTH_JOBS_TEST_CHILD"

// childPostgresEnv, when set, makes the child work a queue in that
// PostgreSQL database instead of the embedded file.
const childPostgresEnv = "BERTH_JOBS_TEST_POSTGRES"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	os.Exit(m.Run())
}

// runChild works the queue in dir until killed or until all 50 jobs are
// completed. With "insert" in BERTH_JOBS_TEST_INSERT it first queues 50
// jobs.
func runChild(dir string) int {
	ctx := context.Background()
	cfg := Config{Path: filepath.Join(dir, "jobs.db"), PollInterval: 20 * time.Millisecond,
		MaintenanceWorkers: 4, Exclusive: true}
	if url := os.Getenv(childPostgresEnv); url != "" {
		// A replica of a shared queue: jobs a killed replica left running
		// are rescued after a short horizon (the jobs take 60ms).
		pool, err := pgdb.Open(ctx, url)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer pool.Close()
		cfg = Config{Postgres: pool, PollInterval: 20 * time.Millisecond, MaintenanceWorkers: 4,
			JobTimeout: 2 * time.Second, RescueAfter: 3 * time.Second}
	}
	q, err := Open(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	effects, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "effects.db")+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	effects.SetMaxOpenConns(1)
	w := &effectWorker{effects: effects}
	AddWorker(q, w)
	if os.Getenv("BERTH_JOBS_TEST_INSERT") != "" {
		var params []river.InsertManyParams
		for i := range 50 {
			params = append(params, river.InsertManyParams{Args: effectArgs{N: i, Sleep: 60}})
		}
		if err := q.InsertMany(ctx, params); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Println("inserted")
	}
	if err := q.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	for {
		counts, err := q.Counts(ctx)
		if err == nil && counts[QueueMaintenance][rivertype.JobStateCompleted] == 50 {
			stop, cancel := context.WithTimeout(ctx, 10*time.Second)
			q.Stop(stop)
			cancel()
			q.Close()
			return 0
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestKill9LosesNoJobAndRunsNoneTwice(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testKill9(t, "") })
	// On PostgreSQL the second process is another replica: the jobs the
	// killed one held are rescued by river after their horizon, since no
	// replica may assume the others are dead.
	t.Run("postgres", func(t *testing.T) { testKill9(t, testpeers.Postgres(t)) })
}

func testKill9(t *testing.T, postgresURL string) {
	dir := t.TempDir()
	effects := openEffects(t, filepath.Join(dir, "effects.db"))
	defer effects.Close()

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+dir, "BERTH_JOBS_TEST_INSERT=1", childPostgresEnv+"="+postgresURL)
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once some jobs are done and others are running.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		effects.QueryRow(`SELECT count(*) FROM effects`).Scan(&n)
		if n >= 5 {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatal("the first child recorded no effects in 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	var before int
	effects.QueryRow(`SELECT count(*) FROM effects`).Scan(&before)
	if before >= 50 {
		t.Fatalf("all 50 effects recorded before the kill; the test proves nothing")
	}

	again := exec.Command(os.Args[0], "-test.run=^$")
	again.Env = append(os.Environ(), childEnv+"="+dir, childPostgresEnv+"="+postgresURL)
	again.Stderr = os.Stderr
	done := make(chan error, 1)
	if err := again.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- again.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("restarted child: %v", err)
		}
	case <-time.After(120 * time.Second):
		again.Process.Kill()
		t.Fatal("restarted child did not finish the queue in 120s: interrupted jobs were not rescued")
	}

	rows, err := effects.Query(`SELECT n, count(*) FROM effects GROUP BY n`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := map[int]int{}
	for rows.Next() {
		var n, c int
		rows.Scan(&n, &c)
		seen[n] = c
	}
	for i := range 50 {
		if seen[i] != 1 {
			t.Errorf("job %d took effect %d times, want once", i, seen[i])
		}
	}
	// The queue holds every job as completed.
	var q *Queue
	if postgresURL != "" {
		var err error
		if q, err = Open(context.Background(), Config{Postgres: testPool(t, postgresURL)}); err != nil {
			t.Fatal(err)
		}
	} else {
		q = openQueue(t, dir, Config{})
	}
	defer q.Close()
	counts, err := q.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := counts[QueueMaintenance][rivertype.JobStateCompleted]; got != 50 {
		t.Errorf("%d jobs completed, want 50 (counts %v)", got, counts)
	}
}

func TestOpenRefusesBadPath(t *testing.T) {
	_, err := Open(context.Background(), Config{Path: filepath.Join(t.TempDir(), "x.db?mode=memory")})
	if err == nil {
		t.Fatal("a path with '?' was accepted")
	}
	dir := filepath.Join(t.TempDir(), "missing", "jobs.db")
	if _, err := Open(context.Background(), Config{Path: dir}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing directory: %v", err)
	}
}

func TestDatabaseIsPrivate(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	q := openQueue(t, dir, Config{})
	q.Close()
	fi, err := os.Stat(filepath.Join(dir, "jobs.db"))
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("jobs.db mode %v, want 0600", m)
	}
}
