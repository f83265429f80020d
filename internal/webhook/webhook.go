// Package webhook tells receivers outside berth what happened in a project:
// an artifact pushed, deleted or signed, a scan completed or failed, new
// vulnerabilities found by a re-match. A project's hooks name a URL, the
// event types they want and an optional secret; each event becomes one
// durable delivery job per subscribed hook (internal/jobs, the deliver
// queue), POSTed as a CloudEvents 1.0 structured-mode JSON document signed
// with HMAC-SHA256, retried with backoff, and recorded attempt by attempt
// in a delivery log, ending in a dead-letter list when every attempt fails.
//
// Nothing here makes a request on the caller's goroutine: Dispatch only
// reads the project's hooks and inserts jobs, so a slow or failing receiver
// never slows the push that caused the event.
//
// What a receiver can rely on: delivery is at least once (a server killed
// after the receiver answered but before the job was marked done sends the
// event again), so it drops duplicates by the event's id, which every
// retry and redelivery keeps. An event dispatched twice with the same id
// is queued once per hook while its first delivery is pending or
// completed less than a day ago (the queue's retention). The signature
// covers the exact body; redirects are never followed, so a 3xx is a
// failed attempt. What is not protected: the secret is stored as given in
// meta.db (an HMAC needs it), and hooks may name any address the server
// can reach, internal ones included; only project administrators should
// be allowed to create them.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The CloudEvents types berth delivers. Hooks subscribe to them by name.
const (
	TypeArtifactPushed     = "dev.berth.artifact.pushed"
	TypeArtifactDeleted    = "dev.berth.artifact.deleted"
	TypeScanCompleted      = "dev.berth.scan.completed"
	TypeScanFailed         = "dev.berth.scan.failed"
	TypeVulnerabilitiesNew = "dev.berth.vulnerabilities.new"
	TypeArtifactSigned     = "dev.berth.artifact.signed"
	// TypeApprovalRevoked: a stage's approval of an artifact (the scan
	// stage's signature) no longer holds; a re-match found what its
	// rule refuses.
	TypeApprovalRevoked = "dev.berth.approval.revoked"
)

// EventTypes returns every event type a hook may subscribe to.
func EventTypes() []string {
	return []string{TypeArtifactPushed, TypeArtifactDeleted, TypeScanCompleted,
		TypeScanFailed, TypeVulnerabilitiesNew, TypeArtifactSigned, TypeApprovalRevoked}
}

// KnownType tells whether t is one of EventTypes.
func KnownType(t string) bool { return slices.Contains(EventTypes(), t) }

// Errors, wrapped with context by the store and the dispatcher.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrInvalid  = errors.New("invalid")
	// ErrPending: a redelivery was asked for a delivery whose job is still
	// queued or running.
	ErrPending = errors.New("delivery still pending")
)

// Limits on what a hook may hold, so that one project cannot make every
// event fan out without bound or fill the database.
const (
	MaxHooksPerProject = 20
	MaxURLLength       = 2048
	MaxSecretLength    = 1024
)

// Secret is a hook's signing key. It prints, logs and encodes to JSON as
// a placeholder, so that a hook passed to a logger or fmt never shows it;
// decoding JSON into it works as for a string.
type Secret string

const redacted = "REDACTED"

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer (%#v).
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// NewHook is what a hook is created from. The JSON names are the API's
// request body: {"url", "events", "secret"}.
type NewHook struct {
	// ProjectID is the project's identity, not its name: a project deleted
	// and created again under the same name has a new id, and none of the
	// old project's hooks.
	ProjectID string   `json:"-"`
	Project   string   `json:"-"` // the project's name, for display and the events' source
	URL       string   `json:"url"`
	Events    []string `json:"events"`
	Secret    Secret   `json:"secret,omitempty"`
	CreatedBy string   `json:"-"`
}

// LogValue implements slog.LogValuer: the URL without credentials, and
// whether there is a secret.
func (n NewHook) LogValue() slog.Value {
	return slog.GroupValue(slog.String("project_id", n.ProjectID), slog.String("project", n.Project),
		slog.String("url", RedactURL(n.URL)), slog.Any("events", n.Events), slog.Bool("has_secret", n.Secret != ""))
}

// Normalize checks n and returns it with its events sorted and without
// duplicates. Errors wrap ErrInvalid.
func (n NewHook) Normalize() (NewHook, error) {
	if n.ProjectID == "" || n.Project == "" {
		return n, fmt.Errorf("%w: a webhook needs a project", ErrInvalid)
	}
	if err := ValidateURL(n.URL); err != nil {
		return n, err
	}
	if len(n.Secret) > MaxSecretLength {
		return n, fmt.Errorf("%w: secret longer than %d bytes", ErrInvalid, MaxSecretLength)
	}
	if len(n.Events) == 0 {
		return n, fmt.Errorf("%w: a webhook needs at least one event type (one of %s)",
			ErrInvalid, strings.Join(EventTypes(), ", "))
	}
	events := slices.Clone(n.Events)
	for _, e := range events {
		if !KnownType(e) {
			return n, fmt.Errorf("%w: unknown event type %q (want one of %s)",
				ErrInvalid, e, strings.Join(EventTypes(), ", "))
		}
	}
	slices.Sort(events)
	n.Events = slices.Compact(events)
	return n, nil
}

// ValidateURL accepts an absolute http or https URL with a host, and
// without a fragment. Errors wrap ErrInvalid and never repeat the URL's
// user information.
func ValidateURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("%w: a webhook needs a url", ErrInvalid)
	}
	if len(raw) > MaxURLLength {
		return fmt.Errorf("%w: url longer than %d bytes", ErrInvalid, MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w: url: %v", ErrInvalid, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: url scheme %q: want http or https", ErrInvalid, u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%w: url %s has no host", ErrInvalid, RedactURL(raw))
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return fmt.Errorf("%w: url %s has a fragment", ErrInvalid, RedactURL(raw))
	}
	return nil
}

