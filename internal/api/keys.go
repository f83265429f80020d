package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"gopkg.in/yaml.v3"

	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/match"
)

// KeyRequest creates a project key.
type KeyRequest struct {
	Purpose string `json:"purpose"`
	// Algorithm: ecdsa-p256 (default), ed25519 or rsa-3072.
	Algorithm string `json:"algorithm,omitempty"`
	// RotateEvery rotates the key on a schedule ("2160h"); empty: never.
	RotateEvery string `json:"rotate_every,omitempty"`
	// Overlap is how long a rotated-out key stays valid for verifiers.
	Overlap string `json:"overlap,omitempty"`
}

// RotateRequest rotates a key; Overlap overrides the key's own.
type RotateRequest struct {
	Overlap string `json:"overlap,omitempty"`
}

// RotateResponse is the rotated-out key and its successor.
type RotateResponse struct {
	Retired custody.Key `json:"retired"`
	Current custody.Key `json:"current"`
}

// StageRule is the body of PUT /projects/{project}/stages/{stage}:
// FailOn, Policy (a policy document, YAML or JSON, of report rules only),
// or both.
type StageRule struct {
	Key           string `json:"key"`
	FailOn        string `json:"fail_on,omitempty"`
	IgnoreUnfixed bool   `json:"ignore_unfixed,omitempty"`
	Policy        string `json:"policy,omitempty"`
	Attest        bool   `json:"attest,omitempty"`
	// Requires: for a stage people approve, the stages whose approval
	// must stand first.
	Requires []string `json:"requires,omitempty"`
}

// BackupRequest asks for a key backup sealed under Passphrase.
type BackupRequest struct {
	Passphrase string `json:"passphrase"`
}

// BackupResponse holds the sealed backup (a PEM document).
type BackupResponse struct {
	Backup string `json:"backup"`
	Keys   int    `json:"keys"`
}

// RestoreRequest brings a backup back; Force replaces the keys of the
// projects it holds.
type RestoreRequest struct {
	Backup     string `json:"backup"`
	Passphrase string `json:"passphrase"`
	Force      bool   `json:"force,omitempty"`
}

var errNoCustody = &apiError{status: http.StatusNotFound, code: "NOT_FOUND",
	message: "this server holds no signing keys: start it with --master-key (file:PATH, env:VARIABLE or a pkcs11: URI)"}

// custodyError maps the custody package's errors to answers.
func custodyError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, custody.ErrInvalid):
		return &apiError{status: http.StatusBadRequest, code: "INVALID", message: err.Error()}
	case errors.Is(err, custody.ErrExists), errors.Is(err, custody.ErrHasKeys):
		return &apiError{status: http.StatusConflict, code: "CONFLICT", message: err.Error()}
	case errors.Is(err, custody.ErrNotFound):
		return &apiError{status: http.StatusNotFound, code: "NOT_FOUND", message: err.Error()}
	case errors.Is(err, custody.ErrUnmet):
		return &apiError{status: http.StatusConflict, code: "UNMET", message: err.Error()}
	case errors.Is(err, custody.ErrWrongPassphrase), errors.Is(err, custody.ErrBadBackup):
		return &apiError{status: http.StatusBadRequest, code: "INVALID", message: err.Error()}
	}
	return err
}

