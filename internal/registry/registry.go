// Package registry serves the OCI distribution API v1.1 under /v2/: pulls,
// pushes (monolithic, chunked and streamed uploads, cross-repository
// mounts), tags, the catalog, referrers and deletes, with the error codes
// and headers the spec lists. Content goes to a blob.Store, everything else
// to a meta.Store; every request is authorized through an access.Authorizer
// and every manifest change is reported to an event.Notifier.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/registry/access"
	"berth.dev/berth/internal/registry/event"
)

// Defaults for Options.
const (
	DefaultMaxManifestSize = 4 << 20
	DefaultCacheSize       = 32 << 20
)

// Options configures a Registry. Blobs and Meta are required.
type Options struct {
	Blobs blob.Store
	Meta  meta.Store
	// Authorizer decides every request; nil allows everything.
	Authorizer access.Authorizer
	// Notifier hears of every manifest push and delete; nil for none.
	Notifier event.Notifier
	Logger   *slog.Logger
	// MaxManifestSize is the largest manifest accepted, in bytes; zero
	// means DefaultMaxManifestSize.
	MaxManifestSize int64
	// RequireLayers makes a manifest push fail with MANIFEST_BLOB_UNKNOWN
	// when a distributable layer is missing. Off, only the config blob is
	// required, so sparse images (a mirror holding some platforms' layers)
	// can be stored.
	RequireLayers bool
	// CacheSize bounds the in-memory manifest cache in bytes; zero means
	// DefaultCacheSize, negative disables it.
	CacheSize int64
	// MaxUploads and MaxUploadsPerAccount bound the requests sending blob
	// content at once (monolithic POSTs, PATCHes, PUTs), in all and per
	// account; past them a request gets 429 TOOMANYREQUESTS with
	// Retry-After. Zero does not limit.
	MaxUploads           int
	MaxUploadsPerAccount int
	// RedirectBlobs answers a blob GET with a redirect to a URL of the
	// blob store (blob.Redirector: a presigned S3 URL) instead of
	// streaming the content through the registry; clients must reach the
	// store. Ignored for stores that cannot.
	RedirectBlobs bool
	// Unavailable, if set, tells which errors mean a store cannot be
	// reached or is failing for now: they are answered 503 with
	// Retry-After rather than 500.
	Unavailable func(error) bool
	// SessionLimit bounds unfinished upload sessions per repository and
	// per account (429 past it); zero fields do not limit.
	SessionLimit meta.UploadLimit
	// PullPolicy, when set, decides after authorization whether a
	// manifest may be served (pull-time policy).
	PullPolicy PullPolicy
}

// PullPolicy is the registry's digest-aware pull step: the Authorizer
// sees only the repository and the action, this sees the manifest a
// GET or HEAD resolved to. deny refuses the pull with 403 DENIED and that
// message; warnings are sent as Warning headers.
type PullPolicy interface {
	CheckPull(ctx context.Context, host, repo, reference string, m *meta.Manifest) (deny string, warnings []string)
}

// Signers is implemented by an Authorizer that can tell who may push to a
// repository whatever a request's token was granted. The pull policy does
// not refuse them a manifest, only warns: a signer must read an image to
// sign it (cosign and berth sign fetch its manifest, with a pull-scoped
// token), and an image is unsigned until it is signed. The runtimes a
// policy guards pull with identities that may only pull.
type Signers interface {
	MayPush(s access.Subject, repo string) bool
}

// Registry is the http.Handler of the distribution API.
type Registry struct {
	blobs         blob.Store
	meta          meta.Store
	authz         access.Authorizer
	notify        event.Notifier
	log           *slog.Logger
	maxManifest   int64
	requireLayers bool
	cache         *manifestCache
	sessions      sessionLocks
	uploads       uploadSlots
	sessionLimit  meta.UploadLimit
	// metaExistence: blob HEADs are answered by the meta store alone.
	metaExistence bool
	redirector    blob.Redirector // nil unless RedirectBlobs and the store can
	unavailable   func(error) bool
	pullPolicy    PullPolicy
}

// New returns a Registry over the given stores.
func New(opts Options) (*Registry, error) {
	if opts.Blobs == nil || opts.Meta == nil {
		return nil, errors.New("registry: a blob store and a meta store are required")
	}
	reg := &Registry{
		blobs:         opts.Blobs,
		meta:          opts.Meta,
		authz:         opts.Authorizer,
		notify:        opts.Notifier,
		log:           opts.Logger,
		maxManifest:   opts.MaxManifestSize,
		requireLayers: opts.RequireLayers,
		uploads:       uploadSlots{max: opts.MaxUploads, perAccount: opts.MaxUploadsPerAccount},
		sessionLimit:  opts.SessionLimit,
		unavailable:   opts.Unavailable,
		pullPolicy:    opts.PullPolicy,
	}
	if me, ok := opts.Blobs.(blob.MetaExistence); ok {
		reg.metaExistence = me.ExistenceFromMeta()
	}
	if rd, ok := opts.Blobs.(blob.Redirector); ok && opts.RedirectBlobs {
		reg.redirector = rd
	}
	if reg.authz == nil {
		reg.authz = access.AllowAll{}
	}
	if reg.notify == nil {
		reg.notify = event.Notifiers(nil)
	}
	if reg.log == nil {
		reg.log = slog.New(slog.DiscardHandler)
	}
	if reg.maxManifest <= 0 {
		reg.maxManifest = DefaultMaxManifestSize
	}
	switch {
	case opts.CacheSize == 0:
		reg.cache = newManifestCache(DefaultCacheSize)
	case opts.CacheSize > 0:
		reg.cache = newManifestCache(opts.CacheSize)
	}
	return reg, nil
}

