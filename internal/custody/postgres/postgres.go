// Package postgres is the custody.Store of a scale-out deployment: the
// projects' signing keys (sealed under the master key), stage rules and
// approvals in the shared PostgreSQL database, so that every replica
// signs with, publishes and rotates the same keys. The model is the
// SQLite store's (times as Unix nanoseconds).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/pgdb"
	policypostgres "berth.dev/berth/internal/policy/postgres"
	reportspostgres "berth.dev/berth/internal/reports/postgres"
)

const component = "custody"

// migrations are the custody tables (append, never edit). Names sort
// by byte ("C"), as SQLite's do, so that listings come in one order
// whichever store answers.
var migrations = []string{`
CREATE TABLE custody_check (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	sealed BYTEA NOT NULL
);

CREATE TABLE signing_keys (
	id           TEXT COLLATE "C" PRIMARY KEY,
	project_id   TEXT NOT NULL,
	project      TEXT COLLATE "C" NOT NULL,
	purpose      TEXT COLLATE "C" NOT NULL,
	algorithm    TEXT NOT NULL,
	public_pem   TEXT NOT NULL,
	key_hint     TEXT NOT NULL,
	wrapped_dek  BYTEA NOT NULL,
	ciphertext   BYTEA NOT NULL,
	created_at   BIGINT NOT NULL,
	not_before   BIGINT NOT NULL,
	not_after    BIGINT NOT NULL,
	retired_at   BIGINT NOT NULL,
	rotate_every BIGINT NOT NULL,
	overlap      BIGINT NOT NULL,
	predecessor  TEXT NOT NULL
);
CREATE INDEX signing_keys_by_project ON signing_keys(project_id, purpose, created_at);
-- At most one key of a purpose signs; rotation swaps it in one
-- transaction, so there is never none either.
CREATE UNIQUE INDEX signing_keys_current ON signing_keys(project_id, purpose) WHERE retired_at = 0;

CREATE TABLE stage_rules (
	project_id     TEXT NOT NULL,
	project        TEXT COLLATE "C" NOT NULL,
	stage          TEXT COLLATE "C" NOT NULL,
	key_purpose    TEXT NOT NULL,
	fail_on        TEXT NOT NULL,
	ignore_unfixed BOOLEAN NOT NULL,
	attest         BOOLEAN NOT NULL,
	PRIMARY KEY (project_id, stage)
);

CREATE TABLE stage_approvals (
	digest     TEXT NOT NULL,
	repository TEXT NOT NULL,
	stage      TEXT COLLATE "C" NOT NULL,
	project_id TEXT NOT NULL,
	key_id     TEXT NOT NULL,
	state      TEXT NOT NULL,
	at         BIGINT NOT NULL,
	reason     TEXT NOT NULL,
	PRIMARY KEY (digest, repository, stage)
);
CREATE INDEX stage_approvals_by_project ON stage_approvals(project_id);
`, `
-- A project's signing keys made, rotated, restored or deleted are
-- announced as a change of its policy (policypostgres.ChangesChannel),
-- when the change commits: every replica loads the project's policy
-- again, so a key reference counts the keys the project holds now.
CREATE FUNCTION berth_signing_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		PERFORM pg_notify('` + policypostgres.ChangesChannel + `', OLD.project_id);
	ELSE
		PERFORM pg_notify('` + policypostgres.ChangesChannel + `', NEW.project_id);
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER signing_keys_changed AFTER INSERT OR UPDATE OR DELETE ON signing_keys
	FOR EACH ROW EXECUTE FUNCTION berth_signing_keys_changed();
`, `
-- A stage approval given or revoked is announced as a change of the
-- digest's report (reportspostgres.ChangesChannel), when it commits:
-- every replica's pull-time policy forgets its verdicts on the digest,
-- which counted the stage's signature as the approval then stood. A
-- revocation commits after the re-match that caused it, so the report's
-- own announcement comes too early for that.
CREATE FUNCTION berth_stage_approval_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		PERFORM pg_notify('` + reportspostgres.ChangesChannel + `', OLD.digest);
	ELSE
		PERFORM pg_notify('` + reportspostgres.ChangesChannel + `', NEW.digest);
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER stage_approvals_changed AFTER INSERT OR UPDATE OR DELETE ON stage_approvals
	FOR EACH ROW EXECUTE FUNCTION berth_stage_approval_changed();
`, `
-- A stage rule may name a policy document (the YAML as it was put) beside
-- or instead of fail_on ('' then).
ALTER TABLE stage_rules ADD COLUMN policy TEXT NOT NULL DEFAULT '';
`, `
-- A stage people approve may require other stages' approvals first: their
-- names, one per line ('' for none).
ALTER TABLE stage_rules ADD COLUMN requires TEXT NOT NULL DEFAULT '';
`}

