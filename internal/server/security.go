package server

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/auth/token"
	"berth.dev/berth/internal/backend"
	"berth.dev/berth/internal/registry"
)

// SigningKeyPath is where the data directory keeps the ES256 key that
// signs registry tokens and audit checkpoints.
func SigningKeyPath(dataDir string) string { return filepath.Join(dataDir, "auth", "signing-key.pem") }

// AuditAnchorsPath is the data directory's audit anchor file: the signed
// tips of the audit log, appended outside meta.db.
func AuditAnchorsPath(dataDir string) string { return filepath.Join(dataDir, audit.AnchorFileName) }

// security is the auth service, the admin API and the audit log of a
// server.
type security struct {
	key        *ecdsa.PrivateKey
	auditStore backend.AuditStore
	audit      *audit.Log
	authStore  backend.AuthStore // nil when auth is off
	auth       *auth.Service     // nil when auth is off
	// initialPassword is the first administrator's generated password,
	// until Serve has shown it.
	initialPassword string
}

// loadSigningKey reads auth.signing_key, or the data directory's key,
// generating that one on first start.
func loadSigningKey(cfg Config, dir string, log *slog.Logger) (*ecdsa.PrivateKey, error) {
	if cfg.Auth.SigningKey != "" {
		return token.LoadKey(cfg.Auth.SigningKey)
	}
	key, created, err := token.LoadOrCreateKey(SigningKeyPath(dir))
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("generated the signing key for tokens and audit checkpoints", "path", SigningKeyPath(dir))
	}
	return key, nil
}

// openSecurity opens the audit log and, unless auth is off, the auth
// service and the admin API, in the backends' database.
func openSecurity(ctx context.Context, cfg Config, st *Storage, log *slog.Logger) (*security, error) {
	key, err := loadSigningKey(cfg, st.Dir, log)
	if err != nil {
		return nil, err
	}
	sec := &security{key: key}
	if sec.auditStore, err = st.Backends.OpenAudit(ctx); err != nil {
		return nil, err
	}
	opts := audit.Options{Retention: cfg.Audit.Retention, Logger: log, AnchorFile: AuditAnchorsPath(st.Dir)}
	if cfg.Audit.AnchorURL != "" {
		opts.Sink = audit.HTTPSink{URL: cfg.Audit.AnchorURL}
	}
	if sec.audit, err = audit.Open(ctx, sec.auditStore, key, opts); err != nil {
		sec.auditStore.Close()
		return nil, err
	}
	if cfg.Auth.Disabled {
		log.Warn("AUTHENTICATION IS DISABLED (auth.disabled / --no-auth): anyone who can reach " + cfg.Addr +
			" may push, pull and delete anything; use this for local experiments only")
		return sec, nil
	}
	if sec.authStore, err = st.Backends.OpenAuth(ctx); err != nil {
		sec.Close()
		return nil, err
	}
	proxies, err := auth.ParseCIDRs(cfg.Auth.TrustedProxies)
	if err != nil {
		sec.Close()
		return nil, err
	}
	acfg := auth.Config{
		Service: cfg.Auth.Service, Realm: cfg.Auth.Realm,
		TokenTTL: cfg.Auth.TokenTTL, RefreshTTL: cfg.Auth.RefreshTokenTTL,
		AutoCreateProjects: cfg.Auth.AutoCreateProjects, TrustedProxies: proxies,
		MaxFailuresPerAccount: cfg.Auth.MaxLoginFailures, MaxFailuresPerAddress: cfg.Auth.MaxLoginFailuresPerAddress,
		FailureWindow: cfg.Auth.LoginFailureWindow,
		Lockout:       cfg.Auth.LoginLockout, MaxFailuresGlobal: cfg.Auth.MaxLoginFailuresGlobal,
		HasRepositories:     func(ctx context.Context, project string) (bool, error) { return hasRepositories(ctx, st, project) },
		InitialPasswordFile: InitialPasswordPath(st.Dir),
	}
	if sec.auth, err = auth.New(ctx, sec.authStore, key, sec.audit, acfg, log); err != nil {
		sec.Close()
		return nil, err
	}
	generated, created, err := sec.auth.Bootstrap(ctx, cfg.Auth.AdminPassword)
	if err != nil {
		sec.Close()
		return nil, err
	}
	switch {
	case generated != "":
		// Shown once serving (announceInitialPassword).
		sec.initialPassword = generated
		log.Info("created the first administrator; its generated password is kept in "+InitialPasswordPath(st.Dir)+
			" until it is changed, and shown once the server is serving", "user", auth.InitialAdmin)
	case created:
		log.Info("created the first administrator with the password from "+AdminPasswordEnv, "user", "admin")
	case cfg.Auth.AdminPassword != "":
		log.Info(AdminPasswordEnv + " is ignored: users exist already")
	}
	return sec, nil
}

