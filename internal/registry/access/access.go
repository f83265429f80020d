// Package access is the authorization seam every registry request passes
// through: who is calling (a Subject), what they want (a Request: an action
// on a repository) and the Authorizer that decides. The default allows
// everything; internal/auth implements token auth, projects and roles behind
// the same interface.
package access

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Action is what a request does to a repository.
type Action string

// The actions of the Docker token scope grammar, plus catalog for listing
// repositories and list for listing a repository's tags (which a token
// grants with pull, but a role may allow pull without listing).
const (
	Pull    Action = "pull"
	Push    Action = "push"
	Delete  Action = "delete"
	Catalog Action = "catalog"
	List    Action = "list"
	// MountSource asks whether the caller may link a blob from
	// Repository into a repository it is pushing to (a cross-repository
	// mount): whether its account may pull there. A bearer token's scope
	// does not limit it, since a mount shows the caller nothing and
	// saves the upload of a blob the account could read anyway; clients
	// rarely ask a token for the source of an anonymous mount.
	MountSource Action = "mount"
)

// Request is one permission a registry request needs. Repository is empty
// for the /v2/ base check and for Catalog when it asks whether the caller
// may list repositories at all; a Catalog request naming a Repository asks
// whether that repository may appear in the caller's catalog.
type Request struct {
	Repository string
	Action     Action
}

// Subject is the authenticated caller. The zero Subject is anonymous.
type Subject struct {
	Name string
	// Attributes carries what the authenticator learned (roles, project
	// memberships, token claims) for the Authorizer to use.
	Attributes map[string]string
	// Details is what the Authenticator verified (a token's grant, an
	// account), for its own Authorizer; nothing else reads it.
	Details any
}

// Anonymous reports whether no credentials were presented.
func (s Subject) Anonymous() bool { return s.Name == "" }

// ErrDenied means the subject is known but may not do what it asked: the
// registry answers 403 DENIED.
var ErrDenied = errors.New("requested access to the resource is denied")

// ErrTooManyRequests means the subject is being throttled: the registry
// answers 429 TOOMANYREQUESTS.
var ErrTooManyRequests = errors.New("too many requests")

// Denial is ErrDenied with a reason the caller may read (it must reveal
// nothing the caller may not know).
type Denial struct{ Reason string }

func (d *Denial) Error() string { return d.Reason }

// Is makes errors.Is(d, ErrDenied) true.
func (d *Denial) Is(target error) bool { return target == ErrDenied }

// Throttle is ErrTooManyRequests with the time after which the caller may
// try again, answered as Retry-After.
type Throttle struct{ RetryAfter time.Duration }

func (t *Throttle) Error() string {
	return "too many requests; retry after " + t.RetryAfter.Round(time.Second).String()
}

// Is makes errors.Is(t, ErrTooManyRequests) true.
func (t *Throttle) Is(target error) bool { return target == ErrTooManyRequests }

// RetryAfterSeconds renders RetryAfter for the Retry-After header: whole
// seconds, rounded up, at least 1.
func (t *Throttle) RetryAfterSeconds() string {
	s := int64((t.RetryAfter + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(s, 1), 10)
}

// Challenge means the caller must (re)authenticate: the registry answers 401
// UNAUTHORIZED with a WWW-Authenticate header built from it.
type Challenge struct {
	Scheme string // "Bearer" or "Basic"
	Realm  string
	// Service and Scope are sent for Bearer challenges (Docker token auth).
	Service string
	Scope   []Request
	// Code is RFC 6750's error parameter: "invalid_token" for a bad or
	// expired token, "insufficient_scope" when a new token would help.
	Code string
}

func (c *Challenge) Error() string { return "authentication required" }

// Header renders the WWW-Authenticate header value.
func (c *Challenge) Header() string {
	var b strings.Builder
	b.WriteString(c.Scheme)
	fmt.Fprintf(&b, " realm=%q", c.Realm)
	if c.Service != "" {
		fmt.Fprintf(&b, ",service=%q", c.Service)
	}
	if len(c.Scope) > 0 {
		scopes := make([]string, 0, len(c.Scope))
		for _, r := range c.Scope {
			switch r.Action {
			case Catalog:
				scopes = append(scopes, "registry:catalog:*")
			case List:
				// Tokens grant tag listing with pull.
				scopes = append(scopes, "repository:"+r.Repository+":"+string(Pull))
			default:
				scopes = append(scopes, "repository:"+r.Repository+":"+string(r.Action))
			}
		}
		fmt.Fprintf(&b, ",scope=%q", strings.Join(scopes, " "))
	}
	if c.Code != "" {
		fmt.Fprintf(&b, ",error=%q", c.Code)
	}
	return b.String()
}

// Authorizer decides whether a request may proceed.
type Authorizer interface {
	// Authenticate identifies the caller from the request's credentials. A
	// request without credentials yields the anonymous Subject; bad
	// credentials yield a *Challenge.
	Authenticate(r *http.Request) (Subject, error)
	// Authorize returns nil to allow, ErrDenied (possibly wrapped) to
	// refuse, ErrTooManyRequests to throttle, or a *Challenge when
	// authenticating could change the answer.
	// The registry calls it once per permission a request needs, and once
	// per repository when filtering the catalog.
	Authorize(ctx context.Context, s Subject, req Request) error
}

// AllowAll is the default Authorizer: everyone may do everything.
type AllowAll struct{}

// Authenticate implements Authorizer.
func (AllowAll) Authenticate(*http.Request) (Subject, error) { return Subject{}, nil }

// Authorize implements Authorizer.
func (AllowAll) Authorize(context.Context, Subject, Request) error { return nil }
