package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"berth.dev/berth/internal/audit"
)

// Browser sessions: the web UI's login form trades a user's password for
// a random session id in a cookie. The store keeps each session (by the
// SHA-256 of its id, never the id itself) with the account's id and
// password hash at login and the session's CSRF token, so every replica
// sharing the store knows it and a restart keeps it. Logging out, a
// password change, disabling or deleting the account end it at once,
// server-side, on every replica: each request reads the session from the
// store. Robots have no sessions: they are for machines.

// SessionCookie is the name of the session cookie.
const SessionCookie = "berth_session"

// CSRFHeader carries a session's CSRF token on API requests that change
// something (forms carry it as the field "csrf").
const CSRFHeader = "X-CSRF-Token"

const (
	// SessionIdle ends a session unused for this long; SessionMax ends
	// any session this long after its login.
	SessionIdle = 2 * time.Hour
	SessionMax  = 12 * time.Hour
	// maxSessions bounds the sessions kept (the oldest go first), and
	// maxSessionsPerAccount one account's.
	maxSessions           = 10000
	maxSessionsPerAccount = 32
	// sessionTouchEvery is how stale a session's last-seen time may get
	// before a request writes it again. Writing it on every request would
	// make each page view and API call of a browser a database write (on
	// PostgreSQL, one shared by every replica); a minute late costs only
	// that an idle session may end up to a minute before SessionIdle.
	sessionTouchEvery = time.Minute
)

// ErrBadCredentials is what a failed login answers, whatever failed.
var ErrBadCredentials = errBadCredentials

// ErrSessionUnavailable is StartSession's answer when the password was
// right but the session could not be stored: try again later.
var ErrSessionUnavailable = errors.New("the session could not be stored; try again later")

// ErrSessionsUnreadable is the answer to a request whose session cookie
// cannot be checked because the session store cannot be read: the
// session may be good, so the caller is not sent to log in again.
var ErrSessionsUnreadable = errors.New("web sessions cannot be read right now; try again later")

// Session is a web UI login as the Store keeps it.
type Session struct {
	// Hash is the hex SHA-256 of the cookie's session id.
	Hash        string
	AccountID   string
	AccountName string
	// PasswordHash is the account's at login: a changed password ends
	// the session.
	PasswordHash string
	CSRF         string
	CreatedAt    time.Time
	LastSeen     time.Time
}

// SessionLimits is what Store.CreateSession keeps: sessions last seen
// before IdleSince or created before CreatedSince have expired; of the
// rest the oldest (by creation) go, so that with the new session its
// account has at most PerAccount and all accounts together at most Total.
type SessionLimits struct {
	IdleSince, CreatedSince time.Time
	PerAccount, Total       int
}

func sessionHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// StartSession checks a user's name and password as any login (throttled
// and audited) and starts a session, returning the cookie to set. Robots
// cannot start one.
func (s *Service) StartSession(ctx context.Context, r *http.Request, name, password string) (*http.Cookie, error) {
	addr := clientAddr(r, s.cfg.TrustedProxies)
	if strings.HasPrefix(name, RobotPrefix) {
		s.record(audit.Entry{Actor: name, SourceIP: addr.String(), Action: audit.ActionLogin, Result: audit.Denied,
			Detail: "robot accounts cannot log in to the web UI"})
		return nil, errBadCredentials
	}
	p, err := s.login(ctx, name, password, addr, "web login")
	if err != nil {
		var th *throttled
		if errors.As(err, &th) {
			return nil, s.loginError(err)
		}
		return nil, err
	}
	u := s.snap.Load().user(p.Name, p.ID)
	if u == nil {
		return nil, errBadCredentials
	}
	token, now := randomToken(), s.now()
	v := Session{Hash: sessionHash(token), AccountID: u.ID, AccountName: p.Name, PasswordHash: u.PasswordHash,
		CSRF: randomToken(), CreatedAt: now, LastSeen: now}
	lim := SessionLimits{IdleSince: now.Add(-SessionIdle), CreatedSince: now.Add(-SessionMax),
		PerAccount: maxSessionsPerAccount, Total: maxSessions}
	if err := s.store.CreateSession(ctx, v, lim); err != nil {
		s.log.Error("store a web session", "user", p.Name, "error", err)
		return nil, ErrSessionUnavailable
	}
	scheme, _ := originOf(r, s.cfg.TrustedProxies)
	return &http.Cookie{Name: SessionCookie, Value: token, Path: "/", HttpOnly: true, Secure: scheme == "https",
		SameSite: http.SameSiteStrictMode}, nil
}

