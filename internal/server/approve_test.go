package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/reports"
)

// TestStageApprovals: a stage people sign off (staging, prod) is approved
// through the API by whoever holds stage.approve in the project, a CI
// robot included; the server signs with the project's key for the stage
// only when the stages it requires stand and the stored scan passes its
// rule; a project policy requiring those keys then serves the image; a
// revocation, with its reason, refuses it again; a developer may not
// approve.
func TestStageApprovals(t *testing.T) {
	master := masterKeyFile(t)
	a := startAuthServer(t, func(c *Config) { c.Keys.MasterKey = "file:" + master })
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team")
	for _, purpose := range []string{"staging", "prod"} {
		a.expect(a.api(adminCreds, "POST", "/projects/team/keys", map[string]any{"purpose": purpose}), 201, purpose+" key")
	}
	a.expect(a.api(adminCreds, "PUT", "/projects/team/stages/staging", map[string]any{"key": "staging", "fail_on": "high"}), 200, "staging rule")
	a.expect(a.api(adminCreds, "PUT", "/projects/team/stages/prod", map[string]any{"key": "prod", "requires": []string{"staging"}}), 200, "prod rule")
	a.expect(a.api(adminCreds, "PUT", "/projects/team/stages/prod", map[string]any{"key": "prod", "requires": []string{"prod"}}), 400, "a stage requiring itself")
	img := makeImage("promoted")
	a.expect(a.push("team/app", "v1", img, adminCreds), 201, "push")
	d := digest.Digest(img.digest())

	doc := "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: prod}\nspec:\n  signers:\n    require: 2\n    keys:\n    - ref: staging\n    - ref: prod\n"
	a.expect(putPolicy(a, "team", doc), 200, "policy requiring staging and prod")
	runtime := puller(t, a, "team")
	pull := func() answer { return a.do("GET", "/v2/team/app/manifests/v1", nil, runtime...) }
	a.expect(pull(), 403, "before any approval")

	const approvals = "/projects/team/repositories/app/artifacts/v1/approvals/"
	unmet := func(stage, want string) {
		t.Helper()
		r := a.expect(a.api(adminCreds, "POST", approvals+stage, nil), 409, stage+" with its conditions unmet")
		if !strings.Contains(r.body, `"UNMET"`) || !strings.Contains(r.body, want) {
			t.Errorf("%s refused with %s, want one saying %q", stage, r.body, want)
		}
	}
	unmet("prod", "the staging stage has not approved it")
	unmet("staging", "no stored scan report")
	a.expect(a.api(adminCreds, "POST", approvals+"scan", nil), 400, "the scan stage approves on its own")
	a.expect(a.api(adminCreds, "POST", approvals+"qa", nil), 404, "a stage without a rule")

	store := func(sev match.Severity) {
		t.Helper()
		r := &match.Report{SchemaVersion: match.ReportSchemaVersion, Findings: []match.Finding{},
			Inventory: inventory.Inventory{Source: "team/app@" + d.String(), Packages: []inventory.Package{}, Layers: []inventory.Layer{}}}
		if sev != "" {
			r.Findings = []match.Finding{{ID: "CVE-2026-0001", Severity: sev, Package: inventory.Package{Ecosystem: inventory.NPM, Name: "left-pad", Version: "1.0.0"}}}
		}
		if err := a.s.bg.reports.Put(context.Background(), d, reports.Scan{Status: reports.Done, FinishedAt: time.Now()}, r, nil, -1); err != nil {
			t.Fatal(err)
		}
	}
	store(match.SeverityCritical)
	unmet("staging", "1 finding(s) rated HIGH or higher, e.g. CVE-2026-0001 (CRITICAL) in left-pad 1.0.0")
	store("")

	// A developer may push but not approve; a CI robot granted
	// stage.approve may.
	a.expect(a.api(adminCreds, "POST", "/users", map[string]any{"name": "dev", "password": "dev-password-1"}), 201, "create dev")
	a.expect(a.api(adminCreds, "PUT", "/projects/team/members/dev", map[string]any{"role": "developer"}), 200, "dev joins")
	a.expect(a.api(basicAuth("dev", "dev-password-1"), "POST", approvals+"staging", nil), 403, "a developer approves")
	var robot struct{ Secret string }
	r := a.expect(a.api(adminCreds, "POST", "/robots", map[string]any{"name": "promoter",
		"permissions": []map[string]any{{"project": "team", "actions": []string{"pull", "stage.approve"}}}}), 201, "a promoting robot")
	if err := json.Unmarshal([]byte(r.body), &robot); err != nil {
		t.Fatal(err)
	}
	ci := basicAuth("robot$promoter", robot.Secret)
	var got custody.Approval
	r = a.expect(a.api(ci, "POST", approvals+"staging", nil), 200, "the robot approves staging")
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || got.State != custody.Approved || got.Stage != "staging" || got.Digest != d || got.KeyID == "" {
		t.Fatalf("staging approval %s", r.body)
	}
	a.expect(pull(), 403, "staging alone")
	a.expect(a.api(adminCreds, "POST", approvals+"prod", nil), 200, "prod, now that staging stands")
	a.expect(pull(), 200, "signed for staging and prod")
	again := a.expect(a.api(adminCreds, "POST", approvals+"prod", nil), 200, "prod again")
	var twice custody.Approval
	if err := json.Unmarshal([]byte(again.body), &twice); err != nil || twice.State != custody.Approved {
		t.Errorf("approving again: %s", again.body)
	}

	// Revoked, with a reason: the signature stays, the policy stops
	// counting it and says why.
	r = a.expect(a.api(adminCreds, "DELETE", approvals+"prod?reason="+url.QueryEscape("rolled back, INC-42"), nil), 200, "revoke prod")
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || got.State != custody.Revoked || got.Reason != "revoked by admin: rolled back, INC-42" {
		t.Fatalf("revocation %s", r.body)
	}
	if r := a.expect(pull(), 403, "prod revoked"); !strings.Contains(r.body, "prod stage approval revoked: revoked by admin: rolled back, INC-42") {
		t.Errorf("refusal %s does not give the revocation's reason", r.body)
	}
	a.expect(a.api(basicAuth("dev", "dev-password-1"), "DELETE", approvals+"staging", nil), 403, "a developer revokes")
	// Approved again, served again.
	a.expect(a.api(ci, "POST", approvals+"prod", nil), 200, "prod approved again")
	a.expect(pull(), 200, "approved again")

	var list []custody.Approval
	r = a.expect(a.api(adminCreds, "GET", "/projects/team/repositories/app/artifacts/v1/approvals", nil), 200, "approvals")
	if err := json.Unmarshal([]byte(r.body), &list); err != nil || len(list) != 2 || list[0].Stage != "prod" || list[1].Stage != "staging" {
		t.Errorf("approvals %s", r.body)
	}
}

