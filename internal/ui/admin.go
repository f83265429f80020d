package ui

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/vulndb/live"
	"berth.dev/berth/internal/webhook"
)

func (u *UI) adminRoutes() {
	m := u.mux
	m.HandleFunc("GET "+Prefix+"/projects/{project}/settings", u.settings)
	m.HandleFunc("POST "+Prefix+"/projects/{project}/settings", u.saveSettings)
	m.HandleFunc("POST "+Prefix+"/projects/{project}/members", u.putMember)
	m.HandleFunc("POST "+Prefix+"/projects/{project}/members/{user}/remove", u.removeMember)
	m.HandleFunc("POST "+Prefix+"/projects/{project}/policy", u.putPolicy)
	m.HandleFunc("POST "+Prefix+"/projects/{project}/policy/delete", u.deletePolicy)
	m.HandleFunc("POST "+Prefix+"/projects/{project}/webhooks", u.createWebhook)
	m.HandleFunc("GET "+Prefix+"/projects/{project}/webhooks/{id}", u.webhook)
	m.HandleFunc("POST "+Prefix+"/projects/{project}/webhooks/{id}/delete", u.deleteWebhook)
	m.HandleFunc("GET "+Prefix+"/admin/users", u.users)
	m.HandleFunc("POST "+Prefix+"/admin/users", u.createUser)
	m.HandleFunc("GET "+Prefix+"/admin/robots", u.robots)
	m.HandleFunc("POST "+Prefix+"/admin/robots", u.createRobot)
	m.HandleFunc("GET "+Prefix+"/admin/vulndb", u.vulnDB)
	m.HandleFunc("POST "+Prefix+"/admin/vulndb/update", u.updateVulnDB)
	m.HandleFunc("GET "+Prefix+"/admin/audit", u.auditLog)
}

type settingsView struct {
	Project  auth.Project
	Members  []auth.Member
	Webhooks []webhook.Hook
	Roles    []auth.Role
	Events   []string
	// NoAccounts is set when authentication is off: no projects to
	// manage.
	NoAccounts bool
	// Policy is the project's policy as it was put; PolicyVersion its
	// version ("" when there is none). NoPolicies says the server
	// enforces none.
	Policy, PolicyVersion string
	NoPolicies            bool
}

var webhookEvents = []string{"dev.berth.artifact.pushed", "dev.berth.artifact.deleted", "dev.berth.artifact.signed",
	"dev.berth.scan.completed", "dev.berth.scan.failed", "dev.berth.vulnerabilities.new"}

func (u *UI) settings(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("project")
	v := settingsView{Roles: auth.Roles, Events: webhookEvents, NoAccounts: u.opts.Auth == nil}
	if err := u.call(r, "GET", apiPath("projects", name), nil, "", &v.Project); err != nil {
		u.fail(w, r, err)
		return
	}
	if !v.NoAccounts {
		if err := u.call(r, "GET", apiPath("projects", name, "members"), nil, "", &v.Members); err != nil {
			u.fail(w, r, err)
			return
		}
		if err := u.call(r, "GET", apiPath("projects", name, "webhooks"), nil, "", &v.Webhooks); err != nil {
			u.fail(w, r, err)
			return
		}
		raw, h, err := u.callRaw(r, "GET", apiPath("projects", name, "policy"), nil, "")
		var ae *apiError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
			v.NoPolicies = strings.Contains(ae.Message, "does not enforce")
		case err != nil:
			u.fail(w, r, err)
			return
		default:
			v.Policy, v.PolicyVersion = string(raw), strings.Trim(h.Get("ETag"), `"`)
		}
	}
	u.render(w, r, http.StatusOK, "settings", name+" settings", v)
}

func settingsURL(project string) string {
	return Prefix + "/projects/" + url.PathEscape(project) + "/settings"
}

func (u *UI) saveSettings(w http.ResponseWriter, r *http.Request) {
	csrf, ok := u.form(w, r)
	if !ok {
		return
	}
	project := r.PathValue("project")
	public, autoScan := r.PostForm.Get("public") == "on", r.PostForm.Get("auto_scan") == "on"
	if err := u.call(r, "PATCH", apiPath("projects", project), map[string]bool{"public": public, "auto_scan": autoScan}, csrf, nil); err != nil {
		u.fail(w, r, err)
		return
	}
	back(w, r, settingsURL(project), "Settings saved.")
}

func (u *UI) putPolicy(w http.ResponseWriter, r *http.Request) {
	csrf, ok := u.formUpTo(w, r, maxPolicyForm)
	if !ok {
		return
	}
	project := r.PathValue("project")
	doc := strings.ReplaceAll(r.PostForm.Get("policy"), "\r\n", "\n")
	if err := u.call(r, "PUT", apiPath("projects", project, "policy"), yamlBody(doc), csrf, nil); err != nil {
		u.fail(w, r, err)
		return
	}
	back(w, r, settingsURL(project), "Policy saved: it is enforced from the next pull.")
}

