// Package pull enforces project policies when the registry serves a
// manifest: the small digest-aware step the registry's manifest GET/HEAD
// takes after authorization (Harbor's contenttrust and vulnerable
// middlewares, but verifying signatures rather than looking for them).
//
// Verdicts are cached per (host, repository, digest, tag) for the
// project's policy version; an entry goes when a signature, attestation or
// referrer of that digest is pushed or deleted in the repository, when
// the digest's scan report is stored or a stage approval of it given or
// revoked (Options.Revoked), when the policy changes, or when
// time alone could change it (Verdict.ValidUntil). A refusal that may
// change at any moment (a place that could not be read, an image not yet
// scanned: Verdict.Transient) is not cached. A cached pull costs a map
// lookup, no signature verification.
package pull

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/singleflight"

	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/policy"
	"berth.dev/berth/internal/registry/event"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/store/local"
)

// Options configure an Enforcer.
type Options struct {
	Policies policy.Store
	Meta     meta.Store
	Blobs    blob.Store
	// Reports holds stored scan reports; nil when the server keeps none.
	Reports reports.Store
	// ProjectID maps a project name to its immutable id ("" when there
	// is no such project).
	ProjectID func(name string) string
	// Keys resolves the key references of a project's policy (berth's
	// key store, trust files); nil refuses them.
	Keys func(project string) policy.KeyResolver
	// Revoked says whether the approval a stage signature or attestation
	// of digest d in repo stands for (annotated dev.berth.stage=stage,
	// made by the key with id keyID, sigstore's key hint) was revoked, and
	// why; it then does not count (policy.Facts.StageRevoked). nil: every
	// signature and attestation counts.
	// Whoever revokes calls ReportStored(d) after, as the verdicts made
	// with the approval standing are stale.
	Revoked func(ctx context.Context, repo string, d digest.Digest, stage, keyID string) (reason string, revoked bool, err error)
	Logger  *slog.Logger
	// Timeout bounds one evaluation (default 10 s); past it the pull is
	// refused, not served.
	Timeout time.Duration
	// MaxEntries bounds the verdict cache (default 65,536).
	MaxEntries int
}

// Enforcer decides pulls.
type Enforcer struct {
	opts  Options
	log   *slog.Logger
	store local.Reader

	mu       sync.RWMutex
	policies map[string]*projectPolicy // by project name
	cache    map[key]*entry
	byDigest map[digest.Digest]map[key]struct{}
	gen      atomic.Uint64 // bumped by every invalidation
	group    singleflight.Group

	evaluations atomic.Uint64
}

type projectPolicy struct {
	id      string
	project string
	p       *policy.Policy
	broken  error // a stored policy that no longer loads: every pull refused
}

type key struct {
	host, repo string
	digest     digest.Digest
	tag        string
}

type entry struct {
	version string
	until   time.Time
	deny    string
	warn    []string
	// verdict is the evaluation the entry was made from, for Explain;
	// nil for an exempt manifest and for an index's platform manifests,
	// allowed with it. Shared: never modified.
	verdict *policy.Verdict
	// err is why the policy could not be evaluated (never cached).
	err error
}

// New returns an enforcer; LoadStored then loads the stored policies.
func New(ctx context.Context, opts Options) (*Enforcer, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 1 << 16
	}
	e := &Enforcer{opts: opts, log: opts.Logger, store: local.Reader{Meta: opts.Meta, Blobs: opts.Blobs},
		policies: map[string]*projectPolicy{}, cache: map[key]*entry{}, byDigest: map[digest.Digest]map[key]struct{}{}}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	return e, nil
}

// LoadStored loads every stored policy (once what their key references
// resolve through is open).
func (e *Enforcer) LoadStored(ctx context.Context) error {
	return e.Reload(ctx, nil, true)
}

