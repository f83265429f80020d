package ui

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/internal/api"
	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/registry/access"
	"berth.dev/berth/internal/reports"
)

func (u *UI) routes() {
	m := u.mux
	m.HandleFunc("GET "+Prefix+"/static/", u.static)
	m.HandleFunc("GET "+Prefix+"/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"/projects", http.StatusFound)
	})
	m.HandleFunc("GET "+Prefix+"/login", u.loginPage)
	m.HandleFunc("POST "+Prefix+"/login", u.login)
	m.HandleFunc("POST "+Prefix+"/logout", u.logout)
	m.HandleFunc("GET "+Prefix+"/projects", u.projects)
	m.HandleFunc("GET "+Prefix+"/projects/{project}", u.project)
	m.HandleFunc("GET "+Prefix+"/projects/{project}/repositories/{repository}", u.repository)
	m.HandleFunc("GET "+Prefix+"/projects/{project}/repositories/{repository}/artifacts/{digest}", u.artifact)
	m.HandleFunc("POST "+Prefix+"/projects/{project}/repositories/{repository}/artifacts/{digest}/scan", u.scan)
	m.HandleFunc("POST "+Prefix+"/projects/{project}/repositories/{repository}/artifacts/{digest}/approve", u.approve)
	m.HandleFunc("POST "+Prefix+"/projects/{project}/repositories/{repository}/artifacts/{digest}/revoke", u.approve)
	m.HandleFunc("GET "+Prefix+"/vulnerabilities", u.vulnerabilities)
	u.adminRoutes()
	m.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		u.render(w, r, http.StatusNotFound, "error", "Not found", errorView{Status: 404, Message: "no such page: " + r.URL.Path})
	})
}

type loginView struct {
	Next  string
	Name  string
	Error string
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	if u.opts.Auth == nil {
		http.Redirect(w, r, Prefix+"/projects", http.StatusSeeOther)
		return
	}
	u.render(w, r, http.StatusOK, "login", "Log in", loginView{Next: localPath(r.URL.Query().Get("next"))})
}

