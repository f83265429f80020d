// Package auth decides who may do what in berth: users (passwords hashed
// with bcrypt), robot accounts for CI (secrets shown once, scoped to
// projects and actions, expiring, revocable), projects (public or private)
// with members in Harbor's roles, Docker registry token auth (the /token
// endpoint, short-lived ES256 JWTs) and Basic auth, failed-login throttling,
// source-address restrictions, and the access.Authorizer the registry asks
// on every request.
//
// The permission table (Permits) is the single source of what each role
// may do. Accounts, projects and memberships are held in memory as an
// immutable snapshot, swapped whenever they change, so that a request's
// authorization is a few map lookups; tokens are verified once and cached
// until they expire.
package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Role is a member's role in a project, with Harbor's names.
type Role string

// Roles, from most to least privileged.
const (
	ProjectAdmin Role = "projectAdmin"
	Maintainer   Role = "maintainer"
	Developer    Role = "developer"
	Guest        Role = "guest"
	LimitedGuest Role = "limitedGuest"
)

// Roles lists every role.
var Roles = []Role{ProjectAdmin, Maintainer, Developer, Guest, LimitedGuest}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// Action is something done to or in a project.
type Action string

// Actions. The first five are registry actions; the rest manage a
// project. Robots may hold the registry actions and ApproveStage.
const (
	Pull          Action = "pull"           // read manifests and blobs
	Push          Action = "push"           // write manifests, blobs and tags
	Delete        Action = "delete"         // delete manifests, tags and blobs
	ListTags      Action = "list"           // list a repository's tags
	Catalog       Action = "catalog"        // see the project's repositories in _catalog
	ReadMembers   Action = "members.read"   // see the project and its members
	ManageMembers Action = "members.manage" // add, change and remove members
	ManageProject Action = "project.manage" // change settings (public), delete the project
	ManageRobots  Action = "robots.manage"  // create, revoke and delete the project's robots
	ReadAudit     Action = "audit.read"     // read the project's audit entries
	// ApproveStage approves artifacts for the stages people sign off
	// (staging, prod), and revokes such approvals: the server then signs
	// with the project's key for the stage. A CI robot may hold it.
	ApproveStage Action = "stage.approve"
)

// Actions lists every action.
var Actions = []Action{Pull, Push, Delete, ListTags, Catalog, ReadMembers, ManageMembers, ManageProject, ManageRobots, ReadAudit, ApproveStage}

// RobotActions are the actions a robot may be granted.
var RobotActions = []Action{Pull, Push, Delete, ListTags, Catalog, ApproveStage}

// permissions is the permission table: for each action, the roles that
// may do it. It follows Harbor's project roles: a developer pushes but
// does not delete; a maintainer deletes but does not manage members or
// robots; a guest reads, members and logs included; a limited guest
// pulls and sees neither members nor logs. Two differences, both
// stricter: a limited guest lists nothing (no tag lists, no catalog
// entries; Harbor lets it list), and only a project admin changes the
// project's settings (Harbor lets a maintainer edit metadata, which
// includes making the project public).
var permissions = map[Action][]Role{
	Pull:          {ProjectAdmin, Maintainer, Developer, Guest, LimitedGuest},
	Push:          {ProjectAdmin, Maintainer, Developer},
	Delete:        {ProjectAdmin, Maintainer},
	ListTags:      {ProjectAdmin, Maintainer, Developer, Guest},
	Catalog:       {ProjectAdmin, Maintainer, Developer, Guest},
	ReadMembers:   {ProjectAdmin, Maintainer, Developer, Guest},
	ManageMembers: {ProjectAdmin},
	ManageProject: {ProjectAdmin},
	ManageRobots:  {ProjectAdmin},
	ReadAudit:     {ProjectAdmin, Maintainer, Developer, Guest},
	ApproveStage:  {ProjectAdmin, Maintainer},
}

// publicActions are what anyone, anonymous included, may do in a public
// project.
var publicActions = []Action{Pull, ListTags, Catalog}

// Permits reports whether role may do action: the permission table.
func Permits(role Role, action Action) bool { return slices.Contains(permissions[action], role) }

// PublicPermits reports whether anyone may do action in a public project.
func PublicPermits(action Action) bool { return slices.Contains(publicActions, action) }

// DefaultProject holds repositories whose name has a single component
// ("alpine" is library's), as Docker Hub and Harbor name them.
const DefaultProject = "library"

// ProjectOf returns the project of a repository: its first path
// component, or DefaultProject for a single-component name.
func ProjectOf(repository string) string {
	if i := strings.IndexByte(repository, '/'); i >= 0 {
		return repository[:i]
	}
	return DefaultProject
}

// User is a person's account.
type User struct {
	// ID is the account's identity, made at creation and never reused:
	// memberships, tokens, refresh tokens and lockouts refer to it, so a
	// user later created under the same name inherits none of them.
	ID           string         `json:"-"`
	Name         string         `json:"name"`
	Admin        bool           `json:"admin"`
	Disabled     bool           `json:"disabled"`
	AllowedCIDRs []netip.Prefix `json:"allowed_cidrs,omitempty"`
	CreatedAt    time.Time      `json:"created_at"`
	// PasswordHash is the bcrypt hash; it never leaves the server.
	PasswordHash string `json:"-"`
}

