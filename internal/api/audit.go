package api

import (
	"net/http"
	"strconv"
	"time"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/auth"
)

// AuditPage is the answer to an audit query, newest first; NextBefore,
// when set, fetches the next (older) page as ?before=NextBefore.
type AuditPage struct {
	Entries    []audit.Entry `json:"entries"`
	NextBefore int64         `json:"next_before,omitempty"`
}

func (a *API) queryAudit(c *call) error {
	q := c.r.URL.Query()
	f := audit.Filter{Actor: q.Get("actor"), Project: q.Get("project"), Action: q.Get("action"), Result: audit.Result(q.Get("result"))}
	switch {
	case f.Project == "" && !a.isAdmin(c):
		return errForbidden
	case f.Project != "" && !a.isAdmin(c):
		// Entries of a deleted project are the administrators'.
		if !a.visible(c, f.Project) {
			return notFound("project " + f.Project)
		}
		if !a.can(c, f.Project, auth.ReadAudit) {
			return errForbidden
		}
	}
	var err error
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			if *p.dst, err = time.Parse(time.RFC3339, v); err != nil {
				return badRequest("%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", p.name, v)
			}
		}
	}
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"limit", nil}, {"before", &f.Before}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return badRequest("%s %q: want a positive number", p.name, v)
		}
		if p.dst != nil {
			*p.dst = n
		} else {
			f.Limit = int(min(n, audit.MaxLimit))
		}
	}
	if f.Result != "" && f.Result != audit.Success && f.Result != audit.Denied && f.Result != audit.Failure {
		return badRequest("result %q: want success, denied or failure", f.Result)
	}
	// What was recorded before this query is in the answer.
	if err := a.opts.Audit.Flush(c.ctx()); err != nil {
		return err
	}
	entries, err := a.opts.AuditStore.Query(c.ctx(), f)
	if err != nil {
		return err
	}
	page := AuditPage{Entries: entries}
	if page.Entries == nil {
		page.Entries = []audit.Entry{}
	}
	if len(entries) == f.EffectiveLimit() {
		page.NextBefore = entries[len(entries)-1].Seq
	}
	return respond(c, http.StatusOK, page)
}

// VerifyReport is the answer of GET /audit/verify.
type VerifyReport struct {
	OK bool `json:"ok"`
	audit.Report
}

func (a *API) verifyAudit(c *call) error {
	if err := a.requireAdmin(c); err != nil {
		return err
	}
	if err := a.opts.Audit.Flush(c.ctx()); err != nil {
		return err
	}
	rep, err := audit.Verify(c.ctx(), a.opts.AuditStore, a.opts.AuditKey)
	if err != nil {
		return err
	}
	if rep.Problems == nil {
		rep.Problems = []audit.Problem{}
	}
	return respond(c, http.StatusOK, VerifyReport{OK: rep.OK(), Report: rep})
}