// Reload enforces what the store now holds for the projects with ids
// projectIDs, or for every project when all: another process sharing the
// store changed them (backend.Changes.Policies).
func (e *Enforcer) Reload(ctx context.Context, projectIDs []string, all bool) error {
	var found []policy.Stored
	if all {
		var err error
		if found, err = e.opts.Policies.All(ctx); err != nil {
			return fmt.Errorf("load project policies: %w", err)
		}
	} else {
		for _, id := range projectIDs {
			s, err := e.opts.Policies.Get(ctx, id)
			if errors.Is(err, policy.ErrNoPolicy) {
				continue
			}
			if err != nil {
				return fmt.Errorf("load project policy: %w", err)
			}
			found = append(found, s)
		}
	}
	loaded := make([]*projectPolicy, 0, len(found))
	for _, s := range found {
		pp := &projectPolicy{id: s.ProjectID, project: s.Project}
		var err error
		if pp.p, err = e.parse(s.Project, s.Body); err != nil {
			// Fail closed: a policy that loaded once and does not now
			// (a key reference gone) refuses pulls until it is fixed.
			e.log.Error("stored project policy does not load; pulls of the project are refused until it is replaced", "project", s.Project, "error", err)
			pp.broken = err
		}
		loaded = append(loaded, pp)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if all {
		clear(e.policies)
	} else {
		for _, id := range projectIDs {
			for name, pp := range e.policies {
				if pp.id == id {
					delete(e.policies, name)
				}
			}
		}
	}
	for _, pp := range loaded {
		// A project deleted and created again under its name may leave
		// its old policy stored: the policy of the project that now
		// has the name wins over it.
		if cur := e.policies[pp.project]; cur != nil && e.current(cur) && !e.current(pp) {
			continue
		}
		e.policies[pp.project] = pp
	}
	e.gen.Add(1) // evaluations under way may have used the old policy
	return nil
}

// current reports whether pp belongs to the project that has its name now.
func (e *Enforcer) current(pp *projectPolicy) bool {
	return e.opts.ProjectID == nil || e.opts.ProjectID(pp.project) == pp.id
}

func (e *Enforcer) parse(project string, body []byte) (*policy.Policy, error) {
	var keys policy.KeyResolver
	if e.opts.Keys != nil {
		keys = e.opts.Keys(project)
	}
	return policy.Parse("policy of project "+project, body, policy.Options{Keys: keys})
}

// Set stores and enforces a project's policy.
func (e *Enforcer) Set(ctx context.Context, project, projectID string, body []byte, actor string) (policy.Stored, *policy.Policy, error) {
	p, err := e.parse(project, body)
	if err != nil {
		return policy.Stored{}, nil, err
	}
	s := policy.Stored{ProjectID: projectID, Project: project, Body: body, Version: p.Version, UpdatedAt: time.Now().UTC(), UpdatedBy: actor}
	if err := e.opts.Policies.Put(ctx, s); err != nil {
		return policy.Stored{}, nil, err
	}
	e.mu.Lock()
	e.policies[project] = &projectPolicy{id: projectID, project: project, p: p}
	e.mu.Unlock()
	e.gen.Add(1) // entries carry the version they were made for
	return s, p, nil
}

// Get returns a project's stored policy.
func (e *Enforcer) Get(ctx context.Context, projectID string) (policy.Stored, error) {
	return e.opts.Policies.Get(ctx, projectID)
}

// Delete stops enforcing a project's policy.
func (e *Enforcer) Delete(ctx context.Context, project, projectID string) error {
	if err := e.opts.Policies.Delete(ctx, projectID); err != nil {
		return err
	}
	e.mu.Lock()
	delete(e.policies, project)
	e.mu.Unlock()
	e.gen.Add(1)
	return nil
}

// SetKeys sets how key references are resolved (before LoadStored).
func (e *Enforcer) SetKeys(keys func(project string) policy.KeyResolver) { e.opts.Keys = keys }

// SetReports gives the enforcer the stored scan reports (opened after it);
// call before serving.
func (e *Enforcer) SetReports(r reports.Store) { e.opts.Reports = r }

// SetRevoked sets how stage approvals are read (opened after the
// enforcer); call before serving.
func (e *Enforcer) SetRevoked(revoked func(ctx context.Context, repo string, d digest.Digest, stage, keyID string) (string, bool, error)) {
	e.opts.Revoked = revoked
}

// Evaluations counts the evaluations run (cache misses), for tests and
// benchmarks.
func (e *Enforcer) Evaluations() uint64 { return e.evaluations.Load() }

// projectOf is the first path segment: berth's projects.
func projectOf(repo string) string {
	p, _, _ := strings.Cut(repo, "/")
	return p
}

func (e *Enforcer) policyFor(repo string) *projectPolicy {
	project := projectOf(repo)
	e.mu.RLock()
	pp := e.policies[project]
	e.mu.RUnlock()
	if pp == nil {
		return nil
	}
	if e.opts.ProjectID != nil && e.opts.ProjectID(project) != pp.id {
		// The project was deleted (and maybe made again): its policy
		// went with it.
		return nil
	}
	return pp
}

// Enforced reports whether a policy is enforced in repo's project.
func (e *Enforcer) Enforced(repo string) bool { return e.policyFor(repo) != nil }

// CheckPull decides whether the registry may serve manifest m of repo,
// asked for by reference through host. deny is the refusal's message
// (empty: serve); warnings go into Warning headers.
func (e *Enforcer) CheckPull(ctx context.Context, host, repo, reference string, m *meta.Manifest) (deny string, warnings []string) {
	pp := e.policyFor(repo)
	if pp == nil {
		return "", nil
	}
	if pp.broken != nil {
		return fmt.Sprintf("the policy of project %s does not load (%v); pulls are refused until it is replaced", projectOf(repo), pp.broken), nil
	}
	en := e.decide(ctx, pp, host, repo, reference, m, false)
	return en.deny, en.warn
}

// decide returns the cached entry for the pull, or evaluates it once
// however many ask at the same time. With needVerdict, an entry that
// holds no verdict (an index's platform manifest, allowed with the index)
// is evaluated again, on the manifest itself.
func (e *Enforcer) decide(ctx context.Context, pp *projectPolicy, host, repo, reference string, m *meta.Manifest, needVerdict bool) *entry {
	k := key{host: host, repo: repo, digest: m.Digest}
	if !strings.Contains(reference, ":") {
		k.tag = reference
	}
	e.mu.RLock()
	en := e.cache[k]
	e.mu.RUnlock()
	if en != nil && en.version == pp.p.Version && time.Now().Before(en.until) && (en.verdict != nil || !needVerdict) {
		return en
	}
	gen := e.gen.Load()
	sfKey := host + "\x00" + repo + "\x00" + string(m.Digest) + "\x00" + k.tag + "\x00" + pp.p.Version
	v, _, _ := e.group.Do(sfKey, func() (any, error) {
		return e.evaluate(ctx, pp.p, k, m, reference, gen), nil
	})
	return v.(*entry)
}

// CheckImage decides, as CheckPull would, the pull of the manifest with
// digest d in repo, named by reference through host, reading the
// manifest from the store: the admission webhook asks it about images of
// this registry before a pod that names them is admitted, and shares the
// verdict cache with the registry's pulls. An error is a manifest that
// could not be read (meta.ErrNotFound when it is not there).
func (e *Enforcer) CheckImage(ctx context.Context, host, repo, reference string, d digest.Digest) (deny string, warnings []string, err error) {
	if e.policyFor(repo) == nil {
		// Nothing to enforce: no manifest to read.
		return "", nil, nil
	}
	m, err := e.opts.Meta.Manifest(ctx, repo, d)
	if err != nil {
		return "", nil, fmt.Errorf("manifest %s of %s: %w", d, repo, err)
	}
	deny, warnings = e.CheckPull(ctx, host, repo, reference, m)
	return deny, warnings, nil
}

func (e *Enforcer) evaluate(ctx context.Context, p *policy.Policy, k key, m *meta.Manifest, reference string, gen uint64) *entry {
	now := time.Now()
	if attached(k.tag, m) {
		// Signatures, attestations and SBOMs stay pullable, so cosign and
		// berth can verify what the policy asks for.
		en := &entry{version: p.Version, until: now.Add(policy.MaxValidity)}
		e.remember(k, en, gen)
		return en
	}
	img := policy.Image{Registry: k.host, Repository: k.repo, Tag: k.tag, Pinned: k.tag == "", Digest: m.Digest.String()}
	if !p.Applies(img) {
		en := &entry{version: p.Version, until: now.Add(policy.MaxValidity)}
		e.remember(k, en, gen)
		return en
	}
	e.evaluations.Add(1)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.Timeout)
	defer cancel()
	v, err := e.verdict(ctx, p, img, m, now)
	if err != nil {
		// Fail closed, and do not remember: the next pull tries again.
		e.log.Warn("pull-time policy could not be evaluated; refused", "repository", k.repo, "digest", m.Digest, "error", err)
		return &entry{deny: "the project's policy could not be evaluated: " + err.Error(), err: err}
	}
	en := &entry{version: p.Version, until: v.ValidUntil, verdict: v}
	if !v.Allowed {
		en.deny = "denied by the policy of project " + projectOf(k.repo) + ": " + v.Message()
	}
	for _, w := range v.Warnings {
		en.warn = append(en.warn, w.String())
	}
	if v.Transient {
		return en
	}
	e.remember(k, en, gen)
	if v.Allowed {
		// The platform manifests of an allowed index are pulled next, by
		// digest: they are allowed with it.
		for _, child := range indexChildren(m) {
			ck := key{host: k.host, repo: k.repo, digest: child}
			e.rememberUnder(ck, m.Digest, &entry{version: en.version, until: en.until, warn: en.warn}, gen)
		}
	}
	return en
}

