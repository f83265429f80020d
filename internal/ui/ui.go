// Package ui is berth's web interface, served by `berth serve` under /ui/:
// server-rendered HTML (html/template) with a stylesheet and no script.
// Every page is a client of the JSON API: a handler calls /api/v1 in
// process, as the signed-in user (the request's session cookie), and
// renders the answer, so every datum a page shows is one the API serves
// to that user, with the API's permission checks; forms that change
// something post here, are checked for their origin and the session's CSRF
// token, and are sent on to the API with that token.
package ui

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"berth.dev/berth/internal/auth"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the UI is served.
const Prefix = "/ui"

// Options are what the UI needs.
type Options struct {
	// API is the JSON API's handler (internal/api), called in process.
	API http.Handler
	// Auth is berth's accounts; nil when authentication is off (then
	// there is no login and everyone may do everything).
	Auth   *auth.Service
	Logger *slog.Logger
	// Version is shown in the footer.
	Version string
}

// UI is the http.Handler for Prefix.
type UI struct {
	opts  Options
	log   *slog.Logger
	mux   *http.ServeMux
	pages map[string]*template.Template
}

// New returns the UI.
func New(opts Options) (*UI, error) {
	u := &UI{opts: opts, log: opts.Logger, mux: http.NewServeMux(), pages: map[string]*template.Template{}}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("ui templates: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("ui template %s: %w", n, err)
		}
		u.pages[name] = t
	}
	u.routes()
	return u, nil
}

// securityHeaders are sent with every answer of the UI. The policy allows
// only the UI's own stylesheet and images: no script at all, no inline
// style, no framing, forms only to berth itself.
var securityHeaders = map[string]string{
	"Content-Security-Policy":      "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	"X-Content-Type-Options":       "nosniff",
	"X-Frame-Options":              "DENY",
	"Referrer-Policy":              "same-origin",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Permissions-Policy":           "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}

// ServeHTTP implements http.Handler.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
	u.mux.ServeHTTP(w, r)
}

// Static serves the stylesheet (cacheable: its name does not change, but
// it is small and revalidated).
func (u *UI) static(w http.ResponseWriter, r *http.Request) {
	sub, _ := fs.Sub(staticFS, "static")
	w.Header().Set("Cache-Control", "no-cache")
	http.StripPrefix(Prefix+"/static/", http.FileServerFS(sub)).ServeHTTP(w, r)
}

// view is what every page's layout reads.
type view struct {
	Title   string
	User    *auth.Principal
	AuthOn  bool
	CSRF    string
	Version string
	// Nav marks the current section.
	Nav   string
	Flash string
	Data  any
}

// render writes a page, whole or not at all.
func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, page, title string, data any) {
	t, ok := u.pages[page]
	if !ok {
		http.Error(w, "no such page template "+page, http.StatusInternalServerError)
		return
	}
	v := view{Title: title, AuthOn: u.opts.Auth != nil, Version: u.opts.Version, Data: data, Nav: page,
		Flash: r.URL.Query().Get("done")}
	if u.opts.Auth != nil {
		v.User = u.opts.Auth.SessionPrincipal(r)
		v.CSRF = u.opts.Auth.CSRFToken(r)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		u.log.ErrorContext(r.Context(), "render page", "page", page, "error", err)
		http.Error(w, "could not render the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// apiError is a refusal or failure the API answered.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// responseBuffer collects an in-process API answer.
type responseBuffer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *responseBuffer) Header() http.Header { return b.header }
func (b *responseBuffer) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *responseBuffer) WriteHeader(s int) {
	if b.status == 0 {
		b.status = s
	}
}

// apiPath joins escaped path segments under /api/v1.
func apiPath(segments ...string) string {
	var b strings.Builder
	b.WriteString("/api/v1")
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// call asks the API, as the user of r (its session cookie, nothing else),
// and decodes a JSON answer into out. csrf is sent for changes. A non-2xx
// answer is an *apiError.
func (u *UI) call(r *http.Request, method, path string, body any, csrf string, out any) error {
	raw, _, err := u.callRaw(r, method, path, body, csrf)
	if err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode the API's answer: %w", method, path, err)
		}
	}
	return nil
}

// yamlBody is a request body the API takes as YAML, sent as it is (a
// project policy as the person wrote it).
type yamlBody []byte

