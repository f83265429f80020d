package api

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/custody"
)

func custodyEnv(t *testing.T) *env {
	t.Helper()
	mk := make([]byte, 32)
	rand.Read(mk)
	m, _ := custody.NewAESMaster(mk, "test")
	st, err := custody.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := custody.Open(context.Background(), custody.Options{Store: st, Master: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return newEnv(t, func(_ *auth.Config, o *Options) { o.Custody = c })
}

// audited reports whether the audit log holds an entry of action with
// result.
func (e *env) audited(action string, result string) bool {
	e.t.Helper()
	e.log.Flush(context.Background())
	var page AuditPage
	e.expect(e.do(admin, "GET", "/api/v1/audit?action="+action+"&result="+result, nil), 200, "", "audit query").decode(e.t, &page)
	return len(page.Entries) > 0
}

// TestKeysAPI: project administrators create and rotate keys, everyone
// who may pull reads the public halves (also as a trust file), nobody
// gets a private key (refused and audited), stage rules are checked,
// and backup and restore refuse bad input and keys already there.
func TestKeysAPI(t *testing.T) {
	e := custodyEnv(t)
	e.expect(e.do(admin, "POST", "/api/v1/projects", ProjectRequest{Name: "team"}), 201, "", "create team")
	dev := e.user("dev", "team", auth.Developer)
	owner := e.user("owner", "team", auth.ProjectAdmin)
	outsider := e.user("outsider", "", "")

	e.expect(e.do(dev, "POST", "/api/v1/projects/team/keys", KeyRequest{Purpose: "scan"}), 403, "DENIED", "developer creates a key")
	e.expect(e.do(owner, "POST", "/api/v1/projects/team/keys", KeyRequest{Purpose: "Bad!"}), 400, "INVALID", "bad purpose")
	e.expect(e.do(owner, "POST", "/api/v1/projects/team/keys", KeyRequest{Purpose: "scan", Algorithm: "dsa"}), 400, "INVALID", "bad algorithm")
	e.expect(e.do(owner, "POST", "/api/v1/projects/team/keys", KeyRequest{Purpose: "scan", RotateEvery: "soon"}), 400, "INVALID", "bad interval")
	var k custody.Key
	e.expect(e.do(owner, "POST", "/api/v1/projects/team/keys", KeyRequest{Purpose: "scan", RotateEvery: "2160h"}), 201, "", "create").decode(t, &k)
	if !strings.Contains(k.PublicKey, "BEGIN PUBLIC KEY") || k.Algorithm != "ecdsa-p256" || !k.Signing {
		t.Errorf("created key %+v", k)
	}
	e.expect(e.do(owner, "POST", "/api/v1/projects/team/keys", KeyRequest{Purpose: "scan"}), 409, "CONFLICT", "second scan key")
	e.expect(e.do(owner, "POST", "/api/v1/projects/team/keys", KeyRequest{Purpose: "prod", Algorithm: "ed25519"}), 201, "", "ed25519")

	var list []custody.Key
	e.expect(e.do(dev, "GET", "/api/v1/projects/team/keys", nil), 200, "", "list").decode(t, &list)
	if len(list) != 2 {
		t.Errorf("list: %+v", list)
	}
	for _, c := range []creds{anon, outsider} {
		e.expect(e.do(c, "GET", "/api/v1/projects/team/keys", nil), 404, "NOT_FOUND", "keys of a private project")
	}
	if body := e.do(owner, "GET", "/api/v1/projects/team/keys", nil).body; strings.Contains(string(body), "PRIVATE") {
		t.Error("the listing holds a private key")
	}

	for _, c := range []creds{admin, owner, dev} {
		r := e.expect(e.do(c, "GET", "/api/v1/projects/team/keys/scan/private", nil), 403, "DENIED", "private key")
		if strings.Contains(string(r.body), "PRIVATE KEY") {
			t.Error("refusal holds a key")
		}
	}
	e.expect(e.do(outsider, "GET", "/api/v1/projects/team/keys/scan/private", nil), 404, "NOT_FOUND", "private key, outsider")
	if !e.audited("key.private", "denied") {
		t.Error("the refused private-key request is not in the audit log")
	}

	var rot RotateResponse
	e.expect(e.do(owner, "POST", "/api/v1/projects/team/keys/scan/rotate", RotateRequest{Overlap: "48h"}), 200, "", "rotate").decode(t, &rot)
	if rot.Retired.ID != k.ID || rot.Retired.Signing || rot.Retired.NotAfter == nil || !rot.Current.Signing || rot.Current.Predecessor != k.ID {
		t.Errorf("rotation: %+v", rot)
	}
	e.expect(e.do(owner, "POST", "/api/v1/projects/team/keys/nothing/rotate", nil), 404, "NOT_FOUND", "rotate a missing key")
	trust := e.expect(e.do(dev, "GET", "/api/v1/projects/team/keys?format=trust&purpose=scan", nil), 200, "", "trust file")
	if n := strings.Count(string(trust.body), "BEGIN PUBLIC KEY"); n != 2 || !strings.Contains(string(trust.body), "not-after:") {
		t.Errorf("trust file with %d keys:\n%s", n, trust.body)
	}
	for _, a := range []string{"key.create", "key.rotate"} {
		if !e.audited(a, "success") {
			t.Errorf("%s not audited", a)
		}
	}

	e.expect(e.do(owner, "PUT", "/api/v1/projects/team/stages/Deploy_Now", StageRule{Key: "scan", FailOn: "high"}), 400, "INVALID", "a stage name that is not one")
	e.expect(e.do(owner, "PUT", "/api/v1/projects/team/stages/deploy", StageRule{Key: "deploy", Attest: true}), 400, "INVALID", "a stage people approve, attesting")
	e.expect(e.do(owner, "PUT", "/api/v1/projects/team/stages/deploy", StageRule{Key: "deploy", Requires: []string{"scan"}}), 200, "", "a stage people approve")
	e.expect(e.do(owner, "PUT", "/api/v1/projects/team/stages/scan", StageRule{Key: "scan", FailOn: "high", Requires: []string{"build"}}), 400, "INVALID", "the scan stage requiring another")
	e.expect(e.do(owner, "PUT", "/api/v1/projects/team/stages/scan", StageRule{Key: "scan", FailOn: "severe"}), 400, "INVALID", "bad severity")
	e.expect(e.do(dev, "PUT", "/api/v1/projects/team/stages/scan", StageRule{Key: "scan", FailOn: "high"}), 403, "DENIED", "developer sets a rule")
	e.expect(e.do(owner, "PUT", "/api/v1/projects/team/stages/scan", StageRule{Key: "scan"}), 400, "INVALID", "neither fail_on nor a policy")
	signers := "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: prod}\nspec:\n  signers:\n    keys:\n    - ref: scan\n"
	refusal := e.expect(e.do(owner, "PUT", "/api/v1/projects/team/stages/scan", StageRule{Key: "scan", Policy: signers}), 400, "INVALID", "a policy requiring signatures")
	if !strings.Contains(string(refusal.body), "cannot require signatures or attestations") {
		t.Errorf("refusal of a policy requiring signatures does not say why: %s", refusal.body)
	}
	e.expect(e.do(owner, "PUT", "/api/v1/projects/team/stages/scan", StageRule{Key: "scan", Policy: "kind: [\n"}), 400, "INVALID", "a policy that does not parse")
	e.expect(e.do(dev, "GET", "/api/v1/projects/team/stages/scan", nil), 404, "NOT_FOUND", "no rule after the refusals")
	secrets := "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: scan}\nspec:\n  secrets: {deny: true}\n"
	e.expect(e.do(owner, "PUT", "/api/v1/projects/team/stages/scan", StageRule{Key: "scan", FailOn: "critical", Policy: secrets, Attest: true}), 200, "", "set rule")
	var rule custody.Rule
	e.expect(e.do(dev, "GET", "/api/v1/projects/team/stages/scan", nil), 200, "", "get rule").decode(t, &rule)
	if rule.FailOn != "CRITICAL" || rule.Policy != secrets || !rule.Attest || rule.KeyPurpose != "scan" {
		t.Errorf("rule %+v", rule)
	}

	e.expect(e.do(owner, "POST", "/api/v1/keys/backup", BackupRequest{Passphrase: "a long passphrase"}), 403, "DENIED", "backup by a project admin")
	e.expect(e.do(admin, "POST", "/api/v1/keys/backup", BackupRequest{Passphrase: "short"}), 400, "INVALID", "short passphrase")
	var b BackupResponse
	e.expect(e.do(admin, "POST", "/api/v1/keys/backup", BackupRequest{Passphrase: "a long passphrase"}), 200, "", "backup").decode(t, &b)
	if b.Keys != 3 || !strings.HasPrefix(b.Backup, "-----BEGIN BERTH KEY BACKUP-----") {
		t.Errorf("backup: %d keys\n%s", b.Keys, b.Backup)
	}
	e.expect(e.do(admin, "POST", "/api/v1/keys/restore", RestoreRequest{Backup: b.Backup, Passphrase: "the wrong passphrase"}), 400, "INVALID", "wrong passphrase")
	e.expect(e.do(admin, "POST", "/api/v1/keys/restore", RestoreRequest{Backup: b.Backup[:200], Passphrase: "a long passphrase"}), 400, "INVALID", "truncated")
	e.expect(e.do(admin, "POST", "/api/v1/keys/restore", RestoreRequest{Backup: b.Backup, Passphrase: "a long passphrase"}), 409, "CONFLICT", "restore over keys")
	var res custody.RestoreResult
	e.expect(e.do(admin, "POST", "/api/v1/keys/restore", RestoreRequest{Backup: b.Backup, Passphrase: "a long passphrase", Force: true}), 200, "", "forced restore").decode(t, &res)
	if res.Keys != 3 || res.Rules != 2 {
		t.Errorf("restore: %+v", res)
	}
	var deploy custody.Rule
	e.expect(e.do(dev, "GET", "/api/v1/projects/team/stages/deploy", nil), 200, "", "get the restored stage people approve").decode(t, &deploy)
	if deploy.KeyPurpose != "deploy" || len(deploy.Requires) != 1 || deploy.Requires[0] != "scan" {
		t.Errorf("restored deploy rule %+v", deploy)
	}
	e.expect(e.do(dev, "GET", "/api/v1/projects/team/stages/scan", nil), 200, "", "get restored rule").decode(t, &rule)
	if rule.Policy != secrets {
		t.Errorf("restored rule lost its policy: %+v", rule)
	}
	for _, a := range []string{"key.backup", "key.restore"} {
		if !e.audited(a, "success") {
			t.Errorf("%s not audited", a)
		}
	}
	e.expect(e.do(owner, "DELETE", "/api/v1/projects/team/stages/scan", nil), 204, "", "delete rule")
	e.expect(e.do(owner, "DELETE", "/api/v1/projects/team/stages/scan", nil), 404, "NOT_FOUND", "delete again")
}
