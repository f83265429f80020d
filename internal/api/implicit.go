package api

import (
	"net/http"
	"slices"

	"berth.dev/berth/internal/auth"
)

// With authentication off there are no project records: a project is the
// first component of the repositories pushed under it, as the registry
// names them.

func (a *API) implicitProjectNames(c *call) ([]string, error) {
	names, err := a.opts.Meta.Repositories(c.ctx(), "", -1)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if p := auth.ProjectOf(n); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (a *API) implicitProjects(c *call) error {
	names, err := a.implicitProjectNames(c)
	if err != nil {
		return err
	}
	out := []auth.Project{}
	for _, n := range names {
		out = append(out, auth.Project{Name: n, Public: true})
	}
	return respond(c, http.StatusOK, out)
}

func (a *API) implicitProject(c *call) error {
	project := c.r.PathValue("project")
	names, err := a.implicitProjectNames(c)
	if err != nil {
		return err
	}
	if !slices.Contains(names, project) {
		return notFound("project " + project)
	}
	return respond(c, http.StatusOK, auth.Project{Name: project, Public: true})
}