// keyProject checks the caller may do action in the path's project and
// returns the project's name and identity.
func (a *API) keyProject(c *call, action auth.Action) (string, string, error) {
	if a.opts.Custody == nil {
		return c.r.PathValue("project"), "", errNoCustody
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

func parseDuration(what, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, badRequest("%s: %v", what, err)
	}
	return d, nil
}

// listKeys publishes the project's public keys, every version with its
// validity window. ?format=trust answers a trust file (YAML) of one
// purpose's keys (?purpose=), for berth verify --trust.
func (a *API) listKeys(c *call) error {
	_, id, err := a.keyProject(c, auth.Pull)
	if err != nil {
		return err
	}
	list, err := a.opts.Custody.List(c.ctx(), id)
	if err != nil {
		return err
	}
	switch c.r.URL.Query().Get("format") {
	case "", "json":
		return respond(c, http.StatusOK, list)
	case "trust":
		return a.trustFile(c, list, c.r.URL.Query().Get("purpose"))
	}
	return badRequest("format %q: want json or trust", c.r.URL.Query().Get("format"))
}

// trustFile writes the keys of one purpose as a trust file.
func (a *API) trustFile(c *call, list []custody.Key, purpose string) error {
	if purpose == "" {
		return badRequest("format=trust needs ?purpose=")
	}
	type entry struct {
		Name      string     `yaml:"name"`
		NotBefore time.Time  `yaml:"not-before"`
		NotAfter  *time.Time `yaml:"not-after,omitempty"`
		Key       string     `yaml:"key"`
	}
	doc := struct {
		Require int     `yaml:"require"`
		Keys    []entry `yaml:"keys"`
	}{Require: 1}
	for _, k := range list {
		if k.Purpose == purpose {
			doc.Keys = append(doc.Keys, entry{Name: k.Project + "/" + k.Purpose + " " + k.ID, NotBefore: k.NotBefore, NotAfter: k.NotAfter, Key: k.PublicKey})
		}
	}
	if len(doc.Keys) == 0 {
		return notFound(purpose + " key")
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", "application/yaml")
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(out)
	return nil
}

func (a *API) createKey(c *call) error {
	var req KeyRequest
	project, id, err := a.keyProject(c, auth.ManageProject)
	if err == nil {
		err = decode(c, &req)
	}
	var k custody.Key
	if err == nil {
		var every, overlap time.Duration
		if every, err = parseDuration("rotate_every", req.RotateEvery); err == nil {
			overlap, err = parseDuration("overlap", req.Overlap)
		}
		if err == nil {
			k, err = a.opts.Custody.Create(c.ctx(), custody.NewKey{ProjectID: id, Project: project, Purpose: req.Purpose,
				Algorithm: req.Algorithm, RotateEvery: every, Overlap: overlap})
			err = custodyError(err)
		}
	}
	a.audited(c, "key.create", project, fmt.Sprintf("purpose=%s algorithm=%s id=%s", req.Purpose, k.Algorithm, k.ID), err)
	if err != nil {
		return err
	}
	a.keysChanged(c, []string{id}, false)
	return respond(c, http.StatusCreated, k)
}

func (a *API) rotateKey(c *call) error {
	var req RotateRequest
	purpose := c.r.PathValue("purpose")
	project, id, err := a.keyProject(c, auth.ManageProject)
	if err == nil && c.r.ContentLength != 0 {
		err = decode(c, &req)
	}
	var res RotateResponse
	if err == nil {
		var overlap time.Duration
		if overlap, err = parseDuration("overlap", req.Overlap); err == nil {
			res.Retired, res.Current, err = a.opts.Custody.Rotate(c.ctx(), id, purpose, overlap)
			err = custodyError(err)
		}
	}
	a.audited(c, "key.rotate", project, fmt.Sprintf("purpose=%s retired=%s current=%s", purpose, res.Retired.ID, res.Current.ID), err)
	if err != nil {
		return err
	}
	a.keysChanged(c, []string{id}, false)
	return respond(c, http.StatusOK, res)
}

// privateKey answers every request for a private key with a refusal, on
// the record: private keys never leave the server.
func (a *API) privateKey(c *call) error {
	project := c.r.PathValue("project")
	if !a.visible(c, project) {
		return notFound("project " + project)
	}
	err := &apiError{status: http.StatusForbidden, code: "DENIED",
		message: "private keys never leave the server; use POST /api/v1/keys/backup for a sealed backup"}
	a.audited(c, "key.private", project, "purpose="+c.r.PathValue("purpose"), err)
	return err
}

func (a *API) getStage(c *call) error {
	_, id, err := a.keyProject(c, auth.Pull)
	if err != nil {
		return err
	}
	r, err := a.opts.Custody.GetRule(c.ctx(), id, c.r.PathValue("stage"))
	if err != nil {
		return custodyError(err)
	}
	return respond(c, http.StatusOK, r)
}

func (a *API) putStage(c *call) error {
	var req StageRule
	stage := c.r.PathValue("stage")
	project, id, err := a.keyProject(c, auth.ManageProject)
	if err == nil {
		// Room for the largest policy document the rule takes, escaped.
		err = decodeLimited(c, &req, 2*custody.MaxRulePolicy+maxBody)
	}
	r := custody.Rule{Stage: stage, KeyPurpose: req.Key, FailOn: match.Severity(strings.ToUpper(req.FailOn)),
		IgnoreUnfixed: req.IgnoreUnfixed, Policy: req.Policy, Attest: req.Attest, Requires: req.Requires}
	if err == nil {
		err = custodyError(a.opts.Custody.SetRule(c.ctx(), id, project, r))
	}
	// The audit names the policy by its digest: the document is the rule's.
	a.audited(c, "stage.update", project, fmt.Sprintf("stage=%s key=%s fail_on=%s ignore_unfixed=%v policy=%s attest=%v requires=%s", stage, req.Key, req.FailOn,
		req.IgnoreUnfixed, r.PolicyVersion(), req.Attest, strings.Join(req.Requires, ",")), err)
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, r)
}

func (a *API) deleteStage(c *call) error {
	stage := c.r.PathValue("stage")
	project, id, err := a.keyProject(c, auth.ManageProject)
	if err == nil {
		err = custodyError(a.opts.Custody.DeleteRule(c.ctx(), id, stage))
	}
	a.audited(c, "stage.delete", project, "stage="+stage, err)
	if err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// artifactApprovals lists what the stages said about an artifact: a
// signature stays in the registry after its approval is revoked, so a
// policy reads both.
func (a *API) artifactApprovals(c *call) error {
	if a.opts.Custody == nil {
		return errNoCustody
	}
	repo, err := a.pullable(c)
	if err != nil {
		return err
	}
	m, err := a.resolve(c, repo)
	if err != nil {
		return err
	}
	list, err := a.opts.Custody.Approvals(c.ctx(), repo, m.Digest)
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, list)
}

// approveStage approves an artifact for a stage people sign off (staging,
// prod): when the stage's conditions hold, the server signs it with the
// project's key for the stage.
func (a *API) approveStage(c *call) error {
	repo, d, stage, err := a.stageArtifact(c)
	var ap custody.Approval
	if err == nil {
		ap, err = a.opts.Scans.Approve(c.ctx(), repo, d, stage, c.actor())
		err = custodyError(err)
	}
	a.audited(c, "stage.approve", auth.ProjectOf(repo), fmt.Sprintf("%s@%s stage=%s key=%s", repo, d, stage, ap.KeyID), err)
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, ap)
}

