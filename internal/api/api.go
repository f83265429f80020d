// Package api is berth's JSON API under /api/v1/, one file per domain:
// accounts (users, robots), projects and members, the audit log, the
// vulnerability database, artifacts with their stored scan reports and
// SBOMs, and webhooks. It is described by the OpenAPI 3 document it serves
// at /api/v1/openapi.json. Every route is in one table (routes), which the
// tests hold against the document. Callers authenticate as on the registry
// (Basic credentials or a token from /token); every change is audited. The
// CLI, the web UI and scripts all use it.
//
// With authentication off (berth serve --no-auth) everyone may do
// everything, and the routes that manage accounts and projects answer 404.
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
	"net/url"
	"strings"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/policy/pull"
	"berth.dev/berth/internal/registry/access"
	"berth.dev/berth/internal/registry/event"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/scanservice"
	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/vulndb/live"
	"berth.dev/berth/internal/webhook"
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

	// Meta reads repositories and artifacts.
	Meta meta.Store
	// Reports holds scan results; Scans queues scans and re-matches (nil
	// when the server does not scan); VulnDB is the server's database
	// (nil when it does not scan).
	Reports reports.Store
	Scans   *scanservice.Service
	VulnDB  *live.DB
	// Webhooks keeps project webhooks and Deliveries sends them; both nil
	// when authentication is off (webhooks belong to projects, which
	// exist only with it).
	Webhooks   webhook.Store
	Deliveries *webhook.Dispatcher
	// Version is berth's version, written into SBOMs and reports.
	Version string
	// Notifier hears of the changes the API makes to the registry behind
	// its back (a repository's deletion): the registry's cache and the
	// outbox relay.
	Notifier event.Notifier

	// Blobs reads image configs and signature payloads (nil: artifact
	// details leave them out).
	Blobs blob.Store
	// Trust returns the keys a project trusts to sign its images, or nil
	// when it has none configured (then signatures are listed, not
	// verified). Nil trusts nothing anywhere.
	Trust func(project string) (*sign.Trust, error)
	// Custody holds the projects' signing keys and stage rules; nil when
	// the server has no master key (or authentication is off).
	Custody *custody.Service
	// Policies keeps and enforces project policies; nil when
	// authentication is off (policies belong to projects).
	Policies *pull.Enforcer
	// KeysChanged is told that signing keys of the projects with ids
	// projectIDs (of every project when all) were created, rotated or
	// restored: policies resolve their key references when they load, so
	// they must load again to count the new keys. Nil: nobody is told.
	KeysChanged func(ctx context.Context, projectIDs []string, all bool)
}

// keysChanged tells Options.KeysChanged, if any.
func (a *API) keysChanged(c *call, projectIDs []string, all bool) {
	if a.opts.KeysChanged != nil {
		a.opts.KeysChanged(c.ctx(), projectIDs, all)
	}
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
	// accounts routes manage accounts and projects, which exist only with
	// authentication on.
	accounts bool
	// yaml routes also take YAML bodies (application/yaml): like JSON, a
	// type no cross-site form or simple fetch can send.
	yaml bool
}

