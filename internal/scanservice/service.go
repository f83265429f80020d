// Package scanservice is the server's scanning: every pushed image gets a
// scan job (inventory once, per manifest digest, layers from the layer
// cache), the report is stored (internal/reports) with an SBOM referrer
// beside the image, and when the vulnerability database changes only the
// stored inventories that look up a changed key are re-matched, without
// reading any image again; what a re-match newly finds is announced.
//
// It is internal/scan's engine run as jobs on internal/jobs; the server
// only wires it. The CLI's `berth scan` and this package produce the same
// match.Report for the same image and database.
package scanservice

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/jobs"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/meta"
	prom "berth.dev/berth/internal/metrics"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/scan"
	"berth.dev/berth/internal/secret"
	"berth.dev/berth/internal/vulndb"
	"berth.dev/berth/internal/vulndb/live"
)

// Notice types, the CloudEvents types webhooks subscribe to.
const (
	NoticeScanCompleted      = "dev.berth.scan.completed"
	NoticeScanFailed         = "dev.berth.scan.failed"
	NoticeVulnerabilitiesNew = "dev.berth.vulnerabilities.new"
)

// Notice is something the service announces about one artifact in one
// repository (an image held by two repositories is announced to both).
type Notice struct {
	Type       string
	Repository string
	Digest     digest.Digest
	Tags       []string
	Scan       reports.Scan
	Summary    *reports.Summary
	// New are the finding ids a re-match found that the artifact's stored
	// report did not have, the most severe first.
	New []NewFinding
	// Approval is the revoked approval of NoticeApprovalRevoked.
	Approval *custody.Approval
}

// NewFinding is one finding a re-match added.
type NewFinding struct {
	ID       string         `json:"id"`
	Severity match.Severity `json:"severity"`
	Package  string         `json:"package"`
	Version  string         `json:"version"`
	Fixed    []string       `json:"fixed_versions,omitempty"`
}

// Options wire the service.
type Options struct {
	Meta    meta.Store
	Blobs   blob.Store
	Reports reports.Store
	DB      *live.DB
	// Shared is the database every replica scans with (scale-out); nil
	// when this process's database is the only one.
	Shared SharedDB
	Queue  *jobs.Queue
	// Inventory builds inventories; its Cache is the server's layer cache.
	Inventory *inventory.Scanner
	// Notify hears of completed and failed scans and of new findings; it
	// must not block (hand the work to a queue).
	Notify func(context.Context, Notice)
	// Stored hears of every report stored or re-matched, and of every
	// stage approval given or revoked on a digest (for caches of
	// decisions made on reports and approvals, such as pull-time policy
	// verdicts).
	Stored func(digest.Digest)
	// SBOMReferrers attaches a CycloneDX SBOM to every scanned image as
	// an OCI 1.1 referrer.
	SBOMReferrers bool
	// Secrets and Misconfig add the secret and misconfiguration
	// scanners to every scan (internal/secret, internal/misconfig).
	Secrets, Misconfig bool
	// RematchBatch is how many reports one re-match job handles; zero
	// means 250. Each job costs a fetch and a gap before the next one
	// (~5 ms); a larger batch holds the database's write lock longer when
	// it stores (~0.3 ms a report) and leaves more for the last worker to
	// do alone.
	RematchBatch int
	// Stages signs for the scan stage; nil: the server signs nothing.
	Stages *Stages
	// NoUpdate says this replica has no database sources of its own: it
	// scans with the published database but leaves vulndb_update jobs to
	// a replica configured with sources (it would otherwise build from
	// the default sources, which the operator did not choose).
	NoUpdate    bool
	ToolVersion string
	Logger      *slog.Logger
	Metrics     *prom.Registry
}

// SharedDB keeps the live database the one every replica scans with
// (internal/vulndb/shared.Replica).
type SharedDB interface {
	// Sync makes the live database the published one.
	Sync(ctx context.Context) error
	// Update runs update from the published database and publishes what
	// it built.
	Update(ctx context.Context, update func(context.Context) (*live.Change, error)) (*live.Change, error)
}

// Service runs scans and re-matches.
type Service struct {
	opts Options
	log  *slog.Logger
	m    *serviceMetrics
}

// New returns the service; Register its workers on the queue before the
// queue starts.
func New(opts Options) *Service {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.RematchBatch <= 0 {
		opts.RematchBatch = 250
	}
	s := &Service{opts: opts, log: log.With("component", "scan")}
	if opts.Metrics != nil {
		s.m = newServiceMetrics(opts.Metrics)
	}
	return s
}

// Register adds the service's workers to the queue.
func (s *Service) Register(q *jobs.Queue) {
	jobs.AddWorker(q, &scanWorker{s: s})
	jobs.AddWorker(q, &rematchWorker{s: s})
	jobs.AddWorker(q, &updateWorker{s: s})
	jobs.AddWorker(q, &scanAllWorker{s: s})
	jobs.AddWorker(q, &stageWorker{s: s})
	jobs.AddWorker(q, &indexWorker{s: s})
	// At start (what a stop left behind, reports stored before the index
	// existed), and now and then: a re-match that ends while the index job
	// finishes its last batch may find it still running, and queue none.
	q.Every(indexInterval, true, func() (river.JobArgs, *river.InsertOpts) { return IndexArgs{}, nil })
}

// indexInterval is how often the vulnerability index is caught up
// besides after re-matches.
const indexInterval = 10 * time.Minute