// RedactURL is raw without user information and query, for logs and error
// messages: both commonly carry credentials.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	s := r.String()
	if u.RawQuery != "" {
		s += "?…"
	}
	return s
}

// Hook is a stored webhook. Its secret is never part of it: HasSecret says
// whether deliveries are signed.
type Hook struct {
	ID        int64     `json:"id"`
	ProjectID string    `json:"-"`
	Project   string    `json:"project"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	HasSecret bool      `json:"has_secret"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// LogValue implements slog.LogValuer: the URL without credentials.
func (h Hook) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("id", h.ID), slog.String("project", h.Project),
		slog.String("url", RedactURL(h.URL)), slog.Any("events", h.Events), slog.Bool("has_secret", h.HasSecret))
}

// Wants tells whether h subscribes to the event type t.
func (h Hook) Wants(t string) bool { return slices.Contains(h.Events, t) }

// Attempt is one delivery attempt in the log.
type Attempt struct {
	ID         int64  `json:"id"`
	HookID     int64  `json:"hook_id"`
	DeliveryID string `json:"delivery_id"`
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"`
	// Attempt counts from 1 within one delivery.
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	// StatusCode is the receiver's HTTP status, 0 when it sent none.
	StatusCode int `json:"status_code,omitempty"`
	// Error says why the attempt failed; empty when it succeeded.
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// OK tells whether the attempt delivered the event.
func (a Attempt) OK() bool { return a.Error == "" && a.StatusCode >= 200 && a.StatusCode < 300 }

// DeadLetter is a delivery whose every attempt failed. It keeps the event,
// so that Redeliver can send it again unchanged.
type DeadLetter struct {
	ID         int64     `json:"id"`
	DeliveryID string    `json:"delivery_id"`
	HookID     int64     `json:"hook_id"`
	ProjectID  string    `json:"-"`
	Attempts   int       `json:"attempts"`
	StatusCode int       `json:"status_code,omitempty"` // of the last attempt
	Error      string    `json:"error"`                 // of the last attempt
	At         time.Time `json:"at"`
	Event      Stored    `json:"event"`
}

// Stored is an event as it was dispatched to one hook: its source is
// fixed and its data encoded, so every attempt sends the same bytes.
type Stored struct {
	ID      string    `json:"id"`
	Type    string    `json:"type"`
	Source  string    `json:"source"`
	Subject string    `json:"subject,omitempty"`
	Time    time.Time `json:"time"`
	// Data is the event's JSON data, empty when it has none.
	Data json.RawMessage `json:"data,omitempty"`
}

// Page bounds a listing, newest first: at most Limit rows (DefaultPageSize
// when zero, never more than MaxPageSize) with an ID below Before (all
// when zero). The next page's Before is the last row's ID.
type Page struct {
	Before int64
	Limit  int
}

// Page sizes.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// Size is the number of rows the page may hold.
func (p Page) Size() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageSize
	case p.Limit > MaxPageSize:
		return MaxPageSize
	}
	return p.Limit
}

// Store keeps hooks, their secrets and their delivery log. Implementation:
// internal/webhook/sqlite; internal/webhook/webhooktest is the suite every
// implementation passes. Missing rows give ErrNotFound, invalid input
// ErrInvalid (both wrapped).
type Store interface {
	// Create validates n (NewHook.Normalize) and stores it. A project
	// holds at most MaxHooksPerProject hooks, and one hook per URL
	// (ErrExists). IDs are never reused, so a job queued for a deleted
	// hook cannot reach a later one.
	Create(ctx context.Context, n NewHook) (Hook, error)
	// List returns a project's hooks, oldest first.
	List(ctx context.Context, projectID string) ([]Hook, error)
	// Get returns a hook of the project; a hook of another project is not
	// found.
	Get(ctx context.Context, projectID string, id int64) (Hook, error)
	// Secret returns a hook with its signing secret, for the delivery
	// worker only.
	Secret(ctx context.Context, projectID string, id int64) (Hook, Secret, error)
	// Delete removes a hook of the project with its delivery log and dead
	// letters.
	Delete(ctx context.Context, projectID string, id int64) error
	// DeleteProjectHooks removes every hook of a project (being deleted)
	// with their logs; a project without hooks is not an error.
	DeleteProjectHooks(ctx context.Context, projectID string) error

	// RecordAttempt appends to the delivery log; a hook deleted meanwhile
	// gives ErrNotFound.
	RecordAttempt(ctx context.Context, a Attempt) error
	// Attempts lists a hook's attempts, newest first.
	Attempts(ctx context.Context, hookID int64, p Page) ([]Attempt, error)

	// PutDeadLetter records a delivery that exhausted its attempts,
	// replacing an earlier record of the same delivery.
	PutDeadLetter(ctx context.Context, d DeadLetter) error
	// DeadLetters lists a hook's dead letters, newest first.
	DeadLetters(ctx context.Context, hookID int64, p Page) ([]DeadLetter, error)
	DeadLetter(ctx context.Context, deliveryID string) (DeadLetter, error)
	DeleteDeadLetter(ctx context.Context, deliveryID string) error

	// Prune removes attempts and dead letters older than before, and all
	// but the newest keepPerHook of each hook's attempts and of its dead
	// letters. It returns how many rows it removed.
	Prune(ctx context.Context, before time.Time, keepPerHook int) (int64, error)
}
