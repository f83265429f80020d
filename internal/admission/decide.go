package admission

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/singleflight"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/policy"
	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/store"
)

// Local reads images of berth's own registry from its stores: the
// signatures without an HTTP round trip, and the scan report stored for
// the digest. ok is false for other registries. ctx is the review's: the
// caller decides there who may see the repository.
type Local func(ctx context.Context, registry, repository string) (r store.Reader, report func(digest string) func(context.Context) (*match.Report, error), ok bool)

// ProjectPolicy decides an image of berth's own registry (one Local
// answered for) under its project's stored policy, as the registry
// decides its pull: by the name of the registry, the repository, the
// reference (a tag, or the digest when the image is pinned) and the
// digest it resolved to. deny is the refusal the pull would get ("":
// allowed), warnings those it would carry; an error is no decision (a
// refusal).
type ProjectPolicy func(ctx context.Context, registry, repository, reference, digest string) (deny string, warnings []string, err error)

// Options configure a Handler.
type Options struct {
	// Policy returns the policy in force (nil from it: no policy could be
	// loaded, every review refused). Unset, only ProjectPolicy decides.
	Policy func() *policy.Policy
	// ProjectPolicy, when set, decides the images Local answers for under
	// their project's policy too: an image is admitted when both allow
	// it. It is asked at every review (it keeps its own verdict cache),
	// so a project policy put since is seen by the next review.
	ProjectPolicy ProjectPolicy
	// Keychain gives registry credentials (docker config files,
	// imagePullSecrets); nil is anonymous.
	Keychain authn.Keychain
	// Insecure allows plain HTTP and unverified TLS to every registry
	// (loopback registries are spoken to over HTTP anyway).
	Insecure bool
	// Local, when set, answers for berth's own registry from its stores.
	Local Local
	// Viewer names who asks (from the review's context), when what may be
	// seen depends on it (Local with authorization): decisions are cached
	// and shared per viewer.
	Viewer func(context.Context) string
	// Timeout bounds a decision (default 9 s, under the webhook's 10 s);
	// the apiserver's ?timeout= shortens it.
	Timeout time.Duration
	// PositiveTTL and NegativeTTL are how long an allowed and a refused
	// decision about a tag are reused (defaults 1 min and 10 s); a
	// verdict's own validity bounds both. Decisions about a digest are
	// reused as long as the verdict is valid.
	PositiveTTL, NegativeTTL time.Duration
	// PodSecurity adds the pod security rule set (runAsNonRoot,
	// readOnlyRootFilesystem, allowPrivilegeEscalation=false, drop ALL,
	// seccomp RuntimeDefault, no privileged containers or hostPath).
	PodSecurity bool
	Logger      *slog.Logger
}

// decision is what was decided about one image reference.
type decision struct {
	image   string // as written
	pinned  string // name[:tag]@digest
	digest  string
	verdict *policy.Verdict
	// local is an image of berth's own registry (Local answered for it),
	// named by registry, repository and reference (the tag, or the
	// digest when pinned): what ProjectPolicy is asked about.
	local                           bool
	registry, repository, reference string
	// unchecked is an image no policy applies to: another registry's
	// when only project policies are enforced.
	unchecked bool
	// problem is why no verdict could be reached (the reference does not
	// parse, the registry failed or timed out): a refusal.
	problem string
	until   time.Time
}

func (d *decision) allowed() bool { return d.problem == "" && d.verdict.Allowed }

// decider decides images with a cache and coalesced lookups.
type decider struct {
	opts  Options
	log   *slog.Logger
	group singleflight.Group

	mu    sync.Mutex
	cache map[string]*decision // by policy version + image

	misses int64 // decisions looked up and remembered, for tests
}

const maxCached = 1 << 14

// remembered counts the decisions looked up and cached.
func (dc *decider) remembered() int64 {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	return dc.misses
}

