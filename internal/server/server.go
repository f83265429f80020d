// Package server wires `berth serve`: the data directory, the registry,
// authentication (token endpoint, admin API) and the audit log, TLS,
// health and metrics endpoints, request logging with request ids,
// scheduled garbage collection and graceful shutdown.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"berth.dev/berth/internal/api"
	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/backend"
	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/pgdb"
	"berth.dev/berth/internal/registry"
	"berth.dev/berth/internal/registry/access"
	"berth.dev/berth/internal/registry/event"
	"berth.dev/berth/internal/registry/gc"
	"berth.dev/berth/internal/ui"
)

// Options are what New needs beyond the configuration: the seams later
// features plug into.
type Options struct {
	Logger *slog.Logger
	// Authorizer decides every registry request; nil means berth's own
	// (internal/auth), or everything allowed when auth.disabled is set.
	Authorizer access.Authorizer
	// Notifier hears of manifest pushes and deletes at once, in process
	// (durable work goes through the outbox instead; see relay).
	Notifier event.Notifier
	// Version is berth's version, for what the server writes (SBOMs,
	// webhook user agents).
	Version string
}

// Server is a running berth.
type Server struct {
	cfg     Config
	log     *slog.Logger
	storage *Storage
	sec     *security
	tls     *tls.Config
	reg     *registry.Registry
	metrics *metrics
	notify  event.Notifier
	ready   atomic.Bool
	bg      *background
	version string
	disk    diskCheck

	api       *api.API
	ui        *ui.UI
	policies  *policies
	admission http.Handler // nil unless admission.policy is set

	gcMu sync.Mutex // one collection at a time

	closeOnce sync.Once
	closeErr  error
	// follower hears other replicas' changes (replicas.go); nil with
	// SQLite.
	follower *backend.Follower

	limits   connectionLimits
	exempt   []netip.Prefix                // trusted proxies: no per-address connection limit
	listener atomic.Pointer[limitListener] // set by Serve

	idPrefix string
	idSeq    atomic.Uint64
}