// ScanArgs is the job that scans one manifest digest.
type ScanArgs struct {
	Digest string `json:"digest" river:"unique"`
	// Repository is one repository holding the manifest when the job was
	// queued; another is used if it is gone by then.
	Repository string `json:"repository"`
	// FirstDB marks a scan the first database queues for an image whose
	// scan found no database. It is part of the job's identity so that
	// the scan that found none, whose end river may not have recorded yet
	// (it records ends asynchronously), cannot absorb it and leave the
	// image pending.
	FirstDB bool `json:"first_db,omitempty" river:"unique"`
	// Seen, set when the job is queued because the digest had no report
	// (a push, the first database's scan of what is missing), is when that
	// was read: a report finished since answers it (a scan running then
	// may end, and river record so, before this job is queued, which
	// would otherwise scan the image again). A rescan asked for leaves it
	// zero.
	Seen time.Time `json:"seen,omitzero"`
}

// Kind implements river.JobArgs.
func (ScanArgs) Kind() string { return "scan" }

// InsertOpts: one pending scan per digest (pushing an image to ten
// repositories queues one scan), a few attempts for I/O failures.
func (ScanArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobs.QueueScan, MaxAttempts: 3, UniqueOpts: river.UniqueOpts{
		ByArgs:  true,
		ByState: queuedOrRunning,
	}}
}

// RematchArgs is the job that re-matches stored reports against the
// current database.
type RematchArgs struct {
	Digests []string `json:"digests"`
	// DBUpdatedAt is the database the update that queued the job built:
	// a replica whose database is older syncs first, and fails the job
	// (to be retried) rather than re-match against the old one.
	DBUpdatedAt time.Time `json:"db_updated_at,omitzero"`
	// From and Keys are the update's previous database and the lookup
	// keys whose records it changed (at most maxDeltaKeys): a report
	// matched against From is matched again only for the packages that
	// look one of them up, keeping its other findings. Without them every
	// report is matched in full.
	From time.Time `json:"db_from,omitzero"`
	// Keys are base64 (standard, unpadded) of the vulndb.Key strings: a
	// key holds a NUL, which PostgreSQL's jsonb, where river keeps job
	// arguments, refuses.
	Keys []string `json:"keys,omitempty"`
}

// rematchChunkSize is how many reports a full re-match job decodes,
// matches and stores at a time.
const rematchChunkSize = 50

// maxDeltaKeys bounds the changed keys a re-match job carries (each job
// of a batch carries them all); an update that changed more re-matches
// its reports in full.
const maxDeltaKeys = 2000

// Kind implements river.JobArgs.
func (RematchArgs) Kind() string { return "rematch" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (RematchArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobs.QueueRematch, MaxAttempts: 5}
}

// IndexArgs is the job that catches the vulnerability index up with the
// reports re-matched since it last ran (reports.Store.IndexVulnerabilities).
type IndexArgs struct{}

// Kind implements river.JobArgs.
func (IndexArgs) Kind() string { return "vuln_index" }

// InsertOpts: on the re-match queue behind every re-match (a lower
// priority), so that the index never delays a report or its notices; one
// queued at a time.
func (IndexArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobs.QueueRematch, Priority: 4, MaxAttempts: 5, UniqueOpts: river.UniqueOpts{
		ByArgs:  true,
		ByState: queuedOrRunning,
	}}
}

// UpdateDBArgs is the job that updates the vulnerability database and
// queues the re-matches its changes call for.
type UpdateDBArgs struct {
	// RequestedAt, set by a request (POST /api/v1/vulndb/update), is part
	// of the job's identity: a request made while an update runs (which
	// may have read the feeds before they changed) queues one more update
	// instead of being absorbed by the running one, and runs unless an
	// update started after it. Scheduled updates leave it zero: one of
	// them is queued at a time.
	RequestedAt time.Time `json:"requested_at,omitzero" river:"unique"`
}

// Kind implements river.JobArgs.
func (UpdateDBArgs) Kind() string { return "vulndb_update" }

// InsertOpts: one scheduled update queued at a time (see RequestedAt).
func (UpdateDBArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobs.QueueMaintenance, MaxAttempts: 3, UniqueOpts: river.UniqueOpts{
		ByArgs:  true,
		ByState: queuedOrRunning,
	}}
}

// ScanAllArgs queues a scan of every stored image (Harbor's "scan all").
type ScanAllArgs struct {
	// Missing limits it to images without a report; the first database
	// queues it.
	Missing bool `json:"missing,omitempty"`
}

// Kind implements river.JobArgs.
func (ScanAllArgs) Kind() string { return "scan_all" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ScanAllArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobs.QueueMaintenance, MaxAttempts: 3, UniqueOpts: river.UniqueOpts{
		ByArgs:  true,
		ByState: queuedOrRunning,
	}}
}

// Enabled reports whether the server scans: it has a database, or is
// configured to build one.
func (s *Service) Enabled() bool { return s.opts.DB != nil }

// QueueUpdate queues an update of the database, after the one running if
// any (see UpdateDBArgs.RequestedAt).
func (s *Service) QueueUpdate(ctx context.Context) error {
	_, err := s.opts.Queue.Insert(ctx, UpdateDBArgs{RequestedAt: time.Now().UTC()}, nil)
	return err
}

// QueueScanAll queues a scan of every stored image.
func (s *Service) QueueScanAll(ctx context.Context) error {
	_, err := s.opts.Queue.Insert(ctx, ScanAllArgs{}, nil)
	return err
}

