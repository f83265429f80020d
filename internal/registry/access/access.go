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
	"strings"
)

// Action is what a request does to a repository.
type Action string

// The actions of the Docker token scope grammar, plus catalog for listing
// repositories.
const (
	Pull    Action = "pull"
	Push    Action = "push"
	Delete  Action = "delete"
	Catalog Action = "catalog"
)

// Request is one permission a registry request needs. Repository is empty
// for Catalog and for the /v2/ base check.
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
}

// Anonymous reports whether no credentials were presented.
func (s Subject) Anonymous() bool { return s.Name == "" }

// ErrDenied means the subject is known but may not do what it asked: the
// registry answers 403 DENIED.
var ErrDenied = errors.New("requested access to the resource is denied")

// ErrTooManyRequests means the subject is being throttled: the registry
// answers 429 TOOMANYREQUESTS.
var ErrTooManyRequests = errors.New("too many requests")

// Challenge means the caller must (re)authenticate: the registry answers 401
// UNAUTHORIZED with a WWW-Authenticate header built from it.
type Challenge struct {
	Scheme string // "Bearer" or "Basic"
	Realm  string
	// Service and Scope are sent for Bearer challenges (Docker token auth).
	Service string
	Scope   []Request
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
			if r.Action == Catalog {
				scopes = append(scopes, "registry:catalog:*")
				continue
			}
			scopes = append(scopes, "repository:"+r.Repository+":"+string(r.Action))
		}
		fmt.Fprintf(&b, ",scope=%q", strings.Join(scopes, " "))
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
