package custody

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/match"
)

// StageScan is the stage the server's scanner signs for; signatures it
// makes carry AnnotationStage=StageScan.
const (
	StageScan       = "scan"
	AnnotationStage = "dev.berth.stage"
)

// Rule is a project's "sign with key KeyPurpose when the scan passes":
// the scan passes when no finding is rated FailOn or higher (findings
// without a fixed version left out with IgnoreUnfixed). Attest adds a
// signed vulnerability attestation (cosign's vuln predicate) beside the
// signature. The rule is a severity threshold, not a project policy: the
// stage vouches for the scan, and policies then require its signature.
type Rule struct {
	Stage         string         `json:"stage"`
	KeyPurpose    string         `json:"key"`
	FailOn        match.Severity `json:"fail_on"`
	IgnoreUnfixed bool           `json:"ignore_unfixed"`
	Attest        bool           `json:"attest"`
}

// Check validates a rule.
func (r Rule) Check() error {
	if r.Stage != StageScan {
		return fmt.Errorf("%w: stage %q: the server signs for the %q stage only", ErrInvalid, r.Stage, StageScan)
	}
	if !purposePattern.MatchString(r.KeyPurpose) {
		return fmt.Errorf("%w: key %q is not a key purpose", ErrInvalid, r.KeyPurpose)
	}
	if _, err := match.ParseSeverity(string(r.FailOn)); err != nil || r.FailOn == "" {
		return fmt.Errorf("%w: fail_on: want UNKNOWN, NONE, LOW, MEDIUM, HIGH or CRITICAL", ErrInvalid)
	}
	return nil
}

// Evaluate says whether report passes the rule, and if not, why.
func (r Rule) Evaluate(report *match.Report) (bool, string) {
	threshold := r.FailOn.Rank()
	var worst *match.Finding
	n := 0
	for i := range report.Findings {
		f := &report.Findings[i]
		if f.Severity.Rank() < threshold || (r.IgnoreUnfixed && len(f.FixedVersions) == 0) {
			continue
		}
		n++
		if worst == nil || f.Severity.Rank() > worst.Severity.Rank() {
			worst = f
		}
	}
	if n == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("%d finding(s) rated %s or higher, e.g. %s (%s) in %s %s", n, r.FailOn, worst.ID, worst.Severity,
		worst.Package.Name, worst.Package.Version)
}

// SetRule stores the project's rule for its stage.
func (s *Service) SetRule(ctx context.Context, projectID, project string, r Rule) error {
	if err := r.Check(); err != nil {
		return err
	}
	r.FailOn, _ = match.ParseSeverity(string(r.FailOn))
	return s.store.Update(ctx, "set stage rule", func(tx Tx) error { return tx.PutRule(ctx, projectID, project, r) })
}

// DeleteRule turns the stage off for the project.
func (s *Service) DeleteRule(ctx context.Context, projectID, stage string) error {
	return s.store.Update(ctx, "delete stage rule", func(tx Tx) error {
		deleted, err := tx.DeleteRule(ctx, projectID, stage)
		if err == nil && !deleted {
			err = fmt.Errorf("%w: no %s stage rule", ErrNotFound, stage)
		}
		return err
	})
}

// GetRule returns the project's rule for stage.
func (s *Service) GetRule(ctx context.Context, projectID, stage string) (Rule, error) {
	r, err := s.store.Rule(ctx, projectID, stage)
	if errors.Is(err, ErrNotFound) {
		return Rule{}, fmt.Errorf("%w: no %s stage rule", ErrNotFound, stage)
	}
	return r, err
}

// Approval states.
const (
	Approved = "approved"
	Revoked  = "revoked"
)

// Approval is what a stage said about an artifact in a repository: that
// it signed it (approved), or that an approval it gave no longer holds
// (revoked, with the reason). Policies read it beside the signatures:
// a signature stays in the registry after its approval is revoked.
type Approval struct {
	Digest     digest.Digest `json:"digest"`
	Repository string        `json:"repository"`
	Stage      string        `json:"stage"`
	KeyID      string        `json:"key"`
	State      string        `json:"state"`
	At         time.Time     `json:"at"`
	Reason     string        `json:"reason,omitempty"`
}

// RecordApproval stores a stage's approval or its revocation.
func (s *Service) RecordApproval(ctx context.Context, projectID string, a Approval) error {
	return s.store.Update(ctx, "record approval", func(tx Tx) error { return tx.PutApproval(ctx, projectID, a) })
}

// Approvals lists the stages' word on an artifact in a repository.
func (s *Service) Approvals(ctx context.Context, repo string, d digest.Digest) ([]Approval, error) {
	return s.store.Approvals(ctx, repo, d)
}

// Approval returns one stage's word on an artifact in a repository.
func (s *Service) Approval(ctx context.Context, repo string, d digest.Digest, stage string) (Approval, error) {
	all, err := s.Approvals(ctx, repo, d)
	if err != nil {
		return Approval{}, err
	}
	for _, a := range all {
		if a.Stage == stage {
			return a, nil
		}
	}
	return Approval{}, fmt.Errorf("%w: no %s approval", ErrNotFound, stage)
}
