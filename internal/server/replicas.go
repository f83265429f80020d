package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"berth.dev/berth/internal/backend"
	"berth.dev/berth/internal/registry/event"
)

// followReplicas keeps what this replica holds in memory true to the
// database it shares with others: the registry's manifest cache forgets
// what any replica changed, and the accounts snapshot (which every
// request's rights are checked against, and which the token and login
// caches defer to) is reloaded when any replica changes accounts, and the
// pull-time policy enforcer reloads a project's policy any replica put or
// deleted and forgets the verdicts any replica's registry change (a
// signature or attestation pushed, a tag moved) could change.
//
// Every registry, token and API request first waits for the follower's
// Sync (synced): so a tag deleted or a robot revoked through one replica
// is gone for the next request to any replica, not merely soon after.
// While the notifications' connection is down the manifest cache is
// emptied and bypassed and those requests get 503 with Retry-After.
//
// With SQLite there is nothing to follow and it returns nil.
func (s *Server) followReplicas(ctx context.Context) (*backend.Follower, error) {
	if !s.storage.Backends.Shared() {
		return nil, nil
	}
	// Nothing is cached until changes are heard.
	s.reg.ResetCache(false)
	var reload func(context.Context) error
	if s.sec.auth != nil {
		reload = s.sec.auth.Reload
	}
	enforcer := s.policies.enforcer
	var reloadPolicies func(context.Context, []string, bool) error
	if enforcer != nil {
		reloadPolicies = enforcer.Reload
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return s.storage.Backends.Follow(ctx, backend.Changes{
		Registry: func(e event.Event, all bool) {
			if all {
				s.reg.ResetCache(true)
				if enforcer != nil {
					enforcer.ForgetAll()
				}
				return
			}
			s.reg.Notify(context.Background(), e)
			if enforcer != nil {
				enforcer.Notify(context.Background(), e)
			}
		},
		Accounts: reload,
		Policies: reloadPolicies,
		Report:   s.policies.reportStored,
		VulnDB:   func(string) { s.bg.vulnDBPublished() },
		Listening: func(on bool) {
			if on {
				// A publication missed while deaf is installed now.
				s.bg.vulnDBPublished()
			}
			s.reg.ResetCache(on)
			if enforcer != nil {
				enforcer.ForgetAll()
			}
			level := slog.LevelInfo
			if !on {
				level = slog.LevelWarn
			}
			s.log.Log(context.Background(), level, "following other replicas' changes", "listening", on)
		},
	})
}

// synced runs next once this replica has heard every change committed
// before the request arrived, or answers 503.
func (s *Server) synced(next http.Handler) http.Handler {
	if s.follower == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.follower.Sync(r.Context()); err != nil {
			s.log.WarnContext(r.Context(), "cannot confirm other replicas' changes", "error", err)
			unavailable(w, "the database cannot be reached")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// unavailable answers 503 with Retry-After, in the registry's error form
// (clients of the API read the same shape).
func unavailable(w http.ResponseWriter, why string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write([]byte(`{"errors":[{"code":"UNAVAILABLE","message":"` + why + `; try again"}]}` + "\n"))
}
