package auth

import (
	"context"
	"time"
)

// Store keeps accounts, projects, memberships, refresh tokens, login
// lockouts and web UI sessions.
// Implementations: internal/auth/sqlite (and a PostgreSQL one later);
// internal/auth/authtest is the suite both run. Lookups of missing rows
// return ErrNotFound, creations of existing ones ErrExists (both wrapped).
//
// Names are unique at any moment but may be reused after a deletion;
// references between rows (memberships, robot permissions, refresh
// tokens) use the immutable ids, so nothing outlives what it refers to.
type Store interface {
	// CreateUser adds u, whose ID the caller set.
	CreateUser(ctx context.Context, u User) error
	User(ctx context.Context, name string) (User, error)
	Users(ctx context.Context) ([]User, error)
	// UpdateUser replaces everything but the id, name and creation time
	// of the user with u's id and, in the same transaction, deletes its
	// sessions (all of them when u is disabled, else those started with
	// another password hash than u's) and, when u is disabled or its
	// password hash changes, its refresh tokens.
	UpdateUser(ctx context.Context, u User) error
	// DeleteUser removes the user, its memberships, refresh tokens,
	// lockout and sessions.
	DeleteUser(ctx context.Context, name string) error

	// CreateProject creates p and, when adminID is not empty, makes that
	// user its ProjectAdmin, in one transaction.
	CreateProject(ctx context.Context, p Project, adminID string) error
	Project(ctx context.Context, name string) (Project, error)
	Projects(ctx context.Context) ([]Project, error)
	UpdateProject(ctx context.Context, p Project) error
	// DeleteProject removes the project with id, its memberships and
	// every robot permission in it, in one transaction; robots left with
	// no permission are deleted (with their refresh tokens). It returns
	// the names of the robots it deleted.
	DeleteProject(ctx context.Context, id string) (deletedRobots []string, err error)

	// PutMember adds a member or changes its role; m names the project
	// and user by id.
	PutMember(ctx context.Context, m Member) error
	// Members lists a project's members (by project id), with names; an
	// empty id lists every membership.
	Members(ctx context.Context, projectID string) ([]Member, error)
	RemoveMember(ctx context.Context, projectID, userID string) error

	// CreateRobot adds r, whose ID and permissions' project ids the
	// caller set.
	CreateRobot(ctx context.Context, r Robot) error
	Robot(ctx context.Context, name string) (Robot, error)
	Robots(ctx context.Context) ([]Robot, error)
	// UpdateRobot replaces the description, permissions, expiry, revoked
	// flag, CIDRs and secret hash of the robot with r's id.
	UpdateRobot(ctx context.Context, r Robot) error
	DeleteRobot(ctx context.Context, name string) error

	PutRefreshToken(ctx context.Context, t RefreshToken) error
	RefreshToken(ctx context.Context, hash string) (RefreshToken, error)
	// DeleteRefreshTokens removes every refresh token of an account.
	DeleteRefreshTokens(ctx context.Context, accountID string) error
	// DeleteExpiredRefreshTokens removes tokens expired before now.
	DeleteExpiredRefreshTokens(ctx context.Context, now time.Time) error

	// Lockouts lists the accounts' login lockouts; deleting an account
	// deletes its lockout.
	Lockouts(ctx context.Context) ([]Lockout, error)
	// PutLockout records an account's lockout, replacing the last one.
	PutLockout(ctx context.Context, l Lockout) error
	// DeleteLockout forgets an account's lockout (ErrNotFound if none).
	DeleteLockout(ctx context.Context, accountID string) error

	// CreateSession stores a web UI session for an existing user
	// (ErrNotFound if there is none with its AccountID, ErrExists if its
	// hash is taken), first deleting, in the same transaction, the
	// sessions lim says must go to make room.
	CreateSession(ctx context.Context, v Session, lim SessionLimits) error
	// Session returns the session with the hash (ErrNotFound if none).
	Session(ctx context.Context, hash string) (Session, error)
	// TouchSession sets a session's last-seen time (ErrNotFound if none).
	TouchSession(ctx context.Context, hash string, lastSeen time.Time) error
	// DeleteSession removes the session with the hash and returns it
	// (ErrNotFound if none).
	DeleteSession(ctx context.Context, hash string) (Session, error)
}
