package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"golang.org/x/crypto/bcrypt"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/audit/audittest"
	auditsqlite "berth.dev/berth/internal/audit/sqlite"
	"berth.dev/berth/internal/auth"
	authsqlite "berth.dev/berth/internal/auth/sqlite"
)

func loadDocument(t testing.TB) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI())
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

// TestDocumentMatchesRoutes holds the OpenAPI document and the route
// table to each other: every documented operation exists and every route
// is documented.
func TestDocumentMatchesRoutes(t *testing.T) {
	doc := loadDocument(t)
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	var served []string
	for _, rt := range (&API{}).routes() {
		served = append(served, rt.method+" "+Prefix+rt.path)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("document and routes differ:\ndocumented %v\nserved     %v", documented, served)
	}
}

// env is the API over real stores, with every response checked against
// the OpenAPI document.
type env struct {
	t      *testing.T
	api    *API
	auth   *auth.Service
	log    *audit.Log
	store  *auditsqlite.Store
	key    *ecdsa.PrivateKey
	router routers.Router
	// metaPath is the SQLite file of the accounts, sessions and audit log.
	metaPath string
}

const adminPassword = "admin-password"

func newEnv(t *testing.T, adjust ...func(*auth.Config, *Options)) *env {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	as, err := authsqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { as.Close() })
	st, err := auditsqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := audittest.Key(t)
	log, err := audit.Open(ctx, st, key, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	cfg := auth.DefaultConfig()
	cfg.BcryptCost = bcrypt.MinCost
	opts := Options{Audit: log, AuditStore: st, AuditKey: &key.PublicKey}
	for _, a := range adjust {
		a(&cfg, &opts)
	}
	svc, err := auth.New(ctx, as, key, log, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Bootstrap(ctx, adminPassword); err != nil {
		t.Fatal(err)
	}
	opts.Auth = svc
	router, err := legacy.NewRouter(loadDocument(t))
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, api: New(opts), auth: svc, log: log, store: st, key: key, router: router, metaPath: path}
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r result) code() string {
	var e errorBody
	json.Unmarshal(r.body, &e)
	return e.Error.Code
}

// creds are a user name and password; empty is anonymous.
type creds [2]string

var (
	anon  = creds{}
	admin = creds{"admin", adminPassword}
)

func (e *env) do(c creds, method, path string, body any) result {
	e.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		raw, _ = json.Marshal(b)
	}
	var headers []string
	if raw != nil {
		headers = []string{"Content-Type", "application/json"}
	}
	return e.doRaw(c, method, path, bytes.NewReader(raw), raw, headers...)
}

