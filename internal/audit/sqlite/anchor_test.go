package sqlite_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/audit/audittest"
	"berth.dev/berth/internal/audit/sqlite"
)

// anchoredChain is a data directory's audit state: meta.db and the
// anchor file beside it.
type anchoredChain struct {
	db, anchors string
	key         *ecdsa.PrivateKey
	// tips holds the signed anchor the store held after each entry.
	tips map[int64]audit.Checkpoint
}

// writeAnchoredChain records n entries, one batch each, with an anchor
// file line after every batch.
func writeAnchoredChain(t *testing.T, key *ecdsa.PrivateKey, n int) anchoredChain {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	c := anchoredChain{db: filepath.Join(dir, "meta.db"), anchors: filepath.Join(dir, audit.AnchorFileName), key: key,
		tips: map[int64]audit.Checkpoint{}}
	s, err := sqlite.Open(ctx, c.db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := audit.Open(ctx, s, key, audit.Options{AnchorFile: c.anchors, AnchorEvery: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.Record(audit.Entry{Actor: "alice", Action: audit.ActionPush, Repository: "team-a/app", Detail: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		tip, _, err := s.Anchor(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.tips[tip.Seq] = tip
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c anchoredChain) verify(t *testing.T, withFile bool) audit.Report {
	t.Helper()
	s, err := sqlite.Open(context.Background(), c.db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var store audit.Store = s
	if withFile {
		store = audit.Anchored{Store: s, AnchorPath: c.anchors}
	}
	rep, err := audit.Verify(context.Background(), store, &c.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// open starts a Log over the chain as a restarted server would.
func (c anchoredChain) open(t *testing.T) error {
	t.Helper()
	s, err := sqlite.Open(context.Background(), c.db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := audit.Open(context.Background(), s, c.key, audit.Options{AnchorFile: c.anchors})
	if err != nil {
		return err
	}
	return l.Close()
}

func problems(rep audit.Report) string {
	var msgs []string
	for _, p := range rep.Problems {
		msgs = append(msgs, p.Message)
	}
	return strings.Join(msgs, "\n")
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// TestAnchorFileDetectsWipeAndRollback performs the attacks on a stopped
// data directory (SQL on meta.db, edits of the anchor file) and expects
// the chain alone to miss them, and the anchor file to catch them: in
// Verify, and, for the wipe and the rollbacks, when a server starts again.
func TestAnchorFileDetectsWipeAndRollback(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, c anchoredChain)
		want   string
		// wantOpen is what a restart refuses with ("" starts).
		wantOpen string
	}{
		{"every entry and checkpoint deleted", func(t *testing.T, c anchoredChain) {
			exec(t, c.db, "DELETE FROM audit_entries", "DELETE FROM audit_checkpoints")
		},
			"the log has 0 entries but audit-anchors.log records sequence 5 (line 5): entries 1 to 5 were deleted or the database was rolled back",
			"the log is empty but audit-anchors.log records sequence 5"},
		{"newest entries dropped and an older signed anchor restored", func(t *testing.T, c anchoredChain) {
			old := c.tips[3]
			exec(t, c.db, "DELETE FROM audit_entries WHERE seq > 3",
				fmt.Sprintf("UPDATE audit_checkpoints SET seq = %d, hash = '%s', at = %d, signature = x'%x' WHERE kind = 'anchor'",
					old.Seq, old.Hash, old.Time.UnixNano(), old.Signature))
		},
			"the log has 3 entries (the last is sequence 3) but audit-anchors.log records sequence 5 (line 5): entries 4 to 5 were deleted or the database was rolled back",
			"the log ends at sequence 3 but audit-anchors.log records sequence 5"},
		{"whole database rebuilt with the signing key", func(t *testing.T, c anchoredChain) {
			forged := writeAnchoredChain(t, c.key, 5)
			for _, suffix := range []string{"", "-wal", "-shm"} {
				os.Remove(c.db + suffix)
				if b, err := os.ReadFile(forged.db + suffix); err == nil {
					if err := os.WriteFile(c.db+suffix, b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
		},
			"entry 1 is not the one line 1 of audit-anchors.log records",
			"entry 5 is not the one audit-anchors.log records"},
		{"anchor line forged without the key", func(t *testing.T, c anchoredChain) {
			appendFile(t, c.anchors, `{"seq":9,"hash":"ff","time":"2026-01-02T03:04:05Z","signature":"AAAA"}`+"\n")
		}, "line 6 of audit-anchors.log (sequence 9): signature does not verify", ""},
		{"anchor file deleted", func(t *testing.T, c anchoredChain) {
			os.Remove(c.anchors)
		}, "audit-anchors.log is missing", ""},
		{"anchor file emptied", func(t *testing.T, c anchoredChain) {
			os.Truncate(c.anchors, 0)
		}, "audit-anchors.log records no anchor while the log has entries through sequence 5", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := writeAnchoredChain(t, audittest.Key(t), 5)
			tc.tamper(t, c)
			// Every one of these passes the chain's own checks: the
			// attacks are the ones only the file can reveal.
			if rep := c.verify(t, false); !rep.OK() {
				t.Errorf("the chain alone does not verify: %s", problems(rep))
			}
			rep := c.verify(t, true)
			if rep.OK() || !strings.Contains(problems(rep), tc.want) {
				t.Errorf("problems:\n%s\nwant one saying %q", problems(rep), tc.want)
			}
			err := c.open(t)
			switch {
			case tc.wantOpen == "" && err != nil:
				t.Errorf("restart refused: %v", err)
			case tc.wantOpen != "" && (!errors.Is(err, audit.ErrAnchorMismatch) || !strings.Contains(err.Error(), tc.wantOpen)):
				t.Errorf("restart: %v, want ErrAnchorMismatch saying %q", err, tc.wantOpen)
			}
		})
	}
}

// TestAnchorFileToleratesWhatIsNotTampering: a file behind the store (a
// crash between a commit and its line), a line torn by a full disk and
// retention's pruning all verify and restart.
func TestAnchorFileToleratesWhatIsNotTampering(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, c anchoredChain)
	}{
		{"file one line behind", func(t *testing.T, c anchoredChain) {
			b, _ := os.ReadFile(c.anchors)
			lines := bytes.SplitAfter(b, []byte("\n"))
			os.WriteFile(c.anchors, bytes.Join(lines[:len(lines)-2], nil), 0o600)
		}},
		{"torn last line", func(t *testing.T, c anchoredChain) { appendFile(t, c.anchors, `{"seq":6,"ha`) }},
		{"torn line in the middle", func(t *testing.T, c anchoredChain) {
			b, _ := os.ReadFile(c.anchors)
			os.WriteFile(c.anchors, append([]byte(`{"seq":1,"hash":"`+"\n"), b...), 0o600)
		}},
		{"pruned", func(t *testing.T, c anchoredChain) {
			ctx := context.Background()
			s, err := sqlite.Open(ctx, c.db)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			l, err := audit.Open(ctx, s, c.key, audit.Options{AnchorFile: c.anchors})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Prune(ctx, c.tips[3].Time.Add(1)); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := writeAnchoredChain(t, audittest.Key(t), 5)
			tc.change(t, c)
			if rep := c.verify(t, true); !rep.OK() {
				t.Fatalf("problems:\n%s", problems(rep))
			}
			if err := c.open(t); err != nil {
				t.Fatalf("restart: %v", err)
			}
			if rep := c.verify(t, true); !rep.OK() {
				t.Fatalf("after a restart:\n%s", problems(rep))
			}
		})
	}
}

// TestFullDiskLosesNothing fills the database for real (SQLite's
// max_page_count: SQLITE_FULL, as on a full disk), keeps recording, and
// expects the Log to hold every entry, say it cannot write, and store
// them all once there is room again.
func TestFullDiskLosesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := audittest.Key(t)
	s, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	anchors := filepath.Join(dir, audit.AnchorFileName)
	const bound = 40
	l, err := audit.Open(ctx, s, key, audit.Options{AnchorFile: anchors, MaxWaiting: bound})
	if err != nil {
		t.Fatal(err)
	}
	recorded := 0
	push := func() {
		t.Helper()
		recorded++
		if err := l.Record(audit.Entry{Actor: "ci", Action: audit.ActionPush, Repository: "team-a/app",
			Digest: fmt.Sprintf("sha256:%064d", recorded), Detail: strings.Repeat("x", 200)}); err != nil {
			t.Fatal(err)
		}
	}
	push()
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CapPages(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// Entries fill the pages the database has, then need one it may not
	// add.
	for err = nil; err == nil; err = l.Flush(ctx) {
		if recorded > 500 {
			t.Fatal("the capped database never filled")
		}
		push()
	}
	if !strings.Contains(err.Error(), "full") {
		t.Errorf("Flush on a full database: %v", err)
	}
	h := l.Health()
	if h.Err == nil || h.Waiting == 0 || h.Full {
		t.Errorf("health when full = %+v, want an error, entries waiting, not yet at the bound", h)
	}
	for range bound {
		push()
	}
	l.Flush(ctx) // processes what was recorded; fails
	if h := l.Health(); !h.Full || h.Waiting < bound {
		t.Errorf("health past the bound = %+v, want Full", h)
	}

	// Space returns.
	if _, err := s.CapPages(ctx, -1); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatalf("Flush once there is room: %v", err)
	}
	if h := l.Health(); h.Err != nil || h.Full || h.Waiting != 0 {
		t.Errorf("health after recovery = %+v", h)
	}
	push()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep := audittest.MustVerify(t, audit.Anchored{Store: s, AnchorPath: anchors}, key)
	if rep.Entries != int64(recorded) || rep.Last != int64(recorded) {
		t.Errorf("stored %d entries (last %d), recorded %d", rep.Entries, rep.Last, recorded)
	}
}

// TestCloseOnFullDisk: a shutdown while the disk stays full cannot store
// what is held; Close says so and the entries go to the process log.
func TestCloseOnFullDisk(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var logs bytes.Buffer
	l, err := audit.Open(ctx, s, audittest.Key(t), audit.Options{CloseTimeout: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CapPages(ctx, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		l.Record(audit.Entry{Actor: "ci", Action: audit.ActionPush, Detail: fmt.Sprintf("%d %s", i, strings.Repeat("x", 200))})
	}
	err = l.Close()
	if err == nil || !strings.Contains(err.Error(), "200 audit entries could not be stored and were written to the process log") {
		t.Errorf("Close = %v", err)
	}
	if n := strings.Count(logs.String(), `msg="audit entry could not be stored"`); n != 200 {
		t.Errorf("%d entries in the process log, want 200", n)
	}
}
