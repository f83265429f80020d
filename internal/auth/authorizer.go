package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/auth/token"
	"berth.dev/berth/internal/registry/access"
)

var _ access.Authorizer = (*Service)(nil)

// credential is what Authenticate verified, carried in the Subject's
// Details to Authorize.
type credential struct {
	name  string // empty: anonymous
	id    string // the account's id
	robot bool
	// grant is the bearer token's access list; nil when the request
	// carried Basic credentials (the account's full rights) or none.
	grant *token.Grant
	addr  netip.Addr
	// req is the request, kept to name the realm of a challenge (only
	// refusals need it, so it is not built for every request).
	req *http.Request
}

// MaxAuthorizationHeader bounds the Authorization header berth reads; the
// server answers 431 to anything longer before auth sees it.
const MaxAuthorizationHeader = 16 << 10

// Authenticate implements access.Authorizer: a Bearer token from /token,
// Basic credentials (for simple clients), or nothing (anonymous).
func (s *Service) Authenticate(r *http.Request) (access.Subject, error) {
	c := &credential{addr: clientAddr(r, s.cfg.TrustedProxies), req: r}
	if t := traceOf(r.Context()); t != nil {
		t.ClientIP = c.addr.String()
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return access.Subject{Details: c}, nil
	}
	if len(h) > MaxAuthorizationHeader {
		return access.Subject{}, s.challenge(c, nil, "invalid_request")
	}
	scheme, value, _ := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		g, err := s.tokens.Verify(strings.TrimSpace(value), s.now())
		if err != nil {
			return access.Subject{}, s.challenge(c, nil, "invalid_token")
		}
		c.name, c.id, c.robot, c.grant = g.Subject, g.Account, strings.HasPrefix(g.Subject, RobotPrefix), g
		if c.name != "" {
			// The token's account, not whichever holds its name now: a
			// token of a deleted account is dead even if the name was
			// reused (and one without an account id predates ids).
			snap := s.snap.Load()
			if !snap.active(c.name, c.id, c.robot, s.now()) {
				return access.Subject{}, s.challenge(c, nil, "invalid_token")
			}
			if !allowedFrom(accountCIDRs(snap, &Principal{Name: c.name, Robot: c.robot, ID: c.id}), c.addr) {
				s.record(audit.Entry{Actor: c.name, SourceIP: c.addr.String(), Action: audit.ActionLogin, Result: audit.Denied,
					Detail: "token used from an address not allowed for this account"})
				return access.Subject{}, &access.Denial{Reason: errAddressNotAllowed.Error()}
			}
		}
	case strings.EqualFold(scheme, "Basic"):
		name, password, ok := parseBasic(value)
		if !ok {
			return access.Subject{}, &access.Challenge{Scheme: "Basic", Realm: s.cfg.Service, Code: "invalid_request"}
		}
		p, err := s.login(r.Context(), name, password, c.addr, "basic auth")
		if err != nil {
			return access.Subject{}, s.loginError(err)
		}
		c.name, c.id, c.robot = p.Name, p.ID, p.Robot
	default:
		return access.Subject{}, s.challenge(c, nil, "invalid_request")
	}
	if t := traceOf(r.Context()); t != nil {
		t.Actor = c.name
	}
	return access.Subject{Name: c.name, Details: c}, nil
}

func parseBasic(value string) (name, password string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	if err != nil {
		return "", "", false
	}
	name, password, ok = strings.Cut(string(raw), ":")
	return name, password, ok && name != ""
}

// loginError maps a failed login to the registry's answers.
func (s *Service) loginError(err error) error {
	var th *throttled
	switch {
	case errors.As(err, &th):
		return &access.Throttle{RetryAfter: th.wait}
	case errors.Is(err, errAddressNotAllowed):
		return &access.Denial{Reason: err.Error()}
	case errors.Is(err, errBadCredentials):
		return &access.Challenge{Scheme: "Basic", Realm: s.cfg.Service, Code: "invalid_credentials"}
	}
	return err
}

func (s *Service) challenge(c *credential, scope []access.Request, code string) *access.Challenge {
	realm := s.cfg.Realm
	if realm == "" {
		realm = realmFor(c.req, s.cfg.TrustedProxies)
	}
	return &access.Challenge{Scheme: "Bearer", Realm: realm, Service: s.cfg.Service, Scope: scope, Code: code}
}