// Enqueue queues a scan of manifest d of repo and marks it pending
// (keeping any earlier report until the new one is stored).
//
// The job is queued first: a scan of d already queued or running absorbs
// the request (its result is what the caller would get), and must not see
// its state overwritten with "pending" after it stored its report.
func (s *Service) Enqueue(ctx context.Context, repo string, d digest.Digest) error {
	_, err := s.enqueued(ctx, ScanArgs{Digest: d.String(), Repository: repo})
	return err
}

// enqueued queues a scan and says whether it was queued (not absorbed by
// one of the same identity).
func (s *Service) enqueued(ctx context.Context, args ScanArgs) (bool, error) {
	d := digest.Digest(args.Digest)
	queued := time.Now()
	res, err := s.opts.Queue.Insert(ctx, args, nil)
	if err != nil || res.UniqueSkippedAsDuplicate {
		return false, err
	}
	return true, s.opts.Reports.MarkPending(ctx, d, queued)
}

// OnPush decides what a pushed manifest needs: a scan if it is a
// scannable image without a report (an image already scanned under
// another repository is announced as scanned to this one at once).
func (s *Service) OnPush(ctx context.Context, repo string, m *meta.Manifest) error {
	if !Scannable(m) {
		return nil
	}
	seen := time.Now()
	rec, err := s.opts.Reports.Get(ctx, m.Digest, false)
	switch {
	case errors.Is(err, reports.ErrNotFound):
	case err != nil:
		return err
	case rec.HasReport() && rec.Scan.Status == reports.Done:
		if s.opts.SBOMReferrers {
			if full, err := s.opts.Reports.Get(ctx, m.Digest, true); err == nil && full.Report != nil {
				if err := s.attachSBOM(ctx, m.Digest, full.Report, full.Scan.FinishedAt, []string{repo}); err != nil {
					s.log.WarnContext(ctx, "could not attach the SBOM referrer", "repository", repo, "digest", m.Digest, "error", err)
				}
			}
		}
		s.notify(ctx, Notice{Type: NoticeScanCompleted, Scan: rec.Scan, Summary: &rec.Summary}, m.Digest, repo)
		s.queueStages(ctx, m.Digest, []string{repo})
		return nil
	case rec.Scan.Status == reports.Pending || rec.Scan.Status == reports.Running:
		// Queued already, most likely; but a crash between marking it
		// pending and queueing its job would leave it unscanned. The job
		// is unique per digest: queueing it again adds nothing if it is
		// there.
		_, err := s.opts.Queue.Insert(ctx, ScanArgs{Digest: m.Digest.String(), Repository: repo, Seen: seen}, nil)
		return err
	}
	_, err = s.enqueued(ctx, ScanArgs{Digest: m.Digest.String(), Repository: repo, Seen: seen})
	return err
}

// OnDelete forgets the report of a manifest no repository holds any more.
func (s *Service) OnDelete(ctx context.Context, d digest.Digest) error {
	repos, err := s.opts.Meta.ManifestRepositories(ctx, d, 1)
	if err != nil || len(repos) > 0 {
		return err
	}
	return s.opts.Reports.Delete(ctx, d)
}

// Media types the scanner reads.
const (
	mediaOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mediaOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mediaDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaOCIConfig      = "application/vnd.oci.image.config.v1+json"
	mediaDockerConfig   = "application/vnd.docker.container.image.v1+json"
	// ArtifactTypeCycloneDX is the SBOM referrer's artifact type.
	ArtifactTypeCycloneDX = "application/vnd.cyclonedx+json"
)