func newDecider(opts Options) *decider {
	if opts.Timeout <= 0 {
		opts.Timeout = 9 * time.Second
	}
	if opts.PositiveTTL <= 0 {
		opts.PositiveTTL = time.Minute
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = 10 * time.Second
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.NewMultiKeychain()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &decider{opts: opts, log: log, cache: map[string]*decision{}}
}

// decide returns the decision about image under p, from the cache, from a
// lookup already running for it, or by looking it up.
func (dc *decider) decide(ctx context.Context, p *policy.Policy, image string) *decision {
	var key string
	if p != nil {
		key = p.Version
	}
	key += "\x00" + image
	if dc.opts.Viewer != nil {
		key += "\x00" + dc.opts.Viewer(ctx)
	}
	now := time.Now()
	dc.mu.Lock()
	d := dc.cache[key]
	dc.mu.Unlock()
	if d != nil && now.Before(d.until) {
		return d
	}
	ch := dc.group.DoChan(key, func() (any, error) {
		// The lookup outlives the request that started it (others may
		// wait for it) but not the decision timeout.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dc.opts.Timeout)
		defer cancel()
		d := dc.lookup(lctx, p, image)
		if d.until.After(time.Now()) {
			dc.mu.Lock()
			if len(dc.cache) >= maxCached {
				clear(dc.cache)
			}
			dc.cache[key] = d
			dc.misses++
			dc.mu.Unlock()
		}
		return d, nil
	})
	select {
	case r := <-ch:
		return r.Val.(*decision)
	case <-ctx.Done():
		return &decision{image: image, problem: fmt.Sprintf("no decision within the webhook's time (%v): the registry did not answer in time", ctx.Err())}
	}
}

// projectCheck is what the project's policy said about a decided image.
type projectCheck struct {
	deny     string
	warnings []string
}

// project asks ProjectPolicy about d, an image of berth's own registry
// that resolved; nil when there is nothing to ask.
func (dc *decider) project(ctx context.Context, d *decision) *projectCheck {
	if dc.opts.ProjectPolicy == nil || !d.local || d.problem != "" || d.digest == "" {
		return nil
	}
	type answer struct {
		deny     string
		warnings []string
		err      error
	}
	// The enforcer's evaluation may outlive the review (others may share
	// it): the review is answered within its time all the same.
	ch := make(chan answer, 1)
	go func() {
		deny, warnings, err := dc.opts.ProjectPolicy(ctx, d.registry, d.repository, d.reference, d.digest)
		ch <- answer{deny, warnings, err}
	}()
	var a answer
	select {
	case a = <-ch:
	case <-ctx.Done():
		a.err = fmt.Errorf("no decision within the webhook's time: %w", ctx.Err())
	}
	if a.err != nil {
		// Fail closed: no decision is a refusal.
		dc.log.WarnContext(ctx, "project policy not checked; the image is refused", "image", d.image, "error", a.err)
		return &projectCheck{deny: "its project's policy could not be checked: " + a.err.Error()}
	}
	return &projectCheck{deny: a.deny, warnings: a.warnings}
}

func (dc *decider) lookup(ctx context.Context, p *policy.Policy, image string) *decision {
	d := &decision{image: image}
	now := time.Now()
	ref, err := name.ParseReference(image)
	if err != nil {
		d.problem = fmt.Sprintf("image reference %q does not parse: %v", image, err)
		d.until = now.Add(dc.opts.NegativeTTL)
		return d
	}
	registry := ref.Context().RegistryStr()
	var st store.Reader
	var report func(context.Context) (*match.Report, error)
	if dc.opts.Local != nil {
		if r, rep, ok := dc.opts.Local(ctx, registry, ref.Context().RepositoryStr()); ok {
			st = r
			d.local, d.registry, d.repository = true, registry, ref.Context().RepositoryStr()
			if rep != nil {
				// The report is the digest's, known once resolved below.
				report = func(ctx context.Context) (*match.Report, error) { return rep(d.digest)(ctx) }
			}
		}
	}
	if st == nil && p == nil {
		// Only project policies are enforced, and this image is no
		// project's: nothing to look up.
		d.pinned, d.unchecked = image, true
		d.verdict = &policy.Verdict{Image: image, Allowed: true}
		d.until = now.Add(dc.opts.PositiveTTL)
		return d
	}
	if st == nil {
		opts := []remote.Option{remote.WithAuthFromKeychain(dc.opts.Keychain), remote.WithUserAgent("berth-admission")}
		reg := ref.Context().Registry
		if dc.opts.Insecure {
			if reg, err = name.NewRegistry(registry, name.Insecure); err != nil {
				d.problem = err.Error()
				d.until = now.Add(dc.opts.NegativeTTL)
				return d
			}
		}
		rs, err := store.NewRemote(reg, opts...)
		if err != nil {
			d.problem = fmt.Sprintf("registry %s: %v", registry, err)
			d.until = now.Add(dc.opts.NegativeTTL)
			return d
		}
		st = rs
	}
	t, err := sign.Resolve(ctx, st, ref)
	if err != nil {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			d.problem = fmt.Sprintf("registry %s did not answer within %s", registry, dc.opts.Timeout)
		case errors.Is(err, store.ErrNotFound):
			d.problem = fmt.Sprintf("image %s not found in its registry", image)
		default:
			d.problem = fmt.Sprintf("could not resolve %s: %v", image, err)
		}
		// A failure to reach the registry is not remembered: the next
		// request tries again.
		return d
	}
	d.digest = t.Manifest.Digest.String()
	img := policy.Image{Registry: registry, Repository: ref.Context().RepositoryStr(), Digest: d.digest}
	switch r := ref.(type) {
	case name.Tag:
		img.Tag = r.TagStr()
		d.pinned = r.Name() + "@" + d.digest
		d.reference = r.TagStr()
	case name.Digest:
		// Already pinned (perhaps with its tag too): kept as written.
		img.Pinned = true
		d.pinned = image
		d.reference = r.DigestStr()
	}
	if p == nil {
		// Only its project's policy decides (ProjectPolicy, at each
		// review); the resolution is what is remembered.
		d.verdict = &policy.Verdict{Image: image, Digest: d.digest, Allowed: true}
		d.until = now.Add(dc.opts.PositiveTTL)
		return d
	}
	v, err := p.Evaluate(ctx, policy.Facts{Image: img, Store: st, Target: t, Report: report, Now: now})
	if err != nil {
		d.problem = fmt.Sprintf("policy evaluation of %s: %v", image, err)
		return d
	}
	d.verdict = v
	if v.Transient {
		return d
	}
	ttl := dc.opts.NegativeTTL
	if v.Allowed {
		ttl = dc.opts.PositiveTTL
	}
	d.until = now.Add(ttl)
	if img.Pinned {
		// A digest does not move: only the verdict's own validity ends it.
		d.until = v.ValidUntil
	}
	if v.ValidUntil.Before(d.until) {
		d.until = v.ValidUntil
	}
	return d
}
