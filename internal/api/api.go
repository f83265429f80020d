// Package api is berth's JSON admin API under /api/v1/: users, projects,
// members, robots and the audit log, described by the OpenAPI 3 document
// it serves at /api/v1/openapi.json. Every route is in one table (routes),
// which the tests hold against the document. Callers authenticate as on
// the registry (Basic credentials or a token from /token); every change is
// audited.
package api

import (
	"context"
	"crypto"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/registry/access"
)

// Prefix is where the API is served.
const Prefix = "/api/v1"

//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the API's OpenAPI 3 document.
func OpenAPI() []byte { return openAPIDocument }

// Options wires the API.
type Options struct {
	Auth *auth.Service
	// Audit records changes; AuditStore answers queries and AuditKey
	// verifies the chain.
	Audit      *audit.Log
	AuditStore audit.Store
	AuditKey   crypto.PublicKey
	// AutoCreateProjects lets every user create projects (as it lets
	// them by pushing).
	AutoCreateProjects bool
	Logger             *slog.Logger
}

// API is the http.Handler for Prefix.
type API struct {
	opts Options
	mux  *http.ServeMux
	log  *slog.Logger
}

// route is one endpoint.
type route struct {
	method  string
	path    string // ServeMux pattern under Prefix, in OpenAPI's template syntax
	handler func(*call) error
	// anonymous routes serve callers without credentials.
	anonymous bool
}

// routes lists every endpoint; the OpenAPI document must describe exactly
// these.
func (a *API) routes() []route {
	return []route{
		{method: "GET", path: "/openapi.json", handler: a.openAPI, anonymous: true},
		{method: "GET", path: "/me", handler: a.me},
		{method: "GET", path: "/users", handler: a.listUsers},
		{method: "POST", path: "/users", handler: a.createUser},
		{method: "GET", path: "/users/{name}", handler: a.getUser},
		{method: "PATCH", path: "/users/{name}", handler: a.updateUser},
		{method: "DELETE", path: "/users/{name}", handler: a.deleteUser},
		{method: "GET", path: "/projects", handler: a.listProjects, anonymous: true},
		{method: "POST", path: "/projects", handler: a.createProject},
		{method: "GET", path: "/projects/{project}", handler: a.getProject, anonymous: true},
		{method: "PATCH", path: "/projects/{project}", handler: a.updateProject},
		{method: "DELETE", path: "/projects/{project}", handler: a.deleteProject},
		{method: "GET", path: "/projects/{project}/members", handler: a.listMembers},
		{method: "PUT", path: "/projects/{project}/members/{user}", handler: a.putMember},
		{method: "DELETE", path: "/projects/{project}/members/{user}", handler: a.removeMember},
		{method: "GET", path: "/robots", handler: a.listRobots},
		{method: "POST", path: "/robots", handler: a.createRobot},
		{method: "GET", path: "/robots/{name}", handler: a.getRobot},
		{method: "DELETE", path: "/robots/{name}", handler: a.deleteRobot},
		{method: "POST", path: "/robots/{name}/revoke", handler: a.revokeRobot},
		{method: "GET", path: "/audit", handler: a.queryAudit},
		{method: "GET", path: "/audit/verify", handler: a.verifyAudit},
	}
}

// New returns the API.
func New(opts Options) *API {
	a := &API{opts: opts, mux: http.NewServeMux(), log: opts.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	for _, rt := range a.routes() {
		a.mux.Handle(rt.method+" "+Prefix+rt.path, a.wrap(rt))
	}
	a.mux.HandleFunc(Prefix+"/", a.unrouted)
	return a
}

// unrouted answers a path no route serves with that method: 405 naming
// the methods the path has, or 404.
func (a *API) unrouted(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := a.mux.Handler(probe); pattern != Prefix+"/" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: "INVALID", message: r.Method + " is not supported on " + r.URL.Path})
		return
	}
	writeError(w, &apiError{status: http.StatusNotFound, code: "NOT_FOUND", message: "no such endpoint: " + r.Method + " " + r.URL.Path})
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// call is one request being served.
type call struct {
	w    http.ResponseWriter
	r    *http.Request
	who  *auth.Principal // nil: anonymous
	addr string
}

func (c *call) ctx() context.Context { return c.r.Context() }

func (c *call) actor() string {
	if c.who == nil {
		return ""
	}
	return c.who.Name
}

func (a *API) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, trace := auth.WithTrace(r.Context())
		r = r.WithContext(ctx)
		// Before credentials are even read: a refused browser request
		// must not count as a login either.
		if err := a.guardBrowsers(r); err != nil {
			a.fail(&call{w: w, r: r}, err)
			return
		}
		who, err := a.opts.Auth.Identify(r)
		c := &call{w: w, r: r, who: who, addr: trace.ClientIP}
		if err == nil && who == nil && !rt.anonymous {
			err = errUnauthenticated
		}
		if err == nil {
			err = rt.handler(c)
		}
		if err != nil {
			a.fail(c, err)
		}
	})
}

// apiError is an error answered with a status and a code.
type apiError struct {
	status  int
	code    string
	message string
	header  http.Header
}

func (e *apiError) Error() string { return e.message }