// New opens the data directory and builds the server. Close it (or let
// Serve finish) to release the directory.
func New(ctx context.Context, cfg Config, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base := opts.Logger
	if base == nil {
		base = slog.New(slog.DiscardHandler)
	}
	log := slog.New(requestIDHandler{base.Handler()})
	storage, err := OpenBackends(ctx, cfg.Backends())
	if err != nil {
		return nil, err
	}
	tlsCfg, err := tlsConfig(cfg, storage.Dir, log)
	if err != nil {
		storage.Close()
		return nil, err
	}
	sec, err := openSecurity(ctx, cfg, storage, log)
	if err != nil {
		storage.Close()
		return nil, err
	}
	authorizer := opts.Authorizer
	if authorizer == nil && sec.auth != nil {
		authorizer = sec.auth
	}
	// Parsed here too: with auth off, Validate does not check them, and
	// the connection limit still exempts them.
	exempt, err := auth.ParseCIDRs(cfg.Auth.TrustedProxies)
	if err != nil {
		sec.Close()
		storage.Close()
		return nil, fmt.Errorf("auth.trusted_proxies: %w", err)
	}
	limits := deriveLimits(cfg.Limits, openFileLimit())
	cacheSize := int64(cfg.Registry.CacheSize)
	if cacheSize == 0 {
		cacheSize = -1 // configured off
	}
	pols, err := openPolicies(ctx, storage, sec, log)
	if err != nil {
		sec.Close()
		storage.Close()
		return nil, err
	}
	// Every change the registry commits wakes the outbox relay.
	wake := newWake()
	regNotify := event.Notifiers{wake}
	if pols.enforcer != nil {
		regNotify = append(regNotify, pols.enforcer)
	}
	if opts.Notifier != nil {
		regNotify = append(regNotify, opts.Notifier)
	}
	reg, err := registry.New(registry.Options{
		Blobs:           storage.Blobs,
		Meta:            storage.Meta,
		Authorizer:      authorizer,
		Notifier:        regNotify,
		Logger:          log,
		MaxManifestSize: int64(cfg.Limits.MaxManifestSize),
		RequireLayers:   cfg.Registry.RequireLayers,
		CacheSize:       cacheSize,
		MaxUploads:      limits.uploads,
		// Zero is no per-account limit, as configured.
		MaxUploadsPerAccount: cfg.Limits.MaxUploadsPerAccount,
		SessionLimit: meta.UploadLimit{PerAccount: cfg.Registry.MaxUploadSessionsPerAccount,
			PerRepository: cfg.Registry.MaxUploadSessionsPerRepository},
		RedirectBlobs: cfg.Storage.Redirect,
		Unavailable:   storage.Backends.Unavailable,
		PullPolicy:    pols.pullPolicy(),
	})
	if err != nil {
		pols.close()
		sec.Close()
		storage.Close()
		return nil, err
	}
	var prefix [4]byte
	rand.Read(prefix[:])
	s := &Server{
		cfg:      cfg,
		log:      log,
		storage:  storage,
		sec:      sec,
		tls:      tlsCfg,
		reg:      reg,
		metrics:  newMetrics(),
		limits:   limits,
		exempt:   exempt,
		idPrefix: hex.EncodeToString(prefix[:]) + "-",
		version:  opts.Version,
		policies: pols,
	}
	if s.bg, err = s.openBackground(ctx, s.metrics.reg, wake); err != nil {
		pols.close()
		sec.Close()
		storage.Close()
		return nil, err
	}
	// Verification through the API checks the anchor file too.
	anchored := audit.Anchored{Store: sec.auditStore, AnchorPath: AuditAnchorsPath(storage.Dir)}
	s.api = api.New(api.Options{Auth: sec.auth, Audit: sec.audit, AuditStore: anchored, AuditKey: &sec.key.PublicKey,
		AutoCreateProjects: cfg.Auth.AutoCreateProjects, Logger: log,
		Meta: storage.Meta, Reports: s.bg.reports, Scans: s.bg.scans, VulnDB: s.bg.vulndb,
		Webhooks: s.bg.webhookStore(), Deliveries: s.bg.deliveries, Version: opts.Version,
		Notifier: event.Notifiers{reg, wake},
		Blobs:    storage.Blobs, Trust: s.signatureTrust, Custody: s.bg.custody, Policies: pols.enforcer,
		KeysChanged: s.keysChanged})
	if pols.enforcer != nil {
		pols.enforcer.SetReports(s.bg.reports)
		pols.enforcer.SetKeys(s.policyKeys)
		if s.bg.custody != nil {
			pols.enforcer.SetRevoked(s.stageRevoked)
		}
		if err := pols.enforcer.LoadStored(ctx); err != nil {
			s.bg.close()
			pols.close()
			sec.Close()
			storage.Close()
			return nil, err
		}
	}
	if s.admission, err = s.openAdmission(); err != nil {
		s.bg.close()
		pols.close()
		sec.Close()
		storage.Close()
		return nil, err
	}
	if s.ui, err = s.newUI(opts.Version); err != nil {
		s.bg.close()
		pols.close()
		sec.Close()
		storage.Close()
		return nil, err
	}
	// The garbage collector's deletions reach the registry's cache first,
	// then whoever else listens; every committed change wakes the relay.
	notifiers := event.Notifiers{reg, wake}
	if pols.enforcer != nil {
		notifiers = append(notifiers, pols.enforcer)
	}
	if opts.Notifier != nil {
		notifiers = append(notifiers, opts.Notifier)
	}
	s.notify = notifiers
	if s.follower, err = s.followReplicas(ctx); err != nil {
		s.bg.close()
		sec.Close()
		storage.Close()
		return nil, err
	}
	s.ready.Store(true)
	return s, nil
}

// Close stops background work, writes what the audit log holds and
// releases the data directory.
// Closing again (Serve closes what it served; a caller may close too)
// returns the first close's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.follower.Stop()
		s.closeErr = errors.Join(s.bg.stop(ctx), s.bg.close(), s.policies.close(), s.sec.Close(), s.storage.Close())
	})
	return s.closeErr
}

