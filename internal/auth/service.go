package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/auth/token"
)

// Config tunes a Service.
type Config struct {
	// Service is the token service name (the JWTs' audience).
	Service string
	// Realm is the token endpoint's external URL; empty derives it from
	// each request's scheme and host.
	Realm string
	// TokenTTL is the life of an access token; RefreshTTL of a refresh
	// token.
	TokenTTL   time.Duration
	RefreshTTL time.Duration
	// AutoCreateProjects lets every user (not only system admins) create
	// a project by pushing to it.
	AutoCreateProjects bool
	// TrustedProxies may set X-Forwarded-For, -Proto and -Host.
	TrustedProxies []netip.Prefix
	// Failed logins allowed per account and per source address within
	// FailureWindow before further attempts get 429; a zero window turns
	// throttling off. An account that reaches its limit is locked out
	// for Lockout, twice as long for each lockout in a row, up to 64
	// times Lockout. Past MaxFailuresGlobal failures within the window in
	// all, logins that need a password check get 429 until the rate
	// falls (0: no global limit).
	MaxFailuresPerAccount int
	MaxFailuresPerAddress int
	MaxFailuresGlobal     int
	FailureWindow         time.Duration
	Lockout               time.Duration
	// BcryptCost hashes new passwords; zero means bcrypt.DefaultCost.
	BcryptCost int
	// Clock tells the time; nil is time.Now. Tests move it to expire
	// tokens and robots.
	Clock func() time.Time
	// HasRepositories reports whether a project still holds
	// repositories; DeleteProject refuses while it does. Nil skips the
	// check.
	HasRepositories func(ctx context.Context, project string) (bool, error)
	// InitialPasswordFile is where Bootstrap keeps a password it
	// generated (mode 0600) until InitialAdmin's password is changed or
	// the user deleted, so that a start that fails before the password is
	// shown loses nothing. Empty keeps none.
	InitialPasswordFile string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Service:               "berth",
		TokenTTL:              5 * time.Minute,
		RefreshTTL:            30 * 24 * time.Hour,
		MaxFailuresPerAccount: 10,
		MaxFailuresPerAddress: 50,
		MaxFailuresGlobal:     1000,
		FailureWindow:         5 * time.Minute,
		Lockout:               time.Minute,
	}
}

// Service holds accounts and projects and answers who may do what.
type Service struct {
	store   Store
	cfg     Config
	tokens  *token.Service
	audit   *audit.Log
	log     *slog.Logger
	limiter *loginLimiter
	logins  *loginCache
	now     func() time.Time

	mu   sync.Mutex // serialises changes and snapshot reloads
	snap atomic.Pointer[snapshot]
}

// snapshot is an immutable copy of everything authorization reads.
// Accounts and projects are found by name, which is what requests carry;
// memberships by ids, so that a name reused after a deletion finds none.
type snapshot struct {
	users    map[string]*User
	robots   map[string]*Robot
	projects map[string]*Project
	members  map[string]map[string]Member // project id → user id → membership
}

// New returns a Service over store, signing tokens with key and recording
// to log (nil records nothing).
func New(ctx context.Context, store Store, key *ecdsa.PrivateKey, log *audit.Log, cfg Config, logger *slog.Logger) (*Service, error) {
	if cfg.Service == "" || cfg.TokenTTL <= 0 || cfg.RefreshTTL <= 0 {
		return nil, errors.New("auth: service name and token lifetimes are required")
	}
	if cfg.FailureWindow > 0 && cfg.MaxFailuresPerAccount > 0 && cfg.Lockout <= 0 {
		return nil, errors.New("auth: the login lockout must be positive when failed logins are limited per account")
	}
	tokens, err := token.New(key, "berth", cfg.Service, cfg.TokenTTL)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.DefaultCost
	}
	s := &Service{store: store, cfg: cfg, tokens: tokens, audit: log, log: logger,
		limiter: newLoginLimiter(cfg.FailureWindow, cfg.MaxFailuresPerAccount, cfg.MaxFailuresPerAddress, cfg.MaxFailuresGlobal, cfg.Lockout),
		logins:  newLoginCache(), now: cfg.Clock}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	lockouts, err := store.Lockouts(ctx)
	if err != nil {
		return nil, err
	}
	s.limiter.restore(lockouts)
	return s, nil
}

