// Package postgres is the auth.Store of a scale-out deployment: users,
// projects, memberships, robots, refresh tokens, lockouts and web UI
// sessions in the shared PostgreSQL database, so every replica sees one
// set of accounts and sessions. The
// model is the SQLite store's (booleans as integers, times as Unix
// nanoseconds, lists as text), created here in one migration from the
// schema SQLite reached through its four.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/pgdb"
)

const component = "auth"

var migrations = []string{`
CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	name          TEXT COLLATE "C" NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	admin         INTEGER NOT NULL,
	disabled      INTEGER NOT NULL,
	allowed_cidrs TEXT NOT NULL,
	created_at    BIGINT NOT NULL
);

CREATE TABLE projects (
	id         TEXT PRIMARY KEY,
	name       TEXT COLLATE "C" NOT NULL UNIQUE,
	public     INTEGER NOT NULL,
	created_at BIGINT NOT NULL,
	created_by TEXT NOT NULL,
	auto_scan  INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE memberships (
	project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
	user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	role       TEXT NOT NULL,
	PRIMARY KEY (project_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships(user_id);

CREATE TABLE robots (
	id            TEXT PRIMARY KEY,
	name          TEXT COLLATE "C" NOT NULL UNIQUE,
	description   TEXT NOT NULL,
	permissions   TEXT NOT NULL,
	expires_at    BIGINT NOT NULL,
	revoked       INTEGER NOT NULL,
	allowed_cidrs TEXT NOT NULL,
	secret_hash   TEXT NOT NULL,
	created_by    TEXT NOT NULL,
	created_at    BIGINT NOT NULL
);

CREATE TABLE refresh_tokens (
	hash       TEXT PRIMARY KEY,
	subject    TEXT NOT NULL,
	account_id TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_by_account ON refresh_tokens(account_id);

CREATE TABLE login_lockouts (
	account_id   TEXT PRIMARY KEY,
	level        INTEGER NOT NULL,
	locked_until BIGINT NOT NULL
);
`, `
-- Every change to what authorization reads is announced on
-- ChangesChannel when it commits, whoever makes it (a replica, an offline
-- berth admin command).
CREATE FUNCTION berth_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('` + ChangesChannel + `', TG_TABLE_NAME);
	RETURN NULL;
END $$;
CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
	FOR EACH STATEMENT EXECUTE FUNCTION berth_auth_changed();
CREATE TRIGGER projects_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON projects
	FOR EACH STATEMENT EXECUTE FUNCTION berth_auth_changed();
CREATE TRIGGER memberships_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON memberships
	FOR EACH STATEMENT EXECUTE FUNCTION berth_auth_changed();
CREATE TRIGGER robots_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON robots
	FOR EACH STATEMENT EXECUTE FUNCTION berth_auth_changed();
`, `
-- Web UI sessions, shared by every replica so that a login on one is
-- known to all and a logout on one ends it on all. hash is the SHA-256 of
-- the cookie's session id, which is never stored. No trigger: nothing
-- caches sessions, each request reads its own.
CREATE TABLE web_sessions (
	hash          TEXT PRIMARY KEY,
	account_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	account_name  TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	csrf          TEXT NOT NULL,
	created_at    BIGINT NOT NULL,
	last_seen     BIGINT NOT NULL
);
CREATE INDEX web_sessions_by_account ON web_sessions(account_id, created_at);
CREATE INDEX web_sessions_by_created ON web_sessions(created_at);
`}

// ChangesChannel is where a change to users, projects, memberships or
// robots is announced (by triggers, when it commits), so that every
// replica reloads the snapshot its authorization reads
// (auth.Service.Reload): a robot revoked on one replica is refused by all.
const ChangesChannel = "berth_auth"

// Store is an auth.Store in PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
}

var _ auth.Store = (*Store)(nil)

// Open connects to the database at url, migrates the auth tables and
// returns a Store that closes its pool on Close.
func Open(ctx context.Context, url string) (*Store, error) {
	pool, err := pgdb.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("auth database: %w", err)
	}
	s, err := New(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownPool = true
	return s, nil
}