// ServeHTTP routes /v2/ to the registry, /token and /api/v1/ to auth, /ui/
// (and / to it) to the web UI, and serves /healthz, /readyz and /metrics, logging and measuring every
// request and auditing registry ones. It does not use http.ServeMux: the
// mux would clean "/v2/a/../b" into another path before the registry could
// refuse it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Request-Id")
	if !validRequestID(id) {
		id = s.idPrefix + strconv.FormatUint(s.idSeq.Add(1), 10)
	}
	w.Header().Set("X-Request-Id", id)
	ctx, trace := auth.WithTrace(context.WithValue(r.Context(), requestIDKey{}, id))
	r = r.WithContext(ctx)

	path := r.URL.Path
	var route string
	var next http.Handler
	registryRoute := false
	switch {
	case len(r.Header.Get("Authorization")) > auth.MaxAuthorizationHeader:
		route, next = "unknown", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { tooLarge(w) })
	case path == "/v2" || strings.HasPrefix(path, "/v2/"):
		route, next, registryRoute = registry.RouteName(path), s.reg, true
	case path == auth.TokenPath && s.sec.auth != nil:
		route, next = "token", s.sec.auth.TokenHandler()
	case path == api.Prefix || strings.HasPrefix(path, api.Prefix+"/"):
		route, next = "api", s.api
	case strings.HasPrefix(path, AdmissionPrefix) && s.admission != nil:
		route, next = "admission", s.admission
	case path == "/":
		route, next = "ui", http.RedirectHandler(ui.Prefix+"/", http.StatusFound)
	case path == ui.Prefix || strings.HasPrefix(path, ui.Prefix+"/"):
		route, next = "ui", s.ui
	case path == "/healthz":
		route, next = "healthz", http.HandlerFunc(s.healthz)
	case path == "/readyz":
		route, next = "readyz", http.HandlerFunc(s.readyz)
	case path == "/metrics":
		route, next = "metrics", s.metrics.handler()
	default:
		route, next = "unknown", http.NotFoundHandler()
	}
	if refuse := s.auditRefusal(r, route, registryRoute); refuse != nil {
		next = refuse
	} else if registryRoute || route == "token" || route == "api" || route == "admission" {
		// Admission reviews read the shared images and rights too.
		next = s.synced(next)
	}
	uploading := (route == "upload" || route == "upload_start") &&
		(r.Method == http.MethodPatch || r.Method == http.MethodPut || r.Method == http.MethodPost)
	if uploading {
		s.metrics.uploadsInFlight.Inc()
		defer s.metrics.uploadsInFlight.Dec()
	}
	idle := s.cfg.Limits.BodyIdleTimeout
	rc := http.NewResponseController(w)
	if idle > 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = &idleBody{ReadCloser: r.Body, rc: rc, idle: idle}
	}
	body := &countingBody{ReadCloser: r.Body}
	r.Body = body
	rec := &recorder{ResponseWriter: w}
	if r.ProtoMajor == 1 && r.ContentLength != 0 {
		rec.beforeHeader = func(h http.Header) { bodyUnread(h, r, body, rc, idle) }
	}
	next.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if registryRoute {
		s.auditRegistry(r, rec.status, rec.Header(), trace)
	}
	elapsed := time.Since(start)
	s.metrics.observe(route, r.Method, rec.status, body.n, rec.written, elapsed)

	// Successful pulls are the bulk of traffic: log them at debug.
	level := slog.LevelDebug
	switch {
	case rec.status >= 500:
		level = slog.LevelError
	case rec.status >= 400 || (r.Method != http.MethodGet && r.Method != http.MethodHead):
		level = slog.LevelInfo
	}
	if s.log.Enabled(r.Context(), level) {
		s.log.LogAttrs(r.Context(), level, "request",
			slog.String("method", r.Method), slog.String("path", path), slog.String("route", route),
			slog.Int("status", rec.status), slog.Int64("bytes_in", body.n), slog.Int64("bytes_out", rec.written),
			slog.Duration("duration", elapsed), slog.String("remote", r.RemoteAddr))
	}
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// readyz answers 200 while the server accepts work and its stores answer;
// 503 while shutting down, when a store fails, when the audit log cannot
// be written or the data disk is full (changes are refused then).
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !s.ready.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	if err := s.storage.Meta.Ping(r.Context()); err != nil {
		s.log.ErrorContext(r.Context(), "readiness: meta store", "error", err)
		http.Error(w, "meta store unavailable", http.StatusServiceUnavailable)
		return
	}
	if why := s.auditUnready(); why != "" {
		http.Error(w, why, http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ready\n"))
}

// Serve serves on ln until ctx is done, then stops accepting, waits up to
// the shutdown timeout for in-flight requests (uploads finish), stops
// garbage collection and releases the data directory.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		MaxHeaderBytes:    maxHeaderBytes,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if err := s.bg.start(ctx); err != nil {
		return errors.Join(err, s.Close())
	}
	lln := newLimitListener(ln, s.limits, s.exempt, s.metrics)
	s.listener.Store(lln)
	ln = lln
	expiryCtx, stopExpiry := context.WithCancel(context.Background())
	expiryDone := make(chan struct{})
	go func() {
		defer close(expiryDone)
		s.expireUploadsLoop(expiryCtx)
	}()
	scheme := "http"
	serve := func() error { return hs.Serve(ln) }
	if s.tls != nil {
		// ServeTLS (not a tls.Listener) so that HTTP/2 is set up too.
		scheme, hs.TLSConfig = "https", s.tls
		serve = func() error { return hs.ServeTLS(ln, "", "") }
	}
	served := make(chan error, 1)
	go func() { served <- serve() }()
	s.log.Info("berth serving", "url", scheme+"://"+ln.Addr().String(), "data", s.cfg.Data, "auth", s.sec.auth != nil,
		"max_connections", s.limits.max, "max_connections_per_ip", s.limits.perIP, "max_uploads", s.limits.uploads)
	s.announceInitialPassword()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	s.ready.Store(false)
	s.log.Info("shutting down: finishing in-flight requests", "timeout", s.cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		s.log.Warn("shutdown timed out; closing remaining connections", "error", err)
		hs.Close()
	}
	stopExpiry()
	<-expiryDone
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return errors.Join(serveErr, s.Close())
}

