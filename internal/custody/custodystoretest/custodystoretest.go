// Package custodystoretest is the test suite every custody.Store runs:
// what a store keeps, and that its write transactions run one at a time
// across openings of the same storage (replicas, or processes on one
// meta.db).
package custodystoretest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/match"
)

// Factory returns a fresh empty store and a function opening the same
// storage again (another replica, or the server after a restart).
type Factory func(t testing.TB) (custody.Store, func() custody.Store)

// Run runs the suite.
func Run(t *testing.T, factory Factory) {
	t.Run("CheckValue", func(t *testing.T) { testCheckValue(t, factory) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, factory) })
	t.Run("OneSigningKeyPerPurpose", func(t *testing.T) { testOneSigningKey(t, factory) })
	t.Run("RetireAndDue", func(t *testing.T) { testRetireAndDue(t, factory) })
	t.Run("UpdateIsAtomic", func(t *testing.T) { testAtomic(t, factory) })
	t.Run("RulesAndProjects", func(t *testing.T) { testRules(t, factory) })
	t.Run("Approvals", func(t *testing.T) { testApprovals(t, factory) })
	t.Run("UpdatesRunOneAtATime", func(t *testing.T) { testSerialised(t, factory) })
	t.Run("ConcurrentRotation", func(t *testing.T) { testConcurrentRotation(t, factory) })
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// at is a time that survives a nanosecond round trip, for DeepEqual.
var at = time.Unix(0, time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC).UnixNano()).UTC()

func ptr(t time.Time) *time.Time { return &t }

// sealedKey is a key as a store sees it; the sealed halves are random
// bytes (stores never open them), with a zero and a 0xff to catch text
// handling.
func sealedKey(id, projectID, project, purpose string, created time.Time) custody.SealedKey {
	b := make([]byte, 40)
	rand.Read(b)
	b[3], b[7] = 0, 0xff
	return custody.SealedKey{Key: custody.Key{ID: id, ProjectID: projectID, Project: project, Purpose: purpose, Algorithm: "ecdsa-p256",
		PublicKey: "-----BEGIN PUBLIC KEY-----\n" + id + "\n-----END PUBLIC KEY-----\n", KeyHint: "hint-" + id,
		CreatedAt: created, NotBefore: created, Signing: true, RotateEvery: custody.Duration(24 * time.Hour),
		Overlap: custody.Duration(48 * time.Hour)}, WrappedDEK: b[:20], Ciphertext: b[20:]}
}

func insert(t testing.TB, s custody.Store, keys ...custody.SealedKey) {
	t.Helper()
	must(t, s.Update(context.Background(), "insert", func(tx custody.Tx) error {
		for _, k := range keys {
			if err := tx.InsertKey(context.Background(), k); err != nil {
				return err
			}
		}
		return nil
	}))
}

func keys(t testing.TB, s custody.Store, projectID string) []custody.Key {
	t.Helper()
	ks, err := s.Keys(context.Background(), projectID)
	must(t, err)
	return ks
}

// The check value is stored once: a second replica starting at the same
// time gets the first one's back.
func testCheckValue(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, reopen := factory(t)
	if _, err := s.CheckValue(ctx); !errors.Is(err, custody.ErrNotFound) {
		t.Fatalf("check value of an empty store: %v, want ErrNotFound", err)
	}
	first := []byte("sealed\x00\xff one")
	got, err := s.InitCheckValue(ctx, first)
	if err != nil || !bytes.Equal(got, first) {
		t.Fatalf("init: %q %v", got, err)
	}
	other := reopen()
	if got, err := other.InitCheckValue(ctx, []byte("sealed two")); err != nil || !bytes.Equal(got, first) {
		t.Errorf("second init: %q %v, want the first value", got, err)
	}
	if got, err := other.CheckValue(ctx); err != nil || !bytes.Equal(got, first) {
		t.Errorf("check value through another opening: %q %v", got, err)
	}
}