// writeLock is the transaction-level advisory lock every custody write
// transaction takes first ("custody"): replicas write one at a time, as
// SQLite's single writer does, so that what a transaction read holds
// until it commits (two replicas rotating one key at once: the second
// finds the key already retired and makes no second signing key).
const writeLock = 0x637573746f6479

// Store is a custody.Store in PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
}

var _ custody.Store = (*Store)(nil)

// Open connects to the database at url, migrates the custody tables and
// returns a Store that closes its pool on Close.
func Open(ctx context.Context, url string) (*Store, error) {
	pool, err := pgdb.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("custody database: %w", err)
	}
	s, err := New(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownPool = true
	return s, nil
}

// New migrates the custody tables behind pool and returns a Store over
// it; Close leaves the pool open.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if err := pgdb.Migrate(ctx, pool, component, migrations); err != nil {
		return nil, fmt.Errorf("custody database: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close implements custody.Store.
func (s *Store) Close() error {
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

// CheckValue implements custody.Store.
func (s *Store) CheckValue(ctx context.Context) ([]byte, error) {
	var sealed []byte
	err := s.pool.QueryRow(ctx, "SELECT sealed FROM custody_check WHERE id = 1").Scan(&sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, custody.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read the master key check value: %w", err)
	}
	return sealed, nil
}

// InitCheckValue implements custody.Store.
func (s *Store) InitCheckValue(ctx context.Context, sealed []byte) ([]byte, error) {
	var stored []byte
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO custody_check (id, sealed) VALUES (1, $1) ON CONFLICT (id) DO NOTHING", sealed); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT sealed FROM custody_check WHERE id = 1").Scan(&stored)
	})
	if err != nil {
		return nil, fmt.Errorf("store the master key check value: %w", err)
	}
	return stored, nil
}

const keyColumns = `id, project_id, project, purpose, algorithm, public_pem, key_hint, created_at, not_before, not_after,
	retired_at, rotate_every, overlap, predecessor`

func scanKey(row pgx.Row, extra ...any) (custody.Key, error) {
	var k custody.Key
	var created, nb, na, retired, every, overlap int64
	err := row.Scan(append([]any{&k.ID, &k.ProjectID, &k.Project, &k.Purpose, &k.Algorithm, &k.PublicKey, &k.KeyHint,
		&created, &nb, &na, &retired, &every, &overlap, &k.Predecessor}, extra...)...)
	if err != nil {
		return k, err
	}
	custody.KeyFromRow(&k, created, nb, na, retired, every, overlap)
	return k, nil
}

func scanSealed(row pgx.Row) (custody.SealedKey, error) {
	var k custody.SealedKey
	var err error
	k.Key, err = scanKey(row, &k.WrappedDEK, &k.Ciphertext)
	return k, err
}

func collect[T any](rows pgx.Rows, err error, what string, scan func(pgx.Row) (T, error)) ([]T, error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

func plainKey(row pgx.Row) (custody.Key, error) { return scanKey(row) }

// Keys implements custody.Store.
func (s *Store) Keys(ctx context.Context, projectID string) ([]custody.Key, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+keyColumns+" FROM signing_keys WHERE project_id = $1 ORDER BY purpose, created_at, id", projectID)
	return collect(rows, err, "list keys", plainKey)
}

// Current implements custody.Store.
func (s *Store) Current(ctx context.Context, projectID, purpose string) (custody.SealedKey, error) {
	k, err := scanSealed(s.pool.QueryRow(ctx, "SELECT "+keyColumns+", wrapped_dek, ciphertext FROM signing_keys "+
		"WHERE project_id = $1 AND purpose = $2 AND retired_at = 0", projectID, purpose))
	if errors.Is(err, pgx.ErrNoRows) {
		return custody.SealedKey{}, custody.ErrNotFound
	}
	if err != nil {
		return custody.SealedKey{}, fmt.Errorf("read the %s key: %w", purpose, err)
	}
	return k, nil
}