// Close drains the audit log and closes the stores.
func (sec *security) Close() error {
	errs := []error{sec.audit.Close(), sec.auditStore.Close()}
	if sec.authStore != nil {
		errs = append(errs, sec.authStore.Close())
	}
	return errors.Join(errs...)
}

// hasRepositories reports whether any repository with content lives in
// project.
func hasRepositories(ctx context.Context, st *Storage, project string) (bool, error) {
	names, err := st.Meta.Repositories(ctx, project+"/", 1)
	if err != nil {
		return false, err
	}
	if len(names) > 0 && strings.HasPrefix(names[0], project+"/") {
		return true, nil
	}
	if project != auth.DefaultProject {
		return false, nil
	}
	// Single-component names live in the default project too.
	for last := ""; ; {
		names, err := st.Meta.Repositories(ctx, last, 1000)
		if err != nil {
			return false, err
		}
		for _, n := range names {
			if !strings.Contains(n, "/") {
				return true, nil
			}
		}
		if len(names) < 1000 {
			return false, nil
		}
		last = names[len(names)-1]
	}
}

// auditRegistry records a registry request once it is answered: pulls
// (manifest GETs), pushes (manifest PUTs), deletes, and refusals.
func (s *Server) auditRegistry(r *http.Request, status int, header http.Header, trace *auth.Trace) {
	route, repo, ref := registry.RouteOf(r.URL.Path)
	var action string
	switch {
	// Listing is an action of its own in the permission table (a robot
	// may pull without listing): a refused `crane ls` is a refused list,
	// not a pull.
	case route == "tags":
		action = string(auth.ListTags)
	case route == "catalog":
		action = string(auth.Catalog)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		action = audit.ActionPull
	case r.Method == http.MethodDelete:
		action = audit.ActionDelete
	default:
		action = audit.ActionPush
	}
	e := audit.Entry{Actor: trace.Actor, SourceIP: trace.ClientIP, Action: action, Repository: repo,
		Digest: header.Get("Docker-Content-Digest")}
	if repo != "" {
		e.Project = auth.ProjectOf(repo)
	}
	if e.SourceIP == "" {
		e.SourceIP = remoteIP(r)
	}
	if route == "manifest" && ref != "" {
		if strings.Contains(ref, ":") {
			e.Digest = ref
		} else {
			e.Detail = "tag " + ref
		}
	}
	switch {
	case status == http.StatusForbidden:
		e.Result, e.Detail = audit.Denied, strings.TrimSpace(r.Method+" "+route+" "+e.Detail)
	case route == "manifest" && r.Method == http.MethodGet && status == http.StatusOK:
	case route == "manifest" && r.Method == http.MethodPut && status == http.StatusCreated:
	case (route == "manifest" || route == "blob") && r.Method == http.MethodDelete && status == http.StatusAccepted:
		if route == "blob" {
			e.Digest, e.Detail = ref, "blob"
		}
	default:
		return
	}
	if err := s.sec.audit.Record(e); err != nil {
		s.log.Warn("audit entry dropped", "error", err)
	}
}

func remoteIP(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}

// tooLarge answers a request whose Authorization header is past the bound
// auth reads, before anything parses it.
func tooLarge(w http.ResponseWriter) {
	body := fmt.Sprintf(`{"errors":[{"code":"UNAUTHORIZED","message":"Authorization header longer than %d bytes"}]}`, auth.MaxAuthorizationHeader)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
	w.Write([]byte(body))
}