func (v *Session) expired(now time.Time) bool {
	return now.Sub(v.LastSeen) > SessionIdle || now.Sub(v.CreatedAt) > SessionMax
}

// EndSession forgets the request's session (logging out), so its cookie
// opens nothing any more on any replica, and returns a cookie that clears
// it.
func (s *Service) EndSession(r *http.Request) *http.Cookie {
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		v, err := s.store.DeleteSession(r.Context(), sessionHash(c.Value))
		switch {
		case err == nil:
			s.record(audit.Entry{Actor: v.AccountName, SourceIP: clientAddr(r, s.cfg.TrustedProxies).String(), Action: "logout", Detail: "web session ended"})
		case !errors.Is(err, ErrNotFound):
			// The cookie is cleared all the same; the session ends at
			// its expiry at the latest.
			s.log.Error("end a web session", "error", err)
		}
	}
	scheme, _ := originOf(r, s.cfg.TrustedProxies)
	return &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: scheme == "https",
		SameSite: http.SameSiteStrictMode}
}

// sessionOf returns the live session of the request's cookie, touching
// it, or nil.
func (s *Service) sessionOf(r *http.Request) *Session {
	v, _ := s.liveSession(r)
	return v
}

// liveSession is sessionOf that tells a store that cannot be read
// (ErrSessionsUnreadable) from a
// cookie that opens nothing (nil, nil).
func (s *Service) liveSession(r *http.Request) (*Session, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	ctx := r.Context()
	hash := sessionHash(c.Value)
	v, err := s.store.Session(ctx, hash)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		s.log.Error("read a web session", "error", err)
		return nil, ErrSessionsUnreadable
	}
	now := s.now()
	u := s.snap.Load().user(v.AccountName, v.AccountID)
	switch {
	case v.expired(now):
		s.dropSession(ctx, hash)
		return nil, nil
	case u == nil || u.Disabled || u.PasswordHash != v.PasswordHash:
		// Deleting, disabling the account or changing its password
		// deleted its sessions in the store already; a session that gets
		// here is one this replica's snapshot has not caught up with
		// (an account or password made on another replica moments ago),
		// so it is refused for now but kept.
		return nil, nil
	case !allowedFrom(u.AllowedCIDRs, clientAddr(r, s.cfg.TrustedProxies)):
		s.dropSession(ctx, hash)
		return nil, nil
	}
	if now.Sub(v.LastSeen) >= sessionTouchEvery {
		if err := s.store.TouchSession(ctx, hash, now); err != nil && !errors.Is(err, ErrNotFound) {
			// The session stays good for this request; the next one
			// tries again.
			s.log.Warn("touch a web session", "error", err)
		}
		v.LastSeen = now
	}
	return &v, nil
}

// dropSession deletes a session found dead.
func (s *Service) dropSession(ctx context.Context, hash string) {
	if _, err := s.store.DeleteSession(ctx, hash); err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Warn("delete a dead web session", "error", err)
	}
}

// SessionPrincipal returns who the request's session cookie belongs to,
// or nil when it carries no live session.
func (s *Service) SessionPrincipal(r *http.Request) *Principal {
	v := s.sessionOf(r)
	if v == nil {
		return nil
	}
	return s.principalOf(v)
}

func (s *Service) principalOf(v *Session) *Principal {
	u := s.snap.Load().user(v.AccountName, v.AccountID)
	return &Principal{Name: v.AccountName, ID: v.AccountID, Admin: u != nil && u.Admin, Session: true}
}

// CSRFToken returns the CSRF token of the request's session ("" without
// one): pages put it in every form that changes something. It is the
// stored session's, the same on every replica.
func (s *Service) CSRFToken(r *http.Request) string {
	if v := s.sessionOf(r); v != nil {
		return v.CSRF
	}
	return ""
}

// ValidCSRF reports whether token is the CSRF token of the request's
// session.
func (s *Service) ValidCSRF(r *http.Request, token string) bool {
	v := s.sessionOf(r)
	return v != nil && token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(v.CSRF)) == 1
}
