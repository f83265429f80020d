// Package postgres is the policy.Store of a scale-out deployment: project
// policies in the shared PostgreSQL database, so a policy put through one
// replica is the policy every replica enforces. The model is the SQLite
// store's (times as Unix nanoseconds).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"berth.dev/berth/internal/pgdb"
	"berth.dev/berth/internal/policy"
)

const component = "policy"

var migrations = []string{`
CREATE TABLE project_policies (
	project_id TEXT PRIMARY KEY,
	project    TEXT COLLATE "C" NOT NULL,
	body       BYTEA NOT NULL,
	version    TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	updated_by TEXT NOT NULL
);

-- Every change is announced on ChangesChannel when it commits, whoever
-- makes it, so that each replica's enforcer reloads the project's policy.
CREATE FUNCTION berth_policy_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		PERFORM pg_notify('` + ChangesChannel + `', OLD.project_id);
	ELSE
		PERFORM pg_notify('` + ChangesChannel + `', NEW.project_id);
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER project_policies_changed AFTER INSERT OR UPDATE OR DELETE ON project_policies
	FOR EACH ROW EXECUTE FUNCTION berth_policy_changed();
CREATE FUNCTION berth_policies_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('` + ChangesChannel + `', '');
	RETURN NULL;
END $$;
CREATE TRIGGER project_policies_truncated AFTER TRUNCATE ON project_policies
	FOR EACH STATEMENT EXECUTE FUNCTION berth_policies_truncated();
`}

// ChangesChannel is where a change to a project's policy is announced (by
// triggers, when it commits; the payload is the project's id, empty when
// every policy may have changed), so that every replica enforces the
// policy last put through any of them.
const ChangesChannel = "berth_policy"

// Store is a policy.Store in PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
}

var _ policy.Store = (*Store)(nil)

// Open connects to the database at url, migrates the policy table and
// returns a Store that closes its pool on Close.
func Open(ctx context.Context, url string) (*Store, error) {
	pool, err := pgdb.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("policy database: %w", err)
	}
	s, err := New(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownPool = true
	return s, nil
}

// New migrates the policy table behind pool and returns a Store over it;
// Close leaves the pool open.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if err := pgdb.Migrate(ctx, pool, component, migrations); err != nil {
		return nil, fmt.Errorf("policy database: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close implements policy.Store.
func (s *Store) Close() error {
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

// Put implements policy.Store.
func (s *Store) Put(ctx context.Context, p policy.Stored) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO project_policies (project_id, project, body, version, updated_at, updated_by)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (project_id) DO UPDATE SET project = excluded.project, body = excluded.body, version = excluded.version,
			updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		p.ProjectID, p.Project, p.Body, p.Version, p.UpdatedAt.UnixNano(), p.UpdatedBy)
	if err != nil {
		return fmt.Errorf("put policy of project %s: %w", p.Project, err)
	}
	return nil
}

const columns = "project_id, project, body, version, updated_at, updated_by"

func scan(row pgx.Row) (policy.Stored, error) {
	var p policy.Stored
	var at int64
	err := row.Scan(&p.ProjectID, &p.Project, &p.Body, &p.Version, &at, &p.UpdatedBy)
	p.UpdatedAt = time.Unix(0, at).UTC()
	return p, err
}

// Get implements policy.Store.
func (s *Store) Get(ctx context.Context, projectID string) (policy.Stored, error) {
	p, err := scan(s.pool.QueryRow(ctx, "SELECT "+columns+" FROM project_policies WHERE project_id = $1", projectID))
	if errors.Is(err, pgx.ErrNoRows) {
		return p, policy.ErrNoPolicy
	}
	if err != nil {
		return p, fmt.Errorf("get policy: %w", err)
	}
	return p, nil
}

// Delete implements policy.Store.
func (s *Store) Delete(ctx context.Context, projectID string) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM project_policies WHERE project_id = $1", projectID); err != nil {
		return fmt.Errorf("delete policy: %w", err)
	}
	return nil
}

// All implements policy.Store.
func (s *Store) All(ctx context.Context) ([]policy.Stored, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+columns+" FROM project_policies ORDER BY project, updated_at")
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (policy.Stored, error) { return scan(row) })
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	return out, nil
}
