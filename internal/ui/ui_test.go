package ui

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/api"
	"berth.dev/berth/internal/match"
)

// TestPagesWithoutAuth: with authentication off every page renders for
// anyone, with the security headers, and the deep links of the issue
// answer (a repository with a slash in its name too); unknown pages and
// tabs are 404 pages, not errors.
func TestPagesWithoutAuth(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	d := f.push(t, "team/app/web", "v1", "one", now)
	f.report(t, d, "one", 5)
	art := "/ui/projects/team/repositories/app%2Fweb/artifacts/" + d.String()
	for _, c := range []struct {
		path   string
		status int
		want   []string
	}{
		{"/ui/", http.StatusFound, nil},
		{"/ui/projects", 200, []string{`href="/ui/projects/team"`}},
		{"/ui/projects/team", 200, []string{`href="/ui/projects/team/repositories/app%2Fweb"`, "1 critical"}},
		{"/ui/projects/team/repositories/app%2Fweb", 200, []string{"v1", "linux/amd64", "no policy"}},
		{"/ui/projects/team/repositories/app%2Fweb?sort=severity", 200, []string{"v1"}},
		{art, 200, []string{"CVE-2024-0001", "pkg-0", "1.0.0 → <strong>1.0.1</strong>", "How to fix"}},
		{art + "?tab=packages&q=pkg-3", 200, []string{"pkg:npm/pkg-3@1.0.0", "sbom?format=spdx"}},
		{art + "?tab=layers", 200, []string{"ADD base"}},
		{art + "?tab=signatures", 200, []string{"No trusted key configured", "not signed"}},
		{art + "?tab=policy", 200, []string{"does not enforce project policies"}},
		{art + "?tab=nope", 404, nil},
		{"/ui/vulnerabilities?id=cve-2024-0001", 200, []string{"1 image", "app/web"}},
		{"/ui/vulnerabilities?id=" + url.QueryEscape("<b>"), 200, []string{"&lt;b&gt;", "0 images"}},
		{"/ui/projects/team/settings", 200, []string{"Authentication is off"}},
		{"/ui/nowhere", 404, nil},
		{"/ui/projects/none/repositories/x", 404, []string{"not found"}},
	} {
		code, body := f.get(t, c.path)
		if code != c.status {
			t.Errorf("GET %s: %d, want %d\n%.500s", c.path, code, c.status, body)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s does not contain %q", c.path, w)
			}
		}
	}
	rec := httptest.NewRecorder()
	f.ui.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/projects", nil))
	for k, v := range securityHeaders {
		if rec.Header().Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, rec.Header().Get(k), v)
		}
	}
	if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'none'") ||
		strings.Contains(rec.Header().Get("Content-Security-Policy"), "script-src") {
		t.Error("the policy must allow no script")
	}
}

// TestCrossSiteFormRefused: without authentication there is no token, but
// a form another site makes the browser post is still refused.
func TestCrossSiteFormRefused(t *testing.T) {
	f := newFixture(t)
	d := f.push(t, "team/app", "v1", "one", time.Now())
	for _, h := range [][2]string{{"Origin", "http://evil.example"}, {"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "same-site"}} {
		req := httptest.NewRequest("POST", "/ui/projects/team/repositories/app/artifacts/"+d.String()+"/scan", strings.NewReader(""))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(h[0], h[1])
		rec := httptest.NewRecorder()
		f.ui.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "another site") {
			t.Errorf("POST with %s: %s: %d", h[0], h[1], rec.Code)
		}
	}
}

// TestLocalPath: the login's redirect goes only to the UI's own pages.
func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/projects/x":       "/ui/projects/x",
		"//evil.example/ui/":   "/ui/projects",
		"/\\evil.example":      "/ui/projects",
		"https://evil.example": "/ui/projects",
		"/ui/x\r\nSet-Cookie:": "/ui/projects",
		"":                     "/ui/projects",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUpgrades: the advice is the smallest version fixing all of a
