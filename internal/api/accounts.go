package api

import (
	"net/http"
	"net/netip"
	"time"

	"berth.dev/berth/internal/auth"
)

// UserRequest creates a user; UserUpdate changes one (absent fields stay).
type UserRequest struct {
	Name         string   `json:"name"`
	Password     string   `json:"password"`
	Admin        bool     `json:"admin"`
	AllowedCIDRs []string `json:"allowed_cidrs,omitempty"`
}

// UserUpdate is the body of PATCH /users/{name}.
type UserUpdate struct {
	Password     *string   `json:"password,omitempty"`
	Admin        *bool     `json:"admin,omitempty"`
	Disabled     *bool     `json:"disabled,omitempty"`
	AllowedCIDRs *[]string `json:"allowed_cidrs,omitempty"`
}

func cidrs(list []string) ([]netip.Prefix, error) {
	return auth.ParseCIDRs(list)
}

func (a *API) listUsers(c *call) error {
	if err := a.requireAdmin(c); err != nil {
		return err
	}
	return respond(c, http.StatusOK, a.opts.Auth.Users())
}

func (a *API) createUser(c *call) error {
	var req UserRequest
	err := a.requireAdmin(c)
	if err == nil {
		err = decode(c, &req)
	}
	var u auth.User
	if err == nil {
		var allowed []netip.Prefix
		if allowed, err = cidrs(req.AllowedCIDRs); err == nil {
			u, err = a.opts.Auth.CreateUser(c.ctx(), req.Name, req.Password, req.Admin, allowed)
		}
	}
	a.audited(c, "user.create", "", "user "+req.Name, err)
	if err != nil {
		return err
	}
	return respond(c, http.StatusCreated, u)
}

func (a *API) getUser(c *call) error {
	name := c.r.PathValue("name")
	if !a.opts.Auth.IsAdmin(c.who) && c.who.Name != name {
		return errForbidden
	}
	u, err := a.opts.Auth.User(name)
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, u)
}

func (a *API) updateUser(c *call) error {
	name := c.r.PathValue("name")
	var req UserUpdate
	err := decode(c, &req)
	admin := a.opts.Auth.IsAdmin(c.who)
	switch {
	case err != nil:
	case !admin && (c.who.Robot || c.who.Name != name):
		err = errForbidden
	case !admin && (req.Admin != nil || req.Disabled != nil || req.AllowedCIDRs != nil):
		// Users change their own password; the rest is an
		// administrator's.
		err = errForbidden
	}
	var u auth.User
	if err == nil {
		ch := auth.UserChange{Password: req.Password, Admin: req.Admin, Disabled: req.Disabled}
		if req.AllowedCIDRs != nil {
			var allowed []netip.Prefix
			if allowed, err = cidrs(*req.AllowedCIDRs); err == nil {
				ch.AllowedCIDRs = &allowed
			}
		}
		if err == nil {
			u, err = a.opts.Auth.UpdateUser(c.ctx(), name, ch)
		}
	}
	a.audited(c, "user.update", "", "user "+name+describeUserUpdate(req), err)
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, u)
}

func describeUserUpdate(u UserUpdate) string {
	out := ""
	if u.Password != nil {
		out += " password"
	}
	if u.Admin != nil {
		out += " admin"
	}
	if u.Disabled != nil {
		out += " disabled"
	}
	if u.AllowedCIDRs != nil {
		out += " allowed_cidrs"
	}
	if out != "" {
		out = ":" + out
	}
	return out
}