// reload rebuilds the snapshot from the store. Callers hold s.mu (or are
// New).
func (s *Service) reload(ctx context.Context) error {
	users, err := s.store.Users(ctx)
	if err != nil {
		return err
	}
	robots, err := s.store.Robots(ctx)
	if err != nil {
		return err
	}
	projects, err := s.store.Projects(ctx)
	if err != nil {
		return err
	}
	members, err := s.store.Members(ctx, "")
	if err != nil {
		return err
	}
	snap := &snapshot{users: map[string]*User{}, robots: map[string]*Robot{}, projects: map[string]*Project{},
		members: map[string]map[string]Member{}}
	for i := range users {
		snap.users[users[i].Name] = &users[i]
	}
	for i := range robots {
		snap.robots[robots[i].Name] = &robots[i]
	}
	for i := range projects {
		snap.projects[projects[i].Name] = &projects[i]
	}
	for _, m := range members {
		if snap.members[m.ProjectID] == nil {
			snap.members[m.ProjectID] = map[string]Member{}
		}
		snap.members[m.ProjectID][m.UserID] = m
	}
	s.snap.Store(snap)
	return nil
}

// Reload rebuilds the snapshot from the store, for a store shared with
// other processes that changed it.
func (s *Service) Reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reload(ctx)
}

// change runs fn, which writes to the store, and reloads the snapshot.
func (s *Service) change(ctx context.Context, fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fn(); err != nil {
		return err
	}
	return s.reload(ctx)
}

func (s *Service) record(e audit.Entry) {
	if s.audit == nil {
		return
	}
	if err := s.audit.Record(e); err != nil {
		s.log.Warn("audit entry dropped", "error", err, "action", e.Action, "actor", e.Actor)
	}
}

// Tokens is the token service (for tests and the server's benchmarks).
func (s *Service) Tokens() *token.Service { return s.tokens }

// InitialAdmin is the system administrator Bootstrap creates.
const InitialAdmin = "admin"

// Bootstrap prepares a fresh installation: when there are no users yet it
// creates the system administrator InitialAdmin (with password, or a
// random one it returns to be shown once and keeps in
// InitialPasswordFile) and the public project "library", as Harbor does.
// On later starts it does nothing and reports created false.
func (s *Service) Bootstrap(ctx context.Context, password string) (generated string, created bool, err error) {
	if len(s.snap.Load().users) > 0 {
		return "", false, nil
	}
	if password == "" {
		var b [18]byte
		rand.Read(b[:])
		password = base64.RawURLEncoding.EncodeToString(b[:])
		generated = password
		// Written before the account exists: an account whose only
		// password was never stored anywhere would be lost for good.
		if err := writeInitialPassword(s.cfg.InitialPasswordFile, password); err != nil {
			return "", false, err
		}
	}
	if _, err := s.CreateUser(ctx, InitialAdmin, password, true, nil); err != nil {
		if generated != "" {
			removeInitialPassword(s.cfg.InitialPasswordFile, s.log)
		}
		if errors.Is(err, ErrExists) {
			// Another replica sharing the store created it first: that
			// one's password stands.
			s.mu.Lock()
			defer s.mu.Unlock()
			return "", false, s.reload(ctx)
		}
		return "", false, fmt.Errorf("create the first administrator: %w", err)
	}
	if _, err := s.CreateProject(ctx, DefaultProject, true, InitialAdmin); err != nil && !errors.Is(err, ErrExists) {
		return "", false, fmt.Errorf("create project %s: %w", DefaultProject, err)
	}
	s.record(audit.Entry{Actor: "berth", Action: "user.create", Detail: "first administrator " + InitialAdmin})
	return generated, true, nil
}