// Keys read back field for field, sealed halves byte for byte, in
// purpose then creation order, through another opening too.
func testKeys(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, reopen := factory(t)
	if ks := keys(t, s, "p1"); len(ks) != 0 {
		t.Fatalf("empty store lists %v", ks)
	}
	if _, err := s.Current(ctx, "p1", "scan"); !errors.Is(err, custody.ErrNotFound) {
		t.Errorf("current of an empty store: %v, want ErrNotFound", err)
	}
	old := sealedKey("key-1", "p1", "team", "scan", at)
	old.Signing, old.RetiredAt, old.NotAfter = false, ptr(at.Add(time.Hour)), ptr(at.Add(49*time.Hour))
	cur := sealedKey("key-2", "p1", "team", "scan", at.Add(time.Hour))
	cur.Predecessor, cur.RotateEvery = "key-1", 0
	prod := sealedKey("key-0", "p1", "team", "prod", at.Add(2*time.Hour))
	elsewhere := sealedKey("key-3", "p2", "other", "scan", at)
	insert(t, s, cur, elsewhere, prod, old)
	want := []custody.Key{prod.Key, old.Key, cur.Key}
	for name, st := range map[string]custody.Store{"same": s, "other": reopen()} {
		if got := keys(t, st, "p1"); !reflect.DeepEqual(got, want) {
			t.Errorf("%s opening: keys\n%+v\nwant\n%+v", name, got, want)
		}
		got, err := st.Current(ctx, "p1", "scan")
		if err != nil || !reflect.DeepEqual(got, cur) {
			t.Errorf("%s opening: current %+v %v\nwant %+v", name, got, err, cur)
		}
		all, err := st.AllKeys(ctx)
		must(t, err)
		if len(all) != 4 || all[0].ID != "key-3" || all[1].ID != "key-0" || all[3].ID != "key-2" {
			t.Errorf("%s opening: all keys not by project, purpose, creation: %v", name, ids(all))
		}
		for _, k := range all {
			if k.ID == "key-1" && (!bytes.Equal(k.WrappedDEK, old.WrappedDEK) || !bytes.Equal(k.Ciphertext, old.Ciphertext)) {
				t.Errorf("%s opening: sealed halves changed", name)
			}
		}
	}
}

func ids(ks []custody.SealedKey) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.ID)
	}
	return out
}

// A purpose has at most one signing key; a refused insert is ErrExists
// and leaves the transaction usable.
func testOneSigningKey(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, _ := factory(t)
	insert(t, s, sealedKey("key-1", "p1", "team", "scan", at))
	must(t, s.Update(ctx, "second", func(tx custody.Tx) error {
		for _, k := range []custody.SealedKey{sealedKey("key-2", "p1", "team", "scan", at), sealedKey("key-1", "p1", "team", "other", at)} {
			if err := tx.InsertKey(ctx, k); !errors.Is(err, custody.ErrExists) {
				t.Errorf("insert %s (%s): %v, want ErrExists", k.ID, k.Purpose, err)
			}
		}
		return tx.InsertKey(ctx, sealedKey("key-3", "p1", "team", "prod", at))
	}))
	if got := keys(t, s, "p1"); len(got) != 2 || got[0].ID != "key-3" || got[1].ID != "key-1" {
		t.Errorf("keys after refused inserts: %+v", got)
	}
	// Another project's purpose of the same name is its own.
	insert(t, s, sealedKey("key-4", "p2", "other", "scan", at))
}

// A retired key stops signing once; Due finds the signing keys whose
// rotation is due.
func testRetireAndDue(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, _ := factory(t)
	daily := sealedKey("key-1", "p1", "team", "scan", at)
	never := sealedKey("key-2", "p1", "team", "prod", at)
	never.RotateEvery = 0
	insert(t, s, daily, never)
	for _, tc := range []struct {
		now  time.Time
		want int
	}{{at.Add(23 * time.Hour), 0}, {at.Add(24 * time.Hour), 1}, {at.Add(1000 * time.Hour), 1}} {
		due, err := s.Due(ctx, tc.now)
		must(t, err)
		if len(due) != tc.want || (tc.want == 1 && due[0].ID != "key-1") {
			t.Errorf("due at %s: %+v, want %d", tc.now, due, tc.want)
		}
	}
	retire := func() bool {
		var ok bool
		must(t, s.Update(ctx, "retire", func(tx custody.Tx) error {
			var err error
			ok, err = tx.RetireKey(ctx, "key-1", at.Add(25*time.Hour), at.Add(73*time.Hour))
			return err
		}))
		return ok
	}
	if !retire() {
		t.Fatal("retiring the signing key: false")
	}
	if retire() {
		t.Error("retiring a retired key again: true")
	}
	if _, err := s.Current(ctx, "p1", "scan"); !errors.Is(err, custody.ErrNotFound) {
		t.Errorf("current after retiring: %v, want ErrNotFound", err)
	}
	got := keys(t, s, "p1")[1]
	if got.ID != "key-1" || got.Signing || !reflect.DeepEqual(got.RetiredAt, ptr(at.Add(25*time.Hour))) ||
		!reflect.DeepEqual(got.NotAfter, ptr(at.Add(73*time.Hour))) {
		t.Errorf("retired key: %+v", got)
	}
	if due, _ := s.Due(ctx, at.Add(1000*time.Hour)); len(due) != 0 {
		t.Errorf("a retired key is due: %+v", due)
	}
}

