package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/server"
)

// TestAuditVerifyDetectsWipeAndRollback performs the two attacks on a
// stopped server's data directory with SQL on meta.db, as someone with
// the database file would: deleting every entry and checkpoint, and
// dropping the newest entries while restoring the signed anchor of an
// older state. The chain alone is consistent both times; berth audit
// verify exits 1 naming what the anchor file records, and the server
// refuses to start a new chain over the damage until the operator moves
// the anchor file aside.
func TestAuditVerifyDetectsWipeAndRollback(t *testing.T) {
	type anchorRow struct {
		seq, at int64
		hash    string
		sig     []byte
	}
	for _, tc := range []struct {
		name string
		// tamper changes meta.db, given the anchor row the store held
		// after the first project was created.
		tamper func(db *sql.DB, old anchorRow) error
		// want is what verify says, given the tip before the attack, the
		// old anchor and the anchor file's last line; wantStart what the
		// refused start says.
		want      func(tip, old int64, line int) string
		wantStart func(tip, old int64) string
	}{
		{"wipe",
			func(db *sql.DB, _ anchorRow) error {
				_, err := db.Exec("DELETE FROM audit_entries; DELETE FROM audit_checkpoints")
				return err
			},
			func(tip, _ int64, line int) string {
				return fmt.Sprintf("the log has 0 entries but audit-anchors.log records sequence %d (line %d): "+
					"entries 1 to %d were deleted or the database was rolled back", tip, line, tip)
			},
			func(tip, _ int64) string {
				return fmt.Sprintf("the log is empty but audit-anchors.log records sequence %d", tip)
			}},
		{"rollback",
			func(db *sql.DB, old anchorRow) error {
				if _, err := db.Exec("DELETE FROM audit_entries WHERE seq > ?", old.seq); err != nil {
					return err
				}
				_, err := db.Exec("UPDATE audit_checkpoints SET seq = ?, hash = ?, at = ?, signature = ? WHERE kind = 'anchor'",
					old.seq, old.hash, old.at, old.sig)
				return err
			},
			func(tip, old int64, line int) string {
				return fmt.Sprintf("the log has %d entries (the last is sequence %d) but audit-anchors.log records sequence %d (line %d): "+
					"entries %d to %d were deleted or the database was rolled back", old, old, tip, line, old+1, tip)
			},
			func(tip, old int64) string {
				return fmt.Sprintf("the log ends at sequence %d but audit-anchors.log records sequence %d", old, tip)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dbPath := filepath.Join(dir, "meta.db")
			mkProject := func(url, name string) {
				t.Helper()
				if out, err := runCmd(t, newAdminCmd(), "project", "create", name, "--server", url, "--password", cmdAdminPassword); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
			}
			url, stop := runningBerth(t, dir)
			mkProject(url, "p1")
			stop()
			var old anchorRow
			withDB(t, dbPath, func(db *sql.DB) error {
				return db.QueryRow("SELECT seq, hash, at, signature FROM audit_checkpoints WHERE kind = 'anchor'").
					Scan(&old.seq, &old.hash, &old.at, &old.sig)
			})
			url, stop = runningBerth(t, dir)
			mkProject(url, "p2")
			mkProject(url, "p3")
			stop()
			var tip int64
			withDB(t, dbPath, func(db *sql.DB) error { return db.QueryRow("SELECT MAX(seq) FROM audit_entries").Scan(&tip) })
			if out, err := runCmd(t, newAuditCmd(), "verify", "--data", dir); err != nil || !strings.Contains(out, "audit log verified") {
				t.Fatalf("before the attack: %v\n%s", err, out)
			}

			withDB(t, dbPath, func(db *sql.DB) error { return tc.tamper(db, old) })
			out, err := runCmd(t, newAuditCmd(), "verify", "--data", dir)
			var ee exitError
			want := tc.want(tip, old.seq, lines(t, dir))
			if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(out, "AUDIT LOG TAMPERED WITH: 1 problems") || !strings.Contains(out, want) {
				t.Errorf("verify after the %s = %v\n%s\nwant exit 1 saying %q", tc.name, err, out, want)
			}

			cfg := server.DefaultConfig()
			cfg.Data = dir
			cfg.Auth.AdminPassword = cmdAdminPassword
			s, err := server.New(context.Background(), cfg, server.Options{})
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, audit.ErrAnchorMismatch) || !strings.Contains(err.Error(), tc.wantStart(tip, old.seq)) ||
				!strings.Contains(err.Error(), "move "+server.AuditAnchorsPath(dir)+" aside") {
				t.Fatalf("restart after the %s: %v\nwant a refusal saying %q and how to recover", tc.name, err, tc.wantStart(tip, old.seq))
			}

			// The documented recovery, for a restore made on purpose: the
			// anchor file moved aside (kept), a new one starts at the tip.
			if err := os.Rename(server.AuditAnchorsPath(dir), server.AuditAnchorsPath(dir)+".before-restore"); err != nil {
				t.Fatal(err)
			}
			url, stop = runningBerth(t, dir)
			mkProject(url, "p4")
			stop()
			if out, err := runCmd(t, newAuditCmd(), "verify", "--data", dir); err != nil || !strings.Contains(out, "audit log verified") {
				t.Errorf("after the recovery: %v\n%s", err, out)
			}
			if out, err := runCmd(t, newAuditCmd(), "verify", "--data", dir, "--anchors", server.AuditAnchorsPath(dir)+".before-restore"); err == nil ||
				!strings.Contains(out, "were deleted or the database was rolled back") {
				t.Errorf("against the kept file: %v\n%s", err, out)
			}
		})
	}
}

// lines counts the lines of the data directory's anchor file.
func lines(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(server.AuditAnchorsPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func withDB(t *testing.T, path string, fn func(*sql.DB) error) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := fn(db); err != nil {
		t.Fatal(err)
	}
}
