package api

import (
	"net/http"
	"strconv"
	"strings"

	"berth.dev/berth/internal/auth"
)

// ProjectRequest creates a project.
type ProjectRequest struct {
	Name   string `json:"name"`
	Public bool   `json:"public"`
}

// ProjectUpdate is the body of PATCH /projects/{project}.
type ProjectUpdate struct {
	Public *bool `json:"public,omitempty"`
	// AutoScan turns scanning of pushed images on or off.
	AutoScan *bool `json:"auto_scan,omitempty"`
}

// MemberRequest is the body of PUT /projects/{project}/members/{user}.
type MemberRequest struct {
	Role auth.Role `json:"role"`
}

// visible reports whether the caller may know the project exists: it is
// public, or the caller is a member, holds a robot permission in it, or
// is an administrator. Everyone else gets the same 404 for it as for a
// project that does not exist.
func (a *API) visible(c *call, project string) bool {
	if a.opts.Auth == nil {
		return true
	}
	if _, err := a.opts.Auth.Project(project); err != nil {
		return false
	}
	return a.opts.Auth.Can(c.who, project, auth.Pull)
}

// projectAction checks that the caller may do action in the path's
// project and returns its name.
func (a *API) projectAction(c *call, action auth.Action) (string, error) {
	project := c.r.PathValue("project")
	switch {
	case !a.visible(c, project):
		return project, notFound("project " + project)
	case !a.can(c, project, action):
		return project, errForbidden
	}
	return project, nil
}

func (a *API) listProjects(c *call) error {
	out := []auth.Project{}
	if a.opts.Auth == nil {
		return a.implicitProjects(c)
	}
	for _, p := range a.opts.Auth.Projects() {
		if a.opts.Auth.Can(c.who, p.Name, auth.Pull) {
			out = append(out, p)
		}
	}
	return respond(c, http.StatusOK, out)
}

func (a *API) createProject(c *call) error {
	var req ProjectRequest
	err := decode(c, &req)
	if err == nil && (c.who.Robot || !(a.opts.Auth.IsAdmin(c.who) || a.opts.AutoCreateProjects)) {
		err = errForbidden
	}
	var p auth.Project
	if err == nil {
		p, err = a.opts.Auth.CreateProject(c.ctx(), req.Name, req.Public, c.who.Name)
	}
	a.audited(c, "project.create", req.Name, "public="+strconv.FormatBool(req.Public), err)
	if err != nil {
		return err
	}
	return respond(c, http.StatusCreated, p)
}

func (a *API) getProject(c *call) error {
	if a.opts.Auth == nil {
		return a.implicitProject(c)
	}
	project := c.r.PathValue("project")
	if !a.visible(c, project) {
		return notFound("project " + project)
	}
	p, err := a.opts.Auth.Project(project)
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, p)
}

func (a *API) updateProject(c *call) error {
	var req ProjectUpdate
	project, err := a.projectAction(c, auth.ManageProject)
	if err == nil {
		err = decode(c, &req)
	}
	p, perr := a.opts.Auth.Project(project)
	if err == nil && perr == nil && (req.Public != nil || req.AutoScan != nil) {
		p, err = a.opts.Auth.UpdateProject(c.ctx(), project, auth.ProjectChange{Public: req.Public, AutoScan: req.AutoScan})
	}
	var changes []string
	if req.Public != nil {
		changes = append(changes, "public="+strconv.FormatBool(*req.Public))
	}
	if req.AutoScan != nil {
		changes = append(changes, "auto_scan="+strconv.FormatBool(*req.AutoScan))
	}
	detail := strings.Join(changes, " ")
	a.audited(c, "project.update", project, detail, err)
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, p)
}

func (a *API) deleteProject(c *call) error {
	project, err := a.projectAction(c, auth.ManageProject)
	var robots []string
	var id string
	if err == nil {
		if p, perr := a.opts.Auth.Project(project); perr == nil {
			id = p.ID
		}
		robots, err = a.opts.Auth.DeleteProject(c.ctx(), project)
	}
	if err == nil && a.opts.Webhooks != nil && id != "" {
		// The project's identity is gone; so are the hooks bound to it.
		if herr := a.opts.Webhooks.DeleteProjectHooks(c.ctx(), id); herr != nil {
			a.log.ErrorContext(c.ctx(), "could not delete the webhooks of a deleted project", "project", project, "error", herr)
		}
	}
	if err == nil && a.opts.Policies != nil && id != "" {
		// So is its policy. Bound to the id, a row left behind would not
		// apply to a project created again under the name, but it would
		// be kept, listed and loaded by every replica for nothing.
		if perr := a.opts.Policies.Delete(c.ctx(), project, id); perr != nil {
			a.log.ErrorContext(c.ctx(), "could not delete the policy of a deleted project", "project", project, "error", perr)
		}
	}
	detail := ""
	if len(robots) > 0 {
		detail = "deleted its robots " + strings.Join(robots, " ")
	}
	a.audited(c, "project.delete", project, detail, err)
	if err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listMembers(c *call) error {
	project, err := a.projectAction(c, auth.ReadMembers)
	if err != nil {
		return err
	}
	out := a.opts.Auth.Members(project)
	if out == nil {
		out = []auth.Member{}
	}
	return respond(c, http.StatusOK, out)
}

func (a *API) putMember(c *call) error {
	user := c.r.PathValue("user")
	var req MemberRequest
	project, err := a.projectAction(c, auth.ManageMembers)
	if err == nil {
		err = decode(c, &req)
	}
	var m auth.Member
	if err == nil {
		m, err = a.opts.Auth.PutMember(c.ctx(), project, user, req.Role)
	}
	a.audited(c, "member.put", project, "user "+user+" role "+string(req.Role), err)
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, m)
}

func (a *API) removeMember(c *call) error {
	user := c.r.PathValue("user")
	project, err := a.projectAction(c, auth.ManageMembers)
	if err == nil {
		err = a.opts.Auth.RemoveMember(c.ctx(), project, user)
	}
	a.audited(c, "member.remove", project, "user "+user, err)
	if err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}