// verdict evaluates p on manifest m, named img.
func (e *Enforcer) verdict(ctx context.Context, p *policy.Policy, img policy.Image, m *meta.Manifest, now time.Time) (*policy.Verdict, error) {
	h, err := v1.NewHash(m.Digest.String())
	if err != nil {
		return nil, fmt.Errorf("manifest digest: %w", err)
	}
	facts := policy.Facts{Image: img, Store: e.store,
		Target: sign.Target{Name: img.Name(), Repo: img.Repository, Manifest: v1.Descriptor{MediaType: types.MediaType(m.MediaType), Digest: h, Size: int64(len(m.Content))}},
		Report: e.report(m.Digest), Now: now}
	if e.opts.Meta != nil {
		// This registry received the signatures: it knows when.
		facts.ArrivedAt = meta.ArrivalLookup(e.opts.Meta)
	}
	if revoked := e.opts.Revoked; revoked != nil {
		facts.StageRevoked = func(ctx context.Context, stage, keyID string) (string, bool, error) {
			return revoked(ctx, img.Repository, m.Digest, stage, keyID)
		}
	}
	return p.Evaluate(ctx, facts)
}

// Explanation is the project policy's whole verdict on one manifest, for
// people (the web UI, the API): what CheckPull decides, with every rule's
// reason rather than only the refusal's message.
type Explanation struct {
	// Version is the project policy's version.
	Version string
	// Exempt says why no rule was evaluated; "" when they were.
	Exempt string
	// Verdict is the evaluation; nil when Exempt is set.
	Verdict *policy.Verdict
}

