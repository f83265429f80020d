package server

import (
	"encoding/json"
	"net/http"
	"testing"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/registry/event"
)

// TestGarbageCollectionIsAudited: deletions no request made reach the
// audit log through the outbox, under the collector's name.
func TestGarbageCollectionIsAudited(t *testing.T) {
	l := serveLimited(t, func(c *Config) { c.GC.Grace = 0; c.GC.Untagged = true })
	img := makeImage("collected")
	l.expect(l.push("library/app", "v1", img, adminCreds), http.StatusCreated, "push")
	l.expect(l.do("DELETE", "/v2/library/app/manifests/v1", nil, adminCreds...), http.StatusAccepted, "delete the tag")
	l.s.TriggerGC()
	var entries []audit.Entry
	waitFor(t, "the collector's audit entry", func() bool {
		r := l.api(adminCreds, "GET", "/audit?actor="+event.GarbageCollector, nil)
		var page struct{ Entries []audit.Entry }
		json.Unmarshal([]byte(r.body), &page)
		entries = page.Entries
		return len(entries) > 0
	})
	e := entries[0]
	if e.Action != audit.ActionDelete || e.Repository != "library/app" || e.Digest != img.digest() ||
		e.Result != audit.Success || e.Detail != "garbage collection" {
		t.Errorf("audit entry of the collection: %+v", e)
	}
	// The outbox is emptied once acted on.
	waitFor(t, "an empty outbox", func() bool {
		evs, err := l.s.storage.Meta.Events(t.Context(), 0, -1)
		return err == nil && len(evs) == 0
	})
}