// CollectGarbage runs one garbage collection while the server keeps
// serving.
func (s *Server) CollectGarbage(ctx context.Context) (gc.Report, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	var rep gc.Report
	// Replicas sharing a database collect one at a time.
	err := s.storage.Backends.Exclusive(ctx, pgdb.LockGC, func(ctx context.Context) error {
		var err error
		rep, err = gc.Run(ctx, s.storage.Meta, s.storage.Blobs, gc.Options{
			Untagged:   s.cfg.GC.Untagged,
			Grace:      s.cfg.GC.Grace,
			UploadTTL:  s.cfg.Registry.UploadTTL,
			Notifier:   s.notify,
			LockUpload: s.reg.LockUpload,
			Logger:     s.log,
		})
		return err
	})
	result := "ok"
	if err != nil {
		result = "error"
	}
	s.metrics.gcRuns.WithLabelValues(result).Inc()
	for kind, n := range map[string]float64{
		"manifest": float64(rep.Manifests), "tag": float64(rep.Tags), "blob_link": float64(rep.BlobLinks),
		"blob": float64(rep.Blobs), "upload": float64(rep.Uploads), "stray_file": float64(rep.StrayFiles),
		"repository": float64(rep.Repositories),
	} {
		s.metrics.gcDeleted.WithLabelValues(kind).Add(n)
	}
	return rep, err
}

// maxHeaderBytes bounds a request's headers; Go answers 431 past it.
const maxHeaderBytes = 64 << 10

// requestIDKey carries the request id in a request's context.
type requestIDKey struct{}

// validRequestID accepts a client's X-Request-Id if it is short and
// printable, so it cannot forge log lines.
func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strings.IndexByte("-_.:", c) >= 0) {
			return false
		}
	}
	return true
}

// requestIDHandler adds the request id of the record's context to every
// log record, so every line a request causes can be found.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
