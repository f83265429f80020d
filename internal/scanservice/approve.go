package scanservice

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/policy"
	"berth.dev/berth/internal/registry/event"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/sign"
)

// errNoStages is the answer of a server that holds no signing keys.
var errNoStages = fmt.Errorf("%w: this server holds no signing keys (keys.master_key)", custody.ErrNotFound)

// Approve approves the manifest d of repo for a stage people sign off
// (staging, prod: custody.Rule.Manual), on behalf of actor: when every
// stage the rule requires has approved d and d's stored scan passes the
// rule's threshold and policy, the server signs d with the project's key
// for the stage (annotated dev.berth.stage=STAGE) and records the
// approval. Approving again with the same key changes nothing. An unmet
// condition is custody.ErrUnmet, saying which.
func (s *Service) Approve(ctx context.Context, repo string, d digest.Digest, stage, actor string) (custody.Approval, error) {
	st, pid, err := s.stageProject(repo)
	if err != nil {
		return custody.Approval{}, err
	}
	if !(custody.Rule{Stage: stage}).Manual() {
		return custody.Approval{}, fmt.Errorf("%w: the %s stage approves on its own after each scan", custody.ErrInvalid, stage)
	}
	rule, err := st.Custody.GetRule(ctx, pid, stage)
	if err != nil {
		return custody.Approval{}, err
	}
	var unmet []string
	for _, req := range rule.Requires {
		a, err := st.Custody.Approval(ctx, repo, d, req)
		switch {
		case errors.Is(err, custody.ErrNotFound):
			unmet = append(unmet, fmt.Sprintf("the %s stage has not approved it", req))
		case err != nil:
			return custody.Approval{}, err
		case a.State != custody.Approved:
			unmet = append(unmet, fmt.Sprintf("the %s stage's approval was revoked: %s", req, a.Reason))
		}
	}
	if rule.FailOn != "" || rule.Policy != "" {
		rec, err := s.opts.Reports.Get(ctx, d, true)
		switch {
		case errors.Is(err, reports.ErrNotFound) || (err == nil && rec.Report == nil):
			unmet = append(unmet, "it has no stored scan report for the stage's rule to judge")
		case err != nil:
			return custody.Approval{}, err
		default:
			img := policy.Image{Registry: st.Host, Repository: repo, Digest: d.String(), Pinned: true}
			pass, why, err := rule.Evaluate(ctx, img, rec.Report)
			if err != nil {
				return custody.Approval{}, err
			}
			if !pass {
				unmet = append(unmet, why)
			}
		}
	}
	if len(unmet) > 0 {
		return custody.Approval{}, fmt.Errorf("%w: %s@%s cannot be approved for %s: %s", custody.ErrUnmet, repo, d, stage, strings.Join(unmet, "; "))
	}
	key, krec, err := st.Custody.Signer(ctx, pid, rule.KeyPurpose)
	if errors.Is(err, custody.ErrNotFound) {
		return custody.Approval{}, fmt.Errorf("%w: the project has no %s key to sign the %s stage with", custody.ErrUnmet, rule.KeyPurpose, stage)
	} else if err != nil {
		return custody.Approval{}, err
	}
	prior, err := st.Custody.Approval(ctx, repo, d, stage)
	if err == nil && prior.State == custody.Approved && prior.KeyID == krec.ID {
		return prior, nil
	} else if err != nil && !errors.Is(err, custody.ErrNotFound) {
		return custody.Approval{}, err
	}
	ann := map[string]string{custody.AnnotationStage: stage}
	if !s.signedBy(ctx, repo, d, krec, ann) {
		svc := sign.NewService(st.Store, key, st.Host, false)
		if _, err := svc.SignManifest(event.WithActor(ctx, actor), repo, v1.Hash{Algorithm: d.Algorithm().String(), Hex: d.Encoded()}, ann); err != nil {
			return custody.Approval{}, fmt.Errorf("%s stage: sign %s@%s: %w", stage, repo, d, err)
		}
	}
	a := custody.Approval{Digest: d, Repository: repo, Stage: stage, KeyID: krec.ID, State: custody.Approved, At: time.Now().UTC()}
	if err := st.Custody.RecordApproval(ctx, pid, a); err != nil {
		return custody.Approval{}, err
	}
	s.approvalChanged(d)
	s.log.InfoContext(ctx, "stage approved", "stage", stage, "repository", repo, "digest", d, "key", krec.ID, "actor", actor)
	return a, nil
}

// Revoke withdraws the approval of d in repo for a stage people sign off,
// on behalf of actor, for reason: the signature stays in the registry, but
// policies stop counting it, and the webhook event
// dev.berth.approval.revoked is sent.
func (s *Service) Revoke(ctx context.Context, repo string, d digest.Digest, stage, actor, reason string) (custody.Approval, error) {
	st, pid, err := s.stageProject(repo)
	if err != nil {
		return custody.Approval{}, err
	}
	if stage == custody.StageScan {
		return custody.Approval{}, fmt.Errorf("%w: the scan stage's approval follows its scans; change the rule or rescan", custody.ErrInvalid)
	}
	prior, err := st.Custody.Approval(ctx, repo, d, stage)
	if err != nil {
		return custody.Approval{}, err
	}
	if prior.State != custody.Approved {
		return prior, nil
	}
	why := "revoked by " + actor
	if reason = strings.TrimSpace(reason); reason != "" {
		why += ": " + reason
	}
	a := custody.Approval{Digest: d, Repository: repo, Stage: stage, KeyID: prior.KeyID, State: custody.Revoked, At: time.Now().UTC(), Reason: why}
	if err := st.Custody.RecordApproval(ctx, pid, a); err != nil {
		return custody.Approval{}, err
	}
	s.approvalChanged(d)
	var scan reports.Scan
	if rec, err := s.opts.Reports.Get(ctx, d, false); err == nil {
		scan = rec.Scan
	}
	s.notify(ctx, Notice{Type: NoticeApprovalRevoked, Scan: scan, Approval: &a}, d, repo)
	s.log.InfoContext(ctx, "stage approval revoked", "stage", stage, "repository", repo, "digest", d, "actor", actor)
	return a, nil
}

// stageProject returns the stage wiring and the identity of repo's
// project, or why approvals cannot be given there.
func (s *Service) stageProject(repo string) (*Stages, string, error) {
	st := s.opts.Stages
	if st == nil || st.Custody == nil {
		return nil, "", errNoStages
	}
	pid, ok := st.ProjectOf(repo)
	if !ok {
		return nil, "", fmt.Errorf("%w: repository %s has no project", custody.ErrNotFound, repo)
	}
	return st, pid, nil
}