// Notify implements event.Notifier so that changes made behind the
// registry's back (garbage collection) reach its cache: wire the garbage
// collector's events through it.
func (reg *Registry) Notify(_ context.Context, e event.Event) {
	switch e.Kind {
	case event.ManifestDeleted:
		reg.cache.invalidate(e.Repository, e.Tags, e.Digest)
	case event.TagDeleted, event.ManifestPushed:
		reg.cache.invalidate(e.Repository, e.Tags)
	}
}

// ResetCache forgets every cached manifest and tag. A registry whose meta
// store other processes change (replicas sharing a database) hears their
// changes through Notify; it calls ResetCache(false) when it may miss
// some (its cache then stays empty rather than serve what another process
// deleted) and ResetCache(true) once it hears them again.
func (reg *Registry) ResetCache(hearing bool) { reg.cache.reset(!hearing) }

// LockUpload serialises work on one upload session; the garbage collector
// takes it before expiring a session so that it never removes one a request
// is writing to. It returns the unlock function.
func (reg *Registry) LockUpload(id string) func() { return reg.sessions.lock(id) }

// ServeHTTP implements http.Handler for paths under /v2/.
func (reg *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if err := reg.serve(w, r); err != nil {
		reg.writeError(w, r, err)
	}
}

func (reg *Registry) serve(w http.ResponseWriter, r *http.Request) error {
	// Every valid name, tag and digest is plain ASCII that needs no
	// escaping: an escaped path is an attempt to smuggle "/", "." or
	// ".." past the router.
	if r.URL.RawPath != "" {
		return newError(errNameInvalid, "escaped characters are not allowed in registry paths")
	}
	rt := parseRoute(r.URL.Path)
	switch rt.kind {
	case routeUnknown:
		return noEndpoint(r)
	case routeBase, routeCatalog:
	default:
		if !access.ValidRepository(rt.name) {
			return &apiError{code: errNameInvalid, reason: fmt.Sprintf("invalid repository name %q", rt.name),
				detail: map[string]string{"name": rt.name}}
		}
	}
	subject, err := reg.authz.Authenticate(r)
	if err != nil {
		return err
	}
	// The meta store records who made each change it makes.
	r = r.WithContext(event.WithActor(r.Context(), subject.Name))
	req := &request{w: w, r: r, route: rt, subject: subject}
	switch rt.kind {
	case routeBase:
		return reg.handleBase(req)
	case routeCatalog:
		return reg.handleCatalog(req)
	case routeTags:
		return reg.handleTags(req)
	case routeManifest:
		return reg.handleManifest(req)
	case routeBlob:
		return reg.handleBlob(req)
	case routeUploadStart:
		return reg.handleUploadStart(req)
	case routeUpload:
		return reg.handleUpload(req)
	case routeReferrers:
		return reg.handleReferrers(req)
	}
	return noEndpoint(r)
}

// noEndpoint answers a path the API does not define.
func noEndpoint(r *http.Request) error {
	return &apiError{code: errUnsupported, status: http.StatusNotFound, reason: "no such endpoint: " + r.URL.Path}
}

// request is one API call being served.
type request struct {
	w       http.ResponseWriter
	r       *http.Request
	route   route
	subject access.Subject
}

func (q *request) ctx() context.Context { return q.r.Context() }

// authorize checks that the caller may do action to the request's
// repository.
func (reg *Registry) authorize(q *request, action access.Action) error {
	return reg.authz.Authorize(q.ctx(), q.subject, access.Request{Repository: q.route.name, Action: action})
}

// methodNotAllowed answers a method an endpoint does not support.
func methodNotAllowed(q *request, allowed string) error {
	return &apiError{code: errUnsupported, reason: q.r.Method + " is not supported here",
		header: http.Header{"Allow": {allowed}}}
}

func (reg *Registry) handleBase(q *request) error {
	switch q.r.Method {
	case http.MethodGet, http.MethodHead:
	default:
		return methodNotAllowed(q, "GET, HEAD")
	}
	// The zero Request asks whether the caller may use the registry at
	// all; clients probe /v2/ to learn how to authenticate.
	if err := reg.authz.Authorize(q.ctx(), q.subject, access.Request{}); err != nil {
		return err
	}
	h := q.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", "2")
	q.w.WriteHeader(http.StatusOK)
	if q.r.Method == http.MethodGet {
		q.w.Write([]byte("{}"))
	}
	return nil
}

func (reg *Registry) emit(q *request, e event.Event) {
	e.Actor = q.subject.Name
	e.At = time.Now()
	reg.notify.Notify(q.ctx(), e)
}

// sessionLocks serialises requests on one upload session: chunks of one
// upload must be appended one at a time.
type sessionLocks struct {
	mu    sync.Mutex
	locks map[string]*sessionLock
}

type sessionLock struct {
	mu   sync.Mutex
	refs int
}

func (s *sessionLocks) lock(id string) func() {
	s.mu.Lock()
	if s.locks == nil {
		s.locks = map[string]*sessionLock{}
	}
	l := s.locks[id]
	if l == nil {
		l = &sessionLock{}
		s.locks[id] = l
	}
	l.refs++
	s.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(s.locks, id)
		}
		s.mu.Unlock()
	}
}
