// Package sqlite is the embedded policy.Store, in meta.db beside the
// projects it belongs to, versioned as the "policy" component.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	sqlitedb "berth.dev/berth/internal/audit/sqlite"
	"berth.dev/berth/internal/policy"
)

var migrations = []string{`
CREATE TABLE project_policies (
	project_id TEXT PRIMARY KEY,
	project    TEXT NOT NULL,
	body       BLOB NOT NULL,
	version    TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	updated_by TEXT NOT NULL
);
`}

// Store is a policy.Store in SQLite.
type Store struct{ db *sqlitedb.DB }

var _ policy.Store = (*Store)(nil)

// Open opens (creating and migrating if needed) the policy table in the
// database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.OpenDB(ctx, path, "policy", migrations)
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Put implements policy.Store.
func (s *Store) Put(ctx context.Context, p policy.Stored) error {
	return s.db.InTx(ctx, "put policy", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO project_policies (project_id, project, body, version, updated_at, updated_by)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (project_id) DO UPDATE SET project = excluded.project, body = excluded.body, version = excluded.version,
				updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
			p.ProjectID, p.Project, p.Body, p.Version, p.UpdatedAt.UnixNano(), p.UpdatedBy)
		return err
	})
}

const columns = "project_id, project, body, version, updated_at, updated_by"

func scan(row interface{ Scan(...any) error }) (policy.Stored, error) {
	var p policy.Stored
	var at int64
	err := row.Scan(&p.ProjectID, &p.Project, &p.Body, &p.Version, &at, &p.UpdatedBy)
	p.UpdatedAt = time.Unix(0, at).UTC()
	return p, err
}

// Get implements policy.Store.
func (s *Store) Get(ctx context.Context, projectID string) (policy.Stored, error) {
	p, err := scan(s.db.R.QueryRowContext(ctx, "SELECT "+columns+" FROM project_policies WHERE project_id = ?", projectID))
	if errors.Is(err, sql.ErrNoRows) {
		return p, policy.ErrNoPolicy
	}
	return p, err
}

// Delete implements policy.Store.
func (s *Store) Delete(ctx context.Context, projectID string) error {
	return s.db.InTx(ctx, "delete policy", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM project_policies WHERE project_id = ?", projectID)
		return err
	})
}

// All implements policy.Store.
func (s *Store) All(ctx context.Context) ([]policy.Stored, error) {
	rows, err := s.db.R.QueryContext(ctx, "SELECT "+columns+" FROM project_policies ORDER BY project, updated_at")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []policy.Stored
	for rows.Next() {
		p, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