// tokenAction is the token scope action a registry action needs.
func tokenAction(a access.Action) token.ActionSet {
	switch a {
	case access.Pull, access.List:
		return token.CanPull
	case access.Push:
		return token.CanPush
	case access.Delete:
		return token.CanDelete
	}
	return 0
}

// authAction maps a registry action to the permission table's.
func authAction(a access.Action) (Action, bool) {
	switch a {
	case access.Pull, access.MountSource:
		return Pull, true
	case access.Push:
		return Push, true
	case access.Delete:
		return Delete, true
	case access.List:
		return ListTags, true
	case access.Catalog:
		return Catalog, true
	}
	return "", false
}

// Authorize implements access.Authorizer. The account's current rights
// decide (so revocation and role changes apply at once); a token further
// limits them to what it grants. Refusals reveal nothing: a private
// project and a missing one look alike to a non-member.
func (s *Service) Authorize(ctx context.Context, sub access.Subject, req access.Request) error {
	c, _ := sub.Details.(*credential)
	if c == nil {
		return errors.New("auth: subject was not authenticated by this service")
	}
	noCredentials := c.name == "" && c.grant == nil
	switch {
	case req.Action == "":
		if noCredentials {
			return s.challenge(c, nil, "")
		}
		return nil
	case req.Action == access.Catalog && req.Repository == "":
		switch {
		case noCredentials:
			return s.challenge(c, []access.Request{req}, "")
		case c.grant != nil && !c.grant.Catalog:
			return s.challenge(c, []access.Request{req}, "insufficient_scope")
		}
		return nil
	}
	action, ok := authAction(req.Action)
	if !ok {
		return access.ErrDenied
	}
	project := ProjectOf(req.Repository)
	snap := s.snap.Load()
	if action == Push && s.mayCreateProject(snap, c.name, c.id, c.robot, project) {
		if c.grant != nil && !c.grant.Allows(req.Repository, token.CanPush) {
			return s.challenge(c, []access.Request{req}, "insufficient_scope")
		}
		return s.createOnPush(ctx, c.name, c.id, project, c.addr.String())
	}
	if !snap.permits(c.name, c.id, c.robot, project, action, s.now()) {
		switch {
		case c.name == "":
			return s.challenge(c, []access.Request{req}, "")
		case action == Push:
			return pushDenied(project)
		}
		return access.ErrDenied
	}
	if need := tokenAction(req.Action); c.grant != nil && need != 0 && !c.grant.Allows(req.Repository, need) {
		return s.challenge(c, []access.Request{req}, "insufficient_scope")
	}
	return nil
}

// MayPush reports whether the identity behind sub may push to repo,
// whatever its token was granted for this request: cosign and berth sign
// read the manifest they sign with a pull-scoped token (registry.Signers).
func (s *Service) MayPush(sub access.Subject, repo string) bool {
	c, _ := sub.Details.(*credential)
	if c == nil || c.name == "" {
		return false
	}
	return s.snap.Load().permits(c.name, c.id, c.robot, ProjectOf(repo), Push, s.now())
}

// Identify authenticates a request to the admin API: Basic credentials, a
// bearer token from /token, or a web UI session cookie. A request with
// none is anonymous (nil).
// Errors are *access.Challenge, *access.Throttle, *access.Denial or
// ErrSessionsUnreadable.
func (s *Service) Identify(r *http.Request) (*Principal, error) {
	sub, err := s.Authenticate(r)
	if err != nil {
		return nil, err
	}
	if sub.Anonymous() {
		// No credentials in the headers: a browser's session cookie, if
		// any (never on the registry's routes, only here).
		v, err := s.liveSession(r)
		if err != nil || v == nil {
			return nil, err
		}
		p := s.principalOf(v)
		if t := traceOf(r.Context()); t != nil {
			t.Actor = p.Name
		}
		return p, nil
	}
	c := sub.Details.(*credential)
	u := s.snap.Load().user(c.name, c.id)
	return &Principal{Name: c.name, Robot: c.robot, Admin: !c.robot && u != nil && u.Admin, ID: c.id}, nil
}

// pushDenied is the one answer to a push into a project that is missing
// or not the caller's: it names the project and tells neither case apart.
func pushDenied(project string) error {
	return &access.Denial{Reason: fmt.Sprintf("push to project %s denied: it does not exist or you may not push to it; ask an administrator", project)}
}