// Project groups repositories under one access policy.
type Project struct {
	// ID is the project's identity, never reused: memberships and robot
	// permissions refer to it, so a project later created under the same
	// name inherits none of them.
	ID        string    `json:"-"`
	Name      string    `json:"name"`
	Public    bool      `json:"public"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	// AutoScan scans every image pushed to the project (when the server
	// scans); on for new projects, as Harbor's auto_scan.
	AutoScan bool `json:"auto_scan"`
}

// Member is a user's role in a project.
type Member struct {
	Project string `json:"project"`
	User    string `json:"user"`
	Role    Role   `json:"role"`
	// The identities the membership binds.
	ProjectID string `json:"-"`
	UserID    string `json:"-"`
}

// RobotPrefix starts every robot account's name, as in Harbor; user names
// cannot contain '$', so the two never collide.
const RobotPrefix = "robot$"

// AllProjects in a RobotPermission grants its actions in every project;
// only a system administrator may create such a robot.
const AllProjects = "*"

// RobotPermission grants a robot some registry actions in one project.
type RobotPermission struct {
	Project string   `json:"project"`
	Actions []Action `json:"actions"`
	// ProjectID is the identity of the project the permission was
	// granted in (empty for AllProjects): it grants nothing in another
	// project that happens to have the same name.
	ProjectID string `json:"-"`
}

// Robot is a machine account for CI.
type Robot struct {
	// ID is the account's identity, never reused (see User.ID).
	ID           string            `json:"-"`
	Name         string            `json:"name"` // with RobotPrefix
	Description  string            `json:"description,omitempty"`
	Permissions  []RobotPermission `json:"permissions"`
	ExpiresAt    time.Time         `json:"expires_at,omitzero"` // zero: never
	Revoked      bool              `json:"revoked"`
	AllowedCIDRs []netip.Prefix    `json:"allowed_cidrs,omitempty"`
	CreatedBy    string            `json:"created_by"`
	CreatedAt    time.Time         `json:"created_at"`
	// SecretHash is the SHA-256 of the secret: secrets are 256 random
	// bits, so a fast hash is as strong as a slow one and keeps robot
	// logins cheap.
	SecretHash string `json:"-"`
}

// Active reports whether the robot may log in at t.
func (r *Robot) Active(t time.Time) bool {
	return !r.Revoked && (r.ExpiresAt.IsZero() || t.Before(r.ExpiresAt))
}

// Grants reports whether the robot's permissions include action in p:
// the project it was granted in, not one of the same name created later.
func (r *Robot) Grants(p *Project, action Action) bool {
	for _, perm := range r.Permissions {
		in := perm.Project == AllProjects || (perm.ProjectID == p.ID && perm.Project == p.Name)
		if in && slices.Contains(perm.Actions, action) {
			return true
		}
	}
	return false
}

// RefreshToken is a long-lived OAuth2 refresh token (Docker's identity
// token), stored as the SHA-256 of its value.
type RefreshToken struct {
	Hash    string
	Subject string
	// AccountID is the subject's account id: the token dies with the
	// account, whatever later takes its name.
	AccountID string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Lockout is an account's login lockout: how many lockouts in a row it
// has had (the backoff's exponent) and until when the current one lasts.
// The store keeps it, so that a restart neither frees an attacker's
// target early nor resets the backoff; `berth admin unlock` clears it.
type Lockout struct {
	AccountID string
	Level     int
	Until     time.Time
}

// newID returns a fresh identity: 128 random bits, never reused.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Errors of the store and the service.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrInvalid  = errors.New("invalid")
)

var (
	userNamePattern    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`) })
	projectNamePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`) })
)

// ValidateUserName checks a user or robot base name: lowercase letters,
// digits, '.', '_' and '-', at most 64 characters.
func ValidateUserName(name string) error {
	if !userNamePattern().MatchString(name) {
		return fmt.Errorf("%w: name %q: want 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", ErrInvalid, name)
	}
	return nil
}

// ValidateProjectName checks a project name: one component of the
// distribution spec's repository name grammar.
func ValidateProjectName(name string) error {
	if len(name) > 128 || !projectNamePattern().MatchString(name) {
		return fmt.Errorf("%w: project name %q: want a repository name component such as team-a", ErrInvalid, name)
	}
	return nil
}

// MinPasswordLength and MaxPasswordLength bound passwords; bcrypt reads
// at most 72 bytes, and a longer password would be silently cut.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 72
)

// ValidatePassword checks a password's length.
func ValidatePassword(p string) error {
	switch {
	case len(p) < MinPasswordLength:
		return fmt.Errorf("%w: password must have at least %d characters", ErrInvalid, MinPasswordLength)
	case len(p) > MaxPasswordLength:
		return fmt.Errorf("%w: password must have at most %d bytes", ErrInvalid, MaxPasswordLength)
	}
	return nil
}

// ParseCIDRs parses a list of CIDR prefixes (a bare address is a /32 or
// /128).
func ParseCIDRs(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%w: %q is not a CIDR prefix or an address", ErrInvalid, s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// allowedFrom reports whether ip is inside one of cidrs; an empty list
// allows every address.
func allowedFrom(cidrs []netip.Prefix, ip netip.Addr) bool {
	if len(cidrs) == 0 {
		return true
	}
	ip = ip.Unmap()
	for _, p := range cidrs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
