// Package event describes the registry's changes: a manifest pushed or
// deleted, a tag deleted. The meta store records each one in the same
// transaction as the change (its outbox, read with meta.Store.Events), so
// work that a change causes (scan on push, webhooks, the audit of garbage
// collection) is never lost to a crash between the commit and the work. The
// registry also tells an in-process Notifier after the commit, for what
// must happen at once (its manifest cache) and to wake the outbox's reader.
package event

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
)

// Kind says what happened.
type Kind string

// The events the registry emits.
const (
	// ManifestPushed: a manifest was stored (possibly again) and Tags now
	// point at it.
	ManifestPushed Kind = "manifest.pushed"
	// ManifestDeleted: a manifest was deleted, by a client or by garbage
	// collection, with the Tags that pointed at it.
	ManifestDeleted Kind = "manifest.deleted"
	// TagDeleted: a tag was deleted; the manifest it named stays.
	TagDeleted Kind = "tag.deleted"
)

// Event describes one change. Digest is the manifest's.
type Event struct {
	// Seq orders the changes the meta store recorded; zero for events
	// that were not read from its outbox.
	Seq          int64         `json:"-"`
	Kind         Kind          `json:"kind"`
	Repository   string        `json:"repository"`
	Digest       digest.Digest `json:"digest,omitempty"`
	MediaType    string        `json:"media_type,omitempty"`
	ArtifactType string        `json:"artifact_type,omitempty"`
	Subject      digest.Digest `json:"subject,omitempty"` // the manifest's subject, if any
	Tags         []string      `json:"tags,omitempty"`
	// Actor is the caller's subject name, GarbageCollector for the
	// collector's deletions, empty if anonymous.
	Actor string    `json:"actor,omitempty"`
	At    time.Time `json:"at"`
}

// GarbageCollector is the actor of the garbage collector's deletions. No
// account can have this name (user names have no ':').
const GarbageCollector = "berth:gc"

// actorKey carries the caller's name in a context.
type actorKey struct{}

// WithActor returns ctx carrying the name of whoever makes the changes done
// with it, so that the meta store records it with them.
func WithActor(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, actorKey{}, name)
}

// ActorFrom returns the name WithActor put in ctx, or "".
func ActorFrom(ctx context.Context) string {
	name, _ := ctx.Value(actorKey{}).(string)
	return name
}

// Notifier receives events. Notify is called after the change is committed,
// on the request's goroutine: it must return quickly and must not fail the
// request, so it returns nothing.
type Notifier interface {
	Notify(ctx context.Context, e Event)
}

// Notifiers fans an event out to several notifiers in order.
type Notifiers []Notifier

// Notify implements Notifier.
func (ns Notifiers) Notify(ctx context.Context, e Event) {
	for _, n := range ns {
		n.Notify(ctx, e)
	}
}