func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	if u.opts.Auth == nil {
		http.Redirect(w, r, Prefix+"/projects", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil || !u.sameOrigin(r) {
		// Logging in from another site's form would sign the browser in
		// to an account the other site chose.
		u.render(w, r, http.StatusForbidden, "error", "Refused", errorView{Status: 403, Message: "refused: this login was sent from another site"})
		return
	}
	name, next := r.PostForm.Get("name"), localPath(r.PostForm.Get("next"))
	cookie, err := u.opts.Auth.StartSession(r.Context(), r, name, r.PostForm.Get("password"))
	if err != nil {
		status, msg := http.StatusUnauthorized, "Invalid username or password."
		var th *access.Throttle
		switch {
		case errors.As(err, &th):
			status, msg = http.StatusTooManyRequests, "Too many failed logins; try again later."
			w.Header().Set("Retry-After", th.RetryAfterSeconds())
		case errors.Is(err, auth.ErrSessionUnavailable):
			status, msg = http.StatusServiceUnavailable, "Login failed: "+err.Error()
		case !errors.Is(err, auth.ErrBadCredentials):
			msg = "Login refused: " + err.Error()
			status = http.StatusForbidden
		}
		u.render(w, r, status, "login", "Log in", loginView{Next: next, Name: name, Error: msg})
		return
	}
	http.SetCookie(w, cookie)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	if u.opts.Auth == nil {
		http.Redirect(w, r, Prefix+"/projects", http.StatusSeeOther)
		return
	}
	if _, ok := u.form(w, r); !ok {
		return
	}
	http.SetCookie(w, u.opts.Auth.EndSession(r))
	http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
}

// projectRow is one project of the projects page.
type projectRow struct {
	auth.Project
	Repositories int
}

func (u *UI) projects(w http.ResponseWriter, r *http.Request) {
	var ps []auth.Project
	if err := u.call(r, "GET", apiPath("projects"), nil, "", &ps); err != nil {
		u.fail(w, r, err)
		return
	}
	rows := make([]projectRow, len(ps))
	for i, p := range ps {
		var repos []api.Repository
		if err := u.call(r, "GET", apiPath("projects", p.Name, "repositories"), nil, "", &repos); err != nil {
			u.fail(w, r, err)
			return
		}
		rows[i] = projectRow{Project: p, Repositories: len(repos)}
	}
	u.render(w, r, http.StatusOK, "projects", "Projects", rows)
}

// repoRow is one repository of a project's page.
type repoRow struct {
	api.Repository
	Artifacts int
	Newest    *api.Artifact
}

type projectView struct {
	Project auth.Project
	Repos   []repoRow
	// Manage is set when the caller may change the project's settings.
	Manage bool
}

func (u *UI) project(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("project")
	var v projectView
	if err := u.call(r, "GET", apiPath("projects", name), nil, "", &v.Project); err != nil {
		u.fail(w, r, err)
		return
	}
	var repos []api.Repository
	if err := u.call(r, "GET", apiPath("projects", name, "repositories"), nil, "", &repos); err != nil {
		u.fail(w, r, err)
		return
	}
	for _, repo := range repos {
		var page api.ArtifactPage
		err := u.call(r, "GET", apiPath("projects", name, "repositories", repo.Name, "artifacts")+"?page_size=1&hide_attached=true", nil, "", &page)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		row := repoRow{Repository: repo, Artifacts: page.Total}
		if len(page.Artifacts) > 0 {
			row.Newest = &page.Artifacts[0]
		}
		v.Repos = append(v.Repos, row)
	}
	v.Manage = u.mayManage(r, name)
	u.render(w, r, http.StatusOK, "project", name, v)
}

// mayManage asks the API whether the caller may manage the project (its
// members list needs that right or a member's).
func (u *UI) mayManage(r *http.Request, project string) bool {
	if u.opts.Auth == nil {
		return true
	}
	p := u.opts.Auth.SessionPrincipal(r)
	return p != nil && u.opts.Auth.Can(p, project, auth.ManageProject)
}

type repositoryView struct {
	Project, Repository string
	Page                api.ArtifactPage
	Sort                string
	Pages               int
	// Sorts are the column headers' links.
	Sorts map[string]string
}

var sortKeys = []string{"tag", "size", "pushed_at", "severity"}

func (u *UI) repository(w http.ResponseWriter, r *http.Request) {
	project, repo := r.PathValue("project"), r.PathValue("repository")
	q := r.URL.Query()
	sortBy := q.Get("sort")
	if sortBy == "" {
		sortBy = "-pushed_at"
	}
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	v := repositoryView{Project: project, Repository: repo, Sort: sortBy, Sorts: map[string]string{}}
	qs := url.Values{"page": {strconv.Itoa(page)}, "page_size": {"50"}, "sort": {sortBy}, "hide_attached": {"true"}}
	if err := u.call(r, "GET", apiPath("projects", project, "repositories", repo, "artifacts")+"?"+qs.Encode(), nil, "", &v.Page); err != nil {
		u.fail(w, r, err)
		return
	}
	for _, k := range sortKeys {
		next := k
		if sortBy == k {
			next = "-" + k
		}
		v.Sorts[k] = repoURL(project, repo) + "?sort=" + url.QueryEscape(next)
	}
	v.Pages = max(1, (v.Page.Total+v.Page.PageSize-1)/max(v.Page.PageSize, 1))
	u.render(w, r, http.StatusOK, "repository", project+"/"+repo, v)
}

// storedReport is the API's stored report: the scan's state and the
// report as `berth scan --format json` writes it.
type storedReport struct {
	Scan reports.Scan `json:"scan"`
	match.Report
}

// findingRow is one finding of the vulnerabilities tab.
type findingRow struct {
	match.Finding
	// Layer is the 1-based index of the layer that brought the package,
	// 0 when unknown; LayerStep the history step that made it.
	Layer     int
	LayerStep string
}

type packageRow struct {
	inventory.Package
	Layer    int
	Findings int
}

type artifactView struct {
	Project, Repository string
	Detail              api.ArtifactDetail
	Tab                 string
	Tabs                []tab
	Report              *storedReport
	// NotScanned says why there is no report.
	NotScanned string
	Findings   []findingRow
	Upgrades   []Upgrade
	Base       *BaseAdvice
	Packages   []packageRow
	Query      string
	Signatures *api.SignatureReport
	Policy     *api.PolicyVerdict
	SBOM       map[string]string
	// MayScan shows the "scan now" button.
	MayScan bool
	// Approvals are what the stages said about the artifact (signatures
	// tab); Custody says the server holds signing keys at all, and
	// MayApprove shows the approve and revoke forms (stage.approve).
	Approvals  []custody.Approval
	Custody    bool
	MayApprove bool
}

type tab struct {
	Key, Label, URL string
	Current         bool
}

var artifactTabs = []struct{ key, label string }{
	{"vulnerabilities", "Vulnerabilities"}, {"packages", "Packages"}, {"layers", "Layers and history"},
	{"signatures", "Signatures"}, {"policy", "Policy"}, {"secrets", "Secrets"},
}

func (u *UI) artifact(w http.ResponseWriter, r *http.Request) {
	project, repo, ref := r.PathValue("project"), r.PathValue("repository"), r.PathValue("digest")
	v := artifactView{Project: project, Repository: repo, Tab: r.URL.Query().Get("tab"), Query: strings.TrimSpace(r.URL.Query().Get("q"))}
	if v.Tab == "" {
		v.Tab = "vulnerabilities"
	}
	known := false
	base := apiPath("projects", project, "repositories", repo, "artifacts", ref)
	if err := u.call(r, "GET", base, nil, "", &v.Detail); err != nil {
		u.fail(w, r, err)
		return
	}
	page := artifactURL(project, repo, v.Detail.Digest)
	for _, t := range artifactTabs {
		v.Tabs = append(v.Tabs, tab{Key: t.key, Label: t.label, URL: page + "?tab=" + t.key, Current: t.key == v.Tab})
		known = known || t.key == v.Tab
	}
	if !known {
		u.render(w, r, http.StatusNotFound, "error", "Not found", errorView{Status: 404, Message: "no such tab: " + v.Tab})
		return
	}
	switch v.Tab {
	case "vulnerabilities", "packages", "secrets":
		var rep storedReport
		err := u.call(r, "GET", base+"/vulnerabilities", nil, "", &rep)
		var ae *apiError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
			v.NotScanned = ae.Message
		case err != nil:
			u.fail(w, r, err)
			return
		case rep.SchemaVersion == 0:
			v.NotScanned = "The scan is " + string(rep.Scan.Status) + "."
			if rep.Scan.Error != "" {
				v.NotScanned += " " + rep.Scan.Error
			}
		default:
			v.Report = &rep
			if v.Tab != "secrets" {
				u.fillReport(&v)
			}
		}
		v.SBOM = map[string]string{"CycloneDX": base + "/sbom?format=cyclonedx", "SPDX": base + "/sbom?format=spdx"}
	case "policy":
		v.Policy = &api.PolicyVerdict{}
		if err := u.call(r, "GET", base+"/policy", nil, "", v.Policy); err != nil {
			u.fail(w, r, err)
			return
		}
	case "signatures":
		v.Signatures = &api.SignatureReport{}
		if err := u.call(r, "GET", base+"/signatures", nil, "", v.Signatures); err != nil {
			u.fail(w, r, err)
			return
		}
		err := u.call(r, "GET", base+"/approvals", nil, "", &v.Approvals)
		var ae *apiError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
			// The server holds no signing keys: there are no stages.
		case err != nil:
			u.fail(w, r, err)
			return
		default:
			v.Custody = true
			if p := u.sessionUser(r); p != nil {
				v.MayApprove = u.opts.Auth.Can(p, project, auth.ApproveStage)
			}
		}
	}
	if u.opts.Auth == nil {
		v.MayScan = true
	} else if p := u.opts.Auth.SessionPrincipal(r); p != nil {
		v.MayScan = u.opts.Auth.Can(p, project, auth.Push)
	}
	u.render(w, r, http.StatusOK, "artifact", project+"/"+repo+"@"+shortDigest(v.Detail.Digest), v)
}

