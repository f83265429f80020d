package custody

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	sqlitedb "berth.dev/berth/internal/audit/sqlite"
	"berth.dev/berth/internal/match"
)

// sqliteMigrations are the custody component's tables in meta.db (append,
// never edit: data directories made by earlier versions open with them).
var sqliteMigrations = []string{`
CREATE TABLE custody_check (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	sealed BLOB NOT NULL
);

CREATE TABLE signing_keys (
	id           TEXT PRIMARY KEY,
	project_id   TEXT NOT NULL,
	project      TEXT NOT NULL,
	purpose      TEXT NOT NULL,
	algorithm    TEXT NOT NULL,
	public_pem   TEXT NOT NULL,
	key_hint     TEXT NOT NULL,
	wrapped_dek  BLOB NOT NULL,
	ciphertext   BLOB NOT NULL,
	created_at   INTEGER NOT NULL,
	not_before   INTEGER NOT NULL,
	not_after    INTEGER NOT NULL,
	retired_at   INTEGER NOT NULL,
	rotate_every INTEGER NOT NULL,
	overlap      INTEGER NOT NULL,
	predecessor  TEXT NOT NULL
);
CREATE INDEX signing_keys_by_project ON signing_keys(project_id, purpose, created_at);
-- At most one key of a purpose signs; rotation swaps it in one
-- transaction, so there is never none either.
CREATE UNIQUE INDEX signing_keys_current ON signing_keys(project_id, purpose) WHERE retired_at = 0;

CREATE TABLE stage_rules (
	project_id     TEXT NOT NULL,
	project        TEXT NOT NULL,
	stage          TEXT NOT NULL,
	key_purpose    TEXT NOT NULL,
	fail_on        TEXT NOT NULL,
	ignore_unfixed INTEGER NOT NULL,
	attest         INTEGER NOT NULL,
	PRIMARY KEY (project_id, stage)
);

CREATE TABLE stage_approvals (
	digest     TEXT NOT NULL,
	repository TEXT NOT NULL,
	stage      TEXT NOT NULL,
	project_id TEXT NOT NULL,
	key_id     TEXT NOT NULL,
	state      TEXT NOT NULL,
	at         INTEGER NOT NULL,
	reason     TEXT NOT NULL,
	PRIMARY KEY (digest, repository, stage)
);
CREATE INDEX stage_approvals_by_project ON stage_approvals(project_id);
`, `
-- A stage rule may name a policy document (the YAML as it was put) beside
-- or instead of fail_on ('' then).
ALTER TABLE stage_rules ADD COLUMN policy TEXT NOT NULL DEFAULT '';
`, `
-- A stage people approve may require other stages' approvals first: their
-- names, one per line ('' for none).
ALTER TABLE stage_rules ADD COLUMN requires TEXT NOT NULL DEFAULT '';
`}

// SQLiteStore is the Store of a server on its own: the custody tables
// of meta.db. meta.db has one writer connection, so its write
// transactions run one at a time.
type SQLiteStore struct{ db *sqlitedb.DB }

var _ Store = (*SQLiteStore)(nil)

// OpenSQLite opens (and migrates) the custody tables of the SQLite
// database at path.
func OpenSQLite(ctx context.Context, path string) (*SQLiteStore, error) {
	db, err := sqlitedb.OpenDB(ctx, path, "custody", sqliteMigrations)
	if err != nil {
		return nil, err
	}
	return &SQLiteStore{db: db}, nil
}

// Close implements Store.
func (s *SQLiteStore) Close() error { return s.db.Close() }

// CheckValue implements Store.
func (s *SQLiteStore) CheckValue(ctx context.Context) ([]byte, error) {
	var sealed []byte
	err := s.db.R.QueryRowContext(ctx, "SELECT sealed FROM custody_check WHERE id = 1").Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return sealed, err
}

// InitCheckValue implements Store.
func (s *SQLiteStore) InitCheckValue(ctx context.Context, sealed []byte) ([]byte, error) {
	var stored []byte
	err := s.db.InTx(ctx, "store the master key check", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO custody_check (id, sealed) VALUES (1, ?) ON CONFLICT (id) DO NOTHING", sealed); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, "SELECT sealed FROM custody_check WHERE id = 1").Scan(&stored)
	})
	return stored, err
}

const sqliteKeyColumns = `id, project_id, project, purpose, algorithm, public_pem, key_hint, created_at, not_before, not_after,
	retired_at, rotate_every, overlap, predecessor`

type sqliteScanner interface{ Scan(...any) error }

func sqliteScanKey(row sqliteScanner, extra ...any) (Key, error) {
	var k Key
	var created, nb, na, retired, every, overlap int64
	err := row.Scan(append([]any{&k.ID, &k.ProjectID, &k.Project, &k.Purpose, &k.Algorithm, &k.PublicKey, &k.KeyHint,
		&created, &nb, &na, &retired, &every, &overlap, &k.Predecessor}, extra...)...)
	if err != nil {
		return k, err
	}
	KeyFromRow(&k, created, nb, na, retired, every, overlap)
	return k, nil
}

