package api

import (
	"errors"
	"io"
	"net/http"
	"time"

	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/policy"
)

// maxPolicyBody bounds a policy document: several PEM keys and CUE or Rego
// policies fit many times over.
const maxPolicyBody = 1 << 20

// PolicyInfo describes a stored project policy.
type PolicyInfo struct {
	Project   string    `json:"project"`
	Version   string    `json:"version"`
	Documents []string  `json:"documents"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
}

var errNoPolicies = &apiError{status: http.StatusNotFound, code: "NOT_FOUND", message: "this server does not enforce project policies"}

// policyProject checks the caller may do action in the path's project and
// returns its name and id.
func (a *API) policyProject(c *call, action auth.Action) (string, string, error) {
	if a.opts.Policies == nil {
		return "", "", errNoPolicies
	}
	project, err := a.projectAction(c, action)
	if err != nil {
		return project, "", err
	}
	p, err := a.opts.Auth.Project(project)
	if err != nil {
		return project, "", err
	}
	return project, p.ID, nil
}

// getPolicy answers the policy as it was put (YAML), its version as ETag.
func (a *API) getPolicy(c *call) error {
	project, id, err := a.policyProject(c, auth.ReadMembers)
	if err != nil {
		return err
	}
	s, err := a.opts.Policies.Get(c.ctx(), id)
	if errors.Is(err, policy.ErrNoPolicy) {
		return notFound("policy of project " + project)
	}
	if err != nil {
		return err
	}
	h := c.w.Header()
	h.Set("Content-Type", "application/yaml")
	h.Set("ETag", `"`+s.Version+`"`)
	h.Set("Last-Modified", s.UpdatedAt.UTC().Format(http.TimeFormat))
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(s.Body)
	return nil
}

// putPolicy stores and enforces a project's policy: ClusterImagePolicy
// and ImagePolicy documents in YAML (or JSON). A document that does not
// load is refused with its line, and the previous policy stays.
func (a *API) putPolicy(c *call) error {
	project, id, err := a.policyProject(c, auth.ManageProject)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, maxPolicyBody))
		if err != nil {
			err = badRequest("request body: %v", err)
		}
	}
	var s policy.Stored
	var p *policy.Policy
	if err == nil {
		s, p, err = a.opts.Policies.Set(c.ctx(), project, id, body, c.actor())
		if errors.Is(err, policy.ErrInvalid) {
			err = badRequest("%v", err)
		}
	}
	a.audited(c, "policy.put", project, "version "+s.Version, err)
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, PolicyInfo{Project: project, Version: s.Version, Documents: p.Kinds(), UpdatedAt: s.UpdatedAt, UpdatedBy: s.UpdatedBy})
}

// deletePolicy stops enforcing the project's policy (204 whether or not
// it had one).
func (a *API) deletePolicy(c *call) error {
	project, id, err := a.policyProject(c, auth.ManageProject)
	if err == nil {
		err = a.opts.Policies.Delete(c.ctx(), project, id)
	}
	a.audited(c, "policy.delete", project, "", err)
	if err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}