// writeInitialPassword writes the generated password to path (none when
// path is empty), readable by its owner only, replacing the file whole.
func writeInitialPassword(path, password string) error {
	if path == "" {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*") // mode 0600
	if err != nil {
		return fmt.Errorf("keep the first administrator's password: %w", err)
	}
	_, err = f.WriteString(password + "\n")
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("keep the first administrator's password in %s: %w", path, err)
	}
	return nil
}

// removeInitialPassword deletes the kept first password: it no longer
// opens anything.
func removeInitialPassword(path string, log *slog.Logger) {
	if path == "" {
		return
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Error("remove the first administrator's old password", "path", path, "error", err)
	}
}

// Principal is an authenticated account.
type Principal struct {
	Name  string `json:"name"`
	Robot bool   `json:"robot"`
	Admin bool   `json:"admin"`
	// ID is the account's id when it authenticated: a principal whose
	// account was deleted stays unknown even if another account takes
	// the name.
	ID string `json:"-"`
	// Session is set when a browser session cookie authenticated the
	// request: changes then need the session's CSRF token.
	Session bool `json:"-"`
}

// Can reports whether p may do action in project, by the current
// permission table, memberships and project visibility; p nil is
// anonymous.
func (s *Service) Can(p *Principal, project string, action Action) bool {
	var name, id string
	robot := false
	if p != nil {
		name, id, robot = p.Name, p.ID, p.Robot
	}
	return s.snap.Load().permits(name, id, robot, project, action, s.now())
}

// IsAdmin reports whether p is an enabled system administrator now.
func (s *Service) IsAdmin(p *Principal) bool {
	if p == nil || p.Robot {
		return false
	}
	u := s.snap.Load().user(p.Name, p.ID)
	return u != nil && u.Admin && !u.Disabled
}

// user returns the user called name if its id is id: the account a
// credential was issued to, not a later one of the same name.
func (snap *snapshot) user(name, id string) *User {
	if u := snap.users[name]; u != nil && u.ID == id && id != "" {
		return u
	}
	return nil
}

// robot is user's counterpart for robots.
func (snap *snapshot) robot(name, id string) *Robot {
	if r := snap.robots[name]; r != nil && r.ID == id && id != "" {
		return r
	}
	return nil
}

// permits is the live permission check for the account name with id.
func (snap *snapshot) permits(name, id string, robot bool, project string, action Action, now time.Time) bool {
	p := snap.projects[project]
	public := p != nil && p.Public && PublicPermits(action)
	switch {
	case name == "":
		return public
	case robot:
		r := snap.robot(name, id)
		if r == nil || !r.Active(now) {
			return false
		}
		return (p != nil && r.Grants(p, action)) || public
	}
	u := snap.user(name, id)
	if u == nil || u.Disabled {
		return false
	}
	if u.Admin {
		return true
	}
	if p != nil {
		if m, ok := snap.members[p.ID][u.ID]; ok && Permits(m.Role, action) {
			return true
		}
	}
	return public
}

// mayCreateProject reports whether the account may create project by
// pushing to it.
func (s *Service) mayCreateProject(snap *snapshot, name, id string, robot bool, project string) bool {
	if robot || name == "" || snap.projects[project] != nil {
		return false
	}
	u := snap.user(name, id)
	return u != nil && !u.Disabled && (u.Admin || s.cfg.AutoCreateProjects) && ValidateProjectName(project) == nil
}

// createOnPush creates project for the account pushing to it.
func (s *Service) createOnPush(ctx context.Context, name, id, project, ip string) error {
	_, err := s.CreateProject(ctx, project, false, name)
	if errors.Is(err, ErrExists) {
		// Another push created it first, perhaps someone else's: the
		// snapshot now has it (the creation reloaded it before this one
		// could fail), and the ordinary rules decide.
		if s.snap.Load().permits(name, id, false, project, Push, s.now()) {
			return nil
		}
		return pushDenied(project)
	}
	if err != nil {
		return err
	}
	s.log.Info("project created by a push", "project", project, "user", name)
	s.record(audit.Entry{Actor: name, SourceIP: ip, Action: "project.create", Project: project, Detail: "created by the first push"})
	return nil
}