func (u *UI) callRaw(r *http.Request, method, path string, body any, csrf string) ([]byte, http.Header, error) {
	var rd io.Reader = http.NoBody
	contentType := "application/json"
	if y, ok := body.(yamlBody); ok {
		rd, contentType = bytes.NewReader(y), "application/yaml"
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), method, path, rd)
	if err != nil {
		return nil, nil, err
	}
	// Who is asking, and from where: the session cookie, the peer and
	// what a trusted proxy said; no other header of the browser's.
	req.RemoteAddr, req.Host, req.TLS = r.RemoteAddr, r.Host, r.TLS
	for _, h := range []string{"Cookie", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"} {
		if v := r.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if csrf != "" {
		req.Header.Set(auth.CSRFHeader, csrf)
	}
	rec := &responseBuffer{header: http.Header{}}
	u.opts.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		json.Unmarshal(rec.body.Bytes(), &e)
		return nil, nil, &apiError{Status: rec.status, Code: e.Error.Code, Message: e.Error.Message}
	}
	return rec.body.Bytes(), rec.header, nil
}

// fail answers a page whose API call failed: a login for the
// unauthenticated, the API's own status and message otherwise.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		u.log.ErrorContext(r.Context(), "ui page", "path", r.URL.Path, "error", err)
		u.render(w, r, http.StatusInternalServerError, "error", "Error", errorView{Status: 500, Message: "internal error"})
		return
	}
	if ae.Status == http.StatusUnauthorized && u.opts.Auth != nil {
		http.Redirect(w, r, Prefix+"/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	u.render(w, r, ae.Status, "error", http.StatusText(ae.Status), errorView{Status: ae.Status, Message: ae.Message})
}

type errorView struct {
	Status  int
	Message string
}

// sameOrigin refuses a form post another site made the browser send:
// Sec-Fetch-Site says cross-site, or an Origin names another host.
// Browsers send at least one of them with every form post.
func (u *UI) sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if u.opts.Auth != nil {
		return u.opts.Auth.SameOrigin(r, origin)
	}
	o, err := url.Parse(origin)
	return err == nil && strings.EqualFold(o.Host, r.Host)
}

// maxForm bounds a posted form of names and settings.
const maxForm = 64 << 10

// maxPolicyForm bounds the policy form: the API takes a policy document
// of up to 1 MiB, which the browser sends percent-encoded (at worst three
// bytes for one), beside the form's other fields. A smaller bound would
// refuse through the UI a policy the API accepts.
const maxPolicyForm = 3<<20 + maxForm

// form reads a posted form of up to maxForm bytes and checks it came from
// one of berth's pages: same origin, and (with authentication on) the
// session's CSRF token. It returns the token to pass on to the API.
func (u *UI) form(w http.ResponseWriter, r *http.Request) (string, bool) {
	return u.formUpTo(w, r, maxForm)
}

// formUpTo is form for a form of up to limit bytes.
func (u *UI) formUpTo(w http.ResponseWriter, r *http.Request, limit int64) (string, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	if err := r.ParseForm(); err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			u.render(w, r, http.StatusRequestEntityTooLarge, "error", "Too large", errorView{Status: http.StatusRequestEntityTooLarge,
				Message: fmt.Sprintf("the form is larger than the %d KiB this page takes", limit>>10)})
			return "", false
		}
		u.render(w, r, http.StatusBadRequest, "error", "Bad request", errorView{Status: 400, Message: "the form could not be read"})
		return "", false
	}
	if !u.sameOrigin(r) {
		u.render(w, r, http.StatusForbidden, "error", "Refused", errorView{Status: 403,
			Message: "refused: this form was sent from another site"})
		return "", false
	}
	token := r.PostForm.Get("csrf")
	if u.opts.Auth != nil && !u.opts.Auth.ValidCSRF(r, token) {
		if u.opts.Auth.SessionPrincipal(r) == nil {
			http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
			return "", false
		}
		u.render(w, r, http.StatusForbidden, "error", "Refused", errorView{Status: 403,
			Message: "refused: the form's security token is missing or out of date; reload the page and try again"})
		return "", false
	}
	return token, true
}

// back redirects to a page of the UI after a change, with a note.
func back(w http.ResponseWriter, r *http.Request, to, done string) {
	if done != "" {
		sep := "?"
		if strings.Contains(to, "?") {
			sep = "&"
		}
		to += sep + "done=" + url.QueryEscape(done)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// localPath accepts a redirect target only if it is a path of the UI
// (never another site: "//host" and "/\host" are other sites to browsers).
func localPath(p string) string {
	if !strings.HasPrefix(p, Prefix+"/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return Prefix + "/projects"
	}
	return p
}
