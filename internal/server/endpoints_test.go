package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/api"
	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/reports"
)

// endpointRule says who may call an endpoint: everyone, anyone signed in,
// system administrators, or those whose role in the path's project
// permits an action.
type endpointRule struct {
	anyone, signedIn, admin bool
	action                  auth.Action
	ok                      int // the status of an allowed call
}

// TestEndpointMatrix calls every API endpoint of the scanning, artifact,
// vulnerability-database and webhook domains as every role, a system
// administrator, a signed-in user of no project and an anonymous caller,
// on the caller's own private project and on another: each call is
// allowed exactly when the rule (the permission table, for project
// endpoints) says so, and a refusal is 401 for the anonymous, 403 in a
// project the caller is in, and 404 in one it is not (a private project
// you are not in is not there). The account and project endpoints are
// proved by TestPermissionMatrix and internal/api's tests; every route is
// claimed by one or the other.
func TestEndpointMatrix(t *testing.T) {
	feed := t.TempDir()
	master := masterKeyFile(t)
	a := startAuthServer(t, func(c *Config) {
		c.Scan.DBSources = []string{feed}
		c.Scan.DBUpdateInterval = 0
		c.Keys.MasterKey = "file:" + master
	})
	rules := map[string]endpointRule{
		"GET /api/v1/projects/{project}/repositories":                                                    {action: auth.Pull, ok: 200},
		"GET /api/v1/projects/{project}/repositories/{repository}/artifacts":                             {action: auth.Pull, ok: 200},
		"GET /api/v1/projects/{project}/repositories/{repository}/artifacts/{reference}/vulnerabilities": {action: auth.Pull, ok: 200},
		"GET /api/v1/projects/{project}/repositories/{repository}/artifacts/{reference}/sbom":            {action: auth.Pull, ok: 200},
		"POST /api/v1/projects/{project}/repositories/{repository}/artifacts/{reference}/scan":           {action: auth.Push, ok: 202},
		"DELETE /api/v1/projects/{project}/repositories/{repository}":                                    {action: auth.Delete, ok: 200},
		"GET /api/v1/projects/{project}/repositories/{repository}/artifacts/{reference}":                 {action: auth.Pull, ok: 200},
		"GET /api/v1/projects/{project}/repositories/{repository}/artifacts/{reference}/signatures":      {action: auth.Pull, ok: 200},
		"GET /api/v1/projects/{project}/repositories/{repository}/artifacts/{reference}/policy":          {action: auth.Pull, ok: 200},
		// Everyone may ask; the answer holds only what the caller may pull
		// (TestVulnerabilitySearchVisibility).
		"GET /api/v1/vulnerabilities/{id}/artifacts":                                      {anyone: true, ok: 200},
		"GET /api/v1/projects/{project}/webhooks":                                         {action: auth.ManageProject, ok: 200},
		"POST /api/v1/projects/{project}/webhooks":                                        {action: auth.ManageProject, ok: 201},
		"GET /api/v1/projects/{project}/webhooks/{id}":                                    {action: auth.ManageProject, ok: 200},
		"DELETE /api/v1/projects/{project}/webhooks/{id}":                                 {action: auth.ManageProject, ok: 204},
		"GET /api/v1/projects/{project}/webhooks/{id}/deliveries":                         {action: auth.ManageProject, ok: 200},
		"GET /api/v1/projects/{project}/webhooks/{id}/dead-letters":                       {action: auth.ManageProject, ok: 200},
		"POST /api/v1/projects/{project}/webhooks/{id}/dead-letters/{delivery}/redeliver": {action: auth.ManageProject, ok: 404},
		"POST /api/v1/scan-all":                                                           {admin: true, ok: 202},
		"POST /api/v1/vulndb/update":                                                      {admin: true, ok: 202},
		"GET /api/v1/vulndb":                                                              {signedIn: true, ok: 200},
		"GET /api/v1/openapi.json":                                                        {anyone: true, ok: 200},
		"GET /api/v1/me":                                                                  {signedIn: true, ok: 200},
		// Key custody: public halves to readers, changes to project
		// administrators, backups to system administrators; a private
		// key to nobody (the allowed answer is the refusal).
		"GET /api/v1/projects/{project}/keys":                                                                 {action: auth.Pull, ok: 200},
		"POST /api/v1/projects/{project}/keys":                                                                {action: auth.ManageProject, ok: 201},
		"POST /api/v1/projects/{project}/keys/{purpose}/rotate":                                               {action: auth.ManageProject, ok: 200},
		"GET /api/v1/projects/{project}/keys/{purpose}/private":                                               {action: auth.ManageProject, ok: 403},
		"GET /api/v1/projects/{project}/stages/{stage}":                                                       {action: auth.Pull, ok: 200},
		"PUT /api/v1/projects/{project}/stages/{stage}":                                                       {action: auth.ManageProject, ok: 200},
		"DELETE /api/v1/projects/{project}/stages/{stage}":                                                    {action: auth.ManageProject, ok: 204},
		"GET /api/v1/projects/{project}/repositories/{repository}/artifacts/{reference}/approvals":            {action: auth.Pull, ok: 200},
		"POST /api/v1/projects/{project}/repositories/{repository}/artifacts/{reference}/approvals/{stage}":   {action: auth.ApproveStage, ok: 200},
		"DELETE /api/v1/projects/{project}/repositories/{repository}/artifacts/{reference}/approvals/{stage}": {action: auth.ApproveStage, ok: 200},
		"POST /api/v1/keys/backup":                                                                            {admin: true, ok: 200},
		"POST /api/v1/keys/restore":                                                                           {admin: true, ok: 200},
		"GET /api/v1/projects/{project}/policy":                                                               {action: auth.ReadMembers, ok: 200},
		"PUT /api/v1/projects/{project}/policy":                                                               {action: auth.ManageProject, ok: 200},
		"DELETE /api/v1/projects/{project}/policy":                                                            {action: auth.ManageProject, ok: 204},
	}
	// Proved elsewhere: the project-level ones by TestPermissionMatrix's
	// probes of the permission table, the rest by internal/api's tests.
	elsewhere := []string{"/users", "/robots", "/audit", "/members", "POST /api/v1/projects", "GET /api/v1/projects",
		"PATCH /api/v1/projects/{project}", "DELETE /api/v1/projects/{project}"}
	for _, ep := range api.Endpoints() {
		if _, ok := rules[ep]; ok {
			continue
		}
		covered := false
		for _, e := range elsewhere {
			if strings.Contains(ep, e) {
				covered = true
			}
		}
		if !covered {
			t.Errorf("endpoint %s is in no permission test", ep)
		}
	}

	roles := append([]auth.Role{}, auth.Roles...)
	const sysadmin, outsider, anonymous = auth.Role("system-admin"), auth.Role("no-project"), auth.Role("anonymous")
	roles = append(roles, sysadmin, outsider, anonymous)
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "other"}), 201, "create other")
	type subject struct {
		role  auth.Role
		creds []string
		own   string
	}
	seed := func(project string) {
		// A scan key and a scan rule, for the key and stage endpoints.
		a.expect(a.api(adminCreds, "POST", "/projects/"+project+"/keys", map[string]any{"purpose": "scan"}), 201, "key in "+project)
		a.expect(a.api(adminCreds, "PUT", "/projects/"+project+"/stages/scan", map[string]any{"key": "scan", "fail_on": "critical"}), 200, "rule in "+project)
		// And a stage people approve, for the approval endpoints.
		a.expect(a.api(adminCreds, "POST", "/projects/"+project+"/keys", map[string]any{"purpose": "staging"}), 201, "staging key in "+project)
		a.expect(a.api(adminCreds, "PUT", "/projects/"+project+"/stages/staging", map[string]any{"key": "staging"}), 200, "staging rule in "+project)
		img := makeImage("img-" + project)
		a.expect(a.push(project+"/app", "v1", img, adminCreds), 201, "seed "+project)
		// A stored report, as a finished scan leaves it.
		d := digest.Digest(img.digest())
		r := &match.Report{SchemaVersion: match.ReportSchemaVersion, Findings: []match.Finding{},
			Inventory: inventory.Inventory{Source: project + "/app@" + d.String(), Packages: []inventory.Package{}, Layers: []inventory.Layer{}}}
		if err := a.s.bg.reports.Put(context.Background(), d, reports.Scan{Status: reports.Done, FinishedAt: time.Now()}, r, nil, -1); err != nil {
			t.Fatal(err)
		}
	}
	seed("other")
	var subjects []subject
	for i, role := range roles {
		name, project := fmt.Sprintf("u%d", i), fmt.Sprintf("own%d", i)
		sub := subject{role: role, own: project}
		a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": project}), 201, "create "+project)
		seed(project)
		if role != anonymous {
			a.expect(a.api(adminCreds, "POST", "/users", map[string]any{"name": name, "password": name + "-password", "admin": role == sysadmin}), 201, "create "+name)
			sub.creds = basicAuth(name, name+"-password")
		}
		if role != sysadmin && role != outsider && role != anonymous {
			a.expect(a.api(adminCreds, "PUT", "/projects/"+project+"/members/"+name, map[string]any{"role": role}), 200, "member "+name)
		}
		subjects = append(subjects, sub)
	}
	// Every project has a webhook for the webhook endpoints to find.
	hooks := map[string]string{}
	newHook := func(project, url string) string {
		r := a.expect(a.api(adminCreds, "POST", "/projects/"+project+"/webhooks", map[string]any{"url": url, "events": []string{"dev.berth.scan.completed"}}), 201, "hook in "+project)
		var h struct{ ID int64 }
		if err := jsonUnmarshal(r.body, &h); err != nil {
			t.Fatal(err)
		}
		return strconv.FormatInt(h.ID, 10)
	}
	for _, p := range append([]string{"other"}, func() []string {
		var out []string
		for _, s := range subjects {
			out = append(out, s.own)
		}
		return out
	}()...) {
		hooks[p] = newHook(p, "https://hooks.invalid/"+p)
	}

	// keyBackup is the backup the matrix restores (forced, so every
	// allowed call succeeds and puts the seeded keys and rules back).
	var keyBackup string
	call := func(s subject, ep, project string, n int) answer {
		method, path, _ := strings.Cut(ep, " ")
		path = strings.TrimPrefix(path, "/api/v1")
		id := hooks[project]
		if method == "DELETE" && strings.HasSuffix(path, "{id}") {
			// Each delete gets a hook of its own, so every caller finds one.
			id = newHook(project, fmt.Sprintf("https://hooks.invalid/del-%d", n))
		}
		repo := "app"
		if method == "DELETE" && strings.HasSuffix(path, "{repository}") {
			// Each delete gets a repository of its own, so every caller
			// finds one and app stays for the other endpoints.
			repo = fmt.Sprintf("del-%d", n)
			a.expect(a.push(project+"/"+repo, "v1", makeImage(repo), adminCreds), 201, "seed "+project+"/"+repo)
		}
		stage := "scan"
		if strings.Contains(path, "/approvals/{stage}") {
			stage = "staging"
			if method == "DELETE" {
				// Every caller finds an approval to revoke.
				a.expect(a.api(adminCreds, "POST", strings.NewReplacer("{project}", project, "{repository}", repo, "{reference}", "v1",
					"{stage}", stage).Replace(path), nil), 200, "approve in "+project)
			}
		}
		r := strings.NewReplacer("{project}", project, "{repository}", repo, "{reference}", "v1", "{id}", id, "{delivery}", "none",
			"{purpose}", "scan", "{stage}", stage)
		var body any
		if method == "POST" && strings.HasSuffix(path, "/webhooks") {
			body = map[string]any{"url": fmt.Sprintf("https://hooks.invalid/new-%d", n), "events": []string{"dev.berth.scan.failed"}}
		}
		if strings.HasSuffix(path, "{project}/policy") {
			// JSON is YAML: a policy document as a JSON object.
			pol := map[string]any{"apiVersion": "berth.dev/v1", "kind": "ImagePolicy", "metadata": map[string]any{"name": "p"},
				"spec": map[string]any{"tags": map[string]any{"deny": []string{"latest"}}}}
			if method == "PUT" {
				body = pol
			} else {
				// Every caller finds a policy to read or delete.
				a.expect(a.api(adminCreds, "PUT", r.Replace(path), pol), 200, "policy in "+project)
			}
		}
		body = keyEndpointBody(a, keyBackup, method, path, project, n, body)
		return a.api(s.creds, method, r.Replace(path), body)
	}
	keyBackup = a.expect(a.api(adminCreds, "POST", "/keys/backup", map[string]any{"passphrase": matrixPassphrase}), 200, "backup").body
	// A public project's artifacts and reports are everyone's to read, not
	// to scan.
	a.expect(a.api(adminCreds, "PATCH", "/projects/other", map[string]any{"public": true}), 200, "make other public")
	for ep, rule := range rules {
		if rule.action != auth.Pull && rule.action != auth.Push {
			continue
		}
		want := rule.ok
		if rule.action == auth.Push {
			want = http.StatusUnauthorized
		}
		if got := call(subject{role: anonymous}, ep, "other", 0); got.status != want {
			t.Errorf("%s as anonymous in a public project: %d %s, want %d", ep, got.status, got.body, want)
		}
	}
	a.expect(a.api(adminCreds, "PATCH", "/projects/other", map[string]any{"public": false}), 200, "make other private again")

	n := 0
	for ep, rule := range rules {
		for _, s := range subjects {
			for _, where := range []string{"own", "other"} {
				n++
				project := s.own
				if where == "other" {
					project = "other"
				}
				var want bool
				switch {
				case rule.anyone:
					want = true
				case s.role == anonymous:
					want = false
				case rule.signedIn, s.role == sysadmin:
					want = true
				case rule.admin:
					want = false
				default:
					want = where == "own" && s.role != outsider && auth.Permits(s.role, rule.action)
				}
				got := call(s, ep, project, n)
				what := fmt.Sprintf("%s as %s in the %s project", ep, s.role, where)
				if want {
					if got.status != rule.ok {
						t.Errorf("%s: %d %s, want %d", what, got.status, got.body, rule.ok)
					}
					continue
				}
				refusal := http.StatusForbidden
				switch {
				case s.role == anonymous && rule.action == auth.Pull:
					// These serve anonymous callers in public projects; a
					// private project is not there for them.
					refusal = http.StatusNotFound
				case s.role == anonymous:
					refusal = http.StatusUnauthorized
				case !rule.admin && (where == "other" || s.role == outsider):
					refusal = http.StatusNotFound
				}
				if got.status != refusal {
					t.Errorf("%s: %d %s, want the refusal %d", what, got.status, got.body, refusal)
				}
			}
		}
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

const matrixPassphrase = "matrix test passphrase"

// keyEndpointBody gives the key and stage endpoints their bodies, and
// makes sure a stage rule is there for each call that reads or deletes one.
func keyEndpointBody(a *authServer, keyBackup, method, path, project string, n int, body any) any {
	switch {
	case strings.HasSuffix(path, "/keys") && method == "POST":
		return map[string]any{"purpose": fmt.Sprintf("p%d", n)}
	case strings.Contains(path, "/stages/"):
		rule := map[string]any{"key": "scan", "fail_on": "critical"}
		if method == "PUT" {
			return rule
		}
		a.expect(a.api(adminCreds, "PUT", "/projects/"+project+"/stages/scan", rule), 200, "rule in "+project)
	case path == "/keys/backup":
		return map[string]any{"passphrase": matrixPassphrase}
	case path == "/keys/restore":
		var b struct{ Backup string }
		json.Unmarshal([]byte(keyBackup), &b)
		return map[string]any{"backup": b.Backup, "passphrase": matrixPassphrase, "force": true}
	}
	return body
}

// masterKeyFile writes a fresh master key only its owner may read.
func masterKeyFile(t testing.TB) string {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	p := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(k)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
