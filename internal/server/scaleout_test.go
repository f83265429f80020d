package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/auth/token"
	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/keys"
	"berth.dev/berth/internal/sign/store"
	"berth.dev/berth/internal/testpeers"
)

// sharedBackends returns a configuration change that puts a server on one
// PostgreSQL database and one S3 bucket, made for the test, with a signing
// key every replica shares: call it once and apply it to every replica.
func sharedBackends(t *testing.T) func(*Config) {
	t.Helper()
	db := testpeers.Postgres(t)
	srv, bucket := testpeers.Bucket(t)
	key := filepath.Join(t.TempDir(), "signing-key.pem")
	if _, _, err := token.LoadOrCreateKey(key); err != nil {
		t.Fatal(err)
	}
	return func(c *Config) {
		c.Storage = StorageConfig{Meta: db, Blobs: "s3://" + bucket + "?endpoint=" + srv.Endpoint + "&region=us-east-1",
			S3AccessKey: srv.AccessKey, S3SecretKey: srv.SecretKey}
		c.Auth.SigningKey = key
	}
}

// Two replicas on one database and bucket serve one registry: an image
// pushed through one is pulled through the other, with a token the first
// issued; neither locks its data directory.
func TestReplicasShareOneRegistry(t *testing.T) {
	shared := sharedBackends(t)
	a := startAuthServer(t, shared)
	b := startAuthServer(t, shared)

	img := makeImage("replicated")
	a.expect(a.push("team/app", "v1", img, adminCreds), 201, "push through replica A")

	tok := a.token(adminCreds, "repository:team/app:pull")
	m := b.expect(b.do("GET", "/v2/team/app/manifests/v1", nil, append(tok,
		"Accept", "application/vnd.oci.image.manifest.v1+json")...), 200, "pull through replica B with A's token")
	if m.body != string(img.manifest) {
		t.Errorf("B served another manifest: %s", m.body)
	}
	layer := b.expect(b.do("GET", "/v2/team/app/blobs/"+digest.FromBytes(img.layer).String(), nil, tok...), 200, "layer through B")
	if layer.body != string(img.layer) {
		t.Errorf("B served another layer: %q", layer.body)
	}
	tags := b.expect(b.do("GET", "/v2/team/app/tags/list", nil, tok...), 200, "tags through B")
	if !strings.Contains(tags.body, `"v1"`) {
		t.Errorf("tags through B: %s", tags.body)
	}
	// Each replica's own data directory is not locked: a third process may
	// open the same one (a replica restarting in place).
	c := startAuthServer(t, shared, func(cfg *Config) { cfg.Data = a.s.cfg.Data })
	c.expect(c.do("GET", "/v2/team/app/manifests/v1", nil, append(tok,
		"Accept", "application/vnd.oci.image.manifest.v1+json")...), 200, "pull through a replica on A's directory")
}

// A replica refuses to start on a shared database without a signing key
// of its own configuration: a generated one would differ per replica and
// each would refuse the others' tokens.
func TestSharedDatabaseNeedsASigningKey(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Data = t.TempDir()
	cfg.Storage.Meta = "postgres://berth@127.0.0.1:1/berth"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "auth.signing_key") {
		t.Errorf("Validate without a signing key: %v", err)
	}
}

