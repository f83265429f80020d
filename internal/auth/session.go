package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/internal/audit"
)

// Browser sessions: the web UI's login form trades a user's password for
// a random session id in a cookie. The server keeps each session (by the
// SHA-256 of its id) in memory with the account's id and password hash at
// login, so logging out, a password change, disabling or deleting the
// account ends it at once, server-side; a restart ends every session.
// Robots have no sessions: they are for machines.

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
)

// ErrBadCredentials is what a failed login answers, whatever failed.
var ErrBadCredentials = errBadCredentials

type session struct {
	name, id     string // the account
	passwordHash string // at login: a changed password ends the session
	csrf         string
	created      time.Time
	lastSeen     time.Time
}

type sessions struct {
	mu sync.Mutex
	m  map[[32]byte]*session
}

func sessionKey(token string) [32]byte { return sha256.Sum256([]byte(token)) }

func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sessionStore returns the Service's sessions, made on first use.
func (s *Service) sessionStore() *sessions {
	s.sessOnce.Do(func() { s.sess = &sessions{m: map[[32]byte]*session{}} })
	return s.sess
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
	st := s.sessionStore()
	st.mu.Lock()
	st.evict(now, u.ID)
	st.m[sessionKey(token)] = &session{name: p.Name, id: p.ID, passwordHash: u.PasswordHash, csrf: randomToken(), created: now, lastSeen: now}
	st.mu.Unlock()
	scheme, _ := originOf(r, s.cfg.TrustedProxies)
	return &http.Cookie{Name: SessionCookie, Value: token, Path: "/", HttpOnly: true, Secure: scheme == "https",
		SameSite: http.SameSiteStrictMode}, nil
}

// evict drops expired sessions and keeps room for one more, overall and
// for the account. Callers hold st.mu.
func (st *sessions) evict(now time.Time, accountID string) {
	var oldest, oldestOwn [32]byte
	var oldestAt, oldestOwnAt time.Time
	own := 0
	for k, v := range st.m {
		if v.expired(now) {
			delete(st.m, k)
			continue
		}
		if oldestAt.IsZero() || v.created.Before(oldestAt) {
			oldest, oldestAt = k, v.created
		}
		if v.id == accountID {
			own++
			if oldestOwnAt.IsZero() || v.created.Before(oldestOwnAt) {
				oldestOwn, oldestOwnAt = k, v.created
			}
		}
	}
	if own >= maxSessionsPerAccount {
		delete(st.m, oldestOwn)
	}
	if len(st.m) >= maxSessions {
		delete(st.m, oldest)
	}
}

func (v *session) expired(now time.Time) bool {
	return now.Sub(v.lastSeen) > SessionIdle || now.Sub(v.created) > SessionMax
}

// EndSession forgets the request's session (logging out), so its cookie
// opens nothing any more, and returns a cookie that clears it.
func (s *Service) EndSession(r *http.Request) *http.Cookie {
	if c, err := r.Cookie(SessionCookie); err == nil {
		st := s.sessionStore()
		st.mu.Lock()
		v := st.m[sessionKey(c.Value)]
		delete(st.m, sessionKey(c.Value))
		st.mu.Unlock()
		if v != nil {
			s.record(audit.Entry{Actor: v.name, SourceIP: clientAddr(r, s.cfg.TrustedProxies).String(), Action: "logout", Detail: "web session ended"})
		}
	}
	scheme, _ := originOf(r, s.cfg.TrustedProxies)
	return &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: scheme == "https",
		SameSite: http.SameSiteStrictMode}
}

// sessionOf returns the live session of the request's cookie, touching
// it, or nil.
func (s *Service) sessionOf(r *http.Request) *session {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	now := s.now()
	st := s.sessionStore()
	st.mu.Lock()
	defer st.mu.Unlock()
	k := sessionKey(c.Value)
	v := st.m[k]
	if v == nil {
		return nil
	}
	u := s.snap.Load().user(v.name, v.id)
	if v.expired(now) || u == nil || u.Disabled || u.PasswordHash != v.passwordHash ||
		!allowedFrom(u.AllowedCIDRs, clientAddr(r, s.cfg.TrustedProxies)) {
		delete(st.m, k)
		return nil
	}
	v.lastSeen = now
	return v
}

// SessionPrincipal returns who the request's session cookie belongs to,
// or nil when it carries no live session.
func (s *Service) SessionPrincipal(r *http.Request) *Principal {
	v := s.sessionOf(r)
	if v == nil {
		return nil
	}
	u := s.snap.Load().user(v.name, v.id)
	return &Principal{Name: v.name, ID: v.id, Admin: u != nil && u.Admin, Session: true}
}

// CSRFToken returns the CSRF token of the request's session ("" without
// one): pages put it in every form that changes something.
func (s *Service) CSRFToken(r *http.Request) string {
	if v := s.sessionOf(r); v != nil {
		return v.csrf
	}
	return ""
}

// ValidCSRF reports whether token is the CSRF token of the request's
// session.
func (s *Service) ValidCSRF(r *http.Request, token string) bool {
	v := s.sessionOf(r)
	return v != nil && token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(v.csrf)) == 1
}