func (u *UI) deletePolicy(w http.ResponseWriter, r *http.Request) {
	csrf, ok := u.form(w, r)
	if !ok {
		return
	}
	project := r.PathValue("project")
	if err := u.call(r, "DELETE", apiPath("projects", project, "policy"), nil, csrf, nil); err != nil {
		u.fail(w, r, err)
		return
	}
	back(w, r, settingsURL(project), "Policy removed: every pull is served.")
}

func (u *UI) putMember(w http.ResponseWriter, r *http.Request) {
	csrf, ok := u.form(w, r)
	if !ok {
		return
	}
	project, user := r.PathValue("project"), strings.TrimSpace(r.PostForm.Get("user"))
	if err := u.call(r, "PUT", apiPath("projects", project, "members", user), map[string]string{"role": r.PostForm.Get("role")}, csrf, nil); err != nil {
		u.fail(w, r, err)
		return
	}
	back(w, r, settingsURL(project), "Member "+user+" saved.")
}

func (u *UI) removeMember(w http.ResponseWriter, r *http.Request) {
	csrf, ok := u.form(w, r)
	if !ok {
		return
	}
	project, user := r.PathValue("project"), r.PathValue("user")
	if err := u.call(r, "DELETE", apiPath("projects", project, "members", user), nil, csrf, nil); err != nil {
		u.fail(w, r, err)
		return
	}
	back(w, r, settingsURL(project), "Member "+user+" removed.")
}

func (u *UI) createWebhook(w http.ResponseWriter, r *http.Request) {
	csrf, ok := u.form(w, r)
	if !ok {
		return
	}
	project := r.PathValue("project")
	body := map[string]any{"url": strings.TrimSpace(r.PostForm.Get("url")), "events": r.PostForm["events"]}
	if s := r.PostForm.Get("secret"); s != "" {
		body["secret"] = s
	}
	if err := u.call(r, "POST", apiPath("projects", project, "webhooks"), body, csrf, nil); err != nil {
		u.fail(w, r, err)
		return
	}
	back(w, r, settingsURL(project), "Webhook added.")
}

type webhookView struct {
	Project     string
	Hook        webhook.Hook
	Deliveries  []webhook.Attempt
	DeadLetters []webhook.DeadLetter
}

func (u *UI) webhook(w http.ResponseWriter, r *http.Request) {
	project, id := r.PathValue("project"), r.PathValue("id")
	v := webhookView{Project: project}
	for _, c := range []struct {
		path string
		out  any
	}{
		{apiPath("projects", project, "webhooks", id), &v.Hook},
		{apiPath("projects", project, "webhooks", id, "deliveries") + "?limit=100", &v.Deliveries},
		{apiPath("projects", project, "webhooks", id, "dead-letters"), &v.DeadLetters},
	} {
		if err := u.call(r, "GET", c.path, nil, "", c.out); err != nil {
			u.fail(w, r, err)
			return
		}
	}
	u.render(w, r, http.StatusOK, "webhook", "Webhook "+id, v)
}

func (u *UI) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	csrf, ok := u.form(w, r)
	if !ok {
		return
	}
	project, id := r.PathValue("project"), r.PathValue("id")
	if err := u.call(r, "DELETE", apiPath("projects", project, "webhooks", id), nil, csrf, nil); err != nil {
		u.fail(w, r, err)
		return
	}
	back(w, r, settingsURL(project), "Webhook deleted.")
}

func (u *UI) users(w http.ResponseWriter, r *http.Request) {
	var users []auth.User
	if err := u.call(r, "GET", apiPath("users"), nil, "", &users); err != nil {
		u.fail(w, r, err)
		return
	}
	u.render(w, r, http.StatusOK, "users", "Users", users)
}

