package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/auth/token"
	"berth.dev/berth/internal/registry/access"
)

// maxTokenForm bounds a POST /token body.
const maxTokenForm = 64 << 10

// TokenHandler serves Docker registry token auth at TokenPath: GET with
// optional Basic credentials (Docker's token spec), and POST with the
// OAuth2 password and refresh_token grants (what containerd and oras
// send).
func (s *Service) TokenHandler() http.Handler { return http.HandlerFunc(s.serveToken) }

type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

func (s *Service) serveToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	switch r.Method {
	case http.MethodGet:
		s.tokenGet(w, r)
	case http.MethodPost:
		s.tokenPost(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		tokenError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "invalid_request", r.Method+" is not supported here")
	}
}

func (s *Service) tokenGet(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	addr := clientAddr(r, s.cfg.TrustedProxies)
	if !s.checkService(w, q.Get("service")) {
		return
	}
	scopes, err := token.ParseScopes(q["scope"])
	if err != nil {
		tokenError(w, http.StatusBadRequest, "DENIED", "invalid_scope", err.Error())
		return
	}
	var p *Principal
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, value, _ := strings.Cut(h, " ")
		name, password, ok := parseBasic(value)
		if !strings.EqualFold(scheme, "Basic") || !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="`+s.cfg.Service+`"`)
			tokenError(w, http.StatusUnauthorized, "UNAUTHORIZED", "invalid_client", "the token endpoint takes Basic credentials")
			return
		}
		if p, err = s.login(r.Context(), name, password, addr, "token"); err != nil {
			s.loginFailed(w, err)
			return
		}
	}
	var refresh string
	if p != nil && q.Get("offline_token") == "true" {
		if refresh, err = s.newRefreshToken(r.Context(), p); err != nil {
			s.internalError(w, r, err)
			return
		}
	}
	s.issue(w, r, p, scopes, addr, refresh)
}

func (s *Service) tokenPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "UNSUPPORTED", "invalid_request", "cannot read the form: "+err.Error())
		return
	}
	form := r.PostForm
	addr := clientAddr(r, s.cfg.TrustedProxies)
	if !s.checkService(w, form.Get("service")) {
		return
	}
	scopes, err := token.ParseScopes(form["scope"])
	if err != nil {
		tokenError(w, http.StatusBadRequest, "DENIED", "invalid_scope", err.Error())
		return
	}
	var p *Principal
	var refresh string
	switch form.Get("grant_type") {
	case "password":
		if p, err = s.login(r.Context(), form.Get("username"), form.Get("password"), addr, "token"); err != nil {
			s.loginFailed(w, err)
			return
		}
		if form.Get("access_type") == "offline" {
			if refresh, err = s.newRefreshToken(r.Context(), p); err != nil {
				s.internalError(w, r, err)
				return
			}
		}
	case "refresh_token":
		refresh = form.Get("refresh_token")
		if p, err = s.refreshLogin(r.Context(), refresh, addr); err != nil {
			s.loginFailed(w, err)
			return
		}
	default:
		tokenError(w, http.StatusBadRequest, "UNSUPPORTED", "unsupported_grant_type", "grant_type must be password or refresh_token")
		return
	}
	s.issue(w, r, p, scopes, addr, refresh)
}

// checkService refuses a token for another service: it would not be
// accepted here anyway, and the client should know why.
func (s *Service) checkService(w http.ResponseWriter, service string) bool {
	if service == "" || service == s.cfg.Service {
		return true
	}
	tokenError(w, http.StatusBadRequest, "DENIED", "invalid_request", "unknown service "+strconv.Quote(service)+"; this is "+strconv.Quote(s.cfg.Service))
	return false
}

func (s *Service) issue(w http.ResponseWriter, r *http.Request, p *Principal, scopes []token.Scope, addr netip.Addr, refresh string) {
	now := s.now()
	var name, id string
	if p != nil {
		name, id = p.Name, p.ID
	}
	granted := s.grant(p, scopes)
	tok, _, err := s.tokens.Issue(name, id, granted, now)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	var detail []string
	for _, g := range granted {
		detail = append(detail, g.String())
	}
	s.record(audit.Entry{Actor: name, SourceIP: addr.String(), Action: audit.ActionTokenIssue, Detail: strings.Join(detail, " ")})
	resp := tokenResponse{Token: tok, AccessToken: tok, ExpiresIn: int(s.tokens.TTL() / time.Second),
		IssuedAt: now.UTC().Format(time.RFC3339), RefreshToken: refresh, Scope: strings.Join(detail, " ")}
	body, _ := json.Marshal(resp)
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// grant trims what was asked to what p may do (Docker semantics: asking
// too much is not an error).
func (s *Service) grant(p *Principal, scopes []token.Scope) []token.Scope {
	snap := s.snap.Load()
	now := s.now()
	var name, id string
	robot := false
	if p != nil {
		name, id, robot = p.Name, p.ID, p.Robot
	}
	var out []token.Scope
	for _, sc := range scopes {
		switch sc.Type {
		case token.TypeRegistry:
			if sc.Name == token.CatalogName {
				out = append(out, token.Scope{Type: sc.Type, Name: sc.Name, Actions: []string{token.ActionAll}})
			}
		case token.TypeRepository:
			project := ProjectOf(sc.Name)
			want := map[string]bool{}
			for _, a := range sc.Actions {
				if a == token.ActionAll {
					want[token.ActionPull], want[token.ActionPush], want[token.ActionDelete] = true, true, true
				} else {
					want[a] = true
				}
			}
			var actions []string
			if want[token.ActionPull] && snap.permits(name, id, robot, project, Pull, now) {
				actions = append(actions, token.ActionPull)
			}
			if want[token.ActionPush] && (snap.permits(name, id, robot, project, Push, now) || s.mayCreateProject(snap, name, id, robot, project)) {
				actions = append(actions, token.ActionPush)
			}
			if want[token.ActionDelete] && snap.permits(name, id, robot, project, Delete, now) {
				actions = append(actions, token.ActionDelete)
			}
			if len(actions) > 0 {
				out = append(out, token.Scope{Type: sc.Type, Name: sc.Name, Actions: actions})
			}
		}
	}
	return out
}

// newRefreshToken stores and returns a refresh token for p's account.
func (s *Service) newRefreshToken(ctx context.Context, p *Principal) (string, error) {
	secret, hash := newSecret("brt_")
	now := s.now()
	err := s.store.PutRefreshToken(ctx, RefreshToken{Hash: hash, Subject: p.Name, AccountID: p.ID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL)})
	return secret, err
}

// refreshLogin authenticates with a refresh token.
func (s *Service) refreshLogin(ctx context.Context, refresh string, addr netip.Addr) (*Principal, error) {
	now := s.now()
	ip := addr.String()
	// Refresh tokens are 256 random bits and cost no bcrypt: the address
	// limit is enough, and the global one would stop clients that already
	// hold a valid token.
	if wait, _ := s.limiter.check("", "", ip, now); wait > 0 {
		return nil, &throttled{wait}
	}
	rt, err := s.store.RefreshToken(ctx, hashSecret(refresh))
	snap := s.snap.Load()
	switch {
	case errors.Is(err, ErrNotFound) || (err == nil && !now.Before(rt.ExpiresAt)):
		s.limiter.fail("", "", ip, now)
		s.record(audit.Entry{SourceIP: ip, Action: audit.ActionLogin, Result: audit.Failure, Detail: "unknown or expired refresh token"})
		return nil, errBadCredentials
	case err != nil:
		return nil, err
	}
	robot := strings.HasPrefix(rt.Subject, RobotPrefix)
	if !snap.active(rt.Subject, rt.AccountID, robot, now) {
		s.record(audit.Entry{Actor: rt.Subject, SourceIP: ip, Action: audit.ActionLogin, Result: audit.Failure, Detail: "refresh token of a disabled or deleted account"})
		return nil, errBadCredentials
	}
	p := &Principal{Name: rt.Subject, Robot: robot, ID: rt.AccountID}
	if !allowedFrom(accountCIDRs(snap, p), addr) {
		return nil, errAddressNotAllowed
	}
	if u := snap.user(rt.Subject, rt.AccountID); u != nil {
		p.Admin = u.Admin
	}
	return p, nil
}

func (s *Service) loginFailed(w http.ResponseWriter, err error) {
	var th *throttled
	switch {
	case errors.As(err, &th):
		w.Header().Set("Retry-After", (&access.Throttle{RetryAfter: th.wait}).RetryAfterSeconds())
		tokenError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", "slow_down", "too many failed logins; try again later")
	case errors.Is(err, errAddressNotAllowed):
		tokenError(w, http.StatusForbidden, "DENIED", "access_denied", err.Error())
	case errors.Is(err, errBadCredentials):
		w.Header().Set("WWW-Authenticate", `Basic realm="`+s.cfg.Service+`"`)
		tokenError(w, http.StatusUnauthorized, "UNAUTHORIZED", "invalid_grant", err.Error())
	default:
		s.log.Error("token endpoint", "error", err)
		tokenError(w, http.StatusInternalServerError, "UNKNOWN", "server_error", "internal error")
	}
}

func (s *Service) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.ErrorContext(r.Context(), "token endpoint", "error", err)
	tokenError(w, http.StatusInternalServerError, "UNKNOWN", "server_error", "internal error")
}

// tokenError answers in both dialects at once: Docker's errors list and
// OAuth2's error and error_description.
func tokenError(w http.ResponseWriter, status int, code, oauth, message string) {
	body, _ := json.Marshal(map[string]any{
		"errors":            []map[string]string{{"code": code, "message": message}},
		"error":             oauth,
		"error_description": message,
	})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}