// routes lists every endpoint; the OpenAPI document must describe exactly
// these.
func (a *API) routes() []route {
	return []route{
		{method: "GET", path: "/openapi.json", handler: a.openAPI, anonymous: true},
		{method: "GET", path: "/me", handler: a.me},
		{method: "GET", path: "/users", handler: a.listUsers, accounts: true},
		{method: "POST", path: "/users", handler: a.createUser, accounts: true},
		{method: "GET", path: "/users/{name}", handler: a.getUser, accounts: true},
		{method: "PATCH", path: "/users/{name}", handler: a.updateUser, accounts: true},
		{method: "DELETE", path: "/users/{name}", handler: a.deleteUser, accounts: true},
		{method: "GET", path: "/projects", handler: a.listProjects, anonymous: true},
		{method: "POST", path: "/projects", handler: a.createProject, accounts: true},
		{method: "GET", path: "/projects/{project}", handler: a.getProject, anonymous: true},
		{method: "PATCH", path: "/projects/{project}", handler: a.updateProject, accounts: true},
		{method: "DELETE", path: "/projects/{project}", handler: a.deleteProject, accounts: true},
		{method: "GET", path: "/projects/{project}/members", handler: a.listMembers, accounts: true},
		{method: "PUT", path: "/projects/{project}/members/{user}", handler: a.putMember, accounts: true},
		{method: "DELETE", path: "/projects/{project}/members/{user}", handler: a.removeMember, accounts: true},
		{method: "GET", path: "/projects/{project}/repositories", handler: a.listRepositories, anonymous: true},
		{method: "DELETE", path: "/projects/{project}/repositories/{repository}", handler: a.deleteRepository},
		{method: "GET", path: "/projects/{project}/repositories/{repository}/artifacts", handler: a.listArtifacts, anonymous: true},
		{method: "GET", path: "/projects/{project}/repositories/{repository}/artifacts/{reference}/vulnerabilities", handler: a.artifactVulnerabilities, anonymous: true},
		{method: "GET", path: "/projects/{project}/repositories/{repository}/artifacts/{reference}/sbom", handler: a.artifactSBOM, anonymous: true},
		{method: "POST", path: "/projects/{project}/repositories/{repository}/artifacts/{reference}/scan", handler: a.scanArtifact},
		{method: "GET", path: "/projects/{project}/repositories/{repository}/artifacts/{reference}", handler: a.getArtifact, anonymous: true},
		{method: "GET", path: "/projects/{project}/repositories/{repository}/artifacts/{reference}/signatures", handler: a.artifactSignatures, anonymous: true},
		{method: "GET", path: "/projects/{project}/repositories/{repository}/artifacts/{reference}/policy", handler: a.artifactPolicy, anonymous: true},
		{method: "GET", path: "/vulnerabilities/{id}/artifacts", handler: a.vulnerableArtifacts, anonymous: true},
		{method: "GET", path: "/projects/{project}/webhooks", handler: a.listWebhooks, accounts: true},
		{method: "POST", path: "/projects/{project}/webhooks", handler: a.createWebhook, accounts: true},
		{method: "GET", path: "/projects/{project}/webhooks/{id}", handler: a.getWebhook, accounts: true},
		{method: "DELETE", path: "/projects/{project}/webhooks/{id}", handler: a.deleteWebhook, accounts: true},
		{method: "GET", path: "/projects/{project}/webhooks/{id}/deliveries", handler: a.webhookDeliveries, accounts: true},
		{method: "GET", path: "/projects/{project}/webhooks/{id}/dead-letters", handler: a.webhookDeadLetters, accounts: true},
		{method: "POST", path: "/projects/{project}/webhooks/{id}/dead-letters/{delivery}/redeliver", handler: a.redeliverWebhook, accounts: true},
		{method: "GET", path: "/projects/{project}/policy", handler: a.getPolicy, accounts: true},
		{method: "PUT", path: "/projects/{project}/policy", handler: a.putPolicy, accounts: true, yaml: true},
		{method: "DELETE", path: "/projects/{project}/policy", handler: a.deletePolicy, accounts: true},
		{method: "GET", path: "/projects/{project}/keys", handler: a.listKeys, anonymous: true, accounts: true},
		{method: "POST", path: "/projects/{project}/keys", handler: a.createKey, accounts: true},
		{method: "POST", path: "/projects/{project}/keys/{purpose}/rotate", handler: a.rotateKey, accounts: true},
		{method: "GET", path: "/projects/{project}/keys/{purpose}/private", handler: a.privateKey, accounts: true},
		{method: "GET", path: "/projects/{project}/stages/{stage}", handler: a.getStage, anonymous: true, accounts: true},
		{method: "PUT", path: "/projects/{project}/stages/{stage}", handler: a.putStage, accounts: true},
		{method: "DELETE", path: "/projects/{project}/stages/{stage}", handler: a.deleteStage, accounts: true},
		{method: "GET", path: "/projects/{project}/repositories/{repository}/artifacts/{reference}/approvals", handler: a.artifactApprovals, anonymous: true, accounts: true},
		{method: "POST", path: "/projects/{project}/repositories/{repository}/artifacts/{reference}/approvals/{stage}", handler: a.approveStage, accounts: true},
		{method: "DELETE", path: "/projects/{project}/repositories/{repository}/artifacts/{reference}/approvals/{stage}", handler: a.revokeStage, accounts: true},
		{method: "POST", path: "/keys/backup", handler: a.backupKeys, accounts: true},
		{method: "POST", path: "/keys/restore", handler: a.restoreKeys, accounts: true},
		{method: "POST", path: "/scan-all", handler: a.scanAll},
		{method: "GET", path: "/vulndb", handler: a.vulnDBStatus},
		{method: "POST", path: "/vulndb/update", handler: a.updateVulnDB},
		{method: "GET", path: "/robots", handler: a.listRobots, accounts: true},
		{method: "POST", path: "/robots", handler: a.createRobot, accounts: true},
		{method: "GET", path: "/robots/{name}", handler: a.getRobot, accounts: true},
		{method: "DELETE", path: "/robots/{name}", handler: a.deleteRobot, accounts: true},
		{method: "POST", path: "/robots/{name}/revoke", handler: a.revokeRobot, accounts: true},
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
		if err := a.guardBrowsers(r, rt.yaml); err != nil {
			a.fail(&call{w: w, r: r}, err)
			return
		}
		if a.opts.Auth == nil {
			// Authentication is off: everyone may do everything, and there
			// are no accounts or projects to manage.
			c := &call{w: w, r: r, addr: r.RemoteAddr}
			var err error = errNoAccounts
			if !rt.accounts {
				err = rt.handler(c)
			}
			if err != nil {
				a.fail(c, err)
			}
			return
		}
		who, err := a.opts.Auth.Identify(r)
		c := &call{w: w, r: r, who: who, addr: trace.ClientIP}
		if err == nil && who == nil && !rt.anonymous {
			err = errUnauthenticated
		}
		if err == nil && who != nil && who.Session && rt.method != http.MethodGet &&
			!a.opts.Auth.ValidCSRF(r, r.Header.Get(auth.CSRFHeader)) {
			// A session cookie rides along with any request the browser
			// sends; only a page of berth's knows the session's token.
			err = errCSRF
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
	errNoAccounts      = &apiError{status: http.StatusNotFound, code: "NOT_FOUND",
		message: "berth runs without authentication (--no-auth): there are no accounts, projects or webhooks to manage"}
	errNotScanning = &apiError{status: http.StatusNotFound, code: "NOT_FOUND",
		message: "this server does not scan: start it with --db-source (or import a database into <data>/vulndb)"}
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
	case errors.Is(err, auth.ErrSessionsUnreadable):
		ae = &apiError{status: http.StatusServiceUnavailable, code: "UNAVAILABLE", message: err.Error(),
			header: http.Header{"Retry-After": {"5"}}}
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
	errCSRF = &apiError{status: http.StatusForbidden, code: "DENIED",
		message: "a request authenticated by a browser session must carry the session's " + auth.CSRFHeader + " header"}
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
func (a *API) guardBrowsers(r *http.Request, yamlBody bool) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		origin := r.Header.Get("Origin")
		if a.opts.Auth != nil && (strings.EqualFold(r.Header.Get("Sec-Fetch-Site"), "cross-site") || (origin != "" && !a.opts.Auth.SameOrigin(r, origin))) {
			return errCrossSite
		}
	}
	if a.opts.Auth == nil {
		// No credentials to ride on, but a page must still not make a
		// local browser change things behind its user's back.
		if origin := r.Header.Get("Origin"); r.Method != http.MethodGet && r.Method != http.MethodHead &&
			(strings.EqualFold(r.Header.Get("Sec-Fetch-Site"), "cross-site") || (origin != "" && !sameHost(r, origin))) {
			return errCrossSite
		}
	}
	if r.ContentLength != 0 { // -1: a body of unknown length
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || (mt != "application/json" && !(yamlBody && (mt == "application/yaml" || mt == "application/x-yaml"))) {
			return errMediaType
		}
	}
	return nil
}

// maxBody bounds request bodies.
const maxBody = 64 << 10

// decode reads a JSON body into v, refusing unknown fields: a typo must
// not silently change nothing. (guardBrowsers checked the content type.)
func decode(c *call, v any) error { return decodeLimited(c, v, maxBody) }

// decodeLimited is decode with a body limit of its own.
func decodeLimited(c *call, v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(c.w, c.r.Body, limit))
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
	if !a.isAdmin(c) {
		return errForbidden
	}
	return nil
}

// isAdmin reports whether the caller is a system administrator (everyone
// is, with authentication off).
func (a *API) isAdmin(c *call) bool { return a.opts.Auth == nil || a.opts.Auth.IsAdmin(c.who) }

// can reports whether the caller may do action in project.
func (a *API) can(c *call, project string, action auth.Action) bool {
	return a.opts.Auth == nil || a.opts.Auth.Can(c.who, project, action)
}

// sameHost reports whether origin names the host the request was sent to
// (authentication off has no configured realm or proxies to consult).
func sameHost(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// Endpoints lists every route as "METHOD /api/v1/path", for tests that
// must cover them all.
func Endpoints() []string {
	var out []string
	for _, rt := range (&API{}).routes() {
		out = append(out, rt.method+" "+Prefix+rt.path)
	}
	return out
}