// Due implements custody.Store.
func (s *Store) Due(ctx context.Context, now time.Time) ([]custody.Key, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+keyColumns+" FROM signing_keys "+
		"WHERE retired_at = 0 AND rotate_every > 0 AND not_before + rotate_every <= $1 ORDER BY project, purpose", now.UnixNano())
	return collect(rows, err, "list keys due for rotation", plainKey)
}

// AllKeys implements custody.Store.
func (s *Store) AllKeys(ctx context.Context) ([]custody.SealedKey, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+keyColumns+", wrapped_dek, ciphertext FROM signing_keys ORDER BY project, purpose, created_at, id")
	return collect(rows, err, "list all keys", scanSealed)
}

// Rule implements custody.Store.
func (s *Store) Rule(ctx context.Context, projectID, stage string) (custody.Rule, error) {
	r := custody.Rule{Stage: stage}
	var failOn string
	var requires string
	err := s.pool.QueryRow(ctx, "SELECT key_purpose, fail_on, ignore_unfixed, policy, attest, requires FROM stage_rules WHERE project_id = $1 AND stage = $2",
		projectID, stage).Scan(&r.KeyPurpose, &failOn, &r.IgnoreUnfixed, &r.Policy, &r.Attest, &requires)
	if errors.Is(err, pgx.ErrNoRows) {
		return custody.Rule{}, custody.ErrNotFound
	}
	if err != nil {
		return custody.Rule{}, fmt.Errorf("read the %s rule: %w", stage, err)
	}
	r.FailOn, r.Requires = match.Severity(failOn), custody.SplitStages(requires)
	return r, nil
}

// AllRules implements custody.Store.
func (s *Store) AllRules(ctx context.Context) ([]custody.ProjectRule, error) {
	rows, err := s.pool.Query(ctx, "SELECT project_id, project, stage, key_purpose, fail_on, ignore_unfixed, policy, attest, requires FROM stage_rules "+
		"ORDER BY project, stage")
	return collect(rows, err, "list stage rules", func(row pgx.Row) (custody.ProjectRule, error) {
		var r custody.ProjectRule
		var failOn string
		var requires string
		err := row.Scan(&r.ProjectID, &r.Project, &r.Stage, &r.KeyPurpose, &failOn, &r.IgnoreUnfixed, &r.Policy, &r.Attest, &requires)
		r.FailOn, r.Requires = match.Severity(failOn), custody.SplitStages(requires)
		return r, err
	})
}

// Approvals implements custody.Store.
func (s *Store) Approvals(ctx context.Context, repo string, d digest.Digest) ([]custody.Approval, error) {
	rows, err := s.pool.Query(ctx, "SELECT stage, key_id, state, at, reason FROM stage_approvals WHERE digest = $1 AND repository = $2 ORDER BY stage",
		d.String(), repo)
	return collect(rows, err, "list approvals", func(row pgx.Row) (custody.Approval, error) {
		a := custody.Approval{Digest: d, Repository: repo}
		var at int64
		err := row.Scan(&a.Stage, &a.KeyID, &a.State, &at, &a.Reason)
		a.At = time.Unix(0, at).UTC()
		return a, err
	})
}

// inTx runs fn in a transaction holding the write lock (pgdb.InTx runs
// it again when PostgreSQL aborts it for a deadlock or a serialisation
// failure).
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgdb.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(writeLock)); err != nil {
			return fmt.Errorf("custody write lock: %w", err)
		}
		return fn(tx)
	})
}

// Update implements custody.Store: the transaction first takes the
// write lock, which PostgreSQL releases when it commits or rolls back
// (a replica that dies mid-transaction holds it no longer than its
// session). Under READ COMMITTED each statement then sees every write
// transaction committed before the lock was granted.
func (s *Store) Update(ctx context.Context, what string, fn func(custody.Tx) error) error {
	var fnErr error
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		fnErr = fn(pgTx{tx})
		return fnErr
	})
	if err != nil && err != fnErr {
		// fn's own errors are the caller's as they are (as SQLite's).
		return fmt.Errorf("%s: %w", what, err)
	}
	return err
}

type pgTx struct{ tx pgx.Tx }

