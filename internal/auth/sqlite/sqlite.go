// Package sqlite is the embedded auth.Store, in the same SQLite file as the
// registry's metadata (meta.db). Its SQL is kept to what PostgreSQL also
// runs: booleans are integers, times Unix nanoseconds, lists text.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	sqlitedb "berth.dev/berth/internal/audit/sqlite"
	"berth.dev/berth/internal/auth"
)

var migrations = []string{`
CREATE TABLE users (
	name          TEXT PRIMARY KEY,
	password_hash TEXT NOT NULL,
	admin         INTEGER NOT NULL,
	disabled      INTEGER NOT NULL,
	allowed_cidrs TEXT NOT NULL,
	created_at    INTEGER NOT NULL
);

CREATE TABLE projects (
	name       TEXT PRIMARY KEY,
	public     INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	created_by TEXT NOT NULL
);

CREATE TABLE project_members (
	project   TEXT NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
	user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
	role      TEXT NOT NULL,
	PRIMARY KEY (project, user_name)
);
CREATE INDEX project_members_by_user ON project_members(user_name);

CREATE TABLE robots (
	name          TEXT PRIMARY KEY,
	description   TEXT NOT NULL,
	permissions   TEXT NOT NULL,
	expires_at    INTEGER NOT NULL,
	revoked       INTEGER NOT NULL,
	allowed_cidrs TEXT NOT NULL,
	secret_hash   TEXT NOT NULL,
	created_by    TEXT NOT NULL,
	created_at    INTEGER NOT NULL
);

CREATE TABLE refresh_tokens (
	hash       TEXT PRIMARY KEY,
	subject    TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX refresh_tokens_by_subject ON refresh_tokens(subject);
`,
	// 2: identities. Users, projects and robots get an immutable id, and
	// everything that refers to one of them refers to the id, so that an
	// account or project later created under a deleted one's name
	// inherits nothing: memberships (rebuilt keyed by ids), robot
	// permissions (each carries its project's id) and refresh tokens.
	// This converts an existing SQLite database and so uses SQLite's
	// functions (randomblob, json_each); a PostgreSQL store starts from
	// the resulting schema.
	//
	// A robot permission naming a project that no longer exists, or one
	// created after the robot, is dropped: it can only be left over from
	// a deleted project of the same name (the flaw this fixes), or an
	// administrator's grant on a project that did not exist yet, which
	// berth cannot tell apart. Robots left without permissions go too.
	`
ALTER TABLE users ADD COLUMN id TEXT NOT NULL DEFAULT '';
UPDATE users SET id = lower(hex(randomblob(16)));
CREATE UNIQUE INDEX users_by_id ON users(id);
ALTER TABLE projects ADD COLUMN id TEXT NOT NULL DEFAULT '';
UPDATE projects SET id = lower(hex(randomblob(16)));
CREATE UNIQUE INDEX projects_by_id ON projects(id);
ALTER TABLE robots ADD COLUMN id TEXT NOT NULL DEFAULT '';
UPDATE robots SET id = lower(hex(randomblob(16)));
CREATE UNIQUE INDEX robots_by_id ON robots(id);

CREATE TABLE memberships (
	project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
	user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	role       TEXT NOT NULL,
	PRIMARY KEY (project_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships(user_id);
INSERT INTO memberships (project_id, user_id, role)
	SELECT p.id, u.id, m.role FROM project_members AS m
	JOIN projects AS p ON p.name = m.project
	JOIN users AS u ON u.name = m.user_name;
DROP TABLE project_members;

UPDATE robots SET permissions = COALESCE((
	SELECT json_group_array(json(CASE WHEN json_extract(e.value, '$.project') = '*' THEN e.value
		ELSE json_set(e.value, '$.project_id', p.id) END))
	FROM json_each(robots.permissions) AS e
	LEFT JOIN projects AS p ON p.name = json_extract(e.value, '$.project')
	WHERE json_extract(e.value, '$.project') = '*' OR p.created_at <= robots.created_at
), '[]');
DELETE FROM refresh_tokens WHERE subject IN (SELECT name FROM robots WHERE permissions = '[]');
DELETE FROM robots WHERE permissions = '[]';

ALTER TABLE refresh_tokens ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
UPDATE refresh_tokens SET account_id = COALESCE(
	(SELECT id FROM users WHERE users.name = refresh_tokens.subject),
	(SELECT id FROM robots WHERE robots.name = refresh_tokens.subject), '');
DELETE FROM refresh_tokens WHERE account_id = '';
CREATE INDEX refresh_tokens_by_account ON refresh_tokens(account_id);
`,
	// 3: login lockouts, kept so that a restart neither frees an
	// attacker's target early nor resets the backoff.
	`
CREATE TABLE login_lockouts (
	account_id   TEXT PRIMARY KEY,
	level        INTEGER NOT NULL,
	locked_until INTEGER NOT NULL
);
`,
	// 4: whether pushed images are scanned (Harbor's auto_scan), on by
	// default.
	`
ALTER TABLE projects ADD COLUMN auto_scan INTEGER NOT NULL DEFAULT 1;
`,
	// 5: web UI sessions, kept here rather than in memory so that a
	// restart keeps them. hash is the SHA-256 of the cookie's session id,
	// which is never stored.
	`
CREATE TABLE web_sessions (
	hash          TEXT PRIMARY KEY,
	account_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	account_name  TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	csrf          TEXT NOT NULL,
	created_at    INTEGER NOT NULL,
	last_seen     INTEGER NOT NULL
);
CREATE INDEX web_sessions_by_account ON web_sessions(account_id, created_at);
CREATE INDEX web_sessions_by_created ON web_sessions(created_at);
`}

