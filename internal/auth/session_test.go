package auth_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	. "berth.dev/berth/internal/auth"
)

// sessionRequest is a browser's request carrying cookie c (nil: none).
func sessionRequest(c *http.Cookie) *http.Request {
	r := httptest.NewRequest("GET", "/ui/projects", nil)
	r.RemoteAddr = "192.0.2.7:5000"
	if c != nil {
		r.AddCookie(c)
	}
	return r
}

// TestSessions: a login form's session identifies its user until logout,
// which ends it server-side (the same cookie replayed opens nothing); a
// password change, disabling or deleting the account end it too, as does
// idleness; robots and wrong passwords get none; the cookie is HttpOnly,
// SameSite=Strict and Secure only over TLS; the CSRF token is the
// session's own.
func TestSessions(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	svc := r.svc
	if _, err := svc.CreateUser(ctx, "ann", "ann-password-1", false, nil); err != nil {
		t.Fatal(err)
	}
	login := func(name, password string) *http.Cookie {
		t.Helper()
		c, err := svc.StartSession(ctx, sessionRequest(nil), name, password)
		if err != nil {
			t.Fatalf("login %s: %v", name, err)
		}
		return c
	}
	who := func(c *http.Cookie) string {
		p, err := svc.Identify(sessionRequest(c))
		if err != nil {
			t.Fatal(err)
		}
		if p == nil {
			return ""
		}
		if !p.Session {
			t.Errorf("%s identified by a cookie is not marked as a session", p.Name)
		}
		return p.Name
	}

	c := login("ann", "ann-password-1")
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Name != SessionCookie || c.Path != "/" {
		t.Errorf("cookie %+v", c)
	}
	tlsReq := sessionRequest(nil)
	tlsReq.TLS = &tls.ConnectionState{}
	if sc, err := svc.StartSession(ctx, tlsReq, "ann", "ann-password-1"); err != nil || !sc.Secure {
		t.Errorf("cookie over TLS: %+v, %v", sc, err)
	}
	if got := who(c); got != "ann" {
		t.Fatalf("session identifies %q", got)
	}
	token := svc.CSRFToken(sessionRequest(c))
	other := login("ann", "ann-password-1")
	if token == "" || !svc.ValidCSRF(sessionRequest(c), token) || svc.ValidCSRF(sessionRequest(other), token) ||
		svc.ValidCSRF(sessionRequest(c), "") || svc.ValidCSRF(sessionRequest(c), token+"x") {
		t.Error("the CSRF token is not exactly the session's")
	}

	// Logout ends it on the server: the old cookie, replayed, is nobody.
	out := svc.EndSession(sessionRequest(c))
	if out.MaxAge >= 0 || out.Value != "" {
		t.Errorf("logout cookie %+v does not clear the session", out)
	}
	if got := who(c); got != "" {
		t.Errorf("a session cookie replayed after logout identifies %q", got)
	}
	if got := who(other); got != "ann" {
		t.Errorf("logging out one session ended another: %q", got)
	}

	// A password change ends every session of the account.
	pw := "ann-password-2"
	if _, err := svc.UpdateUser(ctx, "ann", UserChange{Password: &pw}); err != nil {
		t.Fatal(err)
	}
	if got := who(other); got != "" {
		t.Errorf("a session survived a password change: %q", got)
	}
	c = login("ann", pw)
	yes := true
	if _, err := svc.UpdateUser(ctx, "ann", UserChange{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if got := who(c); got != "" {
		t.Errorf("a session survived disabling its user: %q", got)
	}
	no := false
	svc.UpdateUser(ctx, "ann", UserChange{Disabled: &no})
	c = login("ann", pw)
	r.advance(SessionIdle + time.Minute)
	if got := who(c); got != "" {
		t.Errorf("an idle session lived on: %q", got)
	}

	if _, err := svc.StartSession(ctx, sessionRequest(nil), "ann", "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("wrong password: %v", err)
	}
	if _, err := svc.StartSession(ctx, sessionRequest(nil), "robot$ci", "whatever"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("robot login: %v", err)
	}
	forged := &http.Cookie{Name: SessionCookie, Value: "forged"}
	if got := who(forged); got != "" {
		t.Errorf("a forged cookie identifies %q", got)
	}
}
