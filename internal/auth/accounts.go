package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"
)

// CreateUser adds a user.
func (s *Service) CreateUser(ctx context.Context, name, password string, admin bool, cidrs []netip.Prefix) (User, error) {
	if err := ValidateUserName(name); err != nil {
		return User{}, err
	}
	hash, err := s.hashPassword(password)
	if err != nil {
		return User{}, err
	}
	u := User{ID: newID(), Name: name, Admin: admin, AllowedCIDRs: cidrs, CreatedAt: s.now(), PasswordHash: hash}
	return u, s.change(ctx, func() error { return s.store.CreateUser(ctx, u) })
}

// UserChange is a partial update of a user; nil fields stay as they are.
type UserChange struct {
	Password     *string
	Admin        *bool
	Disabled     *bool
	AllowedCIDRs *[]netip.Prefix
}

// UpdateUser changes a user. A new password, or disabling the user, also
// ends its refresh tokens (access tokens stop working at once too: every
// request checks the account).
func (s *Service) UpdateUser(ctx context.Context, name string, ch UserChange) (User, error) {
	var hash string
	if ch.Password != nil {
		var err error
		if hash, err = s.hashPassword(*ch.Password); err != nil {
			return User{}, err
		}
	}
	var out User
	err := s.change(ctx, func() error {
		u, err := s.store.User(ctx, name)
		if err != nil {
			return err
		}
		wasAdmin := u.Admin && !u.Disabled
		if ch.Password != nil {
			u.PasswordHash = hash
		}
		if ch.Admin != nil {
			u.Admin = *ch.Admin
		}
		if ch.Disabled != nil {
			u.Disabled = *ch.Disabled
		}
		if ch.AllowedCIDRs != nil {
			u.AllowedCIDRs = *ch.AllowedCIDRs
		}
		if wasAdmin && !(u.Admin && !u.Disabled) && s.lastAdmin(name) {
			return fmt.Errorf("%w: %s is the only enabled administrator", ErrInvalid, name)
		}
		// The store ends the refresh tokens in the same transaction: a
		// password change must not leave them working if it half fails.
		if err := s.store.UpdateUser(ctx, u); err != nil {
			return err
		}
		out = u
		return nil
	})
	if err == nil && ch.Password != nil && name == InitialAdmin {
		removeInitialPassword(s.cfg.InitialPasswordFile, s.log)
	}
	return out, err
}

// lastAdmin reports whether name is the only enabled administrator.
func (s *Service) lastAdmin(name string) bool {
	for _, u := range s.snap.Load().users {
		if u.Name != name && u.Admin && !u.Disabled {
			return false
		}
	}
	return true
}

// DeleteUser removes a user, its memberships, refresh tokens and lockout.
func (s *Service) DeleteUser(ctx context.Context, name string) error {
	err := s.change(ctx, func() error {
		if u := s.snap.Load().users[name]; u != nil && u.Admin && !u.Disabled && s.lastAdmin(name) {
			return fmt.Errorf("%w: %s is the only enabled administrator", ErrInvalid, name)
		}
		return s.store.DeleteUser(ctx, name)
	})
	if err == nil && name == InitialAdmin {
		removeInitialPassword(s.cfg.InitialPasswordFile, s.log)
	}
	return err
}

