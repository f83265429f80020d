package scanservice

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	"github.com/riverqueue/river"

	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/jobs"
	"berth.dev/berth/internal/policy"
	"berth.dev/berth/internal/registry/event"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/scan"
	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/store"
)

// NoticeApprovalRevoked announces that a stage's approval of an artifact
// no longer holds (a re-match or rescan found what its rule refuses).
const NoticeApprovalRevoked = "dev.berth.approval.revoked"

// Stages wires the scan stage's signing: after a report is stored, an
// image of a project with a scan rule (custody.Rule: a severity threshold,
// a report-only policy, or both) that passes it is
// signed with the project's key, annotated dev.berth.stage=scan; one that
// fails it is not, and an approval given before is revoked.
type Stages struct {
	Custody *custody.Service
	// ProjectOf returns the identity of repo's project; false when it
	// has none (authentication off, project deleted).
	ProjectOf func(repo string) (string, bool)
	// Store writes into the server's own registry.
	Store store.Store
	// Host is the registry's name as clients use it, for payloads.
	Host string
	// Audit records each use of a key and each revocation, in repo.
	Audit func(ctx context.Context, action, repo, detail string, err error)
}

// StageArgs is the job that signs, or revokes the approval of, one
// manifest in one repository for the scan stage.
type StageArgs struct {
	Digest     string `json:"digest" river:"unique"`
	Repository string `json:"repository" river:"unique"`
	// Version is the report version that called for the job. It is part
	// of the job's identity: a job queued for a newer report is not
	// absorbed by one still running for an older report, which may have
	// made its last check before the newer report was stored (a
	// revocation would then wait for the next report).
	Version int64 `json:"version,omitempty" river:"unique"`
}

// Kind implements river.JobArgs.
func (StageArgs) Kind() string { return "stage_sign" }

// InsertOpts: one pending job per manifest and repository; signing takes
// a few milliseconds, so it runs with maintenance work, not scans.
func (StageArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobs.QueueMaintenance, MaxAttempts: 5, UniqueOpts: river.UniqueOpts{
		ByArgs:  true,
		ByState: queuedOrRunning,
	}}
}

type stageWorker struct {
	river.WorkerDefaults[StageArgs]
	s *Service
}

func (w *stageWorker) Work(ctx context.Context, j *river.Job[StageArgs]) error {
	d, err := digest.Parse(j.Args.Digest)
	if err != nil {
		return river.JobCancel(fmt.Errorf("stage job: %w", err))
	}
	// A report stored while this job ran (a re-match whose own job was
	// absorbed by this one) is judged again, a bounded number of times.
	for range 3 {
		version, err := w.s.stage(ctx, j.Args.Repository, d)
		if err != nil {
			return err
		}
		rec, err := w.s.opts.Reports.Get(ctx, d, false)
		if err != nil || rec.Version == version {
			return nil
		}
	}
	return nil
}

// queueStages queues the scan stage for d in repos (every repository
// holding d when nil) whose project has a scan rule.
func (s *Service) queueStages(ctx context.Context, d digest.Digest, repos []string) {
	st := s.opts.Stages
	if st == nil || st.Custody == nil {
		return
	}
	if repos == nil {
		var err error
		if repos, err = s.opts.Meta.ManifestRepositories(ctx, d, -1); err != nil {
			s.log.WarnContext(ctx, "scan stage not queued", "digest", d, "error", err)
			return
		}
	}
	var version int64
	if rec, err := s.opts.Reports.Get(ctx, d, false); err == nil {
		version = rec.Version
	}
	for _, repo := range repos {
		pid, ok := st.ProjectOf(repo)
		if !ok {
			continue
		}
		if _, err := st.Custody.GetRule(ctx, pid, custody.StageScan); err != nil {
			continue
		}
		if _, err := s.opts.Queue.Insert(ctx, StageArgs{Digest: d.String(), Repository: repo, Version: version}, nil); err != nil {
			s.log.WarnContext(ctx, "scan stage not queued", "repository", repo, "digest", d, "error", err)
		}
	}
}

