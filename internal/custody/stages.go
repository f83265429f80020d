package custody

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/policy"
)

// StageScan is the stage the server's scanner signs for; signatures it
// makes carry AnnotationStage=StageScan.
const (
	StageScan       = "scan"
	AnnotationStage = "dev.berth.stage"
)

// Rule is a project's "sign with key KeyPurpose when the scan passes":
// the scan passes when no finding is rated FailOn or higher (findings
// without a fixed version left out with IgnoreUnfixed) and the report
// passes Policy, a policy document in the formats a project policy takes
// (berth's ImagePolicy, sigstore's ClusterImagePolicy; docs/policy.md),
// judged by the same engine. Either or both may be given. The policy
// judges what the scan found, so it may not require signatures or
// attestations (policy.Options.ReportOnly): the stage vouches for the
// scan, and project policies then require its signature beside the
// others. Attest adds a signed vulnerability attestation (cosign's vuln
// predicate) beside the signature.
type Rule struct {
	Stage         string         `json:"stage"`
	KeyPurpose    string         `json:"key"`
	FailOn        match.Severity `json:"fail_on,omitempty"`
	IgnoreUnfixed bool           `json:"ignore_unfixed"`
	// Policy is the policy document as it was put (YAML or JSON); ""
	// when the rule is a severity threshold alone.
	Policy string `json:"policy,omitempty"`
	Attest bool   `json:"attest"`
	// Requires names the stages whose approval of an artifact must stand
	// before a person may approve it for this one (staging requires scan,
	// prod requires staging). Stages other than scan only: the scan stage
	// signs on its own.
	Requires []string `json:"requires,omitempty"`
}

// Manual reports whether people approve artifacts for the stage (every
// stage but scan, e.g. staging or prod: POST …/approvals/{stage}), with
// the rule's conditions checked at that moment; the scan stage approves
// on its own after each scan.
func (r Rule) Manual() bool { return r.Stage != StageScan }

// SplitStages reads Rule.Requires as the stores keep it, one per line.
func SplitStages(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// MaxRulePolicy bounds a stage policy document's size.
const MaxRulePolicy = 256 << 10

// Check validates a rule.
func (r Rule) Check() error {
	if !purposePattern.MatchString(r.Stage) {
		return fmt.Errorf("%w: stage %q: lower-case letters, digits, '.', '_' and '-'", ErrInvalid, r.Stage)
	}
	if !purposePattern.MatchString(r.KeyPurpose) {
		return fmt.Errorf("%w: key %q is not a key purpose", ErrInvalid, r.KeyPurpose)
	}
	if r.Manual() {
		// An approval is a person's word; the conditions are optional.
		if r.Attest {
			return fmt.Errorf("%w: attest: only the scan stage attests (its vulnerability report)", ErrInvalid)
		}
		seen := map[string]bool{}
		for _, req := range r.Requires {
			switch {
			case !purposePattern.MatchString(req):
				return fmt.Errorf("%w: requires: %q is not a stage", ErrInvalid, req)
			case req == r.Stage:
				return fmt.Errorf("%w: requires: the %s stage cannot require itself", ErrInvalid, r.Stage)
			case seen[req]:
				return fmt.Errorf("%w: requires: %s named twice", ErrInvalid, req)
			}
			seen[req] = true
		}
	} else {
		if len(r.Requires) > 0 {
			return fmt.Errorf("%w: requires: the scan stage signs after each scan, on its own; only stages people approve require others", ErrInvalid)
		}
		if r.FailOn == "" && r.Policy == "" {
			return fmt.Errorf("%w: give fail_on (a severity threshold), policy (a policy document), or both", ErrInvalid)
		}
	}
	if r.FailOn != "" {
		if _, err := match.ParseSeverity(string(r.FailOn)); err != nil {
			return fmt.Errorf("%w: fail_on: want UNKNOWN, NONE, LOW, MEDIUM, HIGH or CRITICAL", ErrInvalid)
		}
	} else if r.IgnoreUnfixed {
		return fmt.Errorf("%w: ignore_unfixed applies to fail_on, which is not given (a policy says it with vulnerabilities.fixableOnly)", ErrInvalid)
	}
	if r.Policy != "" {
		if len(r.Policy) > MaxRulePolicy {
			return fmt.Errorf("%w: policy: %d bytes, at most %d", ErrInvalid, len(r.Policy), MaxRulePolicy)
		}
		if _, err := r.parsePolicy(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	return nil
}

// parsePolicy loads the rule's policy: report rules only, and no key
// store, so nothing outside the document is read.
func (r Rule) parsePolicy() (*policy.Policy, error) {
	return policy.Parse(r.Stage+" stage policy", []byte(r.Policy), policy.Options{ReportOnly: true})
}

// Evaluate says whether the report of img passes the rule, and if not,
// why: the severity threshold's reason and the policy's violations. A
// stored policy that no longer loads fails the rule (fail closed), with
// the reason. The error is for evaluations that could not run (a
// cancelled context).
func (r Rule) Evaluate(ctx context.Context, img policy.Image, report *match.Report) (bool, string, error) {
	var why []string
	if r.FailOn != "" {
		if msg := r.threshold(report); msg != "" {
			why = append(why, msg)
		}
	}
	if r.Policy != "" {
		p, err := r.parsePolicy()
		if err != nil {
			why = append(why, "the stage's policy does not load: "+err.Error())
		} else {
			v, err := p.Evaluate(ctx, policy.Facts{Image: img,
				Report: func(context.Context) (*match.Report, error) { return report, nil }})
			if err != nil {
				return false, "", fmt.Errorf("evaluate the %s stage policy: %w", r.Stage, err)
			}
			if !v.Allowed {
				why = append(why, v.Message())
			}
		}
	}
	return len(why) == 0, strings.Join(why, "; "), nil
}

// PolicyVersion identifies the rule's policy (SHA-256 of the document),
// or "" without one: the vulnerability attestation names it among its
// parameters.
func (r Rule) PolicyVersion() string {
	if r.Policy == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(r.Policy))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// threshold says which findings fail FailOn, or "" when none does.
func (r Rule) threshold(report *match.Report) string {
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
		return ""
	}
	return fmt.Sprintf("%d finding(s) rated %s or higher, e.g. %s (%s) in %s %s", n, r.FailOn, worst.ID, worst.Severity,
		worst.Package.Name, worst.Package.Version)
}

// SetRule stores the project's rule for its stage.
func (s *Service) SetRule(ctx context.Context, projectID, project string, r Rule) error {
	if err := r.Check(); err != nil {
		return err
	}
	if r.FailOn != "" {
		r.FailOn, _ = match.ParseSeverity(string(r.FailOn))
	}
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
