package main

import (
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/api"
	"berth.dev/berth/internal/audit"
	auditsqlite "berth.dev/berth/internal/audit/sqlite"
	"berth.dev/berth/internal/auth/token"
	"berth.dev/berth/internal/server"
)

func newAuditCmd() *cobra.Command {
	f := &apiFlags{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Query the audit log and verify its hash chain",
	}
	f.register(cmd)
	cmd.AddCommand(newAuditVerifyCmd(f), newAuditQueryCmd(f))
	return cmd
}

func newAuditVerifyCmd(f *apiFlags) *cobra.Command {
	var data, anchors string
	cmd := &cobra.Command{
		Use:   "verify [--data DIR [--anchors FILE] | --server URL]",
		Short: "Check that no audit entry was modified, deleted, inserted or reordered",
		Long: `Walk the audit log's hash chain and check its signed checkpoints, and compare
it with the anchor file (` + audit.AnchorFileName + ` in the data directory), where berth
appends the chain's signed tip outside the database: a log that is empty or
shorter than the file records (wiped, or rolled back to an older copy), or whose
entry at an anchored sequence number is another, fails. With --data it reads a
data directory directly (the server must be stopped: it holds the directory's
lock); --anchors compares with another copy of the anchor file instead, such as
the one an audit.anchor_url receiver keeps. Otherwise it asks the running server
at --server (a system administrator's credentials are needed). Exits 1 when the
chain is broken.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep audit.Report
			if anchors != "" && data == "" {
				return fmt.Errorf("--anchors needs --data: a server compares with its own anchor file")
			}
			if data != "" {
				var err error
				if rep, err = verifyOffline(cmd, data, anchors); err != nil {
					return err
				}
			} else {
				c, err := f.client(cmd)
				if err != nil {
					return err
				}
				var got api.VerifyReport
				if err := c.call("GET", "/audit/verify", nil, &got); err != nil {
					return err
				}
				rep = got.Report
			}
			p := printer{cmd: cmd, json: f.json}
			if err := p.print(api.VerifyReport{OK: rep.OK(), Report: rep}, "", func(w io.Writer) { writeVerifyReport(w, rep) }); err != nil {
				return err
			}
			if !rep.OK() {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "verify this data directory offline")
	cmd.Flags().StringVar(&anchors, "anchors", "", "compare with this copy of the anchor file (default: the data directory's)")
	return cmd
}

func verifyOffline(cmd *cobra.Command, dir, anchors string) (audit.Report, error) {
	cfg := server.DefaultConfig()
	cfg.Data = dir
	st, err := openOffline(cmd, cfg, "stop the server first, or verify through it: berth audit verify --server URL")
	if err != nil {
		return audit.Report{}, err
	}
	defer st.Close()
	key, err := token.LoadKey(server.SigningKeyPath(dir))
	if err != nil {
		return audit.Report{}, fmt.Errorf("%w (is %s a berth data directory with auth?)", err, dir)
	}
	store, err := auditsqlite.Open(cmd.Context(), filepath.Join(dir, "meta.db"))
	if err != nil {
		return audit.Report{}, err
	}
	defer store.Close()
	if anchors == "" {
		anchors = server.AuditAnchorsPath(dir)
	}
	return audit.Verify(cmd.Context(), audit.Anchored{Store: store, AnchorPath: anchors}, &key.PublicKey)
}

func writeVerifyReport(w io.Writer, rep audit.Report) {
	if rep.OK() {
		fmt.Fprintf(w, "audit log verified: %d entries", rep.Entries)
		if rep.Entries > 0 {
			fmt.Fprintf(w, " (%d to %d)", rep.First, rep.Last)
		}
		if rep.PrunedThrough > 0 {
			fmt.Fprintf(w, ", entries up to %d pruned under a signed checkpoint", rep.PrunedThrough)
		}
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintf(w, "AUDIT LOG TAMPERED WITH: %d problems in %d entries\n", len(rep.Problems), rep.Entries)
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "  seq %d: %s\n", p.Seq, p.Message)
	}
}

// parseWhen reads a time as RFC 3339 or as a duration before now ("24h").
func parseWhen(flag, s string, now time.Time) (string, error) {
	if s == "" {
		return "", nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d).UTC().Format(time.RFC3339), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.Format(time.RFC3339), nil
	}
	return "", fmt.Errorf("--%s %q: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (24h)", flag, s)
}

func newAuditQueryCmd(f *apiFlags) *cobra.Command {
	var actor, project, action, result, since, until string
	var limit int
	var before int64
	cmd := &cobra.Command{
		Use:   "query",
		Short: "List audit entries, newest first",
		Long: `List audit entries from a running server, newest first, filtered by actor,
project, action (pull, push, delete, login, token.issue, user.create,
project.update, member.put, robot.revoke, …), result (success, denied,
failure) and time. System administrators see everything; members with
audit.read query their project (--project).`,
		Args: cobra.NoArgs,
		RunE: withClient(f, func(c *apiClient, p printer, cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			now := time.Now()
			for _, kv := range [][2]string{{"actor", actor}, {"project", project}, {"action", action}, {"result", result}} {
				if kv[1] != "" {
					q.Set(kv[0], kv[1])
				}
			}
			for _, tf := range [][2]string{{"since", since}, {"until", until}} {
				v, err := parseWhen(tf[0], tf[1], now)
				if err != nil {
					return err
				}
				if v != "" {
					q.Set(tf[0], v)
				}
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			if before > 0 {
				q.Set("before", strconv.FormatInt(before, 10))
			}
			var page api.AuditPage
			if err := c.call("GET", "/audit?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			return p.print(page, "SEQ\tTIME\tACTOR\tSOURCE\tACTION\tRESULT\tOBJECT\tDETAIL", func(w io.Writer) {
				auditRows(page.Entries)(w)
				if page.NextBefore > 0 {
					fmt.Fprintf(w, "(more: --before %d)\n", page.NextBefore)
				}
			})
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&actor, "actor", "", "who acted")
	fl.StringVar(&project, "project", "", "in which project")
	fl.StringVar(&action, "action", "", "what was done")
	fl.StringVar(&result, "result", "", "success, denied or failure")
	fl.StringVar(&since, "since", "", "entries at or after this time (RFC 3339, or a duration ago such as 24h)")
	fl.StringVar(&until, "until", "", "entries before this time")
	fl.IntVar(&limit, "limit", 0, "at most this many entries (default 100, at most 1000)")
	fl.Int64Var(&before, "before", 0, "entries with a sequence number below this (the next page)")
	return cmd
}

// auditRows renders audit entries as table rows.
func auditRows(es []audit.Entry) func(io.Writer) {
	return func(w io.Writer) {
		for _, e := range es {
			actor := e.Actor
			if actor == "" {
				actor = "(anonymous)"
			}
			what := e.Repository
			if e.Digest != "" {
				what += "@" + e.Digest
			}
			if what == "" {
				what = e.Project
			}
			detail := e.Detail
			if e.Count > 1 {
				detail = strings.TrimSpace(fmt.Sprintf("%s ×%d", detail, e.Count))
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Format(time.RFC3339), actor, e.SourceIP, e.Action, e.Result, what, detail)
		}
	}
}
