package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/audit/audittest"
	auditsqlite "berth.dev/berth/internal/audit/sqlite"
)

// waitReady polls /readyz until it answers want, for at most a bound
// that is generous on a loaded machine (the audit writer retries within
// a second).
func (a *authServer) waitReady(want int) answer {
	a.t.Helper()
	var r answer
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if r = a.do("GET", "/readyz", nil); r.status == want {
			return r
		}
	}
	a.t.Fatalf("/readyz stayed %d %s, want %d", r.status, strings.TrimSpace(r.body), want)
	return r
}

func (a *authServer) auditEntries(query string) []audit.Entry {
	a.t.Helper()
	var page struct{ Entries []audit.Entry }
	r := a.expect(a.api(adminCreds, "GET", "/audit?limit=1000&"+query, nil), 200, "audit query")
	if err := json.Unmarshal([]byte(r.body), &page); err != nil {
		a.t.Fatal(err)
	}
	return page.Entries
}

func expectUnavailable(t *testing.T, r answer, what string) {
	t.Helper()
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, `"UNAVAILABLE"`) || r.header.Get("Retry-After") == "" {
		t.Errorf("%s: %d %s, want 503 UNAVAILABLE with Retry-After", what, r.status, strings.TrimSpace(r.body))
	}
}

// TestAuditFullDiskRefusesChanges fills meta.db for the audit log's writes
// (SQLite's max_page_count: SQLITE_FULL, as on a full disk) and pushes.
// No push is acknowledged without its audit entry in the end: once the
// log cannot be written, pushes and admin changes get 503 and /readyz
// says not ready; pulls are still served; when space returns the held
// entries are stored, and the chain verifies with every acknowledged push
// in it.
func TestAuditFullDiskRefusesChanges(t *testing.T) {
	ctx := context.Background()
	a := startAuthServer(t)
	base := makeImage("before")
	a.expect(a.push("team-a/app", "base", base, adminCreds), 201, "push before the disk fills")
	acknowledged := []string{base.digest()}
	capped := a.s.sec.auditStore.(*auditsqlite.Store)
	if _, err := capped.CapPages(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// Push until the audit log has failed to store an entry: the
	// entries of the first pushes fit in the pages the database has.
	for i := 0; ; i++ {
		if i == 200 {
			t.Fatal("the capped database never filled")
		}
		img := makeImage(fmt.Sprint("during ", i))
		r := a.push("team-a/app", fmt.Sprint("v", i), img, adminCreds)
		if r.status == http.StatusServiceUnavailable {
			break
		}
		a.expect(r, 201, "push while the log still writes")
		acknowledged = append(acknowledged, img.digest())
		if a.s.sec.audit.Flush(ctx) != nil {
			break
		}
	}
	// The last of them was acknowledged before the log failed to store
	// its entry, which is held.
	if h := a.s.sec.audit.Health(); h.Err == nil || h.Waiting == 0 {
		t.Errorf("audit health after the failed write: %+v, want an error and entries held", h)
	}
	t.Logf("%d pushes acknowledged before the audit log failed", len(acknowledged)-1)
	if r := a.do("GET", "/readyz", nil); r.status != 503 || !strings.Contains(r.body, "audit log cannot be written") {
		t.Errorf("/readyz while full: %d %s", r.status, r.body)
	}
	refused := makeImage("refused")
	expectUnavailable(t, a.push("team-a/app", "refused", refused, adminCreds), "blob upload while full")
	expectUnavailable(t, a.do("PUT", "/v2/team-a/app/manifests/refused", refused.manifest, append(adminCreds,
		"Content-Type", "application/vnd.oci.image.manifest.v1+json")...), "manifest PUT while full")
	expectUnavailable(t, a.do("DELETE", "/v2/team-a/app/manifests/"+base.digest(), nil, adminCreds...), "delete while full")
	expectUnavailable(t, a.api(adminCreds, "POST", "/users", map[string]any{"name": "mallory", "password": "mallory-password"}),
		"admin change while full")
	a.expect(a.do("GET", "/v2/team-a/app/manifests/base", nil, adminCreds...), 200, "pull while full")

	// Space returns: the writer's retry stores what it held.
	if _, err := capped.CapPages(ctx, -1); err != nil {
		t.Fatal(err)
	}
	a.waitReady(200)
	after := makeImage("after")
	a.expect(a.push("team-a/app", "after", after, adminCreds), 201, "push once space returned")
	acknowledged = append(acknowledged, after.digest())

	pushed := map[string]int{}
	for _, e := range a.auditEntries("action=push") {
		if e.Result == audit.Success {
			pushed[e.Digest]++
		}
	}
	for _, d := range acknowledged {
		if pushed[d] != 1 {
			t.Errorf("acknowledged push of %s has %d audit entries, want 1", d, pushed[d])
		}
	}
	if len(pushed) != len(acknowledged) {
		t.Errorf("%d push entries, %d acknowledged pushes", len(pushed), len(acknowledged))
	}
	if pushed[refused.digest()] != 0 {
		t.Error("the refused push was recorded as a success")
	}
	pulls := 0
	for _, e := range a.auditEntries("action=pull&actor=admin") {
		pulls += int(max(e.Count, 1))
	}
	if pulls != 1 {
		t.Errorf("%d pulls recorded, made 1 (while full)", pulls)
	}
	var rep struct {
		OK      bool
		Entries int
	}
	json.Unmarshal([]byte(a.expect(a.api(adminCreds, "GET", "/audit/verify", nil), 200, "verify").body), &rep)
	if !rep.OK {
		t.Errorf("verify after the outage = %+v", rep)
	}
	if !strings.Contains(a.logs.String(), "audit log cannot be written") || !strings.Contains(a.logs.String(), "audit log writable again") {
		t.Errorf("the log does not tell the outage:\n%s", a.logs)
	}
}

// TestDataDiskFullRefusesChanges: with less than minFreeBytes free on
// the data directory's filesystem, changes are refused before they write
// anything, and /readyz says why.
func TestDataDiskFullRefusesChanges(t *testing.T) {
	a := startAuthServer(t)
	base := makeImage("base")
	a.expect(a.push("team-a/app", "base", base, adminCreds), 201, "push")
	setFree := func(free func(string) (uint64, error)) {
		a.s.disk.free = free
		a.s.disk.checkedAt.Store(0) // read it again now
	}
	setFree(func(string) (uint64, error) { return 1 << 20, nil })
	if r := a.do("GET", "/readyz", nil); r.status != 503 || !strings.Contains(r.body, "data disk full: 1.0 MiB free") {
		t.Errorf("/readyz with a full disk: %d %s", r.status, r.body)
	}
	expectUnavailable(t, a.push("team-a/app", "v2", makeImage("v2"), adminCreds), "push with a full disk")
	expectUnavailable(t, a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team-b"}), "admin change with a full disk")
	a.expect(a.do("GET", "/v2/team-a/app/manifests/base", nil, adminCreds...), 200, "pull with a full disk")
	setFree(func(string) (uint64, error) { return 1 << 30, nil })
	a.expect(a.do("GET", "/readyz", nil), 200, "/readyz with room")
	a.expect(a.push("team-a/app", "v2", makeImage("v2"), adminCreds), 201, "push with room")
}

// TestAuditGate drives the admission check through every state of the
// audit log and the disk, for reads and changes on each audited route.
func TestAuditGate(t *testing.T) {
	ctx := context.Background()
	// logIn returns a Log in the given state: "ok", "failing" (a store
	// write failed, entries held) or "full" (held entries at the bound).
	logIn := func(t *testing.T, state string) *audit.Log {
		st, err := auditsqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		l, err := audit.Open(ctx, st, audittest.Key(t), audit.Options{MaxWaiting: 20, CloseTimeout: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		if state == "ok" {
			return l
		}
		if _, err := st.CapPages(ctx, 0); err != nil {
			t.Fatal(err)
		}
		for i := 0; l.Flush(ctx) == nil; i++ {
			if i == 500 {
				t.Fatal("the capped database never filled")
			}
			l.Record(audit.Entry{Actor: "a", Action: audit.ActionPush, Detail: fmt.Sprint(i, strings.Repeat("x", 200))})
		}
		for i := 0; state == "full" && !l.Health().Full; i++ {
			if i == 100 {
				t.Fatal("the held entries never reached their bound")
			}
			l.Record(audit.Entry{Actor: "a", Action: audit.ActionPush, Detail: fmt.Sprint(i)})
			l.Flush(ctx)
		}
		return l
	}
	type request struct {
		method, path, route string
		registry            bool
	}
	reqs := []request{
		{"GET", "/v2/p/r/manifests/v1", "manifest", true},
		{"HEAD", "/v2/p/r/blobs/sha256:00", "blob", true},
		{"PUT", "/v2/p/r/manifests/v1", "manifest", true},
		{"PATCH", "/v2/p/r/blobs/uploads/x", "upload", true},
		{"DELETE", "/v2/p/r/manifests/v1", "manifest", true},
		{"GET", "/token", "token", false},
		{"POST", "/token", "token", false},
		{"GET", "/api/v1/users", "api", false},
		{"POST", "/api/v1/users", "api", false},
		{"GET", "/readyz", "readyz", false},
	}
	isChange := func(r request) bool { return r.method != "GET" && r.method != "HEAD" && r.route != "token" }
	for _, tc := range []struct {
		state, disk string
		refused     func(request) bool
		unready     string
	}{
		{"ok", "room", func(request) bool { return false }, ""},
		{"ok", "full", isChange, "data disk full"},
		{"failing", "room", isChange, "audit log cannot be written"},
		{"full", "room", func(r request) bool { return r.route != "readyz" }, "at the bound"},
	} {
		t.Run(tc.state+" log, disk "+tc.disk, func(t *testing.T) {
			free := uint64(1 << 30)
			if tc.disk == "full" {
				free = 1 << 20
			}
			s := &Server{sec: &security{audit: logIn(t, tc.state)}, storage: &Storage{Dir: t.TempDir()}, log: slog.New(slog.DiscardHandler)}
			s.disk.free = func(string) (uint64, error) { return free, nil }
			for _, r := range reqs {
				req := httptest.NewRequest(r.method, r.path, nil)
				if got := s.auditRefusal(req, r.route, r.registry) != nil; got != tc.refused(r) {
					t.Errorf("%s %s refused: %v, want %v", r.method, r.path, got, tc.refused(r))
				}
			}
			if got := s.auditUnready(); !strings.Contains(got, tc.unready) || (tc.unready == "") != (got == "") {
				t.Errorf("readiness = %q, want %q", got, tc.unready)
			}
		})
	}
}

// TestAuditVerifyThroughServerReadsAnchorFile: verification through the
// admin API compares the chain with the data directory's anchor file,
// here with a line forged into it.
func TestAuditVerifyThroughServerReadsAnchorFile(t *testing.T) {
	a := startAuthServer(t)
	a.expect(a.push("team-a/app", "v1", makeImage("x"), adminCreds), 201, "push")
	verify := func() (ok bool, problems string) {
		var rep struct {
			OK       bool
			Problems []audit.Problem
		}
		json.Unmarshal([]byte(a.expect(a.api(adminCreds, "GET", "/audit/verify", nil), 200, "verify").body), &rep)
		return rep.OK, fmt.Sprint(rep.Problems)
	}
	if ok, problems := verify(); !ok {
		t.Fatalf("verify: %s", problems)
	}
	f, err := os.OpenFile(AuditAnchorsPath(a.s.cfg.Data), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":99,"hash":"ff","time":"2026-01-02T03:04:05Z","signature":"AAAA"}` + "\n")
	f.Close()
	if ok, problems := verify(); ok || !strings.Contains(problems, "audit-anchors.log (sequence 99)") {
		t.Errorf("verify with a forged anchor line: ok %v, %s", ok, problems)
	}
}
