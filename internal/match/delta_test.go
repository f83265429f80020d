package match

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/osv"
)

func npmRecord(id, name, fixed string, aliases ...string) *osv.Vulnerability {
	events := []osv.Event{{Introduced: "0"}}
	if fixed != "" {
		events = append(events, osv.Event{Fixed: fixed})
	}
	return &osv.Vulnerability{ID: id, Aliases: aliases, Affected: []osv.Affected{{Package: osv.Package{Ecosystem: "npm", Name: name},
		Ranges: []osv.Range{{Type: osv.RangeSemver, Events: events}}}}}
}

func deltaKey(p *inventory.Package) string { return p.PURL }

// TestMatchDelta: the findings MatchDelta splices are a full match's, and
// stored findings that cannot be a full match's are refused.
func TestMatchDelta(t *testing.T) {
	inv := inventory.Inventory{Packages: []inventory.Package{
		{Ecosystem: inventory.NPM, Name: "c", Version: "1.0.0", PURL: "pkg:npm/c@1.0.0"},
		{Ecosystem: inventory.NPM, Name: "a", Version: "1.0.0", PURL: "pkg:npm/a@1.0.0"},
		{Ecosystem: inventory.NPM, Name: "b", Version: "1.0.0", PURL: "pkg:npm/b@1.0.0"},
	}}
	before := []*osv.Vulnerability{npmRecord("GHSA-a1", "a", "2.0.0"), npmRecord("GHSA-c1", "c", ""), npmRecord("GHSA-c2", "c", "1.5.0")}
	tests := []struct {
		name    string
		after   []*osv.Vulnerability
		changed []string // names whose npm key changed
		// prev, when set, replaces the stored findings' keys.
		prev      []string
		wantNoOK  bool
		wantFresh int // findings matched again
	}{
		{name: "nothing changed", after: before},
		{name: "a record added", after: append([]*osv.Vulnerability{npmRecord("GHSA-b1", "b", "")}, before...), changed: []string{"b"}, wantFresh: 1},
		{name: "a record gone", after: before[1:], changed: []string{"a"}},
		{name: "records merged by an alias", after: []*osv.Vulnerability{npmRecord("GHSA-a1", "a", "2.0.0"),
			npmRecord("GHSA-c1", "c", "", "CVE-2026-1"), npmRecord("GHSA-c2", "c", "1.5.0", "CVE-2026-1")}, changed: []string{"c"}, wantFresh: 1},
		{name: "stored findings out of order", after: before, prev: []string{"pkg:npm/c@1.0.0", "pkg:npm/c@1.0.0", "pkg:npm/a@1.0.0"}, wantNoOK: true},
		{name: "a stored finding missing", after: before, prev: []string{"pkg:npm/a@1.0.0", "pkg:npm/c@1.0.0"}, wantNoOK: true},
		{name: "a stored finding of no package", after: before, prev: []string{"pkg:npm/a@1.0.0", "pkg:npm/c@1.0.0", "pkg:npm/c@1.0.0", "pkg:npm/z@1"}, wantNoOK: true},
	}
	now := func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			old := New(newMemSource(before...))
			old.now = now
			prevReport, err := old.Match(ctx, inv)
			if err != nil {
				t.Fatal(err)
			}
			prev := tt.prev
			if prev == nil {
				for i := range prevReport.Findings {
					prev = append(prev, deltaKey(&prevReport.Findings[i].Package))
				}
			}
			cur := New(newMemSource(tt.after...))
			cur.now = now
			want, err := cur.Match(ctx, inv)
			if err != nil {
				t.Fatal(err)
			}
			changed := func(l Lookup) bool {
				for _, n := range tt.changed {
					if l == (Lookup{"npm", n}) {
						return true
					}
				}
				return false
			}
			got, pieces, err := cur.MatchDelta(ctx, inv, prev, deltaKey, changed)
			if tt.wantNoOK {
				if !errors.Is(err, ErrNoDelta) {
					t.Fatalf("MatchDelta = %v, want ErrNoDelta", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Findings) != tt.wantFresh {
				t.Errorf("%d findings matched again, want %d", len(got.Findings), tt.wantFresh)
			}
			got.Findings = Splice(prevReport.Findings, got.Findings, pieces)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("delta:\n%+v\nfull:\n%+v", got, want)
			}
		})
	}
}