// Store is an auth.Store in SQLite.
type Store struct{ db *sqlitedb.DB }

var _ auth.Store = (*Store)(nil)

// Open opens (creating and migrating if needed) the auth tables in the
// database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.OpenDB(ctx, path, "auth", migrations)
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func cidrText(ps []netip.Prefix) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

func parseCIDRText(s string) ([]netip.Prefix, error) {
	if s == "" {
		return nil, nil
	}
	return auth.ParseCIDRs(strings.Split(s, ","))
}

// isUnique tells a primary-key or unique violation, which SQLite reports
// as "UNIQUE constraint failed" (and PostgreSQL as SQLSTATE 23505).
func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func isForeignKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "FOREIGN KEY constraint failed")
}

// exactlyOne turns an update or delete that touched no row into
// ErrNotFound.
func exactlyOne(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, auth.ErrNotFound)
	}
	return nil
}

const userColumns = "id, name, password_hash, admin, disabled, allowed_cidrs, created_at"

type scanner interface{ Scan(...any) error }

func scanUser(row scanner) (auth.User, error) {
	var u auth.User
	var admin, disabled int
	var cidrs string
	var created int64
	if err := row.Scan(&u.ID, &u.Name, &u.PasswordHash, &admin, &disabled, &cidrs, &created); err != nil {
		return u, err
	}
	u.Admin, u.Disabled, u.CreatedAt = admin != 0, disabled != 0, fromNanos(created)
	var err error
	u.AllowedCIDRs, err = parseCIDRText(cidrs)
	return u, err
}

// CreateUser implements auth.Store.
func (s *Store) CreateUser(ctx context.Context, u auth.User) error {
	if u.ID == "" {
		return fmt.Errorf("create user %s: %w: no id", u.Name, auth.ErrInvalid)
	}
	_, err := s.db.W.ExecContext(ctx, "INSERT INTO users ("+userColumns+") VALUES (?, ?, ?, ?, ?, ?, ?)",
		u.ID, u.Name, u.PasswordHash, boolInt(u.Admin), boolInt(u.Disabled), cidrText(u.AllowedCIDRs), nanos(u.CreatedAt))
	if isUnique(err) {
		return fmt.Errorf("user %s: %w", u.Name, auth.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.Name, err)
	}
	return nil
}