// errBadCredentials is the one answer to every failed login, whatever
// failed: unknown account, wrong password, disabled, revoked, expired.
var errBadCredentials = errors.New("invalid username or password")

// dummyHash is compared against when the account does not exist, so that
// a wrong user name costs as long as a wrong password. It is made on first
// use: every berth command links this package, few need it.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("berth-no-such-user"), bcrypt.DefaultCost)
	return h
})

// login checks a name and password (or robot secret) from addr. A
// throttled caller gets *throttled.
func (s *Service) login(ctx context.Context, name, password string, addr netip.Addr, via string) (*Principal, error) {
	now := s.now()
	ip := addr.String()
	snap := s.snap.Load()
	id := snap.accountID(name)
	wait, global := s.limiter.check(id, name, ip, now)
	why := "throttled after repeated failures"
	if wait == 0 && global > 0 && !s.recentLogin(snap, name, password, now) {
		// Logins verified minutes ago guess nothing and cost no bcrypt.
		wait, why = global, "throttled: too many failed logins on this server"
	}
	if wait > 0 {
		s.record(audit.Entry{Actor: name, SourceIP: ip, Action: audit.ActionLogin, Result: audit.Denied,
			Detail: why + " (" + via + ")"})
		return nil, &throttled{wait}
	}
	p, hash, ok := s.checkPassword(snap, name, password, now)
	if !ok {
		detail := "bad credentials (" + via + ")"
		if lo := s.limiter.fail(id, name, ip, now); lo != nil {
			detail += fmt.Sprintf("; locked out for %s (lockout %d in a row)", lo.Until.Sub(now), lo.Level)
			if lo.AccountID != "" {
				// Kept across restarts; a failed write costs only that.
				if err := s.store.PutLockout(context.WithoutCancel(ctx), *lo); err != nil {
					s.log.Error("store a login lockout", "account", name, "error", err)
				}
			}
		}
		s.record(audit.Entry{Actor: name, SourceIP: ip, Action: audit.ActionLogin, Result: audit.Failure, Detail: detail})
		return nil, errBadCredentials
	}
	if !allowedFrom(accountCIDRs(snap, p), addr) {
		s.record(audit.Entry{Actor: name, SourceIP: ip, Action: audit.ActionLogin, Result: audit.Denied,
			Detail: "source address not allowed for this account (" + via + ")"})
		return nil, errAddressNotAllowed
	}
	if s.limiter.succeed(id, name) {
		if err := s.store.DeleteLockout(context.WithoutCancel(ctx), id); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Error("clear a login lockout", "account", name, "error", err)
		}
	}
	if s.logins.put(name, password, p.ID, hash, now) {
		s.record(audit.Entry{Actor: name, SourceIP: ip, Action: audit.ActionLogin, Detail: via})
	}
	return p, nil
}

// accountID returns the id of the user or robot called name, or "".
func (snap *snapshot) accountID(name string) string {
	if strings.HasPrefix(name, RobotPrefix) {
		if r := snap.robots[name]; r != nil {
			return r.ID
		}
		return ""
	}
	if u := snap.users[name]; u != nil {
		return u.ID
	}
	return ""
}

// recentLogin reports whether these credentials were verified within the
// login cache's lifetime, for the account that has the name now.
func (s *Service) recentLogin(snap *snapshot, name, password string, now time.Time) bool {
	if strings.HasPrefix(name, RobotPrefix) {
		r := snap.robots[name]
		return r != nil && s.logins.valid(name, password, r.ID, r.SecretHash, now)
	}
	u := snap.users[name]
	return u != nil && s.logins.valid(name, password, u.ID, u.PasswordHash, now)
}

