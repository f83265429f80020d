package auth

import (
	"context"
	"time"
)

// Store keeps accounts, projects, memberships and refresh tokens.
// Implementations: internal/auth/sqlite (and a PostgreSQL one later);
// internal/auth/authtest is the suite both run. Lookups of missing rows
// return ErrNotFound, creations of existing ones ErrExists (both wrapped).
type Store interface {
	CreateUser(ctx context.Context, u User) error
	User(ctx context.Context, name string) (User, error)
	Users(ctx context.Context) ([]User, error)
	// UpdateUser replaces everything but the name and creation time.
	UpdateUser(ctx context.Context, u User) error
	// DeleteUser removes the user, its memberships and refresh tokens.
	DeleteUser(ctx context.Context, name string) error

	// CreateProject creates p and, when admin is not empty, makes that
	// user its ProjectAdmin, in one transaction.
	CreateProject(ctx context.Context, p Project, admin string) error
	Project(ctx context.Context, name string) (Project, error)
	Projects(ctx context.Context) ([]Project, error)
	UpdateProject(ctx context.Context, p Project) error
	// DeleteProject removes the project and its memberships. Robots keep
	// their permission entries (they name a project that no longer
	// exists, which grants nothing, until a project of that name is
	// created again by an administrator who then sees them).
	DeleteProject(ctx context.Context, name string) error

	// PutMember adds a member or changes its role.
	PutMember(ctx context.Context, m Member) error
	// Members lists a project's members; an empty project lists every
	// membership.
	Members(ctx context.Context, project string) ([]Member, error)
	RemoveMember(ctx context.Context, project, user string) error

	CreateRobot(ctx context.Context, r Robot) error
	Robot(ctx context.Context, name string) (Robot, error)
	Robots(ctx context.Context) ([]Robot, error)
	// UpdateRobot replaces the description, permissions, expiry, revoked
	// flag, CIDRs and secret hash.
	UpdateRobot(ctx context.Context, r Robot) error
	DeleteRobot(ctx context.Context, name string) error

	PutRefreshToken(ctx context.Context, t RefreshToken) error
	RefreshToken(ctx context.Context, hash string) (RefreshToken, error)
	// DeleteRefreshTokens removes every refresh token of subject.
	DeleteRefreshTokens(ctx context.Context, subject string) error
	// DeleteExpiredRefreshTokens removes tokens expired before now.
	DeleteExpiredRefreshTokens(ctx context.Context, now time.Time) error
}