// Explain evaluates the policy of repo's project on manifest m, named by
// reference through host, through the verdict cache the pulls share: the
// web UI asks it for every artifact page, and anyone who may pull the
// image may ask, so a verdict is computed once until something it
// depends on changes (a signature, a report, the policy, time), as for a
// pull. It returns policy.ErrNoPolicy when the project has none, and an
// error when the policy does not load or cannot be evaluated (then pulls
// are refused).
func (e *Enforcer) Explain(ctx context.Context, host, repo, reference string, m *meta.Manifest) (*Explanation, error) {
	pp := e.policyFor(repo)
	if pp == nil {
		return nil, policy.ErrNoPolicy
	}
	if pp.broken != nil {
		return nil, fmt.Errorf("the policy of project %s does not load (%w); pulls are refused until it is replaced", projectOf(repo), pp.broken)
	}
	tag := ""
	if !strings.Contains(reference, ":") {
		tag = reference
	}
	ex := &Explanation{Version: pp.p.Version}
	img := policy.Image{Registry: host, Repository: repo, Tag: tag, Pinned: tag == "", Digest: m.Digest.String()}
	switch {
	case attached(tag, m):
		ex.Exempt = "signatures, attestations and SBOMs are always pullable, so that what the policy asks for can be verified"
	case !pp.p.Applies(img):
		ex.Exempt = "no document of the project's policy applies to this image"
	default:
		en := e.decide(ctx, pp, host, repo, reference, m, true)
		if en.err != nil {
			return nil, fmt.Errorf("the project's policy could not be evaluated: %w", en.err)
		}
		ex.Verdict = en.verdict
	}
	return ex, nil
}

// report reads the digest's stored report.
func (e *Enforcer) report(d digest.Digest) func(context.Context) (*match.Report, error) {
	return func(ctx context.Context) (*match.Report, error) {
		if e.opts.Reports == nil {
			return nil, policy.ErrNotScanned
		}
		rec, err := e.opts.Reports.Get(ctx, d, true)
		if errors.Is(err, reports.ErrNotFound) || (err == nil && !rec.HasReport()) {
			return nil, policy.ErrNotScanned
		}
		if err != nil {
			return nil, err
		}
		return rec.Report, nil
	}
}

func (e *Enforcer) remember(k key, en *entry, gen uint64) { e.rememberUnder(k, k.digest, en, gen) }