// Scannable reports whether m is an image (or an index of images) rather
// than a signature, attestation, SBOM, chart or other artifact: no
// subject, no artifactType, an image config, and only filesystem layers.
// cosign's signatures and attestations use an image config but their
// layers are payloads, not tars.
func Scannable(m *meta.Manifest) bool {
	if m.Subject != "" {
		return false
	}
	var doc struct {
		ArtifactType string `json:"artifactType"`
		Config       struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
		Layers []struct {
			MediaType string `json:"mediaType"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(m.Content, &doc); err != nil || doc.ArtifactType != "" {
		return false
	}
	switch m.MediaType {
	case mediaOCIIndex, mediaDockerList:
		return true
	case mediaOCIManifest, mediaDockerManifest:
	default:
		return false
	}
	if doc.Config.MediaType != mediaOCIConfig && doc.Config.MediaType != mediaDockerConfig {
		return false
	}
	for _, l := range doc.Layers {
		if !image.IsLayerMediaType(l.MediaType) {
			return false
		}
	}
	return true
}

// open reads the image of manifest d out of repo's stores.
func (s *Service) open(ctx context.Context, repo string, d digest.Digest) (*image.Image, error) {
	m, err := s.opts.Meta.Manifest(ctx, repo, d)
	if err != nil {
		return nil, err
	}
	blobs := func(ref string) (io.ReadCloser, int64, error) {
		rd, err := digest.Parse(ref)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %s: %v", image.ErrBadSource, ref, err)
		}
		// An index's children are manifests, held by the meta store.
		if child, err := s.opts.Meta.Manifest(ctx, repo, rd); err == nil {
			return io.NopCloser(bytes.NewReader(child.Content)), int64(len(child.Content)), nil
		}
		rc, size, err := s.opts.Blobs.Open(ctx, rd)
		if errors.Is(err, blob.ErrNotFound) {
			return nil, 0, fmt.Errorf("%w: %s", image.ErrMissingBlob, rd)
		}
		return rc, size, err
	}
	return image.OpenManifest(d.String(), m.Content, blobs, image.Options{})
}

// scan inventories manifest d (held by repo) and matches it.
func (s *Service) scan(ctx context.Context, repo string, d digest.Digest) (*match.Report, *live.Generation, error) {
	gen := s.opts.DB.Acquire()
	if gen == nil {
		return nil, nil, errNoDB
	}
	img, err := s.open(ctx, repo, d)
	if err != nil {
		gen.Release()
		return nil, nil, err
	}
	defer img.Close()
	r, err := s.engine(gen).ScanImage(ctx, img)
	if err != nil {
		gen.Release()
		return nil, nil, err
	}
	r.Inventory.Source = repo + "@" + d.String()
	// The report names the manifest asked for (an index's digest), as
	// `berth scan repo@digest` does.
	r.Inventory.Digest = d.String()
	return r, gen, nil
}

var errNoDB = errors.New("the server has no vulnerability database yet")

// engine is the scanning engine over one database generation: the CLI's,
// with the scanners the server is configured for.
func (s *Service) engine(g *live.Generation) *scan.Engine {
	e := &scan.Engine{Inventory: s.opts.Inventory, Matcher: g.Matcher, Logger: s.log, Misconfig: s.opts.Misconfig}
	if s.opts.Secrets {
		e.Secrets, _ = secret.Default()
	}
	return e
}

// lookupKeys are the report's index keys.
func lookupKeys(inv inventory.Inventory) []string {
	ls := match.Lookups(inv)
	keys := make([]string, len(ls))
	for i, l := range ls {
		keys[i] = vulndb.Key(l.Ecosystem, l.Name)
	}
	return keys
}

// permanent reports whether a scan failure is the image's fault (no
// retry can help) rather than the server's.
func permanent(err error) bool {
	for _, target := range []error{image.ErrBadSource, image.ErrLimit, image.ErrDiffIDMismatch, image.ErrMissingBlob,
		image.ErrNoMatchingPlatform, image.ErrSymlinkLoop, meta.ErrManifestUnknown, inventory.ErrAnalyzerPanic} {
		if errors.Is(err, target) {
			return true
		}
	}
	var syntax *json.SyntaxError
	return errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF)
}

type scanWorker struct {
	river.WorkerDefaults[ScanArgs]
	s *Service
}

// Timeout bounds one scan; a large image takes seconds, a hostile one is
// stopped by the walker's limits long before this.
func (w *scanWorker) Timeout(*river.Job[ScanArgs]) time.Duration { return 10 * time.Minute }

func (w *scanWorker) Work(ctx context.Context, j *river.Job[ScanArgs]) error {
	s := w.s
	d, err := digest.Parse(j.Args.Digest)
	if err != nil {
		return river.JobCancel(fmt.Errorf("scan job: %w", err))
	}
	repo, ok, err := s.holder(ctx, d, j.Args.Repository)
	if err != nil {
		return err
	}
	if !ok {
		// Deleted before its scan ran: nothing to store.
		return s.opts.Reports.Delete(ctx, d)
	}
	// A report stored after this job was queued is this job's own work,
	// done before a crash kept its completion from being recorded (or a
	// concurrent scan's): scanning again would announce it twice.
	since := j.CreatedAt
	switch {
	case j.Args.FirstDB:
		// It scans what had no report: any report answers it (a push's
		// scan may have run since the scan-all read the image as missing).
		since = time.Time{}
	case !j.Args.Seen.IsZero() && j.Args.Seen.Before(since):
		since = j.Args.Seen
	}
	if rec, err := s.opts.Reports.Get(ctx, d, false); err == nil && rec.HasReport() &&
		rec.Scan.Status == reports.Done && rec.Scan.FinishedAt.After(since) {
		// Announce it again, in case the crash came before the notice
		// went out (a repeat is recognised and dropped).
		s.notify(ctx, Notice{Type: NoticeScanCompleted, Scan: rec.Scan, Summary: &rec.Summary}, d, "")
		s.queueStages(ctx, d, nil)
		return nil
	}
	start := time.Now().UTC()
	if err := s.opts.Reports.SetScan(ctx, d, reports.Scan{Status: reports.Running, StartedAt: start}); err != nil {
		return err
	}
	// Never a report from a database older than the published one: a
	// replica that cannot install it fails the attempt, to be retried.
	if err := s.syncDB(ctx); err != nil {
		return s.failed(ctx, j, d, repo, start, err)
	}
	r, gen, err := s.scan(ctx, repo, d)
	if err != nil {
		return s.failed(ctx, j, d, repo, start, err)
	}
	defer func() { gen.Release() }()
	// The database may have been replaced while the image was read: the
	// re-match of that update did not see this report, so match again.
	if cur := s.opts.DB.Acquire(); cur != nil {
		if cur != gen {
			gen.Release()
			gen = cur
			if r, err = s.engine(gen).Rematch(ctx, r); err != nil {
				return s.failed(ctx, j, d, repo, start, err)
			}
		} else {
			cur.Release()
		}
	}
	done := reports.Scan{Status: reports.Done, StartedAt: start, FinishedAt: time.Now().UTC(), DBUpdatedAt: gen.Info.UpdatedAt}
	if _, ok, err := s.holder(ctx, d, repo); err != nil || !ok {
		if err == nil {
			err = s.opts.Reports.Delete(ctx, d)
		}
		return err
	}
	if err := s.opts.Reports.Put(ctx, d, done, r, lookupKeys(r.Inventory), -1); err != nil {
		return err
	}
	if s.opts.Stored != nil {
		s.opts.Stored(d)
	}
	// A delete that landed while the report was stored: forget it again
	// (the delete's own handling may have run before the Put).
	if _, ok, err := s.holder(ctx, d, repo); err == nil && !ok {
		return s.opts.Reports.Delete(ctx, d)
	}
	if s.m != nil {
		s.m.scans.WithLabelValues("done").Inc()
		s.m.scanDuration.WithLabelValues().Observe(done.FinishedAt.Sub(start).Seconds())
	}
	if s.opts.SBOMReferrers {
		if err := s.attachSBOM(ctx, d, r, done.FinishedAt, nil); err != nil {
			// The report is stored; the referrer is a convenience.
			s.log.WarnContext(ctx, "could not attach the SBOM referrer", "digest", d, "error", err)
		}
	}
	sum := reports.Summarize(r)
	s.notify(ctx, Notice{Type: NoticeScanCompleted, Scan: done, Summary: &sum}, d, "")
	// The stage judges the stored report: a crash after this point
	// repeats the job, which finds the report and queues it again.
	s.queueStages(ctx, d, nil)
	s.log.InfoContext(ctx, "scanned", "repository", repo, "digest", d, "packages", len(r.Inventory.Packages),
		"findings", len(r.Findings), "took", done.FinishedAt.Sub(start).Round(time.Millisecond))
	return nil
}

// holder returns a repository holding manifest d, preferring repo.
func (s *Service) holder(ctx context.Context, d digest.Digest, repo string) (string, bool, error) {
	if repo != "" {
		if _, err := s.opts.Meta.Manifest(ctx, repo, d); err == nil {
			return repo, true, nil
		} else if !errors.Is(err, meta.ErrManifestUnknown) {
			return "", false, err
		}
	}
	repos, err := s.opts.Meta.ManifestRepositories(ctx, d, 1)
	if err != nil || len(repos) == 0 {
		return "", false, err
	}
	return repos[0], true, nil
}

// failed records a failed scan; a failure of the image is final, others
// are retried while attempts remain.
func (s *Service) failed(ctx context.Context, j *river.Job[ScanArgs], d digest.Digest, repo string, start time.Time, err error) error {
	if errors.Is(err, errNoDB) {
		// Scanned once the first database is in place (UpdateDB queues
		// every image without a report).
		if serr := s.opts.Reports.SetScan(ctx, d, reports.Scan{Status: reports.Pending, Error: err.Error()}); serr != nil {
			return errors.Join(err, serr)
		}
		// The first database may have arrived since, and its scan may
		// have finished before the pending status above was written:
		// scan again now (a snooze spends no attempt).
		if gen := s.opts.DB.Acquire(); gen != nil {
			gen.Release()
			return river.JobSnooze(0)
		}
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	final := permanent(err) || j.Attempt >= j.MaxAttempts
	st := reports.Scan{Status: reports.Failed, StartedAt: start, FinishedAt: time.Now().UTC(), Error: err.Error()}
	if !final {
		st = reports.Scan{Status: reports.Pending, Error: fmt.Sprintf("attempt %d failed: %v", j.Attempt, err)}
	}
	if serr := s.opts.Reports.SetScan(ctx, d, st); serr != nil {
		return errors.Join(err, serr)
	}
	if !final {
		return err
	}
	if s.m != nil {
		s.m.scans.WithLabelValues("failed").Inc()
	}
	s.log.WarnContext(ctx, "scan failed", "repository", repo, "digest", d, "error", err)
	s.notify(ctx, Notice{Type: NoticeScanFailed, Scan: st}, d, "")
	return river.JobCancel(err)
}

// notify sends n about d to repo, or to every repository holding d when
// repo is empty, with that repository's tags of d. A notice may be sent
// again for the same result (the scan finishing and the push of an image
// already scanned; a scan repeated after a crash): Notify's receiver
// identifies a notice by its type, repository, digest and the time of the
// result it announces, and drops repeats.
func (s *Service) notify(ctx context.Context, n Notice, d digest.Digest, repo string) {
	if s.opts.Notify == nil {
		return
	}
	repos := []string{repo}
	if repo == "" {
		var err error
		if repos, err = s.opts.Meta.ManifestRepositories(ctx, d, -1); err != nil {
			s.log.WarnContext(ctx, "could not announce", "type", n.Type, "digest", d, "error", err)
			return
		}
	}
	for _, r := range repos {
		tags, err := s.opts.Meta.ManifestTags(ctx, r, d)
		if err != nil {
			s.log.WarnContext(ctx, "could not announce", "type", n.Type, "digest", d, "error", err)
			continue
		}
		n := n
		n.Repository, n.Digest, n.Tags = r, d, tags
		s.opts.Notify(ctx, n)
	}
}

// SyncDB makes the live database the published one, on a replica of a
// scale-out deployment (what GET /api/v1/vulndb shows); it does nothing
// on a single server.
func (s *Service) SyncDB(ctx context.Context) error { return s.syncDB(ctx) }

// syncDB makes the live database the published one, on a replica of a
// scale-out deployment.
func (s *Service) syncDB(ctx context.Context) error {
	if s.opts.Shared == nil {
		return nil
	}
	return s.opts.Shared.Sync(ctx)
}

// Rematch re-matches the stored reports of ds against the current
// database (reports already matched against it are left alone), stores
// them in one transaction, and announces findings they did not have.
func (s *Service) Rematch(ctx context.Context, ds ...digest.Digest) error {
	_, err := s.rematch(ctx, RematchArgs{}, ds)
	return err
}

// rematch is Rematch against a database updated at a.DBUpdatedAt or
// later, which the replica installs first if it has an older one; with
// a.From and a.Keys, reports matched against a.From are matched again
// only for the packages whose keys changed (when the database is exactly
// the one the update built: a later one may have changed other keys).
func (s *Service) rematch(ctx context.Context, a RematchArgs, ds []digest.Digest) (deltas int, err error) {
	atLeast := a.DBUpdatedAt
	if err := s.syncDB(ctx); err != nil {
		return 0, err
	}
	gen := s.opts.DB.Acquire()
	if gen == nil {
		if !atLeast.IsZero() {
			return 0, fmt.Errorf("re-match for the vulnerability database of %s: %w", atLeast.Format(time.RFC3339Nano), errNoDB)
		}
		return 0, errNoDB
	}
	defer gen.Release()
	if gen.Info.UpdatedAt.Before(atLeast) {
		return 0, fmt.Errorf("re-match for the vulnerability database of %s: this replica has the older one of %s",
			atLeast.Format(time.RFC3339Nano), gen.Info.UpdatedAt.Format(time.RFC3339Nano))
	}
	engine := s.engine(gen)
	start := time.Now()
	var changed func(match.Lookup) bool
	if !a.From.IsZero() && len(a.Keys) > 0 && gen.Info.UpdatedAt.Equal(a.DBUpdatedAt) {
		keys := make(map[string]bool, len(a.Keys))
		for _, k := range a.Keys {
			b, err := base64.RawStdEncoding.DecodeString(k)
			if err != nil {
				// Not a key this version wrote: match in full.
				keys = nil
				break
			}
			keys[string(b)] = true
		}
		if keys != nil {
			// Asked once a package of every report: the answers are kept
			// (the reports of a batch share most packages) so that the
			// normalised key is built once a lookup, not once a package.
			seen := map[match.Lookup]bool{}
			changed = func(l match.Lookup) bool {
				v, ok := seen[l]
				if !ok {
					v = keys[vulndb.Key(l.Ecosystem, l.Name)]
					seen[l] = v
				}
				return v
			}
		}
	}
	// A chunk at a time, each stored in its own transaction: a job's
	// memory stays that of a chunk's decoded inventories and reports,
	// whatever its batch (a full re-match builds every finding; a delta
	// builds only the new ones, so it takes its batch at once). A job
	// retried after a failure skips the chunks it stored (their reports
	// are matched against this database already).
	chunk := rematchChunkSize
	if changed != nil {
		chunk = max(chunk, len(ds))
	}
	for from := 0; from < len(ds); from += chunk {
		n, err := s.rematchChunk(ctx, engine, gen.Info.UpdatedAt, a.From, changed, ds[from:min(from+chunk, len(ds))])
		deltas += n
		if err != nil {
			return deltas, err
		}
	}
	if s.m != nil {
		s.m.rematchDuration.WithLabelValues().Observe(time.Since(start).Seconds())
	}
	return deltas, nil
}

// rematchChunk is the reports of up to rematchChunkSize digests re-matched
// (the delta where changed is set and a report was matched against the
// database of from) against the database of dbAt, stored and announced.
func (s *Service) rematchChunk(ctx context.Context, engine *scan.Engine, dbAt, from time.Time, changed func(match.Lookup) bool,
	ds []digest.Digest) (deltas int, err error) {
	inputs, err := s.opts.Reports.RematchInputs(ctx, ds)
	if err != nil {
		return 0, err
	}
	batch := make([]reports.Rematched, 0, len(inputs))
	old := make(map[digest.Digest][]reports.FindingKey, len(inputs))
	for i := range inputs {
		in := &inputs[i]
		if in.Scan.DBUpdatedAt.Equal(dbAt) {
			continue
		}
		rm := reports.Rematched{Digest: in.Digest, IfVersion: in.Version, Prev: in}
		// Only a report matched against the update's previous database
		// differs from a full match just where the update's keys say.
		if changed != nil && in.Scan.DBUpdatedAt.Equal(from) {
			prev := make([]string, len(in.Findings))
			for j, f := range in.Findings {
				prev[j] = f.Package
			}
			r, kept, err := engine.MatchDelta(ctx, &in.Inventory, prev, reports.PackageKey, changed)
			switch {
			case err == nil:
				rm.Report, rm.Kept = r, kept
				deltas++
			case errors.Is(err, match.ErrNoDelta):
				// A report stored by a berth that listed findings otherwise:
				// correct either way, so not worth a line per report.
				s.log.DebugContext(ctx, "re-matching in full", "digest", in.Digest, "reason", err)
			default:
				return 0, fmt.Errorf("rematch %s: %w", in.Digest, err)
			}
		}
		if rm.Report == nil {
			if rm.Report, err = engine.Match(ctx, &in.Inventory); err != nil {
				return 0, fmt.Errorf("rematch %s: %w", in.Digest, err)
			}
		}
		// The scan state stays what it was (a rescan may be queued); the
		// report is the last good one, matched against the new database.
		rm.Scan = in.Scan
		rm.Scan.DBUpdatedAt = dbAt
		batch = append(batch, rm)
		old[in.Digest] = in.Findings
	}
	if len(batch) == 0 {
		return 0, nil
	}
	// A report a scan replaced meanwhile is skipped: that scan matched
	// against a database at least as new.
	stored, err := s.opts.Reports.StoreRematches(ctx, batch)
	if err != nil {
		return 0, err
	}
	if s.m != nil {
		s.m.rematches.WithLabelValues().Add(float64(len(stored)))
	}
	done := map[digest.Digest]bool{}
	for _, d := range stored {
		done[d] = true
		if s.opts.Stored != nil {
			s.opts.Stored(d)
		}
	}
	for _, b := range batch {
		if !done[b.Digest] {
			continue
		}
		// The stage judges the new findings: it may revoke its approval.
		s.queueStages(ctx, b.Digest, nil)
		// A delta's report holds only the findings of the packages matched
		// again: the ones it kept are known, so they are never new.
		if added := newFindings(old[b.Digest], b.Report.Findings); len(added) > 0 {
			sum := b.Summary
			s.notify(ctx, Notice{Type: NoticeVulnerabilitiesNew, Scan: b.Scan, Summary: &sum, New: added}, b.Digest, "")
		}
	}
	s.log.DebugContext(ctx, "re-matched", "reports", len(stored), "delta", deltas, "full", len(batch)-deltas)
	return deltas, nil
}

// newFindings lists the findings of cur whose flaw old did not have for
// the same package, the most severe first. A finding whose primary id
// changed (a CVE assigned to a GHSA) is not new: any shared id counts.
func newFindings(old []reports.FindingKey, cur []match.Finding) []NewFinding {
	type key struct{ id, pkg string }
	known := map[key]bool{}
	for _, f := range old {
		for _, id := range f.IDs {
			known[key{id, f.Package}] = true
		}
	}
	var out []NewFinding
	seen := map[key]bool{}
	for i := range cur {
		f := &cur[i]
		pkg := reports.PackageKey(&f.Package)
		if slices.ContainsFunc(f.IDs(), func(id string) bool { return known[key{id, pkg}] }) || seen[key{f.ID, pkg}] {
			continue
		}
		seen[key{f.ID, pkg}] = true
		out = append(out, NewFinding{ID: f.ID, Severity: f.Severity, Package: f.Package.Name, Version: f.Package.Version, Fixed: f.FixedVersions})
	}
	// The most severe first, then by id, package and version: a total
	// order, so no stable sort is needed.
	slices.SortFunc(out, func(a, b NewFinding) int {
		if ra, rb := a.Severity.Rank(), b.Severity.Rank(); ra != rb {
			return rb - ra
		}
		return cmp.Or(strings.Compare(a.ID, b.ID), strings.Compare(a.Package, b.Package), strings.Compare(a.Version, b.Version))
	})
	return out
}

type rematchWorker struct {
	river.WorkerDefaults[RematchArgs]
	s *Service
}

func (w *rematchWorker) Work(ctx context.Context, j *river.Job[RematchArgs]) error {
	ds := make([]digest.Digest, 0, len(j.Args.Digests))
	for _, s := range j.Args.Digests {
		if d, err := digest.Parse(s); err == nil {
			ds = append(ds, d)
		}
	}
	_, err := w.s.rematch(ctx, j.Args, ds)
	if errors.Is(err, errNoDB) && j.Args.DBUpdatedAt.IsZero() {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = w.s.opts.Queue.Insert(ctx, IndexArgs{}, nil)
	return err
}

type indexWorker struct {
	river.WorkerDefaults[IndexArgs]
	s *Service
}

func (w *indexWorker) Timeout(*river.Job[IndexArgs]) time.Duration { return 30 * time.Minute }

// indexYield is how long the index job waits for running re-matches.
const indexYield = time.Second

func (w *indexWorker) Work(ctx context.Context, _ *river.Job[IndexArgs]) error {
	// Re-matches first: the index's transactions would hold the write
	// lock their reports wait for.
	left, err := w.s.opts.Queue.List(ctx, river.NewJobListParams().Kinds(RematchArgs{}.Kind()).
		States(rivertype.JobStateAvailable, rivertype.JobStateRunning).First(1))
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return river.JobSnooze(indexYield)
	}
	n, err := w.s.opts.Reports.IndexVulnerabilities(ctx)
	if n > 0 {
		w.s.log.InfoContext(ctx, "vulnerability index caught up", "reports", n)
	}
	return err
}

type updateWorker struct {
	river.WorkerDefaults[UpdateDBArgs]
	s *Service
}

func (w *updateWorker) Timeout(*river.Job[UpdateDBArgs]) time.Duration { return 30 * time.Minute }

// noUpdateSnooze is how long a replica without sources puts back an
// update job it was handed, for a replica with sources to take.
const noUpdateSnooze = 30 * time.Second

func (w *updateWorker) Work(ctx context.Context, j *river.Job[UpdateDBArgs]) error {
	if at := j.Args.RequestedAt; !at.IsZero() && w.s.opts.DB.Status().LastAttemptAt.After(at) {
		// An update that started after the request read the feeds as
		// the requester saw them, or later.
		return nil
	}
	if w.s.opts.NoUpdate {
		// Snoozing neither fails the job nor uses up its attempts.
		w.s.log.InfoContext(ctx, "left the vulnerability database update to a replica with scan.db_sources")
		return river.JobSnooze(noUpdateSnooze)
	}
	_, err := w.s.UpdateDB(ctx)
	return err
}

// UpdateDB updates the database and queues what the change calls for:
// re-matches of the reports that look up a changed key, or, for the first
// database, scans of every image that has no report.
//
// On a replica of a scale-out deployment the update starts from the
// published database (so the change is measured from what every replica
// has) and publishes the new one before the re-matches are queued.
func (s *Service) UpdateDB(ctx context.Context) (*live.Change, error) {
	var ch *live.Change
	var err error
	if s.opts.Shared != nil {
		ch, err = s.opts.Shared.Update(ctx, s.opts.DB.Update)
	} else {
		ch, err = s.opts.DB.Update(ctx)
	}
	if err != nil {
		return nil, err
	}
	if ch.First {
		_, err := s.opts.Queue.Insert(ctx, ScanAllArgs{Missing: true}, nil)
		return ch, err
	}
	affected, err := s.opts.Reports.Affected(ctx, ch.Keys)
	if err != nil {
		return ch, err
	}
	if len(ch.Coverage) > 0 {
		// An ecosystem that gained or lost all its records changes the
		// reports of its packages even under unchanged keys (a package
		// of a release the database did not cover is reported
		// unmatchable, not clean).
		more, err := s.opts.Reports.AffectedEcosystems(ctx, ch.Coverage)
		if err != nil {
			return ch, err
		}
		affected = append(affected, more...)
		slices.Sort(affected)
		affected = slices.Compact(affected)
	}
	if err := s.queueRematch(ctx, affected, RematchArgs{DBUpdatedAt: ch.To, From: ch.From, Keys: deltaKeys(ch.Keys)}); err != nil {
		return ch, err
	}
	s.log.InfoContext(ctx, "re-matching the reports the update can change", "reports", len(affected))
	return ch, nil
}

// deltaKeys are the keys a re-match job carries: all of them, or none
// (a full re-match) when there are more than maxDeltaKeys.
func deltaKeys(keys []string) []string {
	if len(keys) > maxDeltaKeys {
		return nil
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = base64.RawStdEncoding.EncodeToString([]byte(k))
	}
	return out
}

// queueRematch queues re-matches of the reports of ds, in batches, with
// the database and changed keys of base.
func (s *Service) queueRematch(ctx context.Context, affected []digest.Digest, base RematchArgs) error {
	var params []river.InsertManyParams
	for start := 0; start < len(affected); start += s.opts.RematchBatch {
		part := affected[start:min(start+s.opts.RematchBatch, len(affected))]
		args := base
		args.Digests = make([]string, len(part))
		for i, d := range part {
			args.Digests[i] = d.String()
		}
		params = append(params, river.InsertManyParams{Args: args})
	}
	return s.opts.Queue.InsertMany(ctx, params)
}

type scanAllWorker struct {
	river.WorkerDefaults[ScanAllArgs]
	s *Service
}

func (w *scanAllWorker) Work(ctx context.Context, j *river.Job[ScanAllArgs]) error {
	n, err := w.s.ScanAll(ctx, j.Args.Missing)
	w.s.log.InfoContext(ctx, "scan all: queued", "images", n, "missing_only", j.Args.Missing)
	return err
}

// ScanAll queues a scan of every scannable manifest (only those without a
// report when missing is set), once per digest.
func (s *Service) ScanAll(ctx context.Context, missing bool) (int, error) {
	seen := map[digest.Digest]bool{}
	type todo struct {
		repo string
		d    digest.Digest
	}
	var queue []todo
	err := s.opts.Meta.WalkManifests(ctx, func(repo string, m *meta.Manifest) error {
		if seen[m.Digest] || !Scannable(m) {
			return nil
		}
		seen[m.Digest] = true
		queue = append(queue, todo{repo, m.Digest})
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range queue {
		var rec *reports.Record
		var seen time.Time // a forced rescan when zero
		if missing {
			seen = time.Now()
			var err error
			if rec, err = s.opts.Reports.Get(ctx, t.d, false); err == nil && rec.HasReport() {
				continue
			}
		}
		queued, err := s.enqueued(ctx, ScanArgs{Digest: t.d.String(), Repository: t.repo, Seen: seen})
		if err != nil {
			return n, err
		}
		// Only the first database queues the scans of missing reports.
		// One absorbed by a scan that found no database, which river has
		// not yet recorded as ended, is queued under its own identity.
		if !queued && rec != nil && rec.Scan.Status == reports.Pending && rec.Scan.Error == errNoDB.Error() {
			if _, err := s.enqueued(ctx, ScanArgs{Digest: t.d.String(), Repository: t.repo, FirstDB: true}); err != nil {
				return n, err
			}
		}
		n++
	}
	return n, nil
}

type serviceMetrics struct {
	scans           *prom.CounterVec
	scanDuration    *prom.HistogramVec
	rematches       *prom.CounterVec
	rematchDuration *prom.HistogramVec
}

func newServiceMetrics(reg *prom.Registry) *serviceMetrics {
	b := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
	return &serviceMetrics{
		scans:           reg.NewCounterVec("berth_scans_total", "Scans of stored images, by result (done, failed).", "result"),
		scanDuration:    reg.NewHistogramVec("berth_scan_duration_seconds", "Time to scan a stored image (inventory and match).", b),
		rematches:       reg.NewCounterVec("berth_rematches_total", "Stored reports re-matched after a database update."),
		rematchDuration: reg.NewHistogramVec("berth_rematch_duration_seconds", "Time to re-match and store one batch of stored reports.", b),
	}
}

// queuedOrRunning are the states in which a unique job is not queued
// again (river requires running among them).
var queuedOrRunning = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled, rivertype.JobStateRunning}