func (u *UI) createUser(w http.ResponseWriter, r *http.Request) {
	csrf, ok := u.form(w, r)
	if !ok {
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	body := map[string]any{"name": name, "password": r.PostForm.Get("password"), "admin": r.PostForm.Get("admin") == "on"}
	if err := u.call(r, "POST", apiPath("users"), body, csrf, nil); err != nil {
		u.fail(w, r, err)
		return
	}
	back(w, r, Prefix+"/admin/users", "User "+name+" created.")
}

type robotsView struct {
	Robots   []auth.Robot
	Projects []auth.Project
	// Created and Secret are shown once, right after creation.
	Created string
	Secret  string
}

func (u *UI) robotsView(r *http.Request) (robotsView, error) {
	var v robotsView
	if err := u.call(r, "GET", apiPath("robots"), nil, "", &v.Robots); err != nil {
		return v, err
	}
	err := u.call(r, "GET", apiPath("projects"), nil, "", &v.Projects)
	return v, err
}

func (u *UI) robots(w http.ResponseWriter, r *http.Request) {
	v, err := u.robotsView(r)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	u.render(w, r, http.StatusOK, "robots", "Robot accounts", v)
}

// createRobot shows the new robot's secret on the answer to the form
// itself, never in a URL or anything stored: it is shown once.
func (u *UI) createRobot(w http.ResponseWriter, r *http.Request) {
	csrf, ok := u.form(w, r)
	if !ok {
		return
	}
	actions := r.PostForm["actions"]
	body := map[string]any{"name": strings.TrimSpace(r.PostForm.Get("name")), "description": r.PostForm.Get("description"),
		"permissions": []map[string]any{{"project": r.PostForm.Get("project"), "actions": actions}}}
	if e := strings.TrimSpace(r.PostForm.Get("expires_in")); e != "" {
		body["expires_in"] = e
	}
	var created struct {
		Robot  auth.Robot `json:"robot"`
		Secret string     `json:"secret"`
	}
	if err := u.call(r, "POST", apiPath("robots"), body, csrf, &created); err != nil {
		u.fail(w, r, err)
		return
	}
	v, err := u.robotsView(r)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	v.Created, v.Secret = created.Robot.Name, created.Secret
	u.render(w, r, http.StatusOK, "robots", "Robot accounts", v)
}

type vulnDBView struct {
	Status     *live.Status
	NotScanned string
	Admin      bool
}

func (u *UI) vulnDB(w http.ResponseWriter, r *http.Request) {
	var v vulnDBView
	var st live.Status
	err := u.call(r, "GET", apiPath("vulndb"), nil, "", &st)
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		v.NotScanned = ae.Message
	case err != nil:
		u.fail(w, r, err)
		return
	default:
		v.Status = &st
	}
	v.Admin = u.opts.Auth == nil
	if p := u.sessionUser(r); p != nil {
		v.Admin = u.opts.Auth.IsAdmin(p)
	}
	u.render(w, r, http.StatusOK, "vulndb", "Vulnerability database", v)
}

func (u *UI) sessionUser(r *http.Request) *auth.Principal {
	if u.opts.Auth == nil {
		return nil
	}
	return u.opts.Auth.SessionPrincipal(r)
}

func (u *UI) updateVulnDB(w http.ResponseWriter, r *http.Request) {
	csrf, ok := u.form(w, r)
	if !ok {
		return
	}
	if err := u.call(r, "POST", apiPath("vulndb", "update"), nil, csrf, nil); err != nil {
		u.fail(w, r, err)
		return
	}
	back(w, r, Prefix+"/admin/vulndb", "Update queued.")
}

type auditView struct {
	Filter  map[string]string
	Entries []audit.Entry
	Next    string
	Verify  *auditVerify
}

type auditVerify struct {
	OK       bool  `json:"ok"`
	Entries  int64 `json:"entries"`
	First    int64 `json:"first"`
	Last     int64 `json:"last"`
	Problems []struct {
		Seq     int64  `json:"seq"`
		Message string `json:"message"`
	} `json:"problems"`
}

func (u *UI) auditLog(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := auditView{Filter: map[string]string{}}
	qs := url.Values{"limit": {"100"}}
	for _, k := range []string{"actor", "project", "action", "result", "before"} {
		if s := strings.TrimSpace(q.Get(k)); s != "" {
			v.Filter[k] = s
			qs.Set(k, s)
		}
	}
	var page struct {
		Entries    []audit.Entry `json:"entries"`
		NextBefore int64         `json:"next_before"`
	}
	if err := u.call(r, "GET", apiPath("audit")+"?"+qs.Encode(), nil, "", &page); err != nil {
		u.fail(w, r, err)
		return
	}
	v.Entries = page.Entries
	if page.NextBefore > 0 {
		qs.Set("before", strconv.FormatInt(page.NextBefore, 10))
		qs.Del("limit")
		v.Next = Prefix + "/admin/audit?" + qs.Encode()
	}
	if q.Get("verify") != "" {
		raw, _, err := u.callRaw(r, "GET", apiPath("audit", "verify"), nil, "")
		if err != nil {
			u.fail(w, r, err)
			return
		}
		v.Verify = &auditVerify{}
		if err := json.Unmarshal(raw, v.Verify); err != nil {
			u.fail(w, r, err)
			return
		}
	}
	u.render(w, r, http.StatusOK, "audit", "Audit log", v)
}