func sqliteScanSealed(row sqliteScanner) (SealedKey, error) {
	var k SealedKey
	var err error
	k.Key, err = sqliteScanKey(row, &k.WrappedDEK, &k.Ciphertext)
	return k, err
}

func sqliteCollect[T any](rows *sql.Rows, err error, scan func(sqliteScanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Keys implements Store.
func (s *SQLiteStore) Keys(ctx context.Context, projectID string) ([]Key, error) {
	rows, err := s.db.R.QueryContext(ctx, "SELECT "+sqliteKeyColumns+" FROM signing_keys WHERE project_id = ? ORDER BY purpose, created_at, id",
		projectID)
	return sqliteCollect(rows, err, func(r sqliteScanner) (Key, error) { return sqliteScanKey(r) })
}

// Current implements Store.
func (s *SQLiteStore) Current(ctx context.Context, projectID, purpose string) (SealedKey, error) {
	k, err := sqliteScanSealed(s.db.R.QueryRowContext(ctx, "SELECT "+sqliteKeyColumns+", wrapped_dek, ciphertext FROM signing_keys "+
		"WHERE project_id = ? AND purpose = ? AND retired_at = 0", projectID, purpose))
	if errors.Is(err, sql.ErrNoRows) {
		return SealedKey{}, ErrNotFound
	}
	return k, err
}

// Due implements Store.
func (s *SQLiteStore) Due(ctx context.Context, now time.Time) ([]Key, error) {
	rows, err := s.db.R.QueryContext(ctx, "SELECT "+sqliteKeyColumns+" FROM signing_keys "+
		"WHERE retired_at = 0 AND rotate_every > 0 AND not_before + rotate_every <= ? ORDER BY project, purpose", now.UnixNano())
	return sqliteCollect(rows, err, func(r sqliteScanner) (Key, error) { return sqliteScanKey(r) })
}

// AllKeys implements Store.
func (s *SQLiteStore) AllKeys(ctx context.Context) ([]SealedKey, error) {
	rows, err := s.db.R.QueryContext(ctx, "SELECT "+sqliteKeyColumns+", wrapped_dek, ciphertext FROM signing_keys "+
		"ORDER BY project, purpose, created_at, id")
	return sqliteCollect(rows, err, sqliteScanSealed)
}

// Rule implements Store.
func (s *SQLiteStore) Rule(ctx context.Context, projectID, stage string) (Rule, error) {
	r := Rule{Stage: stage}
	var failOn string
	var requires string
	err := s.db.R.QueryRowContext(ctx, "SELECT key_purpose, fail_on, ignore_unfixed, policy, attest, requires FROM stage_rules WHERE project_id = ? AND stage = ?",
		projectID, stage).Scan(&r.KeyPurpose, &failOn, &r.IgnoreUnfixed, &r.Policy, &r.Attest, &requires)
	if errors.Is(err, sql.ErrNoRows) {
		return Rule{}, ErrNotFound
	}
	r.FailOn, r.Requires = match.Severity(failOn), SplitStages(requires)
	return r, err
}

// AllRules implements Store.
func (s *SQLiteStore) AllRules(ctx context.Context) ([]ProjectRule, error) {
	rows, err := s.db.R.QueryContext(ctx, "SELECT project_id, project, stage, key_purpose, fail_on, ignore_unfixed, policy, attest, requires FROM stage_rules "+
		"ORDER BY project, stage")
	return sqliteCollect(rows, err, func(row sqliteScanner) (ProjectRule, error) {
		var r ProjectRule
		var failOn string
		var requires string
		err := row.Scan(&r.ProjectID, &r.Project, &r.Stage, &r.KeyPurpose, &failOn, &r.IgnoreUnfixed, &r.Policy, &r.Attest, &requires)
		r.FailOn, r.Requires = match.Severity(failOn), SplitStages(requires)
		return r, err
	})
}

// Approvals implements Store.
func (s *SQLiteStore) Approvals(ctx context.Context, repo string, d digest.Digest) ([]Approval, error) {
	rows, err := s.db.R.QueryContext(ctx, "SELECT stage, key_id, state, at, reason FROM stage_approvals WHERE digest = ? AND repository = ? ORDER BY stage",
		d.String(), repo)
	return sqliteCollect(rows, err, func(row sqliteScanner) (Approval, error) {
		a := Approval{Digest: d, Repository: repo}
		var at int64
		err := row.Scan(&a.Stage, &a.KeyID, &a.State, &at, &a.Reason)
		a.At = time.Unix(0, at).UTC()
		return a, err
	})
}

// Update implements Store: meta.db's one writer connection runs its
// transactions one at a time (BEGIN IMMEDIATE), and other processes wait
// for SQLite's write lock.
func (s *SQLiteStore) Update(ctx context.Context, what string, fn func(Tx) error) error {
	return s.db.InTx(ctx, what, func(tx *sql.Tx) error { return fn(sqliteTx{tx}) })
}

type sqliteTx struct{ tx *sql.Tx }

// InsertKey implements Tx. ON CONFLICT DO NOTHING covers every unique
// index (the id, and one signing key per purpose) without failing the
// statement.
func (t sqliteTx) InsertKey(ctx context.Context, k SealedKey) error {
	res, err := t.tx.ExecContext(ctx, `INSERT INTO signing_keys (id, project_id, project, purpose, algorithm, public_pem, key_hint,
		wrapped_dek, ciphertext, created_at, not_before, not_after, retired_at, rotate_every, overlap, predecessor)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		k.ID, k.ProjectID, k.Project, k.Purpose, k.Algorithm, k.PublicKey, k.KeyHint, k.WrappedDEK, k.Ciphertext,
		k.CreatedAt.UnixNano(), k.NotBefore.UnixNano(), Nanos(k.NotAfter), Nanos(k.RetiredAt),
		int64(k.RotateEvery), int64(k.Overlap), k.Predecessor)
	if err != nil {
		return fmt.Errorf("insert key %s: %w", k.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("%w: project %s already has a %s key (or key %s exists)", ErrExists, k.Project, k.Purpose, k.ID)
	}
	return nil
}

// RetireKey implements Tx.
func (t sqliteTx) RetireKey(ctx context.Context, id string, at, notAfter time.Time) (bool, error) {
	res, err := t.tx.ExecContext(ctx, "UPDATE signing_keys SET retired_at = ?, not_after = ? WHERE id = ? AND retired_at = 0",
		at.UnixNano(), notAfter.UnixNano(), id)
	if err != nil {
		return false, fmt.Errorf("retire key %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// CountKeys implements Tx.
func (t sqliteTx) CountKeys(ctx context.Context) (int, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, "SELECT count(*) FROM signing_keys").Scan(&n)
	return n, err
}

// DeleteProject implements Tx.
func (t sqliteTx) DeleteProject(ctx context.Context, projectID string) error {
	for _, q := range []string{"DELETE FROM signing_keys WHERE project_id = ?", "DELETE FROM stage_rules WHERE project_id = ?"} {
		if _, err := t.tx.ExecContext(ctx, q, projectID); err != nil {
			return fmt.Errorf("delete keys and rules of project %s: %w", projectID, err)
		}
	}
	return nil
}

// DeleteKey implements Tx.
func (t sqliteTx) DeleteKey(ctx context.Context, id string) error {
	if _, err := t.tx.ExecContext(ctx, "DELETE FROM signing_keys WHERE id = ?", id); err != nil {
		return fmt.Errorf("delete key %s: %w", id, err)
	}
	return nil
}

// PutRule implements Tx.
func (t sqliteTx) PutRule(ctx context.Context, projectID, project string, r Rule) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO stage_rules (project_id, project, stage, key_purpose, fail_on, ignore_unfixed, policy, attest, requires)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, stage) DO UPDATE SET project = excluded.project,
		key_purpose = excluded.key_purpose, fail_on = excluded.fail_on, ignore_unfixed = excluded.ignore_unfixed, policy = excluded.policy,
		attest = excluded.attest, requires = excluded.requires`,
		projectID, project, r.Stage, r.KeyPurpose, string(r.FailOn), r.IgnoreUnfixed, r.Policy, r.Attest, strings.Join(r.Requires, "\n"))
	if err != nil {
		return fmt.Errorf("put %s rule of project %s: %w", r.Stage, project, err)
	}
	return nil
}

// DeleteRule implements Tx.
func (t sqliteTx) DeleteRule(ctx context.Context, projectID, stage string) (bool, error) {
	res, err := t.tx.ExecContext(ctx, "DELETE FROM stage_rules WHERE project_id = ? AND stage = ?", projectID, stage)
	if err != nil {
		return false, fmt.Errorf("delete %s rule: %w", stage, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// PutApproval implements Tx.
func (t sqliteTx) PutApproval(ctx context.Context, projectID string, a Approval) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO stage_approvals (digest, repository, stage, project_id, key_id, state, at, reason)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest, repository, stage) DO UPDATE SET project_id = excluded.project_id,
		key_id = excluded.key_id, state = excluded.state, at = excluded.at, reason = excluded.reason`,
		a.Digest.String(), a.Repository, a.Stage, projectID, a.KeyID, a.State, a.At.UnixNano(), a.Reason)
	if err != nil {
		return fmt.Errorf("put %s approval of %s@%s: %w", a.Stage, a.Repository, a.Digest, err)
	}
	return nil
}