// revokeStage withdraws an approval given for a stage people sign off,
// for the reason in the query (?reason=…).
func (a *API) revokeStage(c *call) error {
	repo, d, stage, err := a.stageArtifact(c)
	reason := c.r.URL.Query().Get("reason")
	if err == nil && len(reason) > 1024 {
		err = badRequest("reason: at most 1024 bytes")
	}
	var ap custody.Approval
	if err == nil {
		ap, err = a.opts.Scans.Revoke(c.ctx(), repo, d, stage, c.actor(), reason)
		err = custodyError(err)
	}
	a.audited(c, "stage.revoke", auth.ProjectOf(repo), fmt.Sprintf("%s@%s stage=%s reason=%q", repo, d, stage, reason), err)
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, ap)
}

// stageArtifact resolves the artifact and stage of an approval request
// that the caller may make (stage.approve in the project).
func (a *API) stageArtifact(c *call) (string, digest.Digest, string, error) {
	if a.opts.Custody == nil || a.opts.Scans == nil {
		return "", "", "", errNoCustody
	}
	repo, err := a.pullable(c)
	if err != nil {
		return repo, "", "", err
	}
	if !a.can(c, auth.ProjectOf(repo), auth.ApproveStage) {
		return repo, "", "", errForbidden
	}
	m, err := a.resolve(c, repo)
	if err != nil {
		return repo, "", "", err
	}
	return repo, m.Digest, c.r.PathValue("stage"), nil
}

func (a *API) backupKeys(c *call) error {
	var req BackupRequest
	err := a.requireAdmin(c)
	if err == nil && a.opts.Custody == nil {
		err = errNoCustody
	}
	if err == nil {
		err = decode(c, &req)
	}
	var res BackupResponse
	if err == nil {
		var data []byte
		data, res.Keys, err = a.opts.Custody.Backup(c.ctx(), []byte(req.Passphrase))
		res.Backup = string(data)
		err = custodyError(err)
	}
	a.audited(c, "key.backup", "", fmt.Sprintf("keys=%d", res.Keys), err)
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, res)
}

func (a *API) restoreKeys(c *call) error {
	var req RestoreRequest
	err := a.requireAdmin(c)
	if err == nil && a.opts.Custody == nil {
		err = errNoCustody
	}
	if err == nil {
		err = decodeLimited(c, &req, maxBackupBody)
	}
	var res custody.RestoreResult
	if err == nil {
		res, err = a.opts.Custody.Restore(c.ctx(), []byte(req.Backup), []byte(req.Passphrase), req.Force, func(name string) (string, error) {
			p, err := a.opts.Auth.Project(name)
			return p.ID, err
		})
		err = custodyError(err)
	}
	a.audited(c, "key.restore", "", fmt.Sprintf("keys=%d rules=%d projects=%s force=%v", res.Keys, res.Rules, strings.Join(res.Projects, ","), req.Force), err)
	if err != nil {
		return err
	}
	a.keysChanged(c, nil, true)
	return respond(c, http.StatusOK, res)
}

// maxBackupBody bounds a restore's body: a backup holds every key.
const maxBackupBody = 8 << 20