// TestScheduledRotation: the hourly job rotates a key whose rotate_every
// has passed (and no other), audited as berth:scheduler; the project's
// policy then counts the successor at once.
func TestScheduledRotation(t *testing.T) {
	master := masterKeyFile(t)
	data := t.TempDir()
	a := startAuthServer(t, func(c *Config) { c.Data = data; c.Keys.MasterKey = "file:" + master })
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team")
	a.expect(a.api(adminCreds, "POST", "/projects/team/keys", map[string]any{"purpose": "release", "rotate_every": "24h"}), 201, "scheduled key")
	a.expect(a.api(adminCreds, "POST", "/projects/team/keys", map[string]any{"purpose": "manual"}), 201, "unscheduled key")
	rotate := func() {
		t.Helper()
		if err := (&rotateWorker{s: a.s}).Work(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	list := func() map[string][]custody.Key {
		t.Helper()
		var ks []custody.Key
		r := a.expect(a.api(adminCreds, "GET", "/projects/team/keys", nil), 200, "keys")
		if err := json.Unmarshal([]byte(r.body), &ks); err != nil {
			t.Fatal(err)
		}
		out := map[string][]custody.Key{}
		for _, k := range ks {
			out[k.Purpose] = append(out[k.Purpose], k)
		}
		return out
	}
	rotate()
	if ks := list(); len(ks["release"]) != 1 || len(ks["manual"]) != 1 {
		t.Fatalf("rotated before its time: %+v", ks)
	}
	// A day passes (for the key: its window started 25 hours ago).
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "meta.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE signing_keys SET not_before = not_before - ? WHERE purpose = 'release'", int64(25*time.Hour)); err != nil {
		t.Fatal(err)
	}
	rotate()
	ks := list()
	if len(ks["release"]) != 2 || len(ks["manual"]) != 1 {
		t.Fatalf("after the interval: %+v", ks)
	}
	var signing, retired int
	for _, k := range ks["release"] {
		if k.Signing {
			signing++
		} else if k.NotAfter != nil {
			retired++
		}
	}
	if signing != 1 || retired != 1 {
		t.Errorf("release keys %+v: want one signing and one retired with a not_after", ks["release"])
	}
	found := false
	for _, e := range a.auditEntries("action=key.rotate") {
		if e.Actor == "berth:scheduler" && strings.Contains(e.Detail, "purpose=release") && strings.Contains(e.Detail, "scheduled, every 24h0m0s") {
			found = true
		}
	}
	if !found {
		t.Errorf("no scheduled key.rotate audit entry: %+v", a.auditEntries("action=key.rotate"))
	}
	rotate()
	if ks := list(); len(ks["release"]) != 2 {
		t.Errorf("rotated again at once: %+v", ks["release"])
	}
}