// fillReport derives the vulnerabilities and packages tabs from the
// stored report and the image's history.
func (u *UI) fillReport(v *artifactView) {
	rep := v.Report
	layerOf := map[string]int{}
	for i, l := range rep.Inventory.Layers {
		layerOf[l.DiffID] = i + 1
	}
	step := func(n int) string {
		if n > 0 && n <= len(v.Detail.Layers) {
			return v.Detail.Layers[n-1].CreatedBy
		}
		if n > 0 && n <= len(rep.Inventory.Layers) {
			return rep.Inventory.Layers[n-1].CreatedBy
		}
		return ""
	}
	counts := map[string]int{}
	for _, f := range rep.Findings {
		n := layerOf[f.Package.Layer]
		v.Findings = append(v.Findings, findingRow{Finding: f, Layer: n, LayerStep: step(n)})
		counts[reports.PackageKey(&f.Package)]++
	}
	slices.SortStableFunc(v.Findings, func(a, b findingRow) int {
		if c := sevRank(a.Severity) - sevRank(b.Severity); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	v.Upgrades = upgrades(rep.Findings)
	if len(v.Upgrades) > 10 {
		v.Upgrades = v.Upgrades[:10]
	}
	if v.Detail.Config != nil {
		v.Base = baseAdvice(&rep.Report, v.Detail.Config.History)
	}
	q := strings.ToLower(v.Query)
	for _, p := range rep.Inventory.Packages {
		if q != "" && !strings.Contains(strings.ToLower(p.Name), q) && !strings.Contains(strings.ToLower(p.PURL), q) &&
			!strings.Contains(strings.ToLower(strings.Join(p.Licenses, " ")), q) {
			continue
		}
		v.Packages = append(v.Packages, packageRow{Package: p, Layer: layerOf[p.Layer], Findings: counts[reports.PackageKey(&p)]})
	}
}

func (u *UI) scan(w http.ResponseWriter, r *http.Request) {
	csrf, ok := u.form(w, r)
	if !ok {
		return
	}
	project, repo, ref := r.PathValue("project"), r.PathValue("repository"), r.PathValue("digest")
	if err := u.call(r, "POST", apiPath("projects", project, "repositories", repo, "artifacts", ref, "scan"), nil, csrf, nil); err != nil {
		u.fail(w, r, err)
		return
	}
	back(w, r, repoURL(project, repo)+"/artifacts/"+url.PathEscape(ref), "Scan queued.")
}

// approve approves the artifact for the form's stage, or (posted to
// …/revoke) withdraws that approval for the form's reason, through the
// API, which checks the stage's conditions and who may.
func (u *UI) approve(w http.ResponseWriter, r *http.Request) {
	csrf, ok := u.form(w, r)
	if !ok {
		return
	}
	project, repo, ref := r.PathValue("project"), r.PathValue("repository"), r.PathValue("digest")
	stage := strings.TrimSpace(r.PostForm.Get("stage"))
	if stage == "" {
		u.render(w, r, http.StatusBadRequest, "error", "Bad request", errorView{Status: 400, Message: "name the stage to approve for"})
		return
	}
	path := apiPath("projects", project, "repositories", repo, "artifacts", ref, "approvals", stage)
	method, done := "POST", "Approved for "+stage+"."
	if strings.HasSuffix(r.URL.Path, "/revoke") {
		method, done = "DELETE", "The "+stage+" approval is revoked."
		path += "?" + url.Values{"reason": {r.PostForm.Get("reason")}}.Encode()
	}
	if err := u.call(r, method, path, nil, csrf, nil); err != nil {
		u.fail(w, r, err)
		return
	}
	back(w, r, repoURL(project, repo)+"/artifacts/"+url.PathEscape(ref)+"?tab=signatures", done)
}

type vulnerabilitiesView struct {
	ID    string
	Page  *api.VulnerabilityPage
	Pages int
	Took  time.Duration
}

func (u *UI) vulnerabilities(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := vulnerabilitiesView{ID: strings.TrimSpace(q.Get("id"))}
	if v.ID != "" {
		page, _ := strconv.Atoi(q.Get("page"))
		qs := url.Values{"page": {strconv.Itoa(max(page, 1))}, "page_size": {"100"}}
		v.Page = &api.VulnerabilityPage{}
		start := time.Now()
		if err := u.call(r, "GET", apiPath("vulnerabilities", v.ID, "artifacts")+"?"+qs.Encode(), nil, "", v.Page); err != nil {
			var ae *apiError
			if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
				u.render(w, r, http.StatusBadRequest, "vulnerabilities", "Vulnerabilities", vulnerabilitiesView{ID: v.ID})
				return
			}
			u.fail(w, r, err)
			return
		}
		v.Took = time.Since(start).Round(time.Millisecond)
		v.Pages = max(1, (v.Page.Total+v.Page.PageSize-1)/max(v.Page.PageSize, 1))
	}
	u.render(w, r, http.StatusOK, "vulnerabilities", "Vulnerabilities", v)
}