// InsertKey implements custody.Tx. ON CONFLICT DO NOTHING covers every
// unique index (the id, and one signing key per purpose) without
// aborting the transaction.
func (t pgTx) InsertKey(ctx context.Context, k custody.SealedKey) error {
	tag, err := t.tx.Exec(ctx, `INSERT INTO signing_keys (id, project_id, project, purpose, algorithm, public_pem, key_hint,
		wrapped_dek, ciphertext, created_at, not_before, not_after, retired_at, rotate_every, overlap, predecessor)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT DO NOTHING`,
		k.ID, k.ProjectID, k.Project, k.Purpose, k.Algorithm, k.PublicKey, k.KeyHint, k.WrappedDEK, k.Ciphertext,
		k.CreatedAt.UnixNano(), k.NotBefore.UnixNano(), custody.Nanos(k.NotAfter), custody.Nanos(k.RetiredAt),
		int64(k.RotateEvery), int64(k.Overlap), k.Predecessor)
	if err != nil {
		return fmt.Errorf("insert key %s: %w", k.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: project %s already has a %s key (or key %s exists)", custody.ErrExists, k.Project, k.Purpose, k.ID)
	}
	return nil
}

// RetireKey implements custody.Tx.
func (t pgTx) RetireKey(ctx context.Context, id string, at, notAfter time.Time) (bool, error) {
	tag, err := t.tx.Exec(ctx, "UPDATE signing_keys SET retired_at = $1, not_after = $2 WHERE id = $3 AND retired_at = 0",
		at.UnixNano(), notAfter.UnixNano(), id)
	if err != nil {
		return false, fmt.Errorf("retire key %s: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// CountKeys implements custody.Tx.
func (t pgTx) CountKeys(ctx context.Context) (int, error) {
	var n int
	if err := t.tx.QueryRow(ctx, "SELECT count(*) FROM signing_keys").Scan(&n); err != nil {
		return 0, fmt.Errorf("count keys: %w", err)
	}
	return n, nil
}

// DeleteProject implements custody.Tx.
func (t pgTx) DeleteProject(ctx context.Context, projectID string) error {
	for _, q := range []string{"DELETE FROM signing_keys WHERE project_id = $1", "DELETE FROM stage_rules WHERE project_id = $1"} {
		if _, err := t.tx.Exec(ctx, q, projectID); err != nil {
			return fmt.Errorf("delete keys and rules of project %s: %w", projectID, err)
		}
	}
	return nil
}

// DeleteKey implements custody.Tx.
func (t pgTx) DeleteKey(ctx context.Context, id string) error {
	if _, err := t.tx.Exec(ctx, "DELETE FROM signing_keys WHERE id = $1", id); err != nil {
		return fmt.Errorf("delete key %s: %w", id, err)
	}
	return nil
}

// PutRule implements custody.Tx.
func (t pgTx) PutRule(ctx context.Context, projectID, project string, r custody.Rule) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO stage_rules (project_id, project, stage, key_purpose, fail_on, ignore_unfixed, policy, attest, requires)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (project_id, stage) DO UPDATE SET project = excluded.project,
		key_purpose = excluded.key_purpose, fail_on = excluded.fail_on, ignore_unfixed = excluded.ignore_unfixed, policy = excluded.policy,
		attest = excluded.attest, requires = excluded.requires`,
		projectID, project, r.Stage, r.KeyPurpose, string(r.FailOn), r.IgnoreUnfixed, r.Policy, r.Attest, strings.Join(r.Requires, "\n"))
	if err != nil {
		return fmt.Errorf("put %s rule of project %s: %w", r.Stage, project, err)
	}
	return nil
}

// DeleteRule implements custody.Tx.
func (t pgTx) DeleteRule(ctx context.Context, projectID, stage string) (bool, error) {
	tag, err := t.tx.Exec(ctx, "DELETE FROM stage_rules WHERE project_id = $1 AND stage = $2", projectID, stage)
	if err != nil {
		return false, fmt.Errorf("delete %s rule: %w", stage, err)
	}
	return tag.RowsAffected() > 0, nil
}

// PutApproval implements custody.Tx.
func (t pgTx) PutApproval(ctx context.Context, projectID string, a custody.Approval) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO stage_approvals (digest, repository, stage, project_id, key_id, state, at, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (digest, repository, stage) DO UPDATE SET project_id = excluded.project_id,
		key_id = excluded.key_id, state = excluded.state, at = excluded.at, reason = excluded.reason`,
		a.Digest.String(), a.Repository, a.Stage, projectID, a.KeyID, a.State, a.At.UnixNano(), a.Reason)
	if err != nil {
		return fmt.Errorf("put %s approval of %s@%s: %w", a.Stage, a.Repository, a.Digest, err)
	}
	return nil
}
