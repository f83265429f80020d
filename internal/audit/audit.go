// Package audit is berth's append-only, tamper-evident audit log: who did
// what (push, pull, delete, login, token issue, permission denial, admin
// change), from where, to which project, repository and digest, with what
// result and when.
//
// Entries form a hash chain: each stores the hash of the one before it, so
// editing, deleting or reordering a past entry breaks the chain. The tip of
// the chain is anchored in a signed checkpoint written in the same
// transaction as every batch, so deleting the newest entries is caught too.
// Pruning old entries (retention) records a signed checkpoint of the pruned
// prefix from which verification starts. Entries are written by a Log off
// the request path, in batches, and drained on Close.
package audit

import (
	"context"
	"errors"
	"time"
)

// Result is how an audited action ended.
type Result string

// Results.
const (
	Success Result = "success"
	Denied  Result = "denied"
	Failure Result = "failure"
)

// Actions berth records. Admin changes use "<object>.<verb>" names
// (user.create, project.update, member.remove, robot.revoke …).
const (
	ActionPull       = "pull"
	ActionPush       = "push"
	ActionDelete     = "delete"
	ActionLogin      = "login"
	ActionTokenIssue = "token.issue"
	ActionPrune      = "audit.prune"
)

// Entry is one audited event.
type Entry struct {
	Seq        int64     `json:"seq"`
	Time       time.Time `json:"time"`
	Actor      string    `json:"actor"`
	SourceIP   string    `json:"source_ip,omitempty"`
	Action     string    `json:"action"`
	Project    string    `json:"project,omitempty"`
	Repository string    `json:"repository,omitempty"`
	Digest     string    `json:"digest,omitempty"`
	Result     Result    `json:"result"`
	// Detail says more in words: a tag, a reason, what changed.
	Detail string `json:"detail,omitempty"`
	// Count is how many identical successful pulls this entry stands
	// for: the writer stores pulls that are the same in every field but
	// time, and arrive together, once (Time is the first one's). Zero
	// and one both mean once.
	Count    int64  `json:"count,omitempty"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// Checkpoint is a signed statement that the chain's entry Seq has hash
// Hash: the anchor at the tip, or the end of a pruned prefix.
type Checkpoint struct {
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	Signature []byte    `json:"signature"`
}

// Filter selects entries for Query. Zero fields match everything.
type Filter struct {
	Actor   string
	Project string
	Action  string
	Result  Result
	Since   time.Time // inclusive
	Until   time.Time // exclusive
	// Before pages backwards: only entries with Seq < Before.
	Before int64
	// Limit bounds the answer; zero means DefaultLimit, and it is capped
	// at MaxLimit.
	Limit int
}

// Limits of Query.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// EffectiveLimit is the number of entries a Query with f returns at most.
func (f Filter) EffectiveLimit() int {
	switch {
	case f.Limit <= 0:
		return DefaultLimit
	case f.Limit > MaxLimit:
		return MaxLimit
	}
	return f.Limit
}

// Store keeps the chain. Implementations: internal/audit/sqlite (and a
// PostgreSQL one later); internal/audit/audittest is the suite both run.
type Store interface {
	// Append stores sealed entries (Seq, PrevHash and Hash set) and
	// replaces the anchor checkpoint, in one transaction.
	Append(ctx context.Context, entries []Entry, anchor Checkpoint) error
	// Sync makes everything appended so far survive a power cut (the Log
	// calls it before it records the tip outside the store). A store
	// whose commits are always durable does nothing.
	Sync(ctx context.Context) error
	// Last returns the newest entry; ok is false when there is none.
	Last(ctx context.Context) (e Entry, ok bool, err error)
	// LastBefore returns the newest entry older than t.
	LastBefore(ctx context.Context, t time.Time) (e Entry, ok bool, err error)
	// Query returns entries matching f, newest first.
	Query(ctx context.Context, f Filter) ([]Entry, error)
	// Walk calls fn for every entry in Seq order.
	Walk(ctx context.Context, fn func(Entry) error) error
	// Anchor returns the checkpoint of the tip.
	Anchor(ctx context.Context) (cp Checkpoint, ok bool, err error)
	// Pruned returns the checkpoint of the pruned prefix.
	Pruned(ctx context.Context) (cp Checkpoint, ok bool, err error)
	// Prune deletes the entries up to and including cp.Seq and records cp
	// as the pruned prefix, in one transaction; it returns how many
	// entries it deleted.
	Prune(ctx context.Context, cp Checkpoint) (int64, error)
}

// SealingStore is a Store several processes append to at once (the
// replicas of a scale-out deployment share one chain). AppendSealing
// holds the chain for the transaction, calls seal with the sequence
// number and hash of the tip it holds, so that seal numbers and chains
// the entries after it and signs the new tip, and stores them with that
// anchor. A Log uses it instead of Append when the store has it.
type SealingStore interface {
	Store
	AppendSealing(ctx context.Context, entries []Entry, seal func(seq int64, prev string) (Checkpoint, error)) error
}

// ErrClosed is returned by a Log after Close.
var ErrClosed = errors.New("audit log is closed")
