package sqlite_test

import (
	"context"
	"crypto/ecdsa"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/audit/audittest"
	"berth.dev/berth/internal/audit/sqlite"
)

func factory(t testing.TB) (audit.Store, func() audit.Store) {
	path := filepath.Join(t.TempDir(), "meta.db")
	open := func() audit.Store {
		s, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return open(), open
}

func TestSuite(t *testing.T) { audittest.Run(t, factory) }

// TestVerifyDetectsTampering edits the rows behind berth's back, as someone
// with write access to the database file would, and expects berth audit
// verify's check to name what happened.
func TestVerifyDetectsTampering(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper []string
		want   string
	}{
		{"modified actor", []string{"UPDATE audit_entries SET actor = 'mallory' WHERE seq = 3"}, "entry 3 was modified"},
		{"modified result, hash recomputed by hand is still not the chain's",
			[]string{"UPDATE audit_entries SET result = 'success', hash = 'ff' WHERE seq = 2"}, "entry 3 does not follow"},
		{"modified time", []string{"UPDATE audit_entries SET at = at + 1 WHERE seq = 4"}, "entry 4 was modified"},
		{"deleted entry", []string{"DELETE FROM audit_entries WHERE seq = 3"}, "entries 3 to 3 are missing"},
		{"deleted newest entries", []string{"DELETE FROM audit_entries WHERE seq >= 4"}, "entries 4 to 5 were deleted"},
		{"reordered entries", []string{
			"UPDATE audit_entries SET seq = 100 WHERE seq = 2",
			"UPDATE audit_entries SET seq = 2 WHERE seq = 3",
			"UPDATE audit_entries SET seq = 3 WHERE seq = 100",
		}, "entry 2 does not follow"},
		{"appended forgery", []string{
			"INSERT INTO audit_entries SELECT seq + 1, at, 'mallory', source_ip, action, project, repository, digest, result, detail, count, hash, hash FROM audit_entries WHERE seq = 5",
		}, "entry 6 was modified"},
		{"anchor deleted", []string{"DELETE FROM audit_checkpoints WHERE kind = 'anchor'"}, "anchor of the chain's tip is missing"},
		{"anchor moved back", []string{"UPDATE audit_checkpoints SET seq = 4 WHERE kind = 'anchor'"}, "entries 5 to 5 were added"},
		{"everything deleted", []string{"DELETE FROM audit_entries"}, "entries 1 to 5 were deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "meta.db")
			key := audittest.Key(t)
			writeChain(t, path, key, 5)
			exec(t, path, tc.tamper...)
			rep := verify(t, path, key)
			if rep.OK() {
				t.Fatal("tampering went unnoticed")
			}
			var msgs []string
			for _, p := range rep.Problems {
				msgs = append(msgs, p.Message)
			}
			if all := strings.Join(msgs, "\n"); !strings.Contains(all, tc.want) {
				t.Errorf("problems:\n%s\nwant one saying %q", all, tc.want)
			}
		})
	}
}

func TestVerifyDetectsForgedPruneCheckpoint(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	key := audittest.Key(t)
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(ctx, s, key, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		l.Record(audit.Entry{Time: time.Now().Add(-time.Duration(10-i) * time.Hour), Actor: "a", Action: audit.ActionPull, Detail: fmt.Sprint(i)})
	}
	if err := l.Prune(ctx, time.Now().Add(-7*time.Hour-30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	s.Close()
	if rep := verify(t, path, key); !rep.OK() || rep.PrunedThrough != 3 {
		t.Fatalf("before tampering: %+v", rep)
	}
	// Hiding more history by moving the checkpoint forward needs a new
	// signature.
	exec(t, path, "DELETE FROM audit_entries WHERE seq = 4",
		"UPDATE audit_checkpoints SET seq = 4, hash = (SELECT prev_hash FROM audit_entries WHERE seq = 5) WHERE kind = 'pruned'")
	if rep := verify(t, path, key); rep.OK() {
		t.Error("a moved prune checkpoint went unnoticed")
	}
}

// writeChain records n entries through a Log into a fresh database.
func writeChain(t *testing.T, path string, key *ecdsa.PrivateKey, n int) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := audit.Open(ctx, s, key, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.Record(audit.Entry{Actor: "alice", Action: audit.ActionPush, Repository: "team-a/app", Detail: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		// One entry per batch, so that the anchor moves with each.
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func exec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func verify(t *testing.T, path string, key *ecdsa.PrivateKey) audit.Report {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := audit.Verify(context.Background(), s, &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}