// New migrates the auth tables behind pool and returns a Store over it;
// Close leaves the pool open.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if err := pgdb.Migrate(ctx, pool, component, migrations); err != nil {
		return nil, fmt.Errorf("auth database: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close implements io.Closer.
func (s *Store) Close() error {
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

func (s *Store) inTx(ctx context.Context, what string, fn func(pgx.Tx) error) error {
	err := pgdb.InTx(ctx, s.pool, fn)
	if err != nil && !errors.Is(err, auth.ErrNotFound) && !errors.Is(err, auth.ErrExists) && !errors.Is(err, auth.ErrInvalid) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return err
}

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

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// isUnique tells a primary-key or unique violation.
func isUnique(err error) bool { return sqlState(err) == "23505" }

func isForeignKey(err error) bool { return sqlState(err) == "23503" }

// exactlyOne turns an update or delete that touched no row into
// ErrNotFound.
func exactlyOne(tag pgconn.CommandTag, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if tag.RowsAffected() == 0 {
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
	_, err := s.pool.Exec(ctx, "INSERT INTO users ("+userColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
	u, err := scanUser(s.pool.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE name = $1", name))
	if errors.Is(err, pgx.ErrNoRows) {
		return u, fmt.Errorf("user %s: %w", name, auth.ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("user %s: %w", name, err)
	}
	return u, nil
}

// Users implements auth.Store.
func (s *Store) Users(ctx context.Context) ([]auth.User, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+userColumns+" FROM users ORDER BY name")
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
	return s.inTx(ctx, what, func(tx pgx.Tx) error {
		var oldHash string
		switch err := tx.QueryRow(ctx, "SELECT password_hash FROM users WHERE id = $1 FOR UPDATE", u.ID).Scan(&oldHash); {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("%s: %w", what, auth.ErrNotFound)
		case err != nil:
			return fmt.Errorf("%s: %w", what, err)
		}
		res, err := tx.Exec(ctx, "UPDATE users SET password_hash = $1, admin = $2, disabled = $3, allowed_cidrs = $4 WHERE id = $5",
			u.PasswordHash, boolInt(u.Admin), boolInt(u.Disabled), cidrText(u.AllowedCIDRs), u.ID)
		if err := exactlyOne(res, err, what); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM web_sessions WHERE account_id = $1 AND ($2 OR password_hash <> $3)",
			u.ID, u.Disabled, u.PasswordHash); err != nil {
			return fmt.Errorf("end sessions: %w", err)
		}
		if u.Disabled || oldHash != u.PasswordHash {
			if _, err := tx.Exec(ctx, "DELETE FROM refresh_tokens WHERE account_id = $1", u.ID); err != nil {
				return fmt.Errorf("end refresh tokens: %w", err)
			}
		}
		return nil
	})
}

// DeleteUser implements auth.Store.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return s.inTx(ctx, "delete user "+name, func(tx pgx.Tx) error {
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
	return s.inTx(ctx, "create project "+p.Name, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO projects ("+projectColumns+") VALUES ($1, $2, $3, $4, $5, $6)",
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
		_, err = tx.Exec(ctx, "INSERT INTO memberships (project_id, user_id, role) VALUES ($1, $2, $3)",
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
	p, err := scanProject(s.pool.QueryRow(ctx, "SELECT "+projectColumns+" FROM projects WHERE name = $1", name))
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("project %s: %w", name, auth.ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("project %s: %w", name, err)
	}
	return p, nil
}

// Projects implements auth.Store.
func (s *Store) Projects(ctx context.Context) ([]auth.Project, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+projectColumns+" FROM projects ORDER BY name")
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
	res, err := s.pool.Exec(ctx, "UPDATE projects SET public = $1, auto_scan = $2 WHERE id = $3",
		boolInt(p.Public), boolInt(p.AutoScan), p.ID)
	return exactlyOne(res, err, "update project "+p.Name)
}

// DeleteProject implements auth.Store.
func (s *Store) DeleteProject(ctx context.Context, id string) ([]string, error) {
	var deleted []string
	err := s.inTx(ctx, "delete project", func(tx pgx.Tx) error {
		deleted = nil
		res, err := tx.Exec(ctx, "DELETE FROM projects WHERE id = $1", id)
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
				if _, err := tx.Exec(ctx, "UPDATE robots SET permissions = $1 WHERE id = $2", perms, r.ID); err != nil {
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
func deleteAccount(ctx context.Context, tx pgx.Tx, table, name string) error {
	what := "delete " + strings.TrimSuffix(table, "s") + " " + name
	var id string
	err := tx.QueryRow(ctx, "SELECT id FROM "+table+" WHERE name = $1", name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, auth.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	// Sessions go with their user (ON DELETE CASCADE).
	for _, q := range []string{"DELETE FROM refresh_tokens WHERE account_id = $1", "DELETE FROM login_lockouts WHERE account_id = $1"} {
		if _, err := tx.Exec(ctx, q, id); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	res, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE id = $1", id)
	return exactlyOne(res, err, what)
}

// PutMember implements auth.Store.
func (s *Store) PutMember(ctx context.Context, m auth.Member) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO memberships (project_id, user_id, role) VALUES ($1, $2, $3)
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
		q, args = q+" WHERE m.project_id = $1", []any{projectID}
	}
	rows, err := s.pool.Query(ctx, q+" ORDER BY p.name, u.name", args...)
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
	res, err := s.pool.Exec(ctx, "DELETE FROM memberships WHERE project_id = $1 AND user_id = $2", projectID, userID)
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
	return s.inTx(ctx, "create robot "+r.Name, func(tx pgx.Tx) error {
		if err := lockProjects(ctx, tx, r); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO robots ("+robotColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
			r.ID, r.Name, r.Description, perms, nanos(r.ExpiresAt), boolInt(r.Revoked), cidrText(r.AllowedCIDRs), r.SecretHash, r.CreatedBy, nanos(r.CreatedAt))
		if isUnique(err) {
			return fmt.Errorf("robot %s: %w", r.Name, auth.ErrExists)
		}
		return err
	})
}

// lockProjects checks that the projects r's permissions name exist and
// keeps them from being deleted until the transaction ends. Permissions
// are not foreign keys, so without it a DeleteProject committing between
// the caller's check and the robot's write would miss the robot, which
// would outlive the project with its permission (DeleteProject's DELETE
// waits for the share lock; a robot written first is then seen by
// DeleteProject's next statement and its permission removed).
func lockProjects(ctx context.Context, tx pgx.Tx, r auth.Robot) error {
	var ids []string
	for _, p := range r.Permissions {
		if p.ProjectID != "" && !slices.Contains(ids, p.ProjectID) {
			ids = append(ids, p.ProjectID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, "SELECT id FROM projects WHERE id = ANY($1) ORDER BY id FOR SHARE", ids)
	if err != nil {
		return fmt.Errorf("robot %s: lock its projects: %w", r.Name, err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("robot %s: lock its projects: %w", r.Name, err)
	}
	for _, p := range r.Permissions {
		if p.ProjectID != "" && !slices.Contains(found, p.ProjectID) {
			return fmt.Errorf("robot %s: project %s: %w", r.Name, p.Project, auth.ErrNotFound)
		}
	}
	return nil
}

// Robot implements auth.Store.
func (s *Store) Robot(ctx context.Context, name string) (auth.Robot, error) {
	r, err := scanRobot(s.pool.QueryRow(ctx, "SELECT "+robotColumns+" FROM robots WHERE name = $1", name))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("robot %s: %w", name, auth.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("robot %s: %w", name, err)
	}
	return r, nil
}

// Robots implements auth.Store.
func (s *Store) Robots(ctx context.Context) ([]auth.Robot, error) {
	return queryRobots(ctx, s.pool, "")
}

func queryRobots(ctx context.Context, db pgdb.Querier, where string, args ...any) ([]auth.Robot, error) {
	rows, err := db.Query(ctx, "SELECT "+robotColumns+" FROM robots "+where+" ORDER BY name", args...)
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
	return s.inTx(ctx, "update robot "+r.Name, func(tx pgx.Tx) error {
		if err := lockProjects(ctx, tx, r); err != nil {
			return err
		}
		res, err := tx.Exec(ctx, `UPDATE robots SET description = $1, permissions = $2, expires_at = $3, revoked = $4,
			allowed_cidrs = $5, secret_hash = $6 WHERE id = $7`,
			r.Description, perms, nanos(r.ExpiresAt), boolInt(r.Revoked), cidrText(r.AllowedCIDRs), r.SecretHash, r.ID)
		return exactlyOne(res, err, "update robot "+r.Name)
	})
}

// DeleteRobot implements auth.Store.
func (s *Store) DeleteRobot(ctx context.Context, name string) error {
	return s.inTx(ctx, "delete robot "+name, func(tx pgx.Tx) error {
		return deleteAccount(ctx, tx, "robots", name)
	})
}

// PutRefreshToken implements auth.Store.
func (s *Store) PutRefreshToken(ctx context.Context, t auth.RefreshToken) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO refresh_tokens (hash, subject, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
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
	err := s.pool.QueryRow(ctx, "SELECT subject, account_id, created_at, expires_at FROM refresh_tokens WHERE hash = $1", hash).
		Scan(&t.Subject, &t.AccountID, &created, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
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
	if _, err := s.pool.Exec(ctx, "DELETE FROM refresh_tokens WHERE account_id = $1", accountID); err != nil {
		return fmt.Errorf("delete refresh tokens: %w", err)
	}
	return nil
}

// DeleteExpiredRefreshTokens implements auth.Store.
func (s *Store) DeleteExpiredRefreshTokens(ctx context.Context, now time.Time) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM refresh_tokens WHERE expires_at < $1", now.UnixNano()); err != nil {
		return fmt.Errorf("delete expired refresh tokens: %w", err)
	}
	return nil
}

// Lockouts implements auth.Store.
func (s *Store) Lockouts(ctx context.Context) ([]auth.Lockout, error) {
	rows, err := s.pool.Query(ctx, "SELECT account_id, level, locked_until FROM login_lockouts ORDER BY account_id")
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
	_, err := s.pool.Exec(ctx, `INSERT INTO login_lockouts (account_id, level, locked_until) VALUES ($1, $2, $3)
		ON CONFLICT (account_id) DO UPDATE SET level = excluded.level, locked_until = excluded.locked_until`,
		l.AccountID, l.Level, nanos(l.Until))
	if err != nil {
		return fmt.Errorf("store lockout: %w", err)
	}
	return nil
}

// DeleteLockout implements auth.Store.
func (s *Store) DeleteLockout(ctx context.Context, accountID string) error {
	res, err := s.pool.Exec(ctx, "DELETE FROM login_lockouts WHERE account_id = $1", accountID)
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

// sessionLock is the transaction advisory lock (class, key) that session
// creations take, so that replicas logging users in at the same moment
// cannot each make room for one session and together exceed the limits.
// Only creations wait for it: reads, touches and logouts do not.
const sessionLockClass, sessionLockKey int32 = 0x61757468, 1 // "auth"

// CreateSession implements auth.Store.
func (s *Store) CreateSession(ctx context.Context, v auth.Session, lim auth.SessionLimits) error {
	const what = "create web session"
	return s.inTx(ctx, what, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", sessionLockClass, sessionLockKey); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		// Each query keeps the newest sessions and deletes the rest,
		// leaving one place for v.
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{"DELETE FROM web_sessions WHERE last_seen < $1 OR created_at < $2", []any{nanos(lim.IdleSince), nanos(lim.CreatedSince)}},
			{`DELETE FROM web_sessions WHERE account_id = $1 AND hash NOT IN
				(SELECT hash FROM web_sessions WHERE account_id = $1 ORDER BY created_at DESC, hash DESC LIMIT $2)`,
				[]any{v.AccountID, max(lim.PerAccount-1, 0)}},
			{`DELETE FROM web_sessions WHERE hash NOT IN
				(SELECT hash FROM web_sessions ORDER BY created_at DESC, hash DESC LIMIT $1)`, []any{max(lim.Total-1, 0)}},
		} {
			if _, err := tx.Exec(ctx, q.sql, q.args...); err != nil {
				return fmt.Errorf("make room: %w", err)
			}
		}
		_, err := tx.Exec(ctx, "INSERT INTO web_sessions ("+sessionColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7)",
			v.Hash, v.AccountID, v.AccountName, v.PasswordHash, v.CSRF, nanos(v.CreatedAt), nanos(v.LastSeen))
		switch {
		case isUnique(err):
			return fmt.Errorf("%s: %w", what, auth.ErrExists)
		case isForeignKey(err):
			return fmt.Errorf("%s: user %s: %w", what, v.AccountName, auth.ErrNotFound)
		}
		return err
	})
}

// Session implements auth.Store.
func (s *Store) Session(ctx context.Context, hash string) (auth.Session, error) {
	v, err := scanSession(s.pool.QueryRow(ctx, "SELECT "+sessionColumns+" FROM web_sessions WHERE hash = $1", hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return v, fmt.Errorf("web session: %w", auth.ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("web session: %w", err)
	}
	return v, nil
}

// TouchSession implements auth.Store.
func (s *Store) TouchSession(ctx context.Context, hash string, lastSeen time.Time) error {
	res, err := s.pool.Exec(ctx, "UPDATE web_sessions SET last_seen = $1 WHERE hash = $2", nanos(lastSeen), hash)
	return exactlyOne(res, err, "touch web session")
}

// DeleteSession implements auth.Store.
func (s *Store) DeleteSession(ctx context.Context, hash string) (auth.Session, error) {
	v, err := scanSession(s.pool.QueryRow(ctx, "DELETE FROM web_sessions WHERE hash = $1 RETURNING "+sessionColumns, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return v, fmt.Errorf("delete web session: %w", auth.ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("delete web session: %w", err)
	}
	return v, nil
}