func (a *API) deleteUser(c *call) error {
	name := c.r.PathValue("name")
	err := a.requireAdmin(c)
	if err == nil {
		err = a.opts.Auth.DeleteUser(c.ctx(), name)
	}
	a.audited(c, "user.delete", "", "user "+name, err)
	if err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// RobotRequest creates a robot. Expiry is given as a time or a duration
// from now; neither means it never expires.
type RobotRequest struct {
	Name         string                 `json:"name"`
	Description  string                 `json:"description,omitempty"`
	Permissions  []auth.RobotPermission `json:"permissions"`
	ExpiresAt    *time.Time             `json:"expires_at,omitempty"`
	ExpiresIn    string                 `json:"expires_in,omitempty"`
	AllowedCIDRs []string               `json:"allowed_cidrs,omitempty"`
}

// RobotCreated answers a robot's creation: the only time its secret is
// shown.
type RobotCreated struct {
	Robot  auth.Robot `json:"robot"`
	Secret string     `json:"secret"`
}

// managesRobot reports whether the caller may manage a robot with these
// permissions: an administrator may manage any; a project admin those
// whose every permission is in a project it manages robots of.
func (a *API) managesRobot(c *call, perms []auth.RobotPermission) bool {
	if a.opts.Auth.IsAdmin(c.who) {
		return true
	}
	if len(perms) == 0 {
		return false
	}
	for _, p := range perms {
		if p.Project == auth.AllProjects || !a.opts.Auth.Can(c.who, p.Project, auth.ManageRobots) {
			return false
		}
	}
	return true
}

func (a *API) listRobots(c *call) error {
	project := c.r.URL.Query().Get("project")
	var out []auth.Robot
	switch {
	case project == "" && a.opts.Auth.IsAdmin(c.who):
		out = a.opts.Auth.Robots()
	case project == "":
		return errForbidden
	case !a.visible(c, project):
		return notFound("project " + project)
	case !a.opts.Auth.Can(c.who, project, auth.ManageRobots):
		return errForbidden
	default:
		proj, _ := a.opts.Auth.Project(project)
		for _, r := range a.opts.Auth.Robots() {
			for _, p := range r.Permissions {
				if p.ProjectID == proj.ID {
					out = append(out, r)
					break
				}
			}
		}
	}
	if out == nil {
		out = []auth.Robot{}
	}
	return respond(c, http.StatusOK, out)
}

func (a *API) createRobot(c *call) error {
	var req RobotRequest
	err := decode(c, &req)
	var created RobotCreated
	if err == nil && (c.who.Robot || !a.managesRobot(c, req.Permissions)) {
		err = errForbidden
	}
	if err == nil {
		spec := auth.RobotSpec{Name: req.Name, Description: req.Description, Permissions: req.Permissions}
		switch {
		case req.ExpiresAt != nil && req.ExpiresIn != "":
			err = badRequest("give expires_at or expires_in, not both")
		case req.ExpiresAt != nil:
			spec.ExpiresAt = *req.ExpiresAt
		case req.ExpiresIn != "":
			d, perr := time.ParseDuration(req.ExpiresIn)
			if perr != nil || d <= 0 {
				err = badRequest("expires_in %q: want a positive duration such as 720h", req.ExpiresIn)
			}
			spec.ExpiresAt = time.Now().Add(d)
		}
		if err == nil {
			spec.AllowedCIDRs, err = cidrs(req.AllowedCIDRs)
		}
		if err == nil {
			created.Robot, created.Secret, err = a.opts.Auth.CreateRobot(c.ctx(), spec, c.who.Name)
		}
	}
	a.audited(c, "robot.create", robotProject(req.Permissions), "robot "+auth.RobotPrefix+req.Name, err)
	if err != nil {
		return err
	}
	return respond(c, http.StatusCreated, created)
}

// robotProject names the project of a single-project robot, for the audit
// entry's project column.
func robotProject(perms []auth.RobotPermission) string {
	if len(perms) == 1 && perms[0].Project != auth.AllProjects {
		return perms[0].Project
	}
	return ""
}

// robotFor looks a robot up for a caller allowed to manage it; others get
// the same not-found answer whether it exists or not.
func (a *API) robotFor(c *call) (auth.Robot, error) {
	name := c.r.PathValue("name")
	r, err := a.opts.Auth.Robot(name)
	if err != nil || !a.managesRobot(c, r.Permissions) {
		return auth.Robot{}, notFound("robot " + name)
	}
	return r, nil
}

func (a *API) getRobot(c *call) error {
	r, err := a.robotFor(c)
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, r)
}

func (a *API) revokeRobot(c *call) error {
	r, err := a.robotFor(c)
	if err == nil {
		r, err = a.opts.Auth.RevokeRobot(c.ctx(), r.Name)
	}
	a.audited(c, "robot.revoke", robotProject(r.Permissions), "robot "+c.r.PathValue("name"), err)
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, r)
}

func (a *API) deleteRobot(c *call) error {
	r, err := a.robotFor(c)
	if err == nil {
		err = a.opts.Auth.DeleteRobot(c.ctx(), r.Name)
	}
	a.audited(c, "robot.delete", robotProject(r.Permissions), "robot "+c.r.PathValue("name"), err)
	if err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}