// User implements auth.Store.
func (s *Store) User(ctx context.Context, name string) (auth.User, error) {
	u, err := scanUser(s.db.R.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("user %s: %w", name, auth.ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("user %s: %w", name, err)
	}
	return u, nil
}

// Users implements auth.Store.
func (s *Store) Users(ctx context.Context) ([]auth.User, error) {
	rows, err := s.db.R.QueryContext(ctx, "SELECT "+userColumns+" FROM users ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []auth.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UpdateUser implements auth.Store.
func (s *Store) UpdateUser(ctx context.Context, u auth.User) error {
	what := "update user " + u.Name
	return s.db.InTx(ctx, what, func(tx *sql.Tx) error {
		var oldHash string
		switch err := tx.QueryRowContext(ctx, "SELECT password_hash FROM users WHERE id = ?", u.ID).Scan(&oldHash); {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("%s: %w", what, auth.ErrNotFound)
		case err != nil:
			return fmt.Errorf("%s: %w", what, err)
		}
		res, err := tx.ExecContext(ctx, "UPDATE users SET password_hash = ?, admin = ?, disabled = ?, allowed_cidrs = ? WHERE id = ?",
			u.PasswordHash, boolInt(u.Admin), boolInt(u.Disabled), cidrText(u.AllowedCIDRs), u.ID)
		if err := exactlyOne(res, err, what); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM web_sessions WHERE account_id = ? AND (? = 1 OR password_hash <> ?)",
			u.ID, boolInt(u.Disabled), u.PasswordHash); err != nil {
			return fmt.Errorf("%s: end sessions: %w", what, err)
		}
		if u.Disabled || oldHash != u.PasswordHash {
			if _, err := tx.ExecContext(ctx, "DELETE FROM refresh_tokens WHERE account_id = ?", u.ID); err != nil {
				return fmt.Errorf("%s: end refresh tokens: %w", what, err)
			}
		}
		return nil
	})
}

// DeleteUser implements auth.Store.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return s.db.InTx(ctx, "delete user "+name, func(tx *sql.Tx) error {
		return deleteAccount(ctx, tx, "users", name)
	})
}

const projectColumns = "id, name, public, created_at, created_by, auto_scan"

func scanProject(row scanner) (auth.Project, error) {
	var p auth.Project
	var public, autoScan int
	var created int64
	err := row.Scan(&p.ID, &p.Name, &public, &created, &p.CreatedBy, &autoScan)
	p.Public, p.CreatedAt, p.AutoScan = public != 0, fromNanos(created), autoScan != 0
	return p, err
}

// CreateProject implements auth.Store.
func (s *Store) CreateProject(ctx context.Context, p auth.Project, adminID string) error {
	if p.ID == "" {
		return fmt.Errorf("create project %s: %w: no id", p.Name, auth.ErrInvalid)
	}
	return s.db.InTx(ctx, "create project "+p.Name, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO projects ("+projectColumns+") VALUES (?, ?, ?, ?, ?, ?)",
			p.ID, p.Name, boolInt(p.Public), nanos(p.CreatedAt), p.CreatedBy, boolInt(p.AutoScan))
		if isUnique(err) {
			return fmt.Errorf("project %s: %w", p.Name, auth.ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create project %s: %w", p.Name, err)
		}
		if adminID == "" {
			return nil
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO memberships (project_id, user_id, role) VALUES (?, ?, ?)",
			p.ID, adminID, string(auth.ProjectAdmin))
		if isForeignKey(err) {
			return fmt.Errorf("project %s: admin user: %w", p.Name, auth.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("create project %s: %w", p.Name, err)
		}
		return nil
	})
}