// checkPassword verifies credentials against the snapshot, through the
// cache of recent successful logins (bcrypt costs tens of milliseconds; a
// client sending Basic auth on every request must not pay it each time).
func (s *Service) checkPassword(snap *snapshot, name, password string, now time.Time) (*Principal, string, bool) {
	if strings.HasPrefix(name, RobotPrefix) {
		r := snap.robots[name]
		sum := sha256.Sum256([]byte(password))
		if r == nil || !r.Active(now) ||
			subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(r.SecretHash)) != 1 {
			return nil, "", false
		}
		return &Principal{Name: name, Robot: true, ID: r.ID}, r.SecretHash, true
	}
	u := snap.users[name]
	if u == nil {
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return nil, "", false
	}
	if !s.logins.valid(name, password, u.ID, u.PasswordHash, now) &&
		bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return nil, "", false
	}
	if u.Disabled {
		return nil, "", false
	}
	return &Principal{Name: name, Admin: u.Admin, ID: u.ID}, u.PasswordHash, true
}

func accountCIDRs(snap *snapshot, p *Principal) []netip.Prefix {
	if p.Robot {
		if r := snap.robot(p.Name, p.ID); r != nil {
			return r.AllowedCIDRs
		}
		return nil
	}
	if u := snap.user(p.Name, p.ID); u != nil {
		return u.AllowedCIDRs
	}
	return nil
}

// active reports whether the account name with id, behind a token, still
// exists and may log in. An account deleted and created again under the
// same name is another account.
func (snap *snapshot) active(name, id string, robot bool, now time.Time) bool {
	if robot {
		r := snap.robot(name, id)
		return r != nil && r.Active(now)
	}
	u := snap.user(name, id)
	return u != nil && !u.Disabled
}

var errAddressNotAllowed = errors.New("access from this address is not allowed for this account")

// throttled carries the wait of a refused login.
type throttled struct{ wait time.Duration }

func (t *throttled) Error() string { return "too many failed logins" }

// loginCache remembers recent successful logins by a hash of name and
// password, tied to the account's id and password hash at the time so
// that a password change, a revoked secret or the account's deletion
// invalidates it at once, even if a new account takes the name.
type loginCache struct {
	mu      sync.Mutex
	entries map[[32]byte]loginEntry
}

type loginEntry struct {
	accountID   string
	accountHash string
	expires     time.Time
}

// loginCacheTTL is how long a verified password is trusted without bcrypt.
const loginCacheTTL = 5 * time.Minute

const loginCacheSize = 4096

func newLoginCache() *loginCache { return &loginCache{entries: map[[32]byte]loginEntry{}} }

func loginKey(name, password string) [32]byte {
	return sha256.Sum256([]byte(name + "\x00" + password))
}

func (c *loginCache) valid(name, password, accountID, accountHash string, now time.Time) bool {
	c.mu.Lock()
	e, ok := c.entries[loginKey(name, password)]
	c.mu.Unlock()
	return ok && e.accountID == accountID && e.accountHash == accountHash && now.Before(e.expires)
}

// put records a successful login and reports whether it was a fresh one
// (not already cached), which is what the audit log records.
func (c *loginCache) put(name, password, accountID, accountHash string, now time.Time) bool {
	k := loginKey(name, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	fresh := !ok || e.accountID != accountID || e.accountHash != accountHash || !now.Before(e.expires)
	if fresh {
		if len(c.entries) >= loginCacheSize {
			for key, v := range c.entries {
				if !now.Before(v.expires) || len(c.entries) >= loginCacheSize/2 {
					delete(c.entries, key)
				}
			}
		}
		c.entries[k] = loginEntry{accountID: accountID, accountHash: accountHash, expires: now.Add(loginCacheTTL)}
	}
	return fresh
}

// hashPassword bcrypts a validated password.
func (s *Service) hashPassword(password string) (string, error) {
	if err := ValidatePassword(password); err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.cfg.BcryptCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// newSecret returns a random secret with a readable prefix (so that secret
// scanners can recognise it) and its SHA-256.
func newSecret(prefix string) (secret, hash string) {
	var b [32]byte
	rand.Read(b[:])
	secret = prefix + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(secret))
	return secret, hex.EncodeToString(sum[:])
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// sortedActions returns actions in the table's order, deduplicated.
func sortedActions(as []Action) []Action {
	var out []Action
	for _, a := range Actions {
		if slices.Contains(as, a) {
			out = append(out, a)
		}
	}
	return out
}
