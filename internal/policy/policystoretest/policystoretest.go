// Package policystoretest is the test suite every policy.Store runs.
package policystoretest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"berth.dev/berth/internal/policy"
)

// Factory returns a fresh empty store and a function opening the same
// storage again (another replica, or the server after a restart).
type Factory func(t testing.TB) (policy.Store, func() policy.Store)

// Run runs the suite.
func Run(t *testing.T, factory Factory) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, factory) })
	t.Run("Replace", func(t *testing.T) { testReplace(t, factory) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, factory) })
	t.Run("ProjectIdentity", func(t *testing.T) { testProjectIdentity(t, factory) })
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// at is a time that survives a nanosecond round trip, for DeepEqual.
var at = time.Unix(0, time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC).UnixNano()).UTC()

func stored(id, project, body string, when time.Time) policy.Stored {
	return policy.Stored{ProjectID: id, Project: project, Body: []byte(body), Version: fmt.Sprintf("%x", sha256.Sum256([]byte(body))),
		UpdatedAt: when, UpdatedBy: "alice"}
}

func get(t testing.TB, s policy.Store, id string) policy.Stored {
	t.Helper()
	p, err := s.Get(context.Background(), id)
	must(t, err)
	return p
}

func all(t testing.TB, s policy.Store) []policy.Stored {
	t.Helper()
	ps, err := s.All(context.Background())
	must(t, err)
	return ps
}

// A policy reads back byte for byte (the body is YAML as it was put,
// with whatever bytes it holds), through the store that wrote it and
// through another opening of the same storage.
func testRoundTrip(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, reopen := factory(t)
	if _, err := s.Get(ctx, "p1"); !errors.Is(err, policy.ErrNoPolicy) {
		t.Fatalf("get before put: %v, want ErrNoPolicy", err)
	}
	if ps := all(t, s); len(ps) != 0 {
		t.Fatalf("empty store lists %v", ps)
	}
	want := stored("p1", "team", "apiVersion: berth.dev/v1\n# é \x00\xff\n", at)
	must(t, s.Put(ctx, want))
	if got := get(t, s, "p1"); !reflect.DeepEqual(got, want) {
		t.Errorf("get = %+v, want %+v", got, want)
	}
	other := reopen()
	if got := get(t, other, "p1"); !reflect.DeepEqual(got, want) {
		t.Errorf("get through another opening = %+v, want %+v", got, want)
	}
	if got := all(t, other); !reflect.DeepEqual(got, []policy.Stored{want}) {
		t.Errorf("all = %+v", got)
	}
}

// Putting a project's policy again replaces it; All lists one policy per
// project, by project name.
func testReplace(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, _ := factory(t)
	must(t, s.Put(ctx, stored("p2", "zeta", "one", at)))
	must(t, s.Put(ctx, stored("p1", "alpha", "one", at)))
	newer := stored("p2", "zeta", "two", at.Add(time.Minute))
	newer.UpdatedBy = "bob"
	must(t, s.Put(ctx, newer))
	if got := get(t, s, "p2"); !reflect.DeepEqual(got, newer) {
		t.Errorf("after replacing: %+v, want %+v", got, newer)
	}
	want := []policy.Stored{stored("p1", "alpha", "one", at), newer}
	if got := all(t, s); !reflect.DeepEqual(got, want) {
		t.Errorf("all = %+v, want %+v", got, want)
	}
}

// Delete forgets one project's policy and leaves the others; deleting
// none is no error.
func testDelete(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, _ := factory(t)
	must(t, s.Put(ctx, stored("p1", "alpha", "one", at)))
	must(t, s.Put(ctx, stored("p2", "beta", "one", at)))
	must(t, s.Delete(ctx, "p1"))
	if _, err := s.Get(ctx, "p1"); !errors.Is(err, policy.ErrNoPolicy) {
		t.Errorf("get after delete: %v, want ErrNoPolicy", err)
	}
	must(t, s.Delete(ctx, "p1"))
	must(t, s.Delete(ctx, "never"))
	if got := all(t, s); len(got) != 1 || got[0].ProjectID != "p2" {
		t.Errorf("all after delete = %+v", got)
	}
}

// Policies belong to a project's immutable id: a project deleted and
// created again under its name has its own (none at first), and the old
// one's stays apart.
func testProjectIdentity(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, _ := factory(t)
	old := stored("old-id", "team", "old", at)
	must(t, s.Put(ctx, old))
	if _, err := s.Get(ctx, "new-id"); !errors.Is(err, policy.ErrNoPolicy) {
		t.Errorf("the new project has the old one's policy: %v", err)
	}
	cur := stored("new-id", "team", "new", at.Add(time.Hour))
	must(t, s.Put(ctx, cur))
	if got := get(t, s, "old-id"); !reflect.DeepEqual(got, old) {
		t.Errorf("old project's policy = %+v", got)
	}
	if got := get(t, s, "new-id"); !reflect.DeepEqual(got, cur) {
		t.Errorf("new project's policy = %+v", got)
	}
	if got := all(t, s); len(got) != 2 {
		t.Errorf("all = %+v, want both", got)
	}
}