// stage judges the stored report of d against repo's project rule and
// signs or revokes. It is idempotent: an approval already recorded for
// the current key, or a signature by that key already in the registry (a
// crash after signing, before recording), is not made again. It returns
// the version of the report it judged.
func (s *Service) stage(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	st := s.opts.Stages
	pid, ok := st.ProjectOf(repo)
	if !ok {
		return 0, nil
	}
	rule, err := st.Custody.GetRule(ctx, pid, custody.StageScan)
	if errors.Is(err, custody.ErrNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	if _, held, err := s.holder(ctx, d, repo); err != nil || !held {
		return 0, err
	}
	rec, err := s.opts.Reports.Get(ctx, d, true)
	if errors.Is(err, reports.ErrNotFound) || (err == nil && rec.Report == nil) {
		return 0, nil // judged when its scan stores a report
	} else if err != nil {
		return 0, err
	}
	img := policy.Image{Registry: st.Host, Repository: repo, Digest: d.String(), Pinned: true}
	pass, why, err := rule.Evaluate(ctx, img, rec.Report)
	if err != nil {
		return 0, err
	}
	prior, perr := st.Custody.Approval(ctx, repo, d, custody.StageScan)
	if perr != nil && !errors.Is(perr, custody.ErrNotFound) {
		return 0, perr
	}
	approved := perr == nil && prior.State == custody.Approved
	if !pass {
		if approved {
			a := custody.Approval{Digest: d, Repository: repo, Stage: custody.StageScan, KeyID: prior.KeyID,
				State: custody.Revoked, At: time.Now().UTC(), Reason: why}
			if err := st.Custody.RecordApproval(ctx, pid, a); err != nil {
				return 0, err
			}
			s.approvalChanged(d)
			st.Audit(ctx, "stage.revoke", repo, fmt.Sprintf("%s@%s: scan approval revoked: %s", repo, d, why), nil)
			s.notify(ctx, Notice{Type: NoticeApprovalRevoked, Scan: rec.Scan, Summary: &rec.Summary, Approval: &a}, d, repo)
			s.log.InfoContext(ctx, "scan approval revoked", "repository", repo, "digest", d, "reason", why)
		}
		return rec.Version, nil
	}
	key, krec, err := st.Custody.Signer(ctx, pid, rule.KeyPurpose)
	if err != nil {
		st.Audit(ctx, "key.use", repo, fmt.Sprintf("sign %s@%s for the scan stage with the %s key", repo, d, rule.KeyPurpose), err)
		if errors.Is(err, custody.ErrNotFound) {
			// Nothing to retry until a key exists; the image stays
			// unsigned, as a failing one would.
			return 0, river.JobCancel(err)
		}
		return 0, err
	}
	if approved && prior.KeyID == krec.ID {
		return rec.Version, nil
	}
	ann := map[string]string{custody.AnnotationStage: custody.StageScan}
	ctx = event.WithActor(ctx, Scanner)
	svc := sign.NewService(st.Store, key, st.Host, false)
	if !s.signedBy(ctx, repo, d, krec, ann) {
		_, err := svc.SignManifest(ctx, repo, v1.Hash{Algorithm: d.Algorithm().String(), Hex: d.Encoded()}, ann)
		st.Audit(ctx, "key.use", repo, fmt.Sprintf("signed %s@%s for the scan stage with key %s (%s)", repo, d, krec.ID, krec.Purpose), err)
		if err != nil {
			return 0, fmt.Errorf("scan stage: sign %s@%s: %w", repo, d, err)
		}
		if rule.Attest {
			if err := s.attestVuln(ctx, svc, repo, d, rec, rule, ann); err != nil {
				st.Audit(ctx, "key.use", repo, fmt.Sprintf("attest %s@%s (vuln) with key %s", repo, d, krec.ID), err)
				return 0, err
			}
			st.Audit(ctx, "key.use", repo, fmt.Sprintf("attested %s@%s (vuln) with key %s", repo, d, krec.ID), nil)
		}
	}
	a := custody.Approval{Digest: d, Repository: repo, Stage: custody.StageScan, KeyID: krec.ID, State: custody.Approved, At: time.Now().UTC()}
	if err := st.Custody.RecordApproval(ctx, pid, a); err != nil {
		return 0, err
	}
	s.approvalChanged(d)
	s.log.InfoContext(ctx, "scan stage signed", "repository", repo, "digest", d, "key", krec.ID)
	return rec.Version, nil
}

// approvalChanged forgets the verdicts made on d while its approval was
// what it no longer is: policies count a stage's signature only while its
// approval stands. (With PostgreSQL the approval's change is announced to
// every replica as well.)
func (s *Service) approvalChanged(d digest.Digest) {
	if s.opts.Stored != nil {
		s.opts.Stored(d)
	}
}

// signedBy reports whether the registry already holds a scan-stage
// signature of d by key k.
func (s *Service) signedBy(ctx context.Context, repo string, d digest.Digest, k custody.Key, ann map[string]string) bool {
	st := s.opts.Stages
	trust, err := st.Custody.Trust(ctx, k.ProjectID, k.Purpose)
	if err != nil {
		return false
	}
	var only sign.Trust
	for _, tk := range trust.Keys {
		if tk.Name == k.ID {
			only = sign.Trust{Keys: []sign.TrustedKey{tk}, Require: 1}
		}
	}
	if len(only.Keys) == 0 {
		return false
	}
	desc, err := st.Store.Resolve(ctx, repo, d.String())
	if err != nil {
		return false
	}
	_, err = sign.Verify(ctx, st.Store, sign.Target{Name: st.Host + "/" + repo, Repo: repo, Manifest: desc}, only, sign.VerifyOptions{Annotations: ann})
	return err == nil
}

// attestVuln attaches the stored report as cosign's vulnerability
// attestation, signed by the stage's key, its subject annotated as the
// signature is (ann): a revoked approval stops it counting too.
func (s *Service) attestVuln(ctx context.Context, svc *sign.Service, repo string, d digest.Digest, rec *reports.Record, rule custody.Rule,
	ann map[string]string) error {
	var sources []string
	if gen := s.opts.DB.Acquire(); gen != nil {
		for _, src := range gen.Info.Sources {
			sources = append(sources, src.Name)
		}
		gen.Release()
	}
	var params []string
	if rule.FailOn != "" {
		params = append(params, "--fail-on="+string(rule.FailOn))
	}
	if rule.IgnoreUnfixed {
		params = append(params, "--ignore-unfixed=true")
	}
	if v := rule.PolicyVersion(); v != "" {
		params = append(params, "--policy="+v) // the stage policy's SHA-256: GET …/stages/scan shows the document
	}
	pred, err := scan.VulnPredicate(rec.Report, scan.PredicateInput{ToolVersion: s.opts.ToolVersion, DBSources: sources,
		DBUpdatedAt: rec.Scan.DBUpdatedAt, Parameters: params, Started: rec.Scan.StartedAt, Finished: rec.Scan.FinishedAt})
	if err != nil {
		return err
	}
	if _, err := svc.AttestManifest(ctx, repo, v1.Hash{Algorithm: d.Algorithm().String(), Hex: d.Encoded()}, "vuln", pred, ann); err != nil {
		return fmt.Errorf("scan stage: attest %s@%s: %w", repo, d, err)
	}
	return nil
}
