package api

import (
	"bytes"
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"testing"

	"berth.dev/berth/internal/auth"
)

// TestSessionCookieNeedsCSRFToken: the API takes a web session's cookie
// as credentials, for reading anything and for changes only with the
// session's CSRF token in X-CSRF-Token (what a page of berth's sends and
// a page of another site cannot know); after logout the cookie is
// anonymous.
func TestSessionCookieNeedsCSRFToken(t *testing.T) {
	e := newEnv(t)
	login := httptest.NewRequest("POST", "/ui/login", nil)
	cookie, err := e.auth.StartSession(context.Background(), login, "admin", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	withCookie := func(method, path, body, csrf string) int {
		req := httptest.NewRequest(method, path, bytes.NewReader([]byte(body)))
		req.AddCookie(cookie)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if csrf != "" {
			req.Header.Set(auth.CSRFHeader, csrf)
		}
		rec := httptest.NewRecorder()
		e.api.ServeHTTP(rec, req)
		return rec.Code
	}
	token := e.auth.CSRFToken(func() *http.Request { r := httptest.NewRequest("GET", "/", nil); r.AddCookie(cookie); return r }())
	if got := withCookie("GET", "/api/v1/users", "", ""); got != http.StatusOK {
		t.Errorf("GET with the session cookie: %d", got)
	}
	body := `{"name":"carol","password":"carol-password"}`
	if got := withCookie("POST", "/api/v1/users", body, ""); got != http.StatusForbidden {
		t.Errorf("POST with the cookie and no CSRF token: %d, want 403", got)
	}
	if got := withCookie("POST", "/api/v1/users", body, "guessed"); got != http.StatusForbidden {
		t.Errorf("POST with a wrong CSRF token: %d, want 403", got)
	}
	if got := withCookie("POST", "/api/v1/users", body, token); got != http.StatusCreated {
		t.Errorf("POST with the session's CSRF token: %d, want 201", got)
	}
	logout := httptest.NewRequest("POST", "/ui/logout", nil)
	logout.AddCookie(cookie)
	e.auth.EndSession(logout)
	if got := withCookie("GET", "/api/v1/users", "", ""); got != http.StatusUnauthorized {
		t.Errorf("GET with the cookie after logout: %d, want 401", got)
	}
}

// TestSessionStoreDown: while the session store cannot be read, a request
// with a session cookie gets 503 with Retry-After, not 401 (which sends the
// browser to log in again, with a session that is still good); when the
// store is back, the same cookie works.
func TestSessionStoreDown(t *testing.T) {
	e := newEnv(t)
	cookie, err := e.auth.StartSession(context.Background(), httptest.NewRequest("POST", "/ui/login", nil), "admin", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	get := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/api/v1/users", nil)
		req.AddCookie(cookie)
		rec := httptest.NewRecorder()
		e.api.ServeHTTP(rec, req)
		return rec
	}
	db, err := sql.Open("sqlite", "file:"+e.metaPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string) {
		t.Helper()
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	exec("ALTER TABLE web_sessions RENAME TO web_sessions_away")
	rec := get()
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" ||
		!bytes.Contains(rec.Body.Bytes(), []byte(`"UNAVAILABLE"`)) || rec.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("with the session store unreadable: %d %v %s, want 503 UNAVAILABLE with Retry-After", rec.Code, rec.Header(), rec.Body)
	}
	exec("ALTER TABLE web_sessions_away RENAME TO web_sessions")
	if rec := get(); rec.Code != http.StatusOK {
		t.Errorf("with the store back: %d %s, want 200", rec.Code, rec.Body)
	}
}