// Users lists the users.
func (s *Service) Users() []User {
	snap := s.snap.Load()
	out := make([]User, 0, len(snap.users))
	for _, u := range snap.users {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// User returns one user.
func (s *Service) User(name string) (User, error) {
	if u := s.snap.Load().users[name]; u != nil {
		return *u, nil
	}
	return User{}, fmt.Errorf("user %s: %w", name, ErrNotFound)
}

// CreateProject creates a project; creator, when a user, becomes its
// project admin.
func (s *Service) CreateProject(ctx context.Context, name string, public bool, creator string) (Project, error) {
	if err := ValidateProjectName(name); err != nil {
		return Project{}, err
	}
	p := Project{ID: newID(), Name: name, Public: public, CreatedAt: s.now(), CreatedBy: creator, AutoScan: true}
	return p, s.change(ctx, func() error {
		adminID := ""
		if creator != "" && !strings.HasPrefix(creator, RobotPrefix) {
			u := s.snap.Load().users[creator]
			if u == nil {
				return fmt.Errorf("project %s: creator %s: %w", name, creator, ErrNotFound)
			}
			adminID = u.ID
		}
		return s.store.CreateProject(ctx, p, adminID)
	})
}

// ProjectChange is what UpdateProject changes; nil fields stay.
type ProjectChange struct {
	Public   *bool
	AutoScan *bool
}

// UpdateProject changes a project's visibility or whether its pushes are
// scanned.
func (s *Service) UpdateProject(ctx context.Context, name string, ch ProjectChange) (Project, error) {
	var out Project
	err := s.change(ctx, func() error {
		p, err := s.store.Project(ctx, name)
		if err != nil {
			return err
		}
		if ch.Public != nil {
			p.Public = *ch.Public
		}
		if ch.AutoScan != nil {
			p.AutoScan = *ch.AutoScan
		}
		out = p
		return s.store.UpdateProject(ctx, p)
	})
	return out, err
}

// ErrNotEmpty refuses to delete a project that still holds repositories.
var ErrNotEmpty = errors.New("project still holds repositories")

// DeleteProject removes a project, its memberships and every robot
// permission in it; robots left with no permission are deleted, and their
// names returned. It refuses while the project holds repositories: a
// project later created under the same name by someone else must not
// inherit them (nor, being another project, anything else of this one).
func (s *Service) DeleteProject(ctx context.Context, name string) (deletedRobots []string, err error) {
	if s.cfg.HasRepositories != nil {
		has, err := s.cfg.HasRepositories(ctx, name)
		if err != nil {
			return nil, err
		}
		if has {
			return nil, fmt.Errorf("project %s: %w; delete them first", name, ErrNotEmpty)
		}
	}
	err = s.change(ctx, func() error {
		p := s.snap.Load().projects[name]
		if p == nil {
			return fmt.Errorf("project %s: %w", name, ErrNotFound)
		}
		deletedRobots, err = s.store.DeleteProject(ctx, p.ID)
		return err
	})
	return deletedRobots, err
}

// Projects lists the projects.
func (s *Service) Projects() []Project {
	snap := s.snap.Load()
	out := make([]Project, 0, len(snap.projects))
	for _, p := range snap.projects {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Project returns one project.
func (s *Service) Project(name string) (Project, error) {
	if p := s.snap.Load().projects[name]; p != nil {
		return *p, nil
	}
	return Project{}, fmt.Errorf("project %s: %w", name, ErrNotFound)
}

// PutMember adds a member to a project or changes its role.
func (s *Service) PutMember(ctx context.Context, project, user string, role Role) (Member, error) {
	if !role.Valid() {
		return Member{}, fmt.Errorf("%w: role %q: want one of %s", ErrInvalid, role, roleList())
	}
	if strings.HasPrefix(user, RobotPrefix) {
		return Member{}, fmt.Errorf("%w: robots are not members; give them permissions instead", ErrInvalid)
	}
	m := Member{Project: project, User: user, Role: role}
	return m, s.change(ctx, func() error {
		var err error
		if m.ProjectID, m.UserID, err = s.memberIDs(project, user); err != nil {
			return err
		}
		return s.store.PutMember(ctx, m)
	})
}

// memberIDs resolves a membership's names to the ids it binds. Callers
// hold s.mu, so the snapshot is the store's state.
func (s *Service) memberIDs(project, user string) (projectID, userID string, err error) {
	snap := s.snap.Load()
	p, u := snap.projects[project], snap.users[user]
	switch {
	case p == nil:
		return "", "", fmt.Errorf("project %s: %w", project, ErrNotFound)
	case u == nil:
		return "", "", fmt.Errorf("user %s: %w", user, ErrNotFound)
	}
	return p.ID, u.ID, nil
}

func roleList() string {
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// RemoveMember removes a member from a project.
func (s *Service) RemoveMember(ctx context.Context, project, user string) error {
	return s.change(ctx, func() error {
		projectID, userID, err := s.memberIDs(project, user)
		if err != nil {
			return fmt.Errorf("member %s of %s: %w", user, project, ErrNotFound)
		}
		return s.store.RemoveMember(ctx, projectID, userID)
	})
}

// Members lists a project's members.
func (s *Service) Members(project string) []Member {
	snap := s.snap.Load()
	p := snap.projects[project]
	if p == nil {
		return nil
	}
	var out []Member
	for _, m := range snap.members[p.ID] {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out
}

// RobotSpec describes a robot to create.
type RobotSpec struct {
	// Name without RobotPrefix.
	Name         string
	Description  string
	Permissions  []RobotPermission
	ExpiresAt    time.Time
	AllowedCIDRs []netip.Prefix
}

// maxDescription bounds free text stored per robot.
const maxDescription = 1024

// CreateRobot creates a robot and returns it with its secret, which is
// stored only as a hash and cannot be shown again.
func (s *Service) CreateRobot(ctx context.Context, spec RobotSpec, creator string) (Robot, string, error) {
	if err := ValidateUserName(spec.Name); err != nil {
		return Robot{}, "", err
	}
	if len(spec.Description) > maxDescription {
		return Robot{}, "", fmt.Errorf("%w: description longer than %d bytes", ErrInvalid, maxDescription)
	}
	if len(spec.Permissions) == 0 {
		return Robot{}, "", fmt.Errorf("%w: a robot needs at least one permission", ErrInvalid)
	}
	perms := make([]RobotPermission, 0, len(spec.Permissions))
	for _, p := range spec.Permissions {
		if p.Project != AllProjects {
			if err := ValidateProjectName(p.Project); err != nil {
				return Robot{}, "", err
			}
		}
		if len(p.Actions) == 0 {
			return Robot{}, "", fmt.Errorf("%w: permission on %s grants no action", ErrInvalid, p.Project)
		}
		for _, a := range p.Actions {
			if !slices.Contains(RobotActions, a) {
				return Robot{}, "", fmt.Errorf("%w: action %q: robots may hold pull, push, delete, list, catalog", ErrInvalid, a)
			}
		}
		perms = append(perms, RobotPermission{Project: p.Project, Actions: sortedActions(p.Actions)})
	}
	now := s.now()
	if !spec.ExpiresAt.IsZero() && !spec.ExpiresAt.After(now) {
		return Robot{}, "", fmt.Errorf("%w: expiry %s is in the past", ErrInvalid, spec.ExpiresAt.Format(time.RFC3339))
	}
	secret, hash := newSecret("bsr_")
	r := Robot{ID: newID(), Name: RobotPrefix + spec.Name, Description: spec.Description, Permissions: perms, ExpiresAt: spec.ExpiresAt,
		AllowedCIDRs: spec.AllowedCIDRs, CreatedBy: creator, CreatedAt: now, SecretHash: hash}
	err := s.change(ctx, func() error {
		// Each permission binds the project that exists now; one for a
		// project that does not exist yet would bind nothing (or, bound
		// by name, whoever creates it later), so it is refused.
		snap := s.snap.Load()
		for i, p := range r.Permissions {
			if p.Project == AllProjects {
				continue
			}
			proj := snap.projects[p.Project]
			if proj == nil {
				return fmt.Errorf("%w: project %s does not exist", ErrInvalid, p.Project)
			}
			r.Permissions[i].ProjectID = proj.ID
		}
		return s.store.CreateRobot(ctx, r)
	})
	if err != nil {
		return Robot{}, "", err
	}
	return r, secret, nil
}

// RevokeRobot disables a robot for good; its tokens stop working at once.
func (s *Service) RevokeRobot(ctx context.Context, name string) (Robot, error) {
	var out Robot
	err := s.change(ctx, func() error {
		r, err := s.store.Robot(ctx, name)
		if err != nil {
			return err
		}
		r.Revoked = true
		out = r
		if err := s.store.UpdateRobot(ctx, r); err != nil {
			return err
		}
		return s.store.DeleteRefreshTokens(ctx, r.ID)
	})
	return out, err
}

// DeleteRobot removes a robot.
func (s *Service) DeleteRobot(ctx context.Context, name string) error {
	return s.change(ctx, func() error { return s.store.DeleteRobot(ctx, name) })
}

// Robots lists the robots.
func (s *Service) Robots() []Robot {
	snap := s.snap.Load()
	out := make([]Robot, 0, len(snap.robots))
	for _, r := range snap.robots {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Robot returns one robot.
func (s *Service) Robot(name string) (Robot, error) {
	if r := s.snap.Load().robots[name]; r != nil {
		return *r, nil
	}
	return Robot{}, fmt.Errorf("robot %s: %w", name, ErrNotFound)
}
