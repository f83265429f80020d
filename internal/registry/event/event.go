// Package event is the registry's notification seam: after a manifest is
// pushed or deleted, the registry tells a Notifier. The scanner subscribes
// for scan-on-push; the audit log for history. It is an in-process call, not
// a queue: a Notifier that needs to do slow work hands it to its own worker.
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
	Kind         Kind
	Repository   string
	Digest       digest.Digest
	MediaType    string
	ArtifactType string
	Subject      digest.Digest // the manifest's subject, if any
	Tags         []string
	Actor        string // the subject name of the caller; empty if anonymous or the garbage collector
	At           time.Time
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
