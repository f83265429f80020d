package server

import (
	"context"
	"encoding/json"
	"net/url"
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