// Project implements auth.Store.
func (s *Store) Project(ctx context.Context, name string) (auth.Project, error) {
	p, err := scanProject(s.db.R.QueryRowContext(ctx, "SELECT "+projectColumns+" FROM projects WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("project %s: %w", name, auth.ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("project %s: %w", name, err)
	}
	return p, nil
}

// Projects implements auth.Store.
func (s *Store) Projects(ctx context.Context) ([]auth.Project, error) {
	rows, err := s.db.R.QueryContext(ctx, "SELECT "+projectColumns+" FROM projects ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	defer rows.Close()
	var out []auth.Project
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, fmt.Errorf("list projects: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// UpdateProject implements auth.Store.
func (s *Store) UpdateProject(ctx context.Context, p auth.Project) error {
	res, err := s.db.W.ExecContext(ctx, "UPDATE projects SET public = ?, auto_scan = ? WHERE id = ?",
		boolInt(p.Public), boolInt(p.AutoScan), p.ID)
	return exactlyOne(res, err, "update project "+p.Name)
}

// DeleteProject implements auth.Store.
func (s *Store) DeleteProject(ctx context.Context, id string) ([]string, error) {
	var deleted []string
	err := s.db.InTx(ctx, "delete project", func(tx *sql.Tx) error {
		deleted = nil
		res, err := tx.ExecContext(ctx, "DELETE FROM projects WHERE id = ?", id)
		if err := exactlyOne(res, err, "delete project"); err != nil {
			return err
		}
		// The memberships went with the project (ON DELETE CASCADE); the
		// robots' permissions in it go now.
		robots, err := queryRobots(ctx, tx, "")
		if err != nil {
			return err
		}
		for _, r := range robots {
			kept := slices.DeleteFunc(slices.Clone(r.Permissions), func(p auth.RobotPermission) bool { return p.ProjectID == id })
			switch {
			case len(kept) == len(r.Permissions):
				continue
			case len(kept) == 0:
				if err := deleteAccount(ctx, tx, "robots", r.Name); err != nil {
					return err
				}
				deleted = append(deleted, r.Name)
			default:
				perms, err := robotPermissions(r.Name, kept)
				if err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, "UPDATE robots SET permissions = ? WHERE id = ?", perms, r.ID); err != nil {
					return fmt.Errorf("delete project: robot %s: %w", r.Name, err)
				}
			}
		}
		return nil
	})
	return deleted, err
}

// deleteAccount deletes the user or robot (table) called name and what
// refers to its id.
func deleteAccount(ctx context.Context, tx *sql.Tx, table, name string) error {
	what := "delete " + strings.TrimSuffix(table, "s") + " " + name
	var id string
	err := tx.QueryRowContext(ctx, "SELECT id FROM "+table+" WHERE name = ?", name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, auth.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	// Sessions go with their user (ON DELETE CASCADE).
	for _, q := range []string{"DELETE FROM refresh_tokens WHERE account_id = ?", "DELETE FROM login_lockouts WHERE account_id = ?"} {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	res, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE id = ?", id)
	return exactlyOne(res, err, what)
}

// PutMember implements auth.Store.
func (s *Store) PutMember(ctx context.Context, m auth.Member) error {
	_, err := s.db.W.ExecContext(ctx, `INSERT INTO memberships (project_id, user_id, role) VALUES (?, ?, ?)
		ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role`, m.ProjectID, m.UserID, string(m.Role))
	if isForeignKey(err) {
		return fmt.Errorf("member %s of %s: project or user: %w", m.User, m.Project, auth.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("member %s of %s: %w", m.User, m.Project, err)
	}
	return nil
}

// Members implements auth.Store.
func (s *Store) Members(ctx context.Context, projectID string) ([]auth.Member, error) {
	q := `SELECT p.name, u.name, m.role, m.project_id, m.user_id FROM memberships AS m
		JOIN projects AS p ON p.id = m.project_id JOIN users AS u ON u.id = m.user_id`
	var args []any
	if projectID != "" {
		q, args = q+" WHERE m.project_id = ?", []any{projectID}
	}
	rows, err := s.db.R.QueryContext(ctx, q+" ORDER BY p.name, u.name", args...)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	defer rows.Close()
	var out []auth.Member
	for rows.Next() {
		var m auth.Member
		var role string
		if err := rows.Scan(&m.Project, &m.User, &role, &m.ProjectID, &m.UserID); err != nil {
			return nil, fmt.Errorf("list members: %w", err)
		}
		m.Role = auth.Role(role)
		out = append(out, m)
	}
	return out, rows.Err()
}

// RemoveMember implements auth.Store.
func (s *Store) RemoveMember(ctx context.Context, projectID, userID string) error {
	res, err := s.db.W.ExecContext(ctx, "DELETE FROM memberships WHERE project_id = ? AND user_id = ?", projectID, userID)
	return exactlyOne(res, err, "remove member")
}

const robotColumns = "id, name, description, permissions, expires_at, revoked, allowed_cidrs, secret_hash, created_by, created_at"

// storedPermission is a robot permission as stored: with the id of its
// project, which the API does not show.
type storedPermission struct {
	Project   string        `json:"project"`
	ProjectID string        `json:"project_id,omitempty"`
	Actions   []auth.Action `json:"actions"`
}

func scanRobot(row scanner) (auth.Robot, error) {
	var r auth.Robot
	var perms, cidrs string
	var expires, created int64
	var revoked int
	if err := row.Scan(&r.ID, &r.Name, &r.Description, &perms, &expires, &revoked, &cidrs, &r.SecretHash, &r.CreatedBy, &created); err != nil {
		return r, err
	}
	r.ExpiresAt, r.Revoked, r.CreatedAt = fromNanos(expires), revoked != 0, fromNanos(created)
	var stored []storedPermission
	if err := json.Unmarshal([]byte(perms), &stored); err != nil {
		return r, fmt.Errorf("robot %s permissions: %w", r.Name, err)
	}
	for _, p := range stored {
		r.Permissions = append(r.Permissions, auth.RobotPermission{Project: p.Project, ProjectID: p.ProjectID, Actions: p.Actions})
	}
	var err error
	r.AllowedCIDRs, err = parseCIDRText(cidrs)
	return r, err
}

func robotPermissions(name string, perms []auth.RobotPermission) (string, error) {
	stored := make([]storedPermission, len(perms))
	for i, p := range perms {
		stored[i] = storedPermission{Project: p.Project, ProjectID: p.ProjectID, Actions: p.Actions}
	}
	b, err := json.Marshal(stored)
	if err != nil {
		return "", fmt.Errorf("robot %s permissions: %w", name, err)
	}
	return string(b), nil
}

// CreateRobot implements auth.Store.
func (s *Store) CreateRobot(ctx context.Context, r auth.Robot) error {
	if r.ID == "" {
		return fmt.Errorf("create robot %s: %w: no id", r.Name, auth.ErrInvalid)
	}
	perms, err := robotPermissions(r.Name, r.Permissions)
	if err != nil {
		return err
	}
	return s.db.InTx(ctx, "create robot "+r.Name, func(tx *sql.Tx) error {
		if err := projectsExist(ctx, tx, r); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO robots ("+robotColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			r.ID, r.Name, r.Description, perms, nanos(r.ExpiresAt), boolInt(r.Revoked), cidrText(r.AllowedCIDRs), r.SecretHash, r.CreatedBy, nanos(r.CreatedAt))
		if isUnique(err) {
			return fmt.Errorf("robot %s: %w", r.Name, auth.ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create robot %s: %w", r.Name, err)
		}
		return nil
	})
}

// projectsExist checks, inside the write transaction (which excludes
// every other writer, another process's included), that the projects r's
// permissions name still exist: permissions are not foreign keys, and a
// robot written after its project's DeleteProject would outlive it.
func projectsExist(ctx context.Context, tx *sql.Tx, r auth.Robot) error {
	for _, p := range r.Permissions {
		if p.ProjectID == "" {
			continue
		}
		var one int
		err := tx.QueryRowContext(ctx, "SELECT 1 FROM projects WHERE id = ?", p.ProjectID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("robot %s: project %s: %w", r.Name, p.Project, auth.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("robot %s: project %s: %w", r.Name, p.Project, err)
		}
	}
	return nil
}

// Robot implements auth.Store.
func (s *Store) Robot(ctx context.Context, name string) (auth.Robot, error) {
	r, err := scanRobot(s.db.R.QueryRowContext(ctx, "SELECT "+robotColumns+" FROM robots WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("robot %s: %w", name, auth.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("robot %s: %w", name, err)
	}
	return r, nil
}

// Robots implements auth.Store.
func (s *Store) Robots(ctx context.Context) ([]auth.Robot, error) {
	return queryRobots(ctx, s.db.R, "")
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryRobots(ctx context.Context, db querier, where string, args ...any) ([]auth.Robot, error) {
	rows, err := db.QueryContext(ctx, "SELECT "+robotColumns+" FROM robots "+where+" ORDER BY name", args...)
	if err != nil {
		return nil, fmt.Errorf("list robots: %w", err)
	}
	defer rows.Close()
	var out []auth.Robot
	for rows.Next() {
		r, err := scanRobot(rows)
		if err != nil {
			return nil, fmt.Errorf("list robots: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// UpdateRobot implements auth.Store.
func (s *Store) UpdateRobot(ctx context.Context, r auth.Robot) error {
	perms, err := robotPermissions(r.Name, r.Permissions)
	if err != nil {
		return err
	}
	// A robot read before its project was deleted must not put the
	// permission back.
	return s.db.InTx(ctx, "update robot "+r.Name, func(tx *sql.Tx) error {
		if err := projectsExist(ctx, tx, r); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE robots SET description = ?, permissions = ?, expires_at = ?, revoked = ?,
			allowed_cidrs = ?, secret_hash = ? WHERE id = ?`,
			r.Description, perms, nanos(r.ExpiresAt), boolInt(r.Revoked), cidrText(r.AllowedCIDRs), r.SecretHash, r.ID)
		return exactlyOne(res, err, "update robot "+r.Name)
	})
}

// DeleteRobot implements auth.Store.
func (s *Store) DeleteRobot(ctx context.Context, name string) error {
	return s.db.InTx(ctx, "delete robot "+name, func(tx *sql.Tx) error {
		return deleteAccount(ctx, tx, "robots", name)
	})
}

// PutRefreshToken implements auth.Store.
func (s *Store) PutRefreshToken(ctx context.Context, t auth.RefreshToken) error {
	_, err := s.db.W.ExecContext(ctx, "INSERT INTO refresh_tokens (hash, subject, account_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
		t.Hash, t.Subject, t.AccountID, nanos(t.CreatedAt), nanos(t.ExpiresAt))
	if isUnique(err) {
		return fmt.Errorf("refresh token: %w", auth.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store refresh token: %w", err)
	}
	return nil
}

// RefreshToken implements auth.Store.
func (s *Store) RefreshToken(ctx context.Context, hash string) (auth.RefreshToken, error) {
	t := auth.RefreshToken{Hash: hash}
	var created, expires int64
	err := s.db.R.QueryRowContext(ctx, "SELECT subject, account_id, created_at, expires_at FROM refresh_tokens WHERE hash = ?", hash).
		Scan(&t.Subject, &t.AccountID, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("refresh token: %w", auth.ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("refresh token: %w", err)
	}
	t.CreatedAt, t.ExpiresAt = fromNanos(created), fromNanos(expires)
	return t, nil
}

// DeleteRefreshTokens implements auth.Store.
func (s *Store) DeleteRefreshTokens(ctx context.Context, accountID string) error {
	if _, err := s.db.W.ExecContext(ctx, "DELETE FROM refresh_tokens WHERE account_id = ?", accountID); err != nil {
		return fmt.Errorf("delete refresh tokens: %w", err)
	}
	return nil
}

// DeleteExpiredRefreshTokens implements auth.Store.
func (s *Store) DeleteExpiredRefreshTokens(ctx context.Context, now time.Time) error {
	if _, err := s.db.W.ExecContext(ctx, "DELETE FROM refresh_tokens WHERE expires_at < ?", now.UnixNano()); err != nil {
		return fmt.Errorf("delete expired refresh tokens: %w", err)
	}
	return nil
}

// Lockouts implements auth.Store.
func (s *Store) Lockouts(ctx context.Context) ([]auth.Lockout, error) {
	rows, err := s.db.R.QueryContext(ctx, "SELECT account_id, level, locked_until FROM login_lockouts ORDER BY account_id")
	if err != nil {
		return nil, fmt.Errorf("list lockouts: %w", err)
	}
	defer rows.Close()
	var out []auth.Lockout
	for rows.Next() {
		var l auth.Lockout
		var until int64
		if err := rows.Scan(&l.AccountID, &l.Level, &until); err != nil {
			return nil, fmt.Errorf("list lockouts: %w", err)
		}
		l.Until = fromNanos(until)
		out = append(out, l)
	}
	return out, rows.Err()
}

// PutLockout implements auth.Store.
func (s *Store) PutLockout(ctx context.Context, l auth.Lockout) error {
	_, err := s.db.W.ExecContext(ctx, `INSERT INTO login_lockouts (account_id, level, locked_until) VALUES (?, ?, ?)
		ON CONFLICT (account_id) DO UPDATE SET level = excluded.level, locked_until = excluded.locked_until`,
		l.AccountID, l.Level, nanos(l.Until))
	if err != nil {
		return fmt.Errorf("store lockout: %w", err)
	}
	return nil
}

// DeleteLockout implements auth.Store.
func (s *Store) DeleteLockout(ctx context.Context, accountID string) error {
	res, err := s.db.W.ExecContext(ctx, "DELETE FROM login_lockouts WHERE account_id = ?", accountID)
	return exactlyOne(res, err, "delete lockout")
}

const sessionColumns = "hash, account_id, account_name, password_hash, csrf, created_at, last_seen"

func scanSession(row scanner) (auth.Session, error) {
	var v auth.Session
	var created, seen int64
	err := row.Scan(&v.Hash, &v.AccountID, &v.AccountName, &v.PasswordHash, &v.CSRF, &created, &seen)
	v.CreatedAt, v.LastSeen = fromNanos(created), fromNanos(seen)
	return v, err
}

// CreateSession implements auth.Store.
func (s *Store) CreateSession(ctx context.Context, v auth.Session, lim auth.SessionLimits) error {
	const what = "create web session"
	return s.db.InTx(ctx, what, func(tx *sql.Tx) error {
		// Each query keeps the newest sessions and deletes the rest,
		// leaving one place for v.
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{"DELETE FROM web_sessions WHERE last_seen < ? OR created_at < ?", []any{nanos(lim.IdleSince), nanos(lim.CreatedSince)}},
			{`DELETE FROM web_sessions WHERE account_id = ? AND hash NOT IN
				(SELECT hash FROM web_sessions WHERE account_id = ? ORDER BY created_at DESC, hash DESC LIMIT ?)`,
				[]any{v.AccountID, v.AccountID, max(lim.PerAccount-1, 0)}},
			{`DELETE FROM web_sessions WHERE hash NOT IN
				(SELECT hash FROM web_sessions ORDER BY created_at DESC, hash DESC LIMIT ?)`, []any{max(lim.Total-1, 0)}},
		} {
			if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
				return fmt.Errorf("%s: make room: %w", what, err)
			}
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO web_sessions ("+sessionColumns+") VALUES (?, ?, ?, ?, ?, ?, ?)",
			v.Hash, v.AccountID, v.AccountName, v.PasswordHash, v.CSRF, nanos(v.CreatedAt), nanos(v.LastSeen))
		switch {
		case isUnique(err):
			return fmt.Errorf("%s: %w", what, auth.ErrExists)
		case isForeignKey(err):
			return fmt.Errorf("%s: user %s: %w", what, v.AccountName, auth.ErrNotFound)
		case err != nil:
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

// Session implements auth.Store.
func (s *Store) Session(ctx context.Context, hash string) (auth.Session, error) {
	v, err := scanSession(s.db.R.QueryRowContext(ctx, "SELECT "+sessionColumns+" FROM web_sessions WHERE hash = ?", hash))
	if errors.Is(err, sql.ErrNoRows) {
		return v, fmt.Errorf("web session: %w", auth.ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("web session: %w", err)
	}
	return v, nil
}

// TouchSession implements auth.Store.
func (s *Store) TouchSession(ctx context.Context, hash string, lastSeen time.Time) error {
	res, err := s.db.W.ExecContext(ctx, "UPDATE web_sessions SET last_seen = ? WHERE hash = ?", nanos(lastSeen), hash)
	return exactlyOne(res, err, "touch web session")
}

// DeleteSession implements auth.Store.
func (s *Store) DeleteSession(ctx context.Context, hash string) (auth.Session, error) {
	v, err := scanSession(s.db.W.QueryRowContext(ctx, "DELETE FROM web_sessions WHERE hash = ? RETURNING "+sessionColumns, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return v, fmt.Errorf("delete web session: %w", auth.ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("delete web session: %w", err)
	}
	return v, nil
}