// Two replicas on one database hold one key custody: a key made through
// A is the key B lists, the rule set through A is the rule B's scan stage
// applies, and B's stage signs with that key (the signature verifies with
// the public key A answered). A rotation through B is what A lists, and a
// replica started with another master key refuses to start.
func TestReplicasShareKeyCustody(t *testing.T) {
	ctx := context.Background()
	shared := sharedBackends(t)
	master := masterKeyFile(t)
	feed := t.TempDir()
	replica := func(c *Config) {
		shared(c)
		c.Keys.MasterKey = "file:" + master
		c.Scan.DBSources = []string{feed}
		c.Scan.DBUpdateInterval = 0
		c.Jobs.RetryBase, c.Jobs.RetryMax = 50*time.Millisecond, 500*time.Millisecond
	}
	a := startAuthServer(t, replica)
	b := startAuthServer(t, replica)
	// B works every job (A's queue is not started): B scans and signs.
	if err := b.s.bg.start(ctx); err != nil {
		t.Fatal(err)
	}
	decode := func(r answer, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(r.body), v); err != nil {
			t.Fatalf("%v: %s", err, r.body)
		}
	}
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team")
	var made custody.Key
	decode(a.expect(a.api(adminCreds, "POST", "/projects/team/keys", map[string]any{"purpose": "scan"}), 201, "scan key through A"), &made)
	var listed []custody.Key
	decode(b.expect(b.api(adminCreds, "GET", "/projects/team/keys", nil), 200, "keys through B"), &listed)
	if len(listed) != 1 || listed[0].ID != made.ID || listed[0].PublicKey != made.PublicKey || !listed[0].Signing {
		t.Fatalf("B lists %+v, want A's key %+v", listed, made)
	}
	a.expect(a.api(adminCreds, "PUT", "/projects/team/stages/scan", map[string]any{"key": "scan", "fail_on": "critical"}), 200, "rule through A")

	writeNPMFeed(t, feed, map[string]string{"VULN-1": "lodash"})
	if _, err := a.s.bg.scans.UpdateDB(ctx); err != nil {
		t.Fatalf("update on A: %v", err)
	}
	a.expect(a.push("team/app", "v1", npmImage("lodash"), adminCreds), 201, "push through A")
	b.expect(b.api(adminCreds, "POST", "/projects/team/repositories/app/artifacts/v1/scan", nil), 202, "scan through B")
	var approvals []custody.Approval
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		decode(a.expect(a.api(adminCreds, "GET", "/projects/team/repositories/app/artifacts/v1/approvals", nil), 200, "approvals through A"), &approvals)
		if len(approvals) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(approvals) != 1 || approvals[0].State != custody.Approved || approvals[0].KeyID != made.ID {
		t.Fatalf("approvals through A: %+v, want approved with %s\n%s", approvals, made.ID, b.logs.String())
	}

	u, _ := url.Parse(a.url)
	reg, _ := name.NewRegistry(u.Host, name.Insecure)
	st, err := store.NewRemote(reg, remote.WithAuth(&authn.Basic{Username: "admin", Password: testAdminPassword}))
	if err != nil {
		t.Fatal(err)
	}
	target, err := sign.Resolve(ctx, st, reg.Repo("team", "app").Tag("v1"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := keys.ParsePublic([]byte(made.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	tk, err := sign.NewTrustedKey("scan", pub, made.NotBefore, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := sign.Verify(ctx, st, target, sign.Trust{Keys: []sign.TrustedKey{tk}, Require: 1},
		sign.VerifyOptions{Annotations: map[string]string{custody.AnnotationStage: custody.StageScan}})
	if err != nil || len(res.Verified) != 1 || res.Verified[0].KeyID != made.KeyHint {
		t.Fatalf("B's scan stage signature with A's key: %+v %v", res, err)
	}

	// A's policy names the scan key; the rotation through B reaches it.
	runtime := puller(t, a, "team")
	a.expect(putPolicy(a, "team", "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: scanned}\nspec:\n  signers:\n    keys:\n    - ref: scan\n"), 200, "policy through A")
	a.expect(a.do("GET", "/v2/team/app/manifests/v1", nil, runtime...), 200, "signed by the scan stage, pulled through A")
	// B records a revocation (as its stage does when a re-match fails the
	// image) with no report changed: A forgets the verdict it cached and
	// refuses the next pull with the reason; approved again, it serves.
	team, err := a.s.sec.auth.Project("team")
	if err != nil {
		t.Fatal(err)
	}
	withdrawn := approvals[0]
	withdrawn.State, withdrawn.Reason = custody.Revoked, "1 finding(s) rated CRITICAL or higher, e.g. VULN-9"
	if err := b.s.bg.custody.RecordApproval(ctx, team.ID, withdrawn); err != nil {
		t.Fatal(err)
	}
	if r := a.expect(a.do("GET", "/v2/team/app/manifests/v1", nil, runtime...), 403, "approval revoked through B, pulled through A"); !strings.Contains(r.body, "scan stage approval revoked: "+withdrawn.Reason) {
		t.Errorf("refusal through A: %s", r.body)
	}
	if err := b.s.bg.custody.RecordApproval(ctx, team.ID, approvals[0]); err != nil {
		t.Fatal(err)
	}
	a.expect(a.do("GET", "/v2/team/app/manifests/v1", nil, runtime...), 200, "approved again through B, pulled through A")
	var rotated struct{ Retired, Current custody.Key }
	decode(b.expect(b.api(adminCreds, "POST", "/projects/team/keys/scan/rotate", nil), 200, "rotate through B"), &rotated)
	decode(a.expect(a.api(adminCreds, "GET", "/projects/team/keys", nil), 200, "keys through A"), &listed)
	if len(listed) != 2 || listed[1].ID != rotated.Current.ID || !listed[1].Signing || listed[0].Signing || listed[1].Predecessor != made.ID {
		t.Errorf("A lists %+v after B rotated to %s", listed, rotated.Current.ID)
	}
	p, err := a.s.sec.auth.Project("team")
	if err != nil {
		t.Fatal(err)
	}
	next, _, err := a.s.bg.custody.Signer(ctx, p.ID, "scan")
	if err != nil {
		t.Fatal(err)
	}
	a.expect(a.push("team/app", "v2", npmImage("minimist"), adminCreds), 201, "push v2 through A")
	v2, err := sign.Resolve(ctx, st, reg.Repo("team", "app").Tag("v2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign.Sign(ctx, st, v2, next, sign.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	a.expect(a.do("GET", "/v2/team/app/manifests/v2", nil, runtime...), 200, "signed by the key rotated in through B, pulled through A")

	other := DefaultConfig()
	other.Data = t.TempDir()
	other.Auth.AdminPassword = testAdminPassword
	replica(&other)
	other.Keys.MasterKey = "file:" + masterKeyFile(t)
	if _, err := New(ctx, other, Options{}); !errors.Is(err, custody.ErrMasterKey) {
		t.Errorf("a replica with another master key: %v, want ErrMasterKey", err)
	}
}

// Backends that are misnamed or refuse the credentials stop the start
// with the reason, never at the first request, and never print a
// password.
func TestBackendErrorsAtStart(t *testing.T) {
	shared := sharedBackends(t)
	good := DefaultConfig()
	shared(&good)
	dbURL, err := url.Parse(good.Storage.Meta)
	if err != nil {
		t.Fatal(err)
	}
	withPassword := *dbURL
	withPassword.User = url.UserPassword("berth", "hunter2-secret")
	missingDB := *dbURL
	missingDB.Path = "/no_such_database"
	for _, tc := range []struct {
		name   string
		adjust func(*Config)
		want   string
	}{
		{"unknown meta backend", func(c *Config) { c.Storage.Meta = "mysql://root:hunter2-secret@db/berth" }, "storage.meta"},
		{"unknown blob backend", func(c *Config) { c.Storage.Blobs = "gs://bucket" }, "storage.blobs"},
		{"credentials in the bucket URL", func(c *Config) { c.Storage.Blobs = "s3://AKIA:hunter2-secret@bucket" }, "credentials do not belong in the URL"},
		{"missing database", func(c *Config) { c.Storage.Meta = missingDB.String() }, "no_such_database"},
		{"unreachable database, password in the URL", func(c *Config) {
			c.Storage.Meta = strings.Replace(withPassword.String(), dbURL.Host, "127.0.0.1:1", 1)
		}, "storage.meta"},
		{"wrong S3 secret", func(c *Config) { c.Storage.S3SecretKey = "hunter2-secret" }, "S3 bucket"},
		{"missing bucket", func(c *Config) {
			c.Storage.Blobs = strings.Replace(c.Storage.Blobs, "s3://", "s3://no-such-bucket-", 1)
		}, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			cfg.Data = t.TempDir()
			tc.adjust(&cfg)
			s, err := New(context.Background(), cfg, Options{})
			if err == nil {
				s.Close()
				t.Fatal("started")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2-secret") {
				t.Errorf("error %q: want it to name %q and hide the password", err, tc.want)
			}
		})
	}
}

// A tag deleted or moved through one replica is gone from the other's
// cache at once: the other's next request after the change was
// acknowledged sees it, every time.
func TestTagChangesReachTheOtherReplicaAtOnce(t *testing.T) {
	shared := sharedBackends(t)
	a := startAuthServer(t, shared)
	b := startAuthServer(t, shared)
	tokA := a.token(adminCreds, "repository:team/app:pull,push,delete")
	tokB := b.token(adminCreds, "repository:team/app:pull")
	get := func(ref string) answer {
		return b.do("GET", "/v2/team/app/manifests/"+ref, nil, append(tokB, "Accept", "application/vnd.oci.image.manifest.v1+json")...)
	}
	for i := range 20 {
		one, two := makeImage(fmt.Sprint("one ", i)), makeImage(fmt.Sprint("two ", i))
		tag := fmt.Sprint("v", i)
		a.expect(a.push("team/app", tag, one, tokA), 201, "push through A")
		// Twice: the second answer comes from B's cache.
		for range 2 {
			if r := get(tag); r.status != 200 || r.body != string(one.manifest) {
				t.Fatalf("round %d: B serves %d %.80s, want the first image", i, r.status, r.body)
			}
		}
		a.expect(a.push("team/app", tag, two, tokA), 201, "move the tag through A")
		if r := get(tag); r.status != 200 || r.body != string(two.manifest) {
			t.Fatalf("round %d: after the tag moved B serves %d %.80s, want the second image", i, r.status, r.body)
		}
		a.expect(a.do("DELETE", "/v2/team/app/manifests/"+tag, nil, tokA...), 202, "delete the tag through A")
		if r := get(tag); r.status != 404 {
			t.Fatalf("round %d: the deleted tag is served by B: %d", i, r.status)
		}
		a.expect(a.do("DELETE", "/v2/team/app/manifests/"+two.digest(), nil, tokA...), 202, "delete the manifest through A")
		if r := get(two.digest()); r.status != 404 {
			t.Fatalf("round %d: the deleted manifest is served by B: %d", i, r.status)
		}
	}
}

// Accounts changed through one replica are the other's at once: a user
// created on A logs in on B, a robot revoked on A is refused by B with
// its secret and with a token B issued before.
func TestAccountChangesReachTheOtherReplicaAtOnce(t *testing.T) {
	shared := sharedBackends(t)
	a := startAuthServer(t, shared)
	b := startAuthServer(t, shared)
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create project on A")
	a.expect(a.push("team/app", "v1", makeImage("robot's"), adminCreds), 201, "push on A")
	for i := range 10 {
		name := fmt.Sprint("ci", i)
		r := a.expect(a.api(adminCreds, "POST", "/robots", map[string]any{"name": name,
			"permissions": []map[string]any{{"project": "team", "actions": []string{"pull"}}}}), 201, "create a robot on A")
		var created struct {
			Robot  struct{ Name string }
			Secret string
		}
		if err := json.Unmarshal([]byte(r.body), &created); err != nil {
			t.Fatal(err)
		}
		robot := basicAuth(created.Robot.Name, created.Secret)
		b.expect(b.do("GET", "/v2/team/app/manifests/v1", nil, robot...), 200, "the new robot pulls through B")
		tok := b.token(robot, "repository:team/app:pull")
		b.expect(b.do("GET", "/v2/team/app/manifests/v1", nil, tok...), 200, "the robot's token from B")
		a.expect(a.api(adminCreds, "POST", "/robots/"+url.PathEscape(created.Robot.Name)+"/revoke", nil), 200, "revoke it on A")
		if r := b.do("GET", "/v2/team/app/manifests/v1", nil, robot...); r.status != 401 {
			t.Fatalf("round %d: B let the revoked robot's secret pull: %d", i, r.status)
		}
		if r := b.do("GET", "/v2/team/app/manifests/v1", nil, tok...); r.status != 401 {
			t.Fatalf("round %d: B let the revoked robot's token pull: %d", i, r.status)
		}
	}
	a.expect(a.api(adminCreds, "POST", "/users", map[string]any{"name": "alice", "password": "alice-password-1"}), 201, "create alice on A")
	b.token(basicAuth("alice", "alice-password-1"), "repository:team/app:pull")
}