// package's findings, in the ecosystem's ordering (dpkg: 1.10 after 1.9),
// packages removing most findings first.
func TestUpgrades(t *testing.T) {
	f := func(id, eco, name, version, fixed string, sev match.Severity) match.Finding {
		st := match.StatusFixed
		var fv []string
		if fixed == "" {
			st = match.StatusAffected
		} else {
			fv = []string{fixed}
		}
		return match.Finding{ID: id, Ecosystem: eco, Name: name, Version: version, FixedVersions: fv, Status: st, Severity: sev}
	}
	got := upgrades([]match.Finding{
		f("CVE-1", "Debian:12", "openssl", "3.0.1-1", "3.0.9-1", match.SeverityHigh),
		f("CVE-2", "Debian:12", "openssl", "3.0.1-1", "3.0.10-1", match.SeverityLow),
		f("CVE-3", "npm", "lodash", "4.17.15", "4.17.21", match.SeverityCritical),
		f("CVE-4", "npm", "lodash", "4.17.15", "", match.SeverityCritical),
	})
	if len(got) != 2 || got[0].Name != "openssl" || got[0].To != "3.0.10-1" || got[0].Removes != 2 || got[0].Worst != match.SeverityHigh ||
		got[1].Name != "lodash" || got[1].To != "4.17.21" || got[1].Removes != 1 {
		t.Errorf("upgrades: %+v", got)
	}
}

// TestBaseLayers: the base image ends at its CMD, not at the image's own
// last step.
func TestBaseLayers(t *testing.T) {
	h := func(by string, empty bool) api.HistoryEntry {
		return api.HistoryEntry{CreatedBy: by, EmptyLayer: empty}
	}
	for _, c := range []struct {
		history []api.HistoryEntry
		want    int
	}{
		{[]api.HistoryEntry{h("debootstrap", false), h(`CMD ["bash"]`, true), h("RUN apt-get install", false), h("COPY app /app", false), h(`CMD ["/app"]`, true)}, 1},
		{[]api.HistoryEntry{h("ADD rootfs", false), h("RUN x", false), h(`ENTRYPOINT ["/x"]`, true), h("COPY y", false)}, 2},
		{[]api.HistoryEntry{h("COPY app", false), h(`CMD ["/app"]`, true)}, 0},
		{nil, 0},
	} {
		if got := baseLayerCount(c.history); got != c.want {
			t.Errorf("baseLayerCount(%v) = %d, want %d", c.history, got, c.want)
		}
	}
}

// TestPolicyFormTakesWhatTheAPITakes: the policy form passes a document of
// several hundred KiB on to the API (which takes up to 1 MiB), where other
// forms stop at 64 KiB; a form beyond its bound is refused as too large,
// saying so, rather than as unreadable.
func TestPolicyFormTakesWhatTheAPITakes(t *testing.T) {
	f := newFixture(t)
	post := func(path string, size int) (int, string) {
		t.Helper()
		// Every byte percent-encoded: the form is three times the size.
		body := url.Values{"policy": {strings.Repeat("#\n", size/2)}}.Encode()
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		rec := httptest.NewRecorder()
		f.ui.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for _, c := range []struct {
		name   string
		path   string
		size   int
		status int
		want   string
	}{
		// The fixture runs without accounts: its answer shows the form
		// was read and handled.
		{"policy of 600 KiB", "/ui/projects/team/policy", 600 << 10, http.StatusNotFound, "runs without authentication"},
		{"policy beyond the form's bound", "/ui/projects/team/policy", 1100 << 10, http.StatusRequestEntityTooLarge, "larger than the 3136 KiB"},
		{"member form of 600 KiB", "/ui/projects/team/members", 600 << 10, http.StatusRequestEntityTooLarge, "larger than the 64 KiB"},
	} {
		status, body := post(c.path, c.size)
		if status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d, want %d with %q:\n%.2000s", c.name, status, c.status, c.want, body)
		}
	}
}