var (
	errUnauthenticated = &apiError{status: http.StatusUnauthorized, code: "UNAUTHORIZED", message: "authentication required"}
	errForbidden       = &apiError{status: http.StatusForbidden, code: "DENIED", message: "you may not do this"}
)

func notFound(what string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "NOT_FOUND", message: what + " not found"}
}

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "INVALID", message: fmt.Sprintf(format, args...)}
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (a *API) fail(c *call, err error) {
	var ae *apiError
	var challenge *access.Challenge
	var denial *access.Denial
	var throttle *access.Throttle
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &challenge):
		ae = &apiError{status: http.StatusUnauthorized, code: "UNAUTHORIZED", message: "authentication required"}
	case errors.As(err, &throttle):
		ae = &apiError{status: http.StatusTooManyRequests, code: "TOOMANYREQUESTS", message: "too many failed logins; try again later",
			header: http.Header{"Retry-After": {throttle.RetryAfterSeconds()}}}
	case errors.As(err, &denial):
		ae = &apiError{status: http.StatusForbidden, code: "DENIED", message: denial.Reason}
	case errors.Is(err, auth.ErrInvalid):
		ae = &apiError{status: http.StatusBadRequest, code: "INVALID", message: err.Error()}
	case errors.Is(err, auth.ErrExists):
		ae = &apiError{status: http.StatusConflict, code: "CONFLICT", message: err.Error()}
	case errors.Is(err, auth.ErrNotEmpty):
		ae = &apiError{status: http.StatusConflict, code: "CONFLICT", message: err.Error()}
	case errors.Is(err, auth.ErrNotFound):
		ae = &apiError{status: http.StatusNotFound, code: "NOT_FOUND", message: err.Error()}
	default:
		a.log.ErrorContext(c.ctx(), "admin API", "method", c.r.Method, "path", c.r.URL.Path, "error", err)
		ae = &apiError{status: http.StatusInternalServerError, code: "INTERNAL", message: "internal error"}
	}
	if ae.status == http.StatusUnauthorized {
		c.w.Header().Set("WWW-Authenticate", `Basic realm="berth"`)
	}
	for k, v := range ae.header {
		c.w.Header()[k] = v
	}
	writeError(c.w, ae)
}

func writeError(w http.ResponseWriter, ae *apiError) {
	var body errorBody
	body.Error.Code, body.Error.Message = ae.code, ae.message
	writeJSON(w, ae.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

var (
	errCrossSite = &apiError{status: http.StatusForbidden, code: "DENIED",
		message: "cross-site request refused: changes are accepted from this server's own origin or from clients that are not browsers"}
	errMediaType = &apiError{status: http.StatusUnsupportedMediaType, code: "INVALID", message: "send the request body as application/json"}
)

// guardBrowsers refuses what a page on another site could make a
// logged-in administrator's browser send, once a web UI shares berth's
// origin and its credentials (cross-site request forgery): a request that
// changes something, whose Origin is another origin or whose
// Sec-Fetch-Site says cross-site; and any body that is not JSON, which is
// what a cross-site HTML form or a "simple" fetch can send without a CORS
// preflight (berth grants none). Clients that are not browsers send
// neither header and are not affected.
func (a *API) guardBrowsers(r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		origin := r.Header.Get("Origin")
		if strings.EqualFold(r.Header.Get("Sec-Fetch-Site"), "cross-site") || (origin != "" && !a.opts.Auth.SameOrigin(r, origin)) {
			return errCrossSite
		}
	}
	if r.ContentLength != 0 { // -1: a body of unknown length
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			return errMediaType
		}
	}
	return nil
}

// maxBody bounds request bodies.
const maxBody = 64 << 10

// decode reads a JSON body into v, refusing unknown fields: a typo must
// not silently change nothing. (guardBrowsers checked the content type.)
func decode(c *call, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(c.w, c.r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("request body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("request body: trailing data after the JSON object")
	}
	return nil
}

// audited records a change by the caller.
func (a *API) audited(c *call, action, project, detail string, err error) {
	if a.opts.Audit == nil {
		return
	}
	result := audit.Success
	var ae *apiError
	switch {
	case err == nil:
	case errors.As(err, &ae) && ae.status == http.StatusForbidden:
		result = audit.Denied
	default:
		result = audit.Failure
	}
	if err != nil {
		detail = strings.TrimSpace(detail + " (" + err.Error() + ")")
	}
	if rerr := a.opts.Audit.Record(audit.Entry{Actor: c.actor(), SourceIP: c.addr, Action: action, Project: project,
		Result: result, Detail: detail}); rerr != nil {
		a.log.Warn("audit entry dropped", "error", rerr, "action", action)
	}
}

func (a *API) openAPI(c *call) error {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Write(openAPIDocument)
	return nil
}

func (a *API) me(c *call) error {
	return respond(c, http.StatusOK, c.who)
}

func respond(c *call, status int, v any) error {
	writeJSON(c.w, status, v)
	return nil
}

func (a *API) requireAdmin(c *call) error {
	if !a.opts.Auth.IsAdmin(c.who) {
		return errForbidden
	}
	return nil
}
