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

const userColumns = "name, password_hash, admin, disabled, allowed_cidrs, created_at"

type scanner interface{ Scan(...any) error }

func scanUser(row scanner) (auth.User, error) {
	var u auth.User
	var admin, disabled int
	var cidrs string
	var created int64
	if err := row.Scan(&u.Name, &u.PasswordHash, &admin, &disabled, &cidrs, &created); err != nil {
		return u, err
	}
	u.Admin, u.Disabled, u.CreatedAt = admin != 0, disabled != 0, fromNanos(created)
	var err error
	u.AllowedCIDRs, err = parseCIDRText(cidrs)
	return u, err
}

// CreateUser implements auth.Store.
func (s *Store) CreateUser(ctx context.Context, u auth.User) error {
	_, err := s.db.W.ExecContext(ctx, "INSERT INTO users ("+userColumns+") VALUES (?, ?, ?, ?, ?, ?)",
		u.Name, u.PasswordHash, boolInt(u.Admin), boolInt(u.Disabled), cidrText(u.AllowedCIDRs), nanos(u.CreatedAt))
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
	res, err := s.db.W.ExecContext(ctx, "UPDATE users SET password_hash = ?, admin = ?, disabled = ?, allowed_cidrs = ? WHERE name = ?",
		u.PasswordHash, boolInt(u.Admin), boolInt(u.Disabled), cidrText(u.AllowedCIDRs), u.Name)
	return exactlyOne(res, err, "update user "+u.Name)
}

// DeleteUser implements auth.Store.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return s.db.InTx(ctx, "delete user "+name, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM refresh_tokens WHERE subject = ?", name); err != nil {
			return fmt.Errorf("delete user %s: %w", name, err)
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM users WHERE name = ?", name)
		return exactlyOne(res, err, "delete user "+name)
	})
}

const projectColumns = "name, public, created_at, created_by"

func scanProject(row scanner) (auth.Project, error) {
	var p auth.Project
	var public int
	var created int64
	err := row.Scan(&p.Name, &public, &created, &p.CreatedBy)
	p.Public, p.CreatedAt = public != 0, fromNanos(created)
	return p, err
}