// rememberUnder caches en for k, indexed under digest d for invalidation,
// unless an invalidation happened since the evaluation began (its result
// may predate the change).
func (e *Enforcer) rememberUnder(k key, d digest.Digest, en *entry, gen uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gen.Load() != gen {
		return
	}
	if len(e.cache) >= e.opts.MaxEntries {
		clear(e.cache)
		clear(e.byDigest)
	}
	e.cache[k] = en
	idx := e.byDigest[d]
	if idx == nil {
		idx = map[key]struct{}{}
		e.byDigest[d] = idx
	}
	idx[k] = struct{}{}
}

// forget drops every verdict about digest d (in repo, or in every
// repository when repo is "").
func (e *Enforcer) forget(repo string, d digest.Digest) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen.Add(1)
	for k := range e.byDigest[d] {
		if repo == "" || k.repo == repo {
			delete(e.cache, k)
			delete(e.byDigest[d], k)
		}
	}
	if len(e.byDigest[d]) == 0 {
		delete(e.byDigest, d)
	}
}

// Notify implements event.Notifier: a change to what is attached to a
// digest (a signature, attestation or referrer pushed or deleted, the
// cosign tags or the referrers index moved) forgets that digest's
// verdicts in the repository.
func (e *Enforcer) Notify(_ context.Context, ev event.Event) {
	switch ev.Kind {
	case event.ManifestPushed, event.ManifestDeleted, event.TagDeleted:
	default:
		return
	}
	if ev.Subject != "" {
		e.forget(ev.Repository, ev.Subject)
	}
	if ev.Kind == event.ManifestDeleted && ev.Digest != "" {
		e.forget(ev.Repository, ev.Digest)
	}
	for _, t := range ev.Tags {
		if d, ok := attachedTagSubject(t); ok {
			e.forget(ev.Repository, d)
		}
	}
}

// ForgetAll drops every cached verdict: a change too large to describe,
// or changes that may have been missed.
func (e *Enforcer) ForgetAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen.Add(1)
	clear(e.cache)
	clear(e.byDigest)
}

// ReportStored forgets verdicts about a digest whose scan report changed
// (a scan, a re-match after a database update), or whose stage approval
// was given or revoked on it.
func (e *Enforcer) ReportStored(d digest.Digest) { e.forget("", d) }

// attachedTagSubject reads cosign's tag forms: sha256-<hex>.sig, .att,
// .sbom, and the referrers tag schema's sha256-<hex>.
func attachedTagSubject(tag string) (digest.Digest, bool) {
	alg, rest, ok := strings.Cut(tag, "-")
	if !ok || (alg != "sha256" && alg != "sha512") {
		return "", false
	}
	hex, _, _ := strings.Cut(rest, ".")
	d := digest.Digest(alg + ":" + hex)
	return d, d.Validate() == nil
}

// attached reports whether m is something attached to an image (a
// signature, an attestation, an SBOM, a referrers index) rather than an
// image that could run. Only the content decides: a tag or a subject is
// anyone's to push, so an image manifest is exempt only when none of its
// layers is a filesystem layer a runtime would unpack, and an index only
// under cosign's referrers tag (its children are judged one by one when
// pulled, never allowed through it).
func attached(tag string, m *meta.Manifest) bool {
	var mf struct {
		Layers []struct {
			MediaType string `json:"mediaType"`
		} `json:"layers"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(m.Content, &mf) != nil {
		return false
	}
	if mf.Manifests != nil || strings.Contains(m.MediaType, "index") || strings.Contains(m.MediaType, "manifest.list") {
		_, cosignTag := attachedTagSubject(tag)
		return cosignTag
	}
	if len(mf.Layers) == 0 {
		return false
	}
	for _, l := range mf.Layers {
		if filesystemLayer(l.MediaType) {
			return false
		}
	}
	return true
}

// filesystemLayer reports whether a layer media type is one container
// runtimes unpack (OCI and Docker layers, compressed or not, foreign or
// not), or one berth cannot tell.
func filesystemLayer(mt string) bool {
	switch {
	case mt == "":
		return true
	case strings.Contains(mt, "image.layer"), strings.Contains(mt, "image.rootfs"), strings.Contains(mt, "rootfs.diff"):
		return true
	}
	return false
}

// indexChildren lists the manifests an image index names.
func indexChildren(m *meta.Manifest) []digest.Digest {
	var idx struct {
		Manifests []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"manifests"`
	}
	if json.Unmarshal(m.Content, &idx) != nil {
		return nil
	}
	out := make([]digest.Digest, 0, len(idx.Manifests))
	for _, c := range idx.Manifests {
		if c.Digest.Validate() == nil {
			out = append(out, c.Digest)
		}
	}
	return out
}
