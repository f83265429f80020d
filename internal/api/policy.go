package api

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

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

// PolicyVerdict is the project policy's verdict on one artifact, as a
// pull of it by this reference through this host would get it.
type PolicyVerdict struct {
	Project string        `json:"project"`
	Digest  digest.Digest `json:"digest"`
	// Enforced is whether the server enforces a policy in the project;
	// Reason says why not when it does not.
	Enforced bool   `json:"enforced"`
	Reason   string `json:"reason,omitempty"`
	// Version is the policy's version (GET .../policy's ETag).
	Version string `json:"policy_version,omitempty"`
	// Exempt says why the policy evaluated no rule on this artifact.
	Exempt string `json:"exempt,omitempty"`
	// Error is why the policy could not decide: pulls are refused.
	Error   string          `json:"error,omitempty"`
	Verdict *policy.Verdict `json:"verdict,omitempty"`
}

// artifactPolicy evaluates the project's policy on the artifact, with
// every rule's reason: what a puller allowed to see the artifact would
// be told, in full.
func (a *API) artifactPolicy(c *call) error {
	repo, err := a.pullable(c)
	if err != nil {
		return err
	}
	m, err := a.resolve(c, repo)
	if err != nil {
		return err
	}
	out := PolicyVerdict{Project: auth.ProjectOf(repo), Digest: m.Digest}
	if a.opts.Policies == nil {
		out.Reason = "this server does not enforce project policies (they need authentication on)"
		return respond(c, http.StatusOK, out)
	}
	ex, err := a.opts.Policies.Explain(c.ctx(), c.r.Host, repo, c.r.PathValue("reference"), m)
	switch {
	case errors.Is(err, policy.ErrNoPolicy):
		out.Reason = "project " + out.Project + " has no policy: every pull is served"
	case err != nil:
		out.Enforced, out.Error = true, err.Error()
	default:
		out.Enforced, out.Version, out.Exempt, out.Verdict = true, ex.Version, ex.Exempt, ex.Verdict
	}
	return respond(c, http.StatusOK, out)
}