// CreateProject implements auth.Store.
func (s *Store) CreateProject(ctx context.Context, p auth.Project, admin string) error {
	return s.db.InTx(ctx, "create project "+p.Name, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO projects ("+projectColumns+") VALUES (?, ?, ?, ?)",
			p.Name, boolInt(p.Public), nanos(p.CreatedAt), p.CreatedBy)
		if isUnique(err) {
			return fmt.Errorf("project %s: %w", p.Name, auth.ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create project %s: %w", p.Name, err)
		}
		if admin == "" {
			return nil
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO project_members (project, user_name, role) VALUES (?, ?, ?)",
			p.Name, admin, string(auth.ProjectAdmin))
		if isForeignKey(err) {
			return fmt.Errorf("project %s: admin user %s: %w", p.Name, admin, auth.ErrNotFound)
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
	res, err := s.db.W.ExecContext(ctx, "UPDATE projects SET public = ? WHERE name = ?", boolInt(p.Public), p.Name)
	return exactlyOne(res, err, "update project "+p.Name)
}

// DeleteProject implements auth.Store.
func (s *Store) DeleteProject(ctx context.Context, name string) error {
	res, err := s.db.W.ExecContext(ctx, "DELETE FROM projects WHERE name = ?", name)
	return exactlyOne(res, err, "delete project "+name)
}

// PutMember implements auth.Store.
func (s *Store) PutMember(ctx context.Context, m auth.Member) error {
	_, err := s.db.W.ExecContext(ctx, `INSERT INTO project_members (project, user_name, role) VALUES (?, ?, ?)
		ON CONFLICT (project, user_name) DO UPDATE SET role = excluded.role`, m.Project, m.User, string(m.Role))
	if isForeignKey(err) {
		return fmt.Errorf("member %s of %s: project or user: %w", m.User, m.Project, auth.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("member %s of %s: %w", m.User, m.Project, err)
	}
	return nil
}

// Members implements auth.Store.
func (s *Store) Members(ctx context.Context, project string) ([]auth.Member, error) {
	q, args := "SELECT project, user_name, role FROM project_members ORDER BY project, user_name", []any(nil)
	if project != "" {
		q, args = "SELECT project, user_name, role FROM project_members WHERE project = ? ORDER BY user_name", []any{project}
	}
	rows, err := s.db.R.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	defer rows.Close()
	var out []auth.Member
	for rows.Next() {
		var m auth.Member
		var role string
		if err := rows.Scan(&m.Project, &m.User, &role); err != nil {
			return nil, fmt.Errorf("list members: %w", err)
		}
		m.Role = auth.Role(role)
		out = append(out, m)
	}
	return out, rows.Err()
}

// RemoveMember implements auth.Store.
func (s *Store) RemoveMember(ctx context.Context, project, user string) error {
	res, err := s.db.W.ExecContext(ctx, "DELETE FROM project_members WHERE project = ? AND user_name = ?", project, user)
	return exactlyOne(res, err, "remove member "+user+" of "+project)
}

const robotColumns = "name, description, permissions, expires_at, revoked, allowed_cidrs, secret_hash, created_by, created_at"

func scanRobot(row scanner) (auth.Robot, error) {
	var r auth.Robot
	var perms, cidrs string
	var expires, created int64
	var revoked int
	if err := row.Scan(&r.Name, &r.Description, &perms, &expires, &revoked, &cidrs, &r.SecretHash, &r.CreatedBy, &created); err != nil {
		return r, err
	}
	r.ExpiresAt, r.Revoked, r.CreatedAt = fromNanos(expires), revoked != 0, fromNanos(created)
	if err := json.Unmarshal([]byte(perms), &r.Permissions); err != nil {
		return r, fmt.Errorf("robot %s permissions: %w", r.Name, err)
	}
	var err error
	r.AllowedCIDRs, err = parseCIDRText(cidrs)
	return r, err
}

func robotPermissions(r auth.Robot) (string, error) {
	perms := r.Permissions
	if perms == nil {
		perms = []auth.RobotPermission{}
	}
	b, err := json.Marshal(perms)
	if err != nil {
		return "", fmt.Errorf("robot %s permissions: %w", r.Name, err)
	}
	return string(b), nil
}

// CreateRobot implements auth.Store.
func (s *Store) CreateRobot(ctx context.Context, r auth.Robot) error {
	perms, err := robotPermissions(r)
	if err != nil {
		return err
	}
	_, err = s.db.W.ExecContext(ctx, "INSERT INTO robots ("+robotColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
		r.Name, r.Description, perms, nanos(r.ExpiresAt), boolInt(r.Revoked), cidrText(r.AllowedCIDRs), r.SecretHash, r.CreatedBy, nanos(r.CreatedAt))
	if isUnique(err) {
		return fmt.Errorf("robot %s: %w", r.Name, auth.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create robot %s: %w", r.Name, err)
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
	rows, err := s.db.R.QueryContext(ctx, "SELECT "+robotColumns+" FROM robots ORDER BY name")
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
	perms, err := robotPermissions(r)
	if err != nil {
		return err
	}
	res, err := s.db.W.ExecContext(ctx, `UPDATE robots SET description = ?, permissions = ?, expires_at = ?, revoked = ?,
		allowed_cidrs = ?, secret_hash = ? WHERE name = ?`,
		r.Description, perms, nanos(r.ExpiresAt), boolInt(r.Revoked), cidrText(r.AllowedCIDRs), r.SecretHash, r.Name)
	return exactlyOne(res, err, "update robot "+r.Name)
}

// DeleteRobot implements auth.Store.
func (s *Store) DeleteRobot(ctx context.Context, name string) error {
	return s.db.InTx(ctx, "delete robot "+name, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM refresh_tokens WHERE subject = ?", name); err != nil {
			return fmt.Errorf("delete robot %s: %w", name, err)
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM robots WHERE name = ?", name)
		return exactlyOne(res, err, "delete robot "+name)
	})
}

// PutRefreshToken implements auth.Store.
func (s *Store) PutRefreshToken(ctx context.Context, t auth.RefreshToken) error {
	_, err := s.db.W.ExecContext(ctx, "INSERT INTO refresh_tokens (hash, subject, created_at, expires_at) VALUES (?, ?, ?, ?)",
		t.Hash, t.Subject, nanos(t.CreatedAt), nanos(t.ExpiresAt))
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
	err := s.db.R.QueryRowContext(ctx, "SELECT subject, created_at, expires_at FROM refresh_tokens WHERE hash = ?", hash).
		Scan(&t.Subject, &created, &expires)
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
func (s *Store) DeleteRefreshTokens(ctx context.Context, subject string) error {
	if _, err := s.db.W.ExecContext(ctx, "DELETE FROM refresh_tokens WHERE subject = ?", subject); err != nil {
		return fmt.Errorf("delete refresh tokens of %s: %w", subject, err)
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