// An Update whose fn fails leaves nothing behind.
func testAtomic(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, _ := factory(t)
	insert(t, s, sealedKey("key-1", "p1", "team", "scan", at))
	boom := errors.New("power cut")
	err := s.Update(ctx, "fails", func(tx custody.Tx) error {
		must(t, tx.InsertKey(ctx, sealedKey("key-2", "p1", "team", "prod", at)))
		if ok, err := tx.RetireKey(ctx, "key-1", at, at); !ok || err != nil {
			t.Errorf("retire: %v %v", ok, err)
		}
		must(t, tx.PutRule(ctx, "p1", "team", custody.Rule{Stage: custody.StageScan, KeyPurpose: "scan", FailOn: match.SeverityHigh}))
		must(t, tx.DeleteProject(ctx, "p1"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update: %v, want fn's error", err)
	}
	got := keys(t, s, "p1")
	if len(got) != 1 || got[0].ID != "key-1" || !got[0].Signing {
		t.Errorf("keys after a failed update: %+v", got)
	}
	if _, err := s.Rule(ctx, "p1", custody.StageScan); !errors.Is(err, custody.ErrNotFound) {
		t.Errorf("rule after a failed update: %v", err)
	}
}

// Rules are replaced, deleted, listed by project name; deleting a
// project takes its keys and rules and nothing else.
func testRules(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, reopen := factory(t)
	if _, err := s.Rule(ctx, "p1", custody.StageScan); !errors.Is(err, custody.ErrNotFound) {
		t.Fatalf("rule of an empty store: %v, want ErrNotFound", err)
	}
	first := custody.Rule{Stage: custody.StageScan, KeyPurpose: "scan", FailOn: match.SeverityHigh}
	second := custody.Rule{Stage: custody.StageScan, KeyPurpose: "prod", FailOn: match.SeverityCritical, IgnoreUnfixed: true, Attest: true}
	// A policy alone (no fail_on), kept as it was put, comments and all.
	withPolicy := custody.Rule{Stage: custody.StageScan, KeyPurpose: "scan", Attest: true,
		Policy: "# no secrets\napiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: scan}\nspec:\n  secrets: {deny: true}\n"}
	put := func(id, project string, r custody.Rule) {
		must(t, s.Update(ctx, "put", func(tx custody.Tx) error { return tx.PutRule(ctx, id, project, r) }))
	}
	put("p1", "zeta", first)
	put("p1", "zeta", withPolicy)
	put("p1", "zeta", second) // the policy goes with the rule it replaces
	put("p2", "alpha", first)
	put("p4", "mid", withPolicy)
	if got, err := reopen().Rule(ctx, "p1", custody.StageScan); err != nil || !reflect.DeepEqual(got, second) {
		t.Errorf("replaced rule: %+v %v, want %+v", got, err, second)
	}
	if got, err := reopen().Rule(ctx, "p4", custody.StageScan); err != nil || !reflect.DeepEqual(got, withPolicy) {
		t.Errorf("rule with a policy: %+v %v, want %+v", got, err, withPolicy)
	}
	// A stage people approve, requiring two others.
	prod := custody.Rule{Stage: "prod", KeyPurpose: "prod", Requires: []string{"scan", "staging"}}
	put("p4", "mid", prod)
	if got, err := reopen().Rule(ctx, "p4", "prod"); err != nil || !reflect.DeepEqual(got, prod) {
		t.Errorf("rule requiring stages: %+v %v, want %+v", got, err, prod)
	}
	all, err := s.AllRules(ctx)
	must(t, err)
	want := []custody.ProjectRule{{ProjectID: "p2", Project: "alpha", Rule: first}, {ProjectID: "p4", Project: "mid", Rule: prod},
		{ProjectID: "p4", Project: "mid", Rule: withPolicy}, {ProjectID: "p1", Project: "zeta", Rule: second}}
	if !reflect.DeepEqual(all, want) {
		t.Errorf("all rules %+v\nwant %+v", all, want)
	}
	del := func(id string) bool {
		var ok bool
		must(t, s.Update(ctx, "delete", func(tx custody.Tx) error {
			var err error
			ok, err = tx.DeleteRule(ctx, id, custody.StageScan)
			return err
		}))
		return ok
	}
	if !del("p2") || del("p2") {
		t.Error("DeleteRule: want true once, then false")
	}
	insert(t, s, sealedKey("key-1", "p1", "zeta", "scan", at), sealedKey("key-2", "p3", "beta", "scan", at))
	must(t, s.Update(ctx, "delete project", func(tx custody.Tx) error { return tx.DeleteProject(ctx, "p1") }))
	if ks := keys(t, s, "p1"); len(ks) != 0 {
		t.Errorf("deleted project keeps keys %+v", ks)
	}
	if _, err := s.Rule(ctx, "p1", custody.StageScan); !errors.Is(err, custody.ErrNotFound) {
		t.Errorf("deleted project keeps its rule: %v", err)
	}
	if ks := keys(t, s, "p3"); len(ks) != 1 {
		t.Errorf("another project lost its keys: %+v", ks)
	}
	var n int
	must(t, s.Update(ctx, "count", func(tx custody.Tx) error {
		if err := tx.DeleteKey(ctx, "key-2"); err != nil {
			return err
		}
		var err error
		n, err = tx.CountKeys(ctx)
		return err
	}))
	if n != 0 {
		t.Errorf("count after deleting every key: %d", n)
	}
}

// An approval is replaced by a later word of the same stage; approvals
// are per repository and digest.
func testApprovals(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, reopen := factory(t)
	d := digest.FromString("image")
	if got, err := s.Approvals(ctx, "team/app", d); err != nil || len(got) != 0 {
		t.Fatalf("approvals of an empty store: %+v %v", got, err)
	}
	approved := custody.Approval{Digest: d, Repository: "team/app", Stage: custody.StageScan, KeyID: "key-1", State: custody.Approved, At: at}
	revoked := approved
	revoked.State, revoked.At, revoked.Reason = custody.Revoked, at.Add(time.Hour), "1 finding(s) rated HIGH or higher"
	deploy := approved
	deploy.Stage = "deploy"
	for _, a := range []custody.Approval{approved, deploy, revoked, {Digest: d, Repository: "team/other", Stage: custody.StageScan,
		KeyID: "key-1", State: custody.Approved, At: at}} {
		must(t, s.Update(ctx, "approve", func(tx custody.Tx) error { return tx.PutApproval(ctx, "p1", a) }))
	}
	got, err := reopen().Approvals(ctx, "team/app", d)
	must(t, err)
	if want := []custody.Approval{deploy, revoked}; !reflect.DeepEqual(got, want) {
		t.Errorf("approvals %+v\nwant %+v", got, want)
	}
}

// Write transactions run one at a time across openings: what a
// transaction read (here, the number of keys) still holds when it
// writes. Each transaction names its key's purpose after the count it
// read; two running at once would read the same count and one would
// find its purpose taken.
func testSerialised(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, reopen := factory(t)
	stores := []custody.Store{s, reopen(), reopen()}
	const each = 8
	var wg sync.WaitGroup
	errs := make(chan error, len(stores)*each)
	for r, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				errs <- st.Update(ctx, "numbered key", func(tx custody.Tx) error {
					n, err := tx.CountKeys(ctx)
					if err != nil {
						return err
					}
					// Give a concurrent transaction time to read the same
					// count, if it can.
					time.Sleep(2 * time.Millisecond)
					return tx.InsertKey(ctx, sealedKey(fmt.Sprintf("key-%d-%d", r, i), "p", "team", fmt.Sprintf("n%03d", n), at))
				})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("update: %v", err)
		}
	}
	if got := keys(t, s, "p"); len(got) != len(stores)*each {
		t.Errorf("%d keys, want %d", len(got), len(stores)*each)
	}
}

// Replicas rotating one key at once: one rotation wins, the others find
// the key already retired; one key signs.
func testConcurrentRotation(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, reopen := factory(t)
	k := make([]byte, 32)
	rand.Read(k)
	m, err := custody.NewAESMaster(k, "test master")
	must(t, err)
	var svcs []*custody.Service
	for _, st := range []custody.Store{s, reopen(), reopen(), reopen()} {
		svc, err := custody.Open(ctx, custody.Options{Store: st, Master: m})
		must(t, err)
		svcs = append(svcs, svc)
	}
	first, err := svcs[0].Create(ctx, custody.NewKey{ProjectID: "p", Project: "team", Purpose: "prod"})
	must(t, err)
	var wg sync.WaitGroup
	results := make(chan error, len(svcs))
	start := make(chan struct{})
	for _, svc := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, _, err := svc.Rotate(ctx, "p", "prod", 0)
			results <- err
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	won := 0
	for err := range results {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, custody.ErrExists):
			t.Errorf("rotation: %v, want success or ErrExists", err)
		}
	}
	list, err := svcs[1].List(ctx, "p")
	must(t, err)
	// A rotation that read the key after another won rotates the
	// winner's key: the keys form one chain from the first, never a fork.
	signing := 0
	succeeded := map[string]int{}
	for _, k := range list {
		if k.Signing {
			signing++
		}
		if k.ID != first.ID {
			succeeded[k.Predecessor]++
		}
	}
	if won < 1 || signing != 1 || len(list) != won+1 {
		t.Errorf("%d rotations won, %d keys, %d signing: want one signing key after each winner", won, len(list), signing)
	}
	for pred, n := range succeeded {
		if n != 1 {
			t.Errorf("key %s has %d successors", pred, n)
		}
	}
}
