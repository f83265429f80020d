package custody

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/policy"
	"berth.dev/berth/internal/secret"
	"berth.dev/berth/internal/sign/keys"
)

func master(t *testing.T) Master {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	m, err := NewAESMaster(k, "test master")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// openSQLite opens dir's meta.db for custody.
func openSQLite(t *testing.T, dir string) Store {
	t.Helper()
	st, err := OpenSQLite(context.Background(), filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func openService(t *testing.T, dir string, m Master) *Service {
	t.Helper()
	s, err := Open(context.Background(), Options{Store: openSQLite(t, dir), Master: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// signs checks that the purpose's current key signs and returns its id.
func signs(t *testing.T, s *Service, project, purpose string) string {
	t.Helper()
	k, rec, err := s.Signer(context.Background(), project, purpose)
	if err != nil {
		t.Fatalf("no key signs for %s/%s: %v", project, purpose, err)
	}
	pub, err := keys.ParsePublic([]byte(rec.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := keys.ID(pub)
	if id != k.ID() {
		t.Fatalf("the signing key is not the published one")
	}
	return rec.ID
}

// TestPrivateKeysSealedAtRest: the private key appears nowhere in the
// database files, in PKCS #8 DER or any PEM form; the public key is
// published; another master key is refused at start.
func TestPrivateKeysSealedAtRest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m := master(t)
	s := openService(t, dir, m)
	priv, _ := keys.Generate()
	k, err := s.prepare(NewKey{ProjectID: "p1", Project: "team", Purpose: "scan"}, priv, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.store.Update(ctx, "t", func(tx Tx) error { return tx.InsertKey(ctx, k) }); err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"", "ed25519", "rsa-3072"} {
		if _, err := s.Create(ctx, NewKey{ProjectID: "p1", Project: "team", Purpose: "k-" + alg + "x", Algorithm: alg}); err != nil {
			t.Fatal(alg, err)
		}
	}
	if _, err := s.Create(ctx, NewKey{ProjectID: "p1", Project: "team", Purpose: "scan"}); !errors.Is(err, ErrExists) {
		t.Errorf("second scan key: %v, want ErrExists", err)
	}
	if _, err := s.Create(ctx, NewKey{ProjectID: "p1", Project: "team", Purpose: "Bad Purpose"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad purpose: %v", err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	secret := priv.D.Bytes()
	s.store.(*SQLiteStore).db.W.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	files, _ := filepath.Glob(filepath.Join(dir, "meta.db*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, der) || bytes.Contains(b, secret) || bytes.Contains(b, []byte("PRIVATE KEY")) {
			t.Errorf("%s holds the private key in the clear", filepath.Base(f))
		}
	}
	if got := signs(t, s, "p1", "scan"); got != k.ID {
		t.Errorf("signing key %s, want %s", got, k.ID)
	}
	list, _ := s.List(ctx, "p1")
	if len(list) != 4 || !strings.Contains(list[len(list)-1].PublicKey, "BEGIN PUBLIC KEY") {
		t.Errorf("list: %+v", list)
	}
	s.Close()
	if _, err := Open(ctx, Options{Store: openSQLite(t, dir), Master: master(t)}); !errors.Is(err, ErrMasterKey) {
		t.Errorf("another master key: %v, want ErrMasterKey", err)
	}
}

// TestRotation: the successor signs, the predecessor stops signing and
// keeps a verification window; an interrupted rotation leaves the old key
// signing (never neither, never both).
func TestRotation(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s, err := Open(ctx, Options{Store: openSQLite(t, t.TempDir()), Master: master(t), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, err := s.Create(ctx, NewKey{ProjectID: "p", Project: "team", Purpose: "prod", RotateEvery: 24 * time.Hour, Overlap: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if due, _ := s.Due(ctx); len(due) != 0 {
		t.Errorf("due at once: %v", due)
	}
	// Interrupted inside the transaction: nothing changes.
	s.beforeCommit = func(string) error { return errors.New("power cut") }
	if _, _, err := s.Rotate(ctx, "p", "prod", 0); err == nil {
		t.Fatal("interrupted rotation reported success")
	}
	s.beforeCommit = nil
	if got := signs(t, s, "p", "prod"); got != first.ID {
		t.Fatalf("after an interrupted rotation %s signs, want the old key %s", got, first.ID)
	}
	if list, _ := s.List(ctx, "p"); len(list) != 1 {
		t.Fatalf("interrupted rotation left %d keys", len(list))
	}
	now = now.Add(25 * time.Hour)
	due, _ := s.Due(ctx)
	if len(due) != 1 || due[0].ID != first.ID {
		t.Fatalf("due: %+v", due)
	}
	old, next, err := s.Rotate(ctx, "p", "prod", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := signs(t, s, "p", "prod"); got != next.ID || next.Predecessor != first.ID {
		t.Fatalf("after rotation %s signs, want %s", got, next.ID)
	}
	if old.Signing || old.NotAfter == nil || !old.NotAfter.Equal(now.Add(48*time.Hour)) {
		t.Errorf("old key after rotation: %+v", old)
	}
	trust, err := s.Trust(ctx, "p", "prod")
	if err != nil || len(trust.Keys) != 2 || trust.Require != 1 {
		t.Fatalf("trust: %+v %v", trust, err)
	}
	if _, _, err := s.Rotate(ctx, "p", "nothing", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("rotating a purpose without a key: %v", err)
	}
}

// TestBackupRestore is the disaster drill at this level: back up, lose
// the database, restore into a new one under another master key; the
// same keys sign. Bad backups and refusals restore nothing.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	a := openService(t, t.TempDir(), master(t))
	k, err := a.Create(ctx, NewKey{ProjectID: "a-team", Project: "team", Purpose: "scan"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Rotate(ctx, "a-team", "scan", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := a.SetRule(ctx, "a-team", "team", Rule{Stage: StageScan, KeyPurpose: "scan", FailOn: "critical", Policy: secretPolicy, Attest: true}); err != nil {
		t.Fatal(err)
	}
	pass := []byte("correct horse battery")
	if _, _, err := a.Backup(ctx, []byte("short")); !errors.Is(err, ErrInvalid) {
		t.Errorf("short passphrase: %v", err)
	}
	backup, n, err := a.Backup(ctx, pass)
	if err != nil || n != 2 {
		t.Fatalf("backup: %d keys, %v", n, err)
	}
	if bytes.Contains(backup, []byte("PRIVATE")) {
		t.Error("backup shows a private key")
	}
	wantList, _ := a.List(ctx, "a-team")

	b := openService(t, t.TempDir(), master(t))
	resolve := func(name string) (string, error) {
		if name == "team" {
			return "b-team", nil
		}
		return "", ErrNotFound
	}
	block, _ := pem.Decode(backup)
	damaged := bytes.Clone(block.Bytes)
	damaged[len(damaged)/2] ^= 1
	for _, tc := range []struct {
		name string
		data []byte
		pass []byte
		res  ProjectResolver
		want error
	}{
		{"wrong passphrase", backup, []byte("incorrect horse battery"), resolve, ErrWrongPassphrase},
		{"damaged", pem.EncodeToMemory(&pem.Block{Type: BackupPEMType, Bytes: damaged}), pass, resolve, nil},
		{"not a backup", []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), pass, resolve, ErrBadBackup},
		{"truncated", backup[:len(backup)/2], pass, resolve, ErrBadBackup},
		{"missing project", backup, pass, func(string) (string, error) { return "", ErrNotFound }, ErrNotFound},
	} {
		_, err := b.Restore(ctx, tc.data, tc.pass, false, tc.res)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if list, _ := b.List(ctx, "b-team"); len(list) != 0 {
			t.Fatalf("%s: %d keys restored", tc.name, len(list))
		}
	}
	// Interrupted in its transaction: nothing.
	b.beforeCommit = func(string) error { return errors.New("crash") }
	if _, err := b.Restore(ctx, backup, pass, false, resolve); err == nil {
		t.Fatal("interrupted restore succeeded")
	}
	b.beforeCommit = nil
	if list, _ := b.List(ctx, "b-team"); len(list) != 0 {
		t.Fatalf("interrupted restore left %d keys", len(list))
	}
	res, err := b.Restore(ctx, backup, pass, false, resolve)
	if err != nil || res.Keys != 2 || res.Rules != 1 {
		t.Fatalf("restore: %+v %v", res, err)
	}
	got, _ := b.List(ctx, "b-team")
	for i := range got {
		if got[i].ID != wantList[i].ID || got[i].PublicKey != wantList[i].PublicKey || got[i].Signing != wantList[i].Signing ||
			!got[i].NotBefore.Equal(wantList[i].NotBefore) || (got[i].NotAfter == nil) != (wantList[i].NotAfter == nil) {
			t.Errorf("restored key %d: %+v\nwant %+v", i, got[i], wantList[i])
		}
	}
	if signs(t, b, "b-team", "scan") == k.ID {
		t.Error("the rotated-out key signs after restore")
	}
	if r, err := b.GetRule(ctx, "b-team", StageScan); err != nil || r.FailOn != match.SeverityCritical || r.Policy != secretPolicy || !r.Attest {
		t.Errorf("restored rule: %+v %v", r, err)
	}
	if _, err := b.Restore(ctx, backup, pass, false, resolve); !errors.Is(err, ErrHasKeys) {
		t.Errorf("restore over keys: %v, want ErrHasKeys", err)
	}
	if res, err := b.Restore(ctx, backup, pass, true, resolve); err != nil || res.Keys != 2 {
		t.Errorf("forced restore: %+v %v", res, err)
	}
	if got, _ := b.List(ctx, "b-team"); len(got) != 2 {
		t.Errorf("forced restore left %d keys", len(got))
	}
}

// Stage policies used by the rule tests: a vulnerabilities rule with an
// allow-list entry, and a secrets rule.
const (
	vulnPolicy = `apiVersion: berth.dev/v1
kind: ImagePolicy
metadata: {name: scan}
spec:
  vulnerabilities:
    severity: HIGH
    allow: [{id: CVE-ALLOWED, reason: not reachable}]
`
	secretPolicy = `apiVersion: berth.dev/v1
kind: ImagePolicy
metadata: {name: no-secrets}
spec:
  secrets: {deny: true}
`
)

func TestRuleEvaluate(t *testing.T) {
	f := func(id string, sev match.Severity, fixed ...string) match.Finding {
		return match.Finding{ID: id, Severity: sev, FixedVersions: fixed}
	}
	key := secret.Finding{RuleID: "private-key", Severity: secret.SeverityHigh, Kind: secret.KindFile, Path: "etc/app.key", StartLine: 1}
	img := policy.Image{Registry: "registry.example", Repository: "team/app", Digest: "sha256:" + strings.Repeat("a", 64), Pinned: true}
	for _, tc := range []struct {
		name     string
		rule     Rule
		report   match.Report
		pass     bool
		reasonIn string
	}{
		{"nothing found", Rule{FailOn: "CRITICAL"}, match.Report{}, true, ""},
		{"below the threshold", Rule{FailOn: "CRITICAL"}, match.Report{Findings: []match.Finding{f("CVE-1", "HIGH", "1")}}, true, ""},
		{"at the threshold", Rule{FailOn: "CRITICAL"}, match.Report{Findings: []match.Finding{f("CVE-1", "HIGH"), f("CVE-2", "CRITICAL", "2")}},
			false, "1 finding(s) rated CRITICAL or higher, e.g. CVE-2"},
		{"unfixed left out", Rule{FailOn: "HIGH", IgnoreUnfixed: true}, match.Report{Findings: []match.Finding{f("CVE-1", "CRITICAL")}}, true, ""},
		{"policy: allowed finding", Rule{Policy: vulnPolicy}, match.Report{Findings: []match.Finding{f("CVE-ALLOWED", "CRITICAL")}}, true, ""},
		{"policy: denied finding", Rule{Policy: vulnPolicy}, match.Report{Findings: []match.Finding{f("CVE-3", "HIGH")}},
			false, "ImagePolicy/scan: vulnerability: "},
		{"policy passes, threshold fails", Rule{FailOn: "MEDIUM", Policy: vulnPolicy}, match.Report{Findings: []match.Finding{f("CVE-4", "MEDIUM")}},
			false, "rated MEDIUM or higher"},
		{"both fail, both say why", Rule{FailOn: "HIGH", Policy: vulnPolicy}, match.Report{Findings: []match.Finding{f("CVE-5", "HIGH")}},
			false, "; ImagePolicy/scan: vulnerability: CVE-5"},
		{"secrets: none", Rule{Policy: secretPolicy}, match.Report{Scanners: []string{"vuln", "secret"}}, true, ""},
		{"secrets: a key", Rule{Policy: secretPolicy}, match.Report{Scanners: []string{"vuln", "secret"}, Secrets: []secret.Finding{key}},
			false, "ImagePolicy/no-secrets: secret: private-key (HIGH) in etc/app.key:1"},
		{"secrets: not scanned for them", Rule{Policy: secretPolicy}, match.Report{Scanners: []string{"vuln"}},
			false, "not scanned for secrets"},
		{"a policy that no longer loads fails", Rule{Policy: "kind: nope\n"}, match.Report{}, false, "the stage's policy does not load"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.rule.Stage = StageScan
			pass, why, err := tc.rule.Evaluate(context.Background(), img, &tc.report)
			if err != nil || pass != tc.pass || !strings.Contains(why, tc.reasonIn) || (!pass && why == "") {
				t.Errorf("%v %q %v, want %v with %q", pass, why, err, tc.pass, tc.reasonIn)
			}
		})
	}
}

func TestRuleCheck(t *testing.T) {
	rule := func(failOn match.Severity, unfixed bool, pol string) Rule {
		return Rule{Stage: StageScan, KeyPurpose: "scan", FailOn: failOn, IgnoreUnfixed: unfixed, Policy: pol}
	}
	signers := "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: prod}\nspec:\n  signers:\n    keys:\n    - ref: ci\n"
	for _, tc := range []struct {
		name string
		rule Rule
		want string // "": valid
	}{
		{"a threshold", rule("HIGH", true, ""), ""},
		{"a policy", rule("", false, vulnPolicy), ""},
		{"both", rule("CRITICAL", true, secretPolicy), ""},
		{"neither", rule("", false, ""), "give fail_on"},
		{"a stage people approve", Rule{Stage: "staging", KeyPurpose: "staging"}, ""},
		{"a stage people approve, with conditions", Rule{Stage: "prod", KeyPurpose: "prod", Requires: []string{"scan", "staging"}, FailOn: "HIGH", Policy: secretPolicy}, ""},
		{"a bad stage name", Rule{Stage: "Prod Stage", KeyPurpose: "prod"}, `stage "Prod Stage"`},
		{"a stage requiring itself", Rule{Stage: "prod", KeyPurpose: "prod", Requires: []string{"prod"}}, "cannot require itself"},
		{"a stage required twice", Rule{Stage: "prod", KeyPurpose: "prod", Requires: []string{"scan", "scan"}}, "named twice"},
		{"a bad required stage", Rule{Stage: "prod", KeyPurpose: "prod", Requires: []string{"../scan"}}, "is not a stage"},
		{"an approved stage attesting", Rule{Stage: "prod", KeyPurpose: "prod", Attest: true}, "only the scan stage attests"},
		{"the scan stage requiring another", Rule{Stage: StageScan, KeyPurpose: "scan", FailOn: "HIGH", Requires: []string{"build"}}, "on its own"},
		{"a bad purpose", Rule{Stage: StageScan, KeyPurpose: "Scan Key", FailOn: "HIGH"}, "not a key purpose"},
		{"a bad severity", rule("severe", false, ""), "fail_on: want"},
		{"ignore_unfixed without fail_on", rule("", true, vulnPolicy), "ignore_unfixed applies to fail_on"},
		{"a policy that does not parse", rule("", false, "kind: [\n"), "scan stage policy"},
		{"a policy without rules", rule("", false, "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec: {mode: warn}\n"), "has no rules"},
		{"a policy requiring signatures", rule("", false, signers), "cannot require signatures or attestations"},
		{"a policy too large", rule("", false, vulnPolicy+"#"+strings.Repeat("x", MaxRulePolicy)), "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rule.Check()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want ErrInvalid saying %q", err, tc.want)
			}
		})
	}
}

func TestOpenMaster(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte(strings.Repeat("ab", 32)), 0o644)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("c2hvcnQ="), 0o600)
	t.Setenv("BERTH_TEST_MASTER", "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=")
	if _, err := OpenMaster("file:" + good); err != nil {
		t.Error(err)
	}
	if _, err := OpenMaster("env:BERTH_TEST_MASTER"); err != nil {
		t.Error(err)
	}
	for spec, want := range map[string]string{
		"file:" + loose:         "chmod 600",
		"file:" + short:         "32 bytes",
		"file:" + dir + "/none": "no such file",
		"env:BERTH_UNSET_VAR":   "not set",
		"secretvaluehere12345":  "want file:PATH",
	} {
		_, err := OpenMaster(spec)
		if !errors.Is(err, ErrMasterKey) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", spec, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secretvaluehere") {
			t.Errorf("error shows the setting's value: %v", err)
		}
	}
}