// doRaw sends body (whose bytes are raw, for the document's check) with
// the given headers, in name, value pairs.
func (e *env) doRaw(c creds, method, path string, body io.Reader, raw []byte, headers ...string) result {
	e.t.Helper()
	req := httptest.NewRequest(method, path, body)
	req.RemoteAddr = "192.0.2.10:40000"
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if c[0] != "" {
		req.SetBasicAuth(c[0], c[1])
	}
	rec := httptest.NewRecorder()
	e.api.ServeHTTP(rec, req)
	res := result{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	e.validate(method, path, raw, res)
	return res
}

// validate checks a response against the document's description of the
// operation (status, headers, body schema).
func (e *env) validate(method, path string, raw []byte, res result) {
	e.t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	route, params, err := e.router.FindRoute(req)
	if err != nil {
		if res.status != http.StatusNotFound && res.status != http.StatusMethodNotAllowed {
			e.t.Errorf("%s %s answered %d but is not in the document: %v", method, path, res.status, err)
		}
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status: res.status, Header: res.header, Body: io.NopCloser(bytes.NewReader(res.body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		e.t.Errorf("%s %s → %d does not match the document: %v\nbody: %s", method, path, res.status, err, res.body)
	}
}

func (e *env) expect(res result, status int, code, what string) result {
	e.t.Helper()
	if res.status != status || (code != "" && res.code() != code) {
		e.t.Errorf("%s: %d %s, want %d %s", what, res.status, res.body, status, code)
	}
	return res
}

func (e *env) user(name string, project string, role auth.Role) creds {
	e.t.Helper()
	e.expect(e.do(admin, "POST", "/api/v1/users", UserRequest{Name: name, Password: name + "-password"}), 201, "", "create "+name)
	if project != "" {
		e.expect(e.do(admin, "PUT", "/api/v1/projects/"+project+"/members/"+name, MemberRequest{Role: role}), 200, "", "add "+name)
	}
	return creds{name, name + "-password"}
}

func TestUsers(t *testing.T) {
	e := newEnv(t)
	alice := e.user("alice", "", "")
	e.expect(e.do(anon, "GET", "/api/v1/users", nil), 401, "UNAUTHORIZED", "anonymous list")
	r := e.expect(e.do(creds{"admin", "wrong"}, "GET", "/api/v1/users", nil), 401, "UNAUTHORIZED", "bad password")
	if r.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	e.expect(e.do(alice, "GET", "/api/v1/users", nil), 403, "DENIED", "non-admin list")
	var users []auth.User
	e.expect(e.do(admin, "GET", "/api/v1/users", nil), 200, "", "admin list").decode(t, &users)
	if len(users) != 2 || users[0].Name != "admin" || !users[0].Admin || users[1].Name != "alice" {
		t.Errorf("users = %+v", users)
	}
	if bytes.Contains(e.do(admin, "GET", "/api/v1/users/alice", nil).body, []byte("$2a$")) {
		t.Error("a password hash left the server")
	}
	var me auth.Principal
	e.expect(e.do(alice, "GET", "/api/v1/me", nil), 200, "", "me").decode(t, &me)
	if me.Name != "alice" || me.Admin {
		t.Errorf("me = %+v", me)
	}
	e.expect(e.do(alice, "GET", "/api/v1/users/alice", nil), 200, "", "self")
	e.expect(e.do(alice, "GET", "/api/v1/users/admin", nil), 403, "DENIED", "another user")
	e.expect(e.do(alice, "POST", "/api/v1/users", UserRequest{Name: "mallory", Password: "12345678"}), 403, "DENIED", "non-admin create")
	e.expect(e.do(admin, "POST", "/api/v1/users", UserRequest{Name: "alice", Password: "12345678"}), 409, "CONFLICT", "duplicate")
	for name, body := range map[string]any{
		"short password":  UserRequest{Name: "bob", Password: "short"},
		"long password":   UserRequest{Name: "bob", Password: strings.Repeat("p", 73)},
		"bad name":        UserRequest{Name: "Bob!", Password: "12345678"},
		"robot-like name": UserRequest{Name: "robot$bob", Password: "12345678"},
		"bad CIDR":        UserRequest{Name: "bob", Password: "12345678", AllowedCIDRs: []string{"10.0.0.0/33"}},
		"unknown field":   `{"name":"bob","password":"12345678","root":true}`,
		"trailing data":   `{"name":"bob","password":"12345678"} {}`,
		"not JSON":        `name=bob`,
	} {
		e.expect(e.do(admin, "POST", "/api/v1/users", body), 400, "INVALID", name)
	}
	// A user changes its own password, nothing else.
	e.expect(e.do(alice, "PATCH", "/api/v1/users/alice", map[string]any{"admin": true}), 403, "DENIED", "self-promotion")
	e.expect(e.do(alice, "PATCH", "/api/v1/users/alice", map[string]any{"password": "new-password"}), 200, "", "own password")
	e.expect(e.do(alice, "GET", "/api/v1/me", nil), 401, "UNAUTHORIZED", "old password")
	alice[1] = "new-password"
	e.expect(e.do(alice, "GET", "/api/v1/me", nil), 200, "", "new password")
	// The last administrator stays.
	e.expect(e.do(admin, "PATCH", "/api/v1/users/admin", map[string]any{"admin": false}), 400, "INVALID", "demote the last admin")
	e.expect(e.do(admin, "PATCH", "/api/v1/users/admin", map[string]any{"disabled": true}), 400, "INVALID", "disable the last admin")
	e.expect(e.do(admin, "DELETE", "/api/v1/users/admin", nil), 400, "INVALID", "delete the last admin")
	e.expect(e.do(admin, "PATCH", "/api/v1/users/alice", map[string]any{"disabled": true}), 200, "", "disable alice")
	e.expect(e.do(alice, "GET", "/api/v1/me", nil), 401, "UNAUTHORIZED", "disabled user")
	e.expect(e.do(admin, "DELETE", "/api/v1/users/alice", nil), 204, "", "delete alice")
	e.expect(e.do(admin, "DELETE", "/api/v1/users/alice", nil), 404, "NOT_FOUND", "delete again")
}

func TestProjectsAndMembers(t *testing.T) {
	e := newEnv(t)
	e.expect(e.do(admin, "POST", "/api/v1/projects", ProjectRequest{Name: "team-a"}), 201, "", "create team-a")
	e.expect(e.do(admin, "POST", "/api/v1/projects", ProjectRequest{Name: "team-a"}), 409, "CONFLICT", "duplicate project")
	e.expect(e.do(admin, "POST", "/api/v1/projects", ProjectRequest{Name: "Team_A/x"}), 400, "INVALID", "bad project name")
	alice := e.user("alice", "team-a", auth.ProjectAdmin)
	guest := e.user("gus", "team-a", auth.Guest)
	limited := e.user("lim", "team-a", auth.LimitedGuest)
	outsider := e.user("olga", "", "")

	var list []auth.Project
	e.expect(e.do(anon, "GET", "/api/v1/projects", nil), 200, "", "anonymous list").decode(t, &list)
	if len(list) != 1 || list[0].Name != "library" {
		t.Errorf("anonymous sees %+v, want only the public library", list)
	}
	e.expect(e.do(outsider, "GET", "/api/v1/projects", nil), 200, "", "outsider list").decode(t, &list)
	if len(list) != 1 {
		t.Errorf("outsider sees %+v", list)
	}
	e.expect(e.do(limited, "GET", "/api/v1/projects", nil), 200, "", "member list").decode(t, &list)
	if len(list) != 2 {
		t.Errorf("member sees %+v", list)
	}
	// A private project looks missing to outsiders, in every answer.
	for _, p := range []string{"team-a", "no-such-project"} {
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/api/v1/projects/" + p, nil},
			{"PATCH", "/api/v1/projects/" + p, map[string]any{"public": true}},
			{"DELETE", "/api/v1/projects/" + p, nil},
			{"GET", "/api/v1/projects/" + p + "/members", nil},
			{"PUT", "/api/v1/projects/" + p + "/members/olga", MemberRequest{Role: auth.Developer}},
			{"GET", "/api/v1/robots?project=" + p, nil},
			{"GET", "/api/v1/audit?project=" + p, nil},
		} {
			r := e.do(outsider, c.method, c.path, c.body)
			if r.status != 404 || !strings.Contains(string(r.body), "project "+p+" not found") {
				t.Errorf("outsider %s %s = %d %s, want the not-found answer", c.method, c.path, r.status, r.body)
			}
		}
	}
	var members []auth.Member
	e.expect(e.do(guest, "GET", "/api/v1/projects/team-a/members", nil), 200, "", "guest reads members").decode(t, &members)
	if len(members) != 4 {
		t.Errorf("members = %+v", members)
	}
	e.expect(e.do(limited, "GET", "/api/v1/projects/team-a/members", nil), 403, "DENIED", "limited guest reads members")
	e.expect(e.do(guest, "PUT", "/api/v1/projects/team-a/members/olga", MemberRequest{Role: auth.Guest}), 403, "DENIED", "guest adds a member")
	e.expect(e.do(alice, "PUT", "/api/v1/projects/team-a/members/olga", MemberRequest{Role: "owner"}), 400, "INVALID", "unknown role")
	e.expect(e.do(alice, "PUT", "/api/v1/projects/team-a/members/nobody", MemberRequest{Role: auth.Guest}), 404, "NOT_FOUND", "missing user")
	e.expect(e.do(alice, "PUT", "/api/v1/projects/team-a/members/olga", MemberRequest{Role: auth.Developer}), 200, "", "project admin adds a member")
	e.expect(e.do(outsider, "GET", "/api/v1/projects/team-a", nil), 200, "", "new member sees the project")
	e.expect(e.do(alice, "DELETE", "/api/v1/projects/team-a/members/olga", nil), 204, "", "remove member")
	e.expect(e.do(alice, "DELETE", "/api/v1/projects/team-a/members/olga", nil), 404, "NOT_FOUND", "remove again")
	e.expect(e.do(guest, "PATCH", "/api/v1/projects/team-a", map[string]any{"public": true}), 403, "DENIED", "guest changes settings")
	var p auth.Project
	e.expect(e.do(alice, "PATCH", "/api/v1/projects/team-a", map[string]any{"public": true}), 200, "", "make public").decode(t, &p)
	if !p.Public {
		t.Errorf("project after update = %+v", p)
	}
	e.expect(e.do(anon, "GET", "/api/v1/projects/team-a", nil), 200, "", "anonymous reads a public project")
	e.expect(e.do(outsider, "POST", "/api/v1/projects", ProjectRequest{Name: "mine"}), 403, "DENIED", "user creates a project")
	e.expect(e.do(alice, "DELETE", "/api/v1/projects/team-a", nil), 204, "", "delete project")
	e.expect(e.do(alice, "GET", "/api/v1/projects/team-a", nil), 404, "NOT_FOUND", "deleted project")

	open := newEnv(t, func(_ *auth.Config, o *Options) { o.AutoCreateProjects = true })
	bob := open.user("bob", "", "")
	open.expect(open.do(bob, "POST", "/api/v1/projects", ProjectRequest{Name: "bobs"}), 201, "", "auto-creation open to users")
	open.expect(open.do(bob, "GET", "/api/v1/projects/bobs/members", nil), 200, "", "creator is a member")
}

func TestDeleteProjectWithRepositories(t *testing.T) {
	e := newEnv(t, func(c *auth.Config, _ *Options) {
		c.HasRepositories = func(_ context.Context, p string) (bool, error) { return p == "full", nil }
	})
	e.expect(e.do(admin, "POST", "/api/v1/projects", ProjectRequest{Name: "full"}), 201, "", "create")
	e.expect(e.do(admin, "DELETE", "/api/v1/projects/full", nil), 409, "CONFLICT", "delete a project with repositories")
}

func TestRobots(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"team-a", "team-b"} {
		e.expect(e.do(admin, "POST", "/api/v1/projects", ProjectRequest{Name: p}), 201, "", "create "+p)
	}
	alice := e.user("alice", "team-a", auth.ProjectAdmin)
	dev := e.user("dev", "team-a", auth.Developer)
	perm := func(project string, actions ...auth.Action) []auth.RobotPermission {
		return []auth.RobotPermission{{Project: project, Actions: actions}}
	}
	var created RobotCreated
	e.expect(e.do(alice, "POST", "/api/v1/robots", RobotRequest{Name: "ci", Permissions: perm("team-a", auth.Push, auth.Pull), ExpiresIn: "24h"}),
		201, "", "project admin creates a robot").decode(t, &created)
	if created.Robot.Name != "robot$ci" || !strings.HasPrefix(created.Secret, "bsr_") || len(created.Secret) < 40 {
		t.Errorf("created = %+v", created)
	}
	if got := created.Robot.Permissions[0].Actions; !slices.Equal(got, []auth.Action{auth.Pull, auth.Push}) {
		t.Errorf("actions = %v, want them in the table's order", got)
	}
	if time.Until(created.Robot.ExpiresAt) < 23*time.Hour {
		t.Errorf("expires at %v", created.Robot.ExpiresAt)
	}
	r := e.do(alice, "GET", "/api/v1/robots/robot$ci", nil)
	if r.status != 200 || bytes.Contains(r.body, []byte(created.Secret)) || bytes.Contains(r.body, []byte("secret")) {
		t.Errorf("GET robot = %d %s: the secret is shown once only", r.status, r.body)
	}
	// The robot logs in with its secret.
	robot := creds{"robot$ci", created.Secret}
	e.expect(e.do(robot, "GET", "/api/v1/me", nil), 200, "", "robot login")
	e.expect(e.do(robot, "POST", "/api/v1/robots", RobotRequest{Name: "child", Permissions: perm("team-a", auth.Pull)}), 403, "DENIED", "robot creates a robot")
	for name, req := range map[string]RobotRequest{
		"another project":   {Name: "x", Permissions: perm("team-b", auth.Pull)},
		"every project":     {Name: "x", Permissions: perm(auth.AllProjects, auth.Pull)},
		"missing project":   {Name: "x", Permissions: perm("team-z", auth.Pull)},
		"both team-a and b": {Name: "x", Permissions: append(perm("team-a", auth.Pull), perm("team-b", auth.Pull)...)},
	} {
		e.expect(e.do(alice, "POST", "/api/v1/robots", req), 403, "DENIED", "project admin: "+name)
	}
	e.expect(e.do(dev, "POST", "/api/v1/robots", RobotRequest{Name: "x", Permissions: perm("team-a", auth.Pull)}), 403, "DENIED", "developer creates a robot")
	for name, req := range map[string]any{
		"management action": RobotRequest{Name: "x", Permissions: perm("team-a", auth.ManageMembers)},
		"no permissions":    RobotRequest{Name: "x"},
		"no actions":        RobotRequest{Name: "x", Permissions: perm("team-a")},
		"expired":           map[string]any{"name": "x", "permissions": perm("team-a", auth.Pull), "expires_at": "2001-01-01T00:00:00Z"},
		"bad duration":      RobotRequest{Name: "x", Permissions: perm("team-a", auth.Pull), ExpiresIn: "soon"},
		"bad name":          RobotRequest{Name: "X Y", Permissions: perm("team-a", auth.Pull)},
		// A permission binds the project that exists when it is granted;
		// one for a missing project would go to whoever creates it.
		"missing project": RobotRequest{Name: "x", Permissions: perm("team-z", auth.Pull)},
	} {
		e.expect(e.do(admin, "POST", "/api/v1/robots", req), 400, "INVALID", name)
	}
	e.expect(e.do(admin, "POST", "/api/v1/robots", RobotRequest{Name: "ci", Permissions: perm("team-a", auth.Pull)}), 409, "CONFLICT", "duplicate robot")
	e.expect(e.do(admin, "POST", "/api/v1/robots", RobotRequest{Name: "global", Permissions: perm(auth.AllProjects, auth.Pull)}), 201, "", "admin creates a global robot")
	var robots []auth.Robot
	e.expect(e.do(alice, "GET", "/api/v1/robots?project=team-a", nil), 200, "", "list team-a robots").decode(t, &robots)
	if len(robots) != 1 || robots[0].Name != "robot$ci" {
		t.Errorf("team-a robots = %+v", robots)
	}
	e.expect(e.do(alice, "GET", "/api/v1/robots", nil), 403, "DENIED", "project admin lists every robot")
	e.expect(e.do(admin, "GET", "/api/v1/robots", nil), 200, "", "admin lists every robot").decode(t, &robots)
	if len(robots) != 2 {
		t.Errorf("all robots = %+v", robots)
	}
	e.expect(e.do(alice, "GET", "/api/v1/robots/robot$global", nil), 404, "NOT_FOUND", "project admin reads a global robot")
	e.expect(e.do(alice, "POST", "/api/v1/robots/robot$ci/revoke", nil), 200, "", "revoke")
	e.expect(e.do(robot, "GET", "/api/v1/me", nil), 401, "UNAUTHORIZED", "revoked robot")
	e.expect(e.do(alice, "DELETE", "/api/v1/robots/robot$ci", nil), 204, "", "delete")
	e.expect(e.do(alice, "DELETE", "/api/v1/robots/robot$ci", nil), 404, "NOT_FOUND", "delete again")
}

func TestAuditQueryAndVerify(t *testing.T) {
	e := newEnv(t)
	e.expect(e.do(admin, "POST", "/api/v1/projects", ProjectRequest{Name: "team-a"}), 201, "", "create")
	e.expect(e.do(admin, "POST", "/api/v1/projects", ProjectRequest{Name: "team-b"}), 201, "", "create")
	guest := e.user("gus", "team-a", auth.Guest)
	limited := e.user("lim", "team-a", auth.LimitedGuest)
	e.expect(e.do(guest, "PUT", "/api/v1/projects/team-a/members/lim", MemberRequest{Role: auth.Developer}), 403, "DENIED", "denied change")
	e.do(creds{"gus", "wrong"}, "GET", "/api/v1/me", nil)

	var page AuditPage
	e.expect(e.do(admin, "GET", "/api/v1/audit?project=team-a", nil), 200, "", "admin query").decode(t, &page)
	var actions []string
	for _, en := range page.Entries {
		actions = append(actions, en.Action+"/"+string(en.Result))
	}
	want := []string{"member.put/denied", "member.put/success", "member.put/success", "project.create/success"}
	if !slices.Equal(actions, want) {
		t.Errorf("team-a entries = %v, want %v", actions, want)
	}
	if page.Entries[0].Actor != "gus" || page.Entries[0].SourceIP != "192.0.2.10" {
		t.Errorf("denied entry = %+v", page.Entries[0])
	}
	e.expect(e.do(admin, "GET", "/api/v1/audit?action=login&result=failure", nil), 200, "", "failed logins").decode(t, &page)
	if len(page.Entries) != 1 || page.Entries[0].Actor != "gus" {
		t.Errorf("failed logins = %+v", page.Entries)
	}
	e.expect(e.do(admin, "GET", "/api/v1/audit?limit=2", nil), 200, "", "paged").decode(t, &page)
	if len(page.Entries) != 2 || page.NextBefore != page.Entries[1].Seq {
		t.Errorf("page = %+v", page)
	}
	var older AuditPage
	e.expect(e.do(admin, "GET", "/api/v1/audit?limit=2&before="+itoa(page.NextBefore), nil), 200, "", "next page").decode(t, &older)
	if len(older.Entries) != 2 || older.Entries[0].Seq != page.NextBefore-1 {
		t.Errorf("next page = %+v", older)
	}
	since := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	e.expect(e.do(admin, "GET", "/api/v1/audit?since="+since, nil), 200, "", "future").decode(t, &page)
	if len(page.Entries) != 0 {
		t.Errorf("entries from the future = %+v", page.Entries)
	}
	e.expect(e.do(guest, "GET", "/api/v1/audit?project=team-a", nil), 200, "", "guest reads its project's log")
	e.expect(e.do(guest, "GET", "/api/v1/audit", nil), 403, "DENIED", "guest reads the whole log")
	e.expect(e.do(limited, "GET", "/api/v1/audit?project=team-a", nil), 403, "DENIED", "limited guest reads the log")
	e.expect(e.do(guest, "GET", "/api/v1/audit?project=team-b", nil), 404, "NOT_FOUND", "guest reads another project's log")
	for _, q := range []string{"since=yesterday", "limit=0", "before=-1", "result=maybe"} {
		e.expect(e.do(admin, "GET", "/api/v1/audit?"+q, nil), 400, "INVALID", q)
	}
	var rep VerifyReport
	e.expect(e.do(admin, "GET", "/api/v1/audit/verify", nil), 200, "", "verify").decode(t, &rep)
	if !rep.OK || rep.Entries < 6 {
		t.Errorf("verify = %+v", rep)
	}
	e.expect(e.do(guest, "GET", "/api/v1/audit/verify", nil), 403, "DENIED", "non-admin verify")
}

func TestThrottledLogins(t *testing.T) {
	e := newEnv(t, func(c *auth.Config, _ *Options) { c.MaxFailuresPerAccount = 3 })
	for range 3 {
		e.expect(e.do(creds{"admin", "wrong"}, "GET", "/api/v1/me", nil), 401, "UNAUTHORIZED", "wrong password")
	}
	r := e.expect(e.do(admin, "GET", "/api/v1/me", nil), 429, "TOOMANYREQUESTS", "right password while throttled")
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}

func TestUnknownEndpoint(t *testing.T) {
	e := newEnv(t)
	e.expect(e.do(admin, "GET", "/api/v1/nothing", nil), 404, "NOT_FOUND", "unknown endpoint")
	r := e.expect(e.do(admin, "PUT", "/api/v1/users", nil), 405, "INVALID", "wrong method")
	if got := r.header.Get("Allow"); got != "GET, POST" {
		t.Errorf("Allow = %q", got)
	}
	r = e.expect(e.do(anon, "GET", "/api/v1/openapi.json", nil), 200, "", "document")
	if !bytes.Equal(r.body, OpenAPI()) {
		t.Error("served document differs from the embedded one")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestBrowserRequests sends every request that changes something as a page
// on another site could make an administrator's browser send it: with the
// origin of another site, marked cross-site, or with a body that is not
// JSON (an HTML form's). Each is refused before it is authenticated and
// changes nothing; the same requests from the server's own origin, or
// from a client that is not a browser, are served.
func TestBrowserRequests(t *testing.T) {
	e := newEnv(t)
	e.expect(e.do(admin, "POST", "/api/v1/projects", ProjectRequest{Name: "team-a"}), 201, "", "create team-a")
	e.user("alice", "team-a", auth.Developer)
	e.expect(e.do(admin, "POST", "/api/v1/robots", RobotRequest{Name: "x", Permissions: []auth.RobotPermission{{Project: "team-a", Actions: []auth.Action{auth.Pull}}}}), 201, "", "create robot")
	fill := strings.NewReplacer("{name}", "alice", "{project}", "team-a", "{user}", "alice")
	var changing []route
	for _, rt := range (&API{}).routes() {
		if rt.method != "GET" {
			if strings.HasPrefix(rt.path, "/robots/") {
				rt.path = strings.Replace(rt.path, "{name}", "robot$x", 1)
			}
			rt.path = Prefix + fill.Replace(rt.path)
			changing = append(changing, rt)
		}
	}
	if len(changing) < 10 {
		t.Fatalf("only %d routes change something: %v", len(changing), changing)
	}
	body := []byte(`{}`)
	for _, rt := range changing {
		for _, tc := range []struct {
			name    string
			body    io.Reader
			headers []string
			status  int
		}{
			{"another origin", bytes.NewReader(body), []string{"Content-Type", "application/json", "Origin", "https://evil.example"}, 403},
			{"another port", bytes.NewReader(body), []string{"Content-Type", "application/json", "Origin", "http://example.com:8080"}, 403},
			{"opaque origin", bytes.NewReader(body), []string{"Content-Type", "application/json", "Origin", "null"}, 403},
			{"cross-site fetch", bytes.NewReader(body), []string{"Content-Type", "application/json", "Sec-Fetch-Site", "cross-site"}, 403},
			{"no content type", bytes.NewReader(body), nil, 415},
			{"a form", bytes.NewReader(body), []string{"Content-Type", "application/x-www-form-urlencoded"}, 415},
			{"text", bytes.NewReader(body), []string{"Content-Type", "text/plain"}, 415},
			{"text of unknown length", io.NopCloser(bytes.NewReader(body)), []string{"Content-Type", "text/plain"}, 415},
		} {
			r := e.doRaw(admin, rt.method, rt.path, tc.body, body, tc.headers...)
			want := map[int]string{403: "cross-site request refused", 415: "application/json"}[tc.status]
			if r.status != tc.status || !strings.Contains(string(r.body), want) {
				t.Errorf("%s %s, %s: %d %s, want %d %q", rt.method, rt.path, tc.name, r.status, r.body, tc.status, want)
			}
		}
	}
	// Nothing changed, and no refusal was counted as a failed login.
	if _, err := e.auth.User("alice"); err != nil {
		t.Errorf("alice: %v", err)
	}
	if p, err := e.auth.Project("team-a"); err != nil || p.Public {
		t.Errorf("team-a = %+v, %v", p, err)
	}
	if r, err := e.auth.Robot("robot$x"); err != nil || r.Revoked {
		t.Errorf("robot$x = %+v, %v", r, err)
	}
	e.log.Flush(context.Background())
	if failed, _ := e.store.Query(context.Background(), audit.Filter{Action: audit.ActionLogin, Result: audit.Failure}); len(failed) != 0 {
		t.Errorf("refused browser requests were logins: %+v", failed)
	}
	// From the server's own origin (any case, the default port), or with a
	// JSON type that has parameters, the request is served.
	for _, h := range [][]string{
		{"Content-Type", "application/json", "Origin", "http://example.com", "Sec-Fetch-Site", "same-origin"},
		{"Content-Type", "application/json; charset=utf-8", "Origin", "HTTP://Example.COM:80"},
	} {
		raw := []byte(`{"public":true}`)
		e.expect(e.doRaw(admin, "PATCH", "/api/v1/projects/team-a", bytes.NewReader(raw), raw, h...), 200, "", fmt.Sprintf("same origin %v", h))
	}
	e.expect(e.doRaw(admin, "POST", "/api/v1/robots/robot$x/revoke", nil, nil), 200, "", "a bodyless POST without a content type")
	// Reading is not guarded: a page elsewhere cannot see the answer.
	e.expect(e.doRaw(admin, "GET", "/api/v1/projects", nil, nil, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"), 200, "", "cross-site read")
}
