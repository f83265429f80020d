// Package webhooktest is the test suite every webhook.Store runs.
package webhooktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/webhook"
)

// Factory returns a fresh empty store.
type Factory func(t testing.TB) webhook.Store

// Run runs the suite.
func Run(t *testing.T, factory Factory) {
	t.Run("Hooks", func(t *testing.T) { testHooks(t, factory(t)) })
	t.Run("Invalid", func(t *testing.T) { testInvalid(t, factory(t)) })
	t.Run("ProjectIdentity", func(t *testing.T) { testProjectIdentity(t, factory(t)) })
	t.Run("Attempts", func(t *testing.T) { testAttempts(t, factory(t)) })
	t.Run("DeadLetters", func(t *testing.T) { testDeadLetters(t, factory(t)) })
	t.Run("Prune", func(t *testing.T) { testPrune(t, factory(t)) })
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: err = %v, want %v", what, err, target)
	}
}

// at is a time that survives a nanosecond round trip, for DeepEqual.
var at = time.Unix(0, time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC).UnixNano()).UTC()

// NewHook is a valid hook of project id/name receiving scan events at url.
func NewHook(id string, project, url string) webhook.NewHook {
	return webhook.NewHook{ProjectID: id, Project: project, URL: url,
		Events: []string{webhook.TypeScanCompleted, webhook.TypeScanFailed}, Secret: "s3cret", CreatedBy: "alice"}
}

func create(t testing.TB, s webhook.Store, n webhook.NewHook) webhook.Hook {
	t.Helper()
	h, err := s.Create(context.Background(), n)
	must(t, err)
	return h
}

func testHooks(t *testing.T, s webhook.Store) {
	ctx := context.Background()
	n := NewHook("p1", "team-a", "https://ci.example/hook?token=abc")
	n.Events = []string{webhook.TypeScanFailed, webhook.TypeArtifactPushed, webhook.TypeScanFailed}
	a := create(t, s, n)
	if a.ID <= 0 || a.ProjectID != "p1" || a.Project != "team-a" || a.URL != n.URL || !a.HasSecret ||
		a.CreatedBy != "alice" || a.CreatedAt.IsZero() {
		t.Errorf("created hook = %+v", a)
	}
	// Events are kept sorted, once each.
	if want := []string{webhook.TypeArtifactPushed, webhook.TypeScanFailed}; !reflect.DeepEqual(a.Events, want) {
		t.Errorf("events = %v, want %v", a.Events, want)
	}
	got, err := s.Get(ctx, "p1", a.ID)
	must(t, err)
	if !reflect.DeepEqual(got, a) {
		t.Errorf("Get = %+v\nwant  %+v", got, a)
	}
	// The secret comes back only through Secret.
	h, secret, err := s.Secret(ctx, "p1", a.ID)
	must(t, err)
	if secret != "s3cret" || !reflect.DeepEqual(h, a) {
		t.Errorf("Secret = %+v, %q", h, string(secret))
	}
	open := NewHook("p1", "team-a", "http://10.0.0.1:8080/")
	open.Secret = ""
	b := create(t, s, open)
	if b.HasSecret || b.ID == a.ID {
		t.Errorf("hook without a secret = %+v", b)
	}
	if _, secret, _ := s.Secret(ctx, "p1", b.ID); secret != "" {
		t.Errorf("hook without a secret has secret %q", string(secret))
	}
	// One hook per URL and project; another project may use the URL.
	_, err = s.Create(ctx, n)
	wantErr(t, err, webhook.ErrExists, "same url twice in a project")
	other := create(t, s, NewHook("p2", "team-b", n.URL))

	list, err := s.List(ctx, "p1")
	must(t, err)
	if len(list) != 2 || list[0].ID != a.ID || list[1].ID != b.ID {
		t.Errorf("List(1) = %+v", list)
	}
	// Another project's hook is invisible through this project.
	_, err = s.Get(ctx, "p1", other.ID)
	wantErr(t, err, webhook.ErrNotFound, "get another project's hook")
	_, _, err = s.Secret(ctx, "p1", other.ID)
	wantErr(t, err, webhook.ErrNotFound, "secret of another project's hook")
	wantErr(t, s.Delete(ctx, "p1", other.ID), webhook.ErrNotFound, "delete another project's hook")
	if _, err := s.Get(ctx, "p2", other.ID); err != nil {
		t.Errorf("hook deleted through another project: %v", err)
	}

	must(t, s.Delete(ctx, "p1", b.ID))
	wantErr(t, s.Delete(ctx, "p1", b.ID), webhook.ErrNotFound, "delete a deleted hook")
	_, err = s.Get(ctx, "p1", b.ID)
	wantErr(t, err, webhook.ErrNotFound, "get a deleted hook")
	// A deleted hook's id, even the highest, is never given again.
	must(t, s.Delete(ctx, "p2", other.ID))
	c := create(t, s, open)
	if c.ID <= other.ID {
		t.Errorf("new hook got id %d, not above every earlier one (%d)", c.ID, other.ID)
	}

	// A project holds a bounded number of hooks.
	for i := range webhook.MaxHooksPerProject {
		create(t, s, NewHook("p3", "busy", fmt.Sprintf("https://r.example/%d", i)))
	}
	_, err = s.Create(ctx, NewHook("p3", "busy", "https://r.example/one-too-many"))
	wantErr(t, err, webhook.ErrInvalid, "one hook too many")
}

func testInvalid(t *testing.T, s webhook.Store) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		edit func(*webhook.NewHook)
	}{
		{"ftp scheme", func(n *webhook.NewHook) { n.URL = "ftp://files.example/x" }},
		{"file scheme", func(n *webhook.NewHook) { n.URL = "file:///etc/passwd" }},
		{"relative", func(n *webhook.NewHook) { n.URL = "/hook" }},
		{"no host", func(n *webhook.NewHook) { n.URL = "http:///hook" }},
		{"port only", func(n *webhook.NewHook) { n.URL = "http://:80/hook" }},
		{"fragment", func(n *webhook.NewHook) { n.URL = "https://r.example/#x" }},
		{"control character", func(n *webhook.NewHook) { n.URL = "https://r.example/\n" }},
		{"empty url", func(n *webhook.NewHook) { n.URL = "" }},
		{"long url", func(n *webhook.NewHook) { n.URL = "https://r.example/" + strings.Repeat("a", webhook.MaxURLLength) }},
		{"no events", func(n *webhook.NewHook) { n.Events = nil }},
		{"unknown event", func(n *webhook.NewHook) { n.Events = []string{"dev.berth.scan.started"} }},
		{"long secret", func(n *webhook.NewHook) { n.Secret = webhook.Secret(strings.Repeat("s", webhook.MaxSecretLength+1)) }},
		{"no project id", func(n *webhook.NewHook) { n.ProjectID = "" }},
		{"no project name", func(n *webhook.NewHook) { n.Project = "" }},
	} {
		n := NewHook("p1", "team-a", "https://r.example/hook")
		c.edit(&n)
		_, err := s.Create(ctx, n)
		wantErr(t, err, webhook.ErrInvalid, c.name)
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error shows the secret: %v", c.name, err)
		}
	}
	// The URL's password never appears in an error.
	n := NewHook("p1", "team-a", "gopher://user:pa55word@r.example/#frag")
	if _, err := s.Create(ctx, n); err == nil || strings.Contains(err.Error(), "pa55word") {
		t.Errorf("bad url with a password: %v", err)
	}
	if list, _ := s.List(ctx, "p1"); len(list) != 0 {
		t.Errorf("invalid hooks were stored: %+v", list)
	}
}

func testProjectIdentity(t *testing.T, s webhook.Store) {
	ctx := context.Background()
	a1 := create(t, s, NewHook("p1", "team-a", "https://r.example/1"))
	create(t, s, NewHook("p1", "team-a", "https://r.example/2"))
	b := create(t, s, NewHook("p2", "team-b", "https://r.example/1"))
	must(t, s.RecordAttempt(ctx, attempt(a1.ID, "d1", 1, at)))
	must(t, s.PutDeadLetter(ctx, deadLetter(a1, "d1", at)))
	must(t, s.RecordAttempt(ctx, attempt(b.ID, "d2", 1, at)))

	must(t, s.DeleteProjectHooks(ctx, "p1"))
	if list, _ := s.List(ctx, "p1"); len(list) != 0 {
		t.Errorf("hooks outlived their project: %+v", list)
	}
	// The project created again under the same name has a new id and none
	// of the old hooks, nor their log.
	if list, _ := s.List(ctx, "p3"); len(list) != 0 {
		t.Errorf("re-created project sees %+v", list)
	}
	if got, _ := s.Attempts(ctx, a1.ID, webhook.Page{}); len(got) != 0 {
		t.Errorf("attempts outlived their hook: %+v", got)
	}
	_, err := s.DeadLetter(ctx, "d1")
	wantErr(t, err, webhook.ErrNotFound, "dead letter of a deleted project")
	// Other projects keep theirs.
	if list, _ := s.List(ctx, "p2"); len(list) != 1 || list[0].ID != b.ID {
		t.Errorf("other project's hooks = %+v", list)
	}
	if got, _ := s.Attempts(ctx, b.ID, webhook.Page{}); len(got) != 1 {
		t.Errorf("other project's attempts = %+v", got)
	}
	must(t, s.DeleteProjectHooks(ctx, "p1")) // nothing left: not an error
}

func attempt(hookID int64, delivery string, n int, when time.Time) webhook.Attempt {
	a := webhook.Attempt{HookID: hookID, DeliveryID: delivery, EventID: "ev-" + delivery,
		EventType: webhook.TypeScanCompleted, Attempt: n, At: when, Duration: 1500 * time.Millisecond}
	if n%2 == 0 {
		a.StatusCode = 200
	} else {
		a.StatusCode, a.Error = 500, "HTTP 500"
	}
	return a
}

func deadLetter(h webhook.Hook, delivery string, when time.Time) webhook.DeadLetter {
	return webhook.DeadLetter{DeliveryID: delivery, HookID: h.ID, ProjectID: h.ProjectID, Attempts: 8,
		StatusCode: 503, Error: "HTTP 503", At: when,
		Event: webhook.Stored{ID: "ev-" + delivery, Type: webhook.TypeScanCompleted, Source: "/berth/projects/" + h.Project,
			Subject: "team-a/app@sha256:00", Time: at, Data: json.RawMessage(`{"critical":1}`)}}
}

func testAttempts(t *testing.T, s webhook.Store) {
	ctx := context.Background()
	h := create(t, s, NewHook("p1", "team-a", "https://r.example/1"))
	other := create(t, s, NewHook("p1", "team-a", "https://r.example/2"))
	var want []webhook.Attempt
	for i := 1; i <= 5; i++ {
		a := attempt(h.ID, "d1", i, at.Add(time.Duration(i)*time.Second))
		must(t, s.RecordAttempt(ctx, a))
		want = append(want, a)
	}
	must(t, s.RecordAttempt(ctx, attempt(other.ID, "d9", 1, at)))
	wantErr(t, s.RecordAttempt(ctx, attempt(999, "dx", 1, at)), webhook.ErrNotFound, "attempt of a missing hook")

	first, err := s.Attempts(ctx, h.ID, webhook.Page{Limit: 3})
	must(t, err)
	if len(first) != 3 {
		t.Fatalf("first page has %d attempts, want 3", len(first))
	}
	rest, err := s.Attempts(ctx, h.ID, webhook.Page{Before: first[2].ID, Limit: 3})
	must(t, err)
	all := append(first, rest...)
	if len(all) != 5 {
		t.Fatalf("pages hold %d attempts, want 5: %+v", len(all), all)
	}
	for i, got := range all {
		w := want[4-i] // newest first
		w.ID = got.ID
		if !reflect.DeepEqual(got, w) {
			t.Errorf("attempt %d = %+v\nwant        %+v", i, got, w)
		}
	}
	if none, _ := s.Attempts(ctx, h.ID, webhook.Page{Before: all[4].ID}); len(none) != 0 {
		t.Errorf("page past the oldest = %+v", none)
	}
	// A page is bounded whatever the caller asks.
	for i := range webhook.MaxPageSize + 5 {
		must(t, s.RecordAttempt(ctx, attempt(other.ID, "bulk", i, at)))
	}
	if got, _ := s.Attempts(ctx, other.ID, webhook.Page{Limit: 1 << 30}); len(got) != webhook.MaxPageSize {
		t.Errorf("a huge page holds %d attempts, want %d", len(got), webhook.MaxPageSize)
	}
	if got, _ := s.Attempts(ctx, other.ID, webhook.Page{}); len(got) != webhook.DefaultPageSize {
		t.Errorf("a default page holds %d attempts, want %d", len(got), webhook.DefaultPageSize)
	}
	// Deleting a hook deletes its log.
	must(t, s.Delete(ctx, "p1", h.ID))
	if got, _ := s.Attempts(ctx, h.ID, webhook.Page{}); len(got) != 0 {
		t.Errorf("attempts outlived their hook: %+v", got)
	}
}

func testDeadLetters(t *testing.T, s webhook.Store) {
	ctx := context.Background()
	h := create(t, s, NewHook("p1", "team-a", "https://r.example/1"))
	var want []webhook.DeadLetter
	for i := range 3 {
		d := deadLetter(h, fmt.Sprintf("d%d", i), at.Add(time.Duration(i)*time.Minute))
		must(t, s.PutDeadLetter(ctx, d))
		want = append(want, d)
	}
	got, err := s.DeadLetter(ctx, "d1")
	must(t, err)
	want[1].ID = got.ID
	if !reflect.DeepEqual(got, want[1]) {
		t.Errorf("DeadLetter = %+v\nwant         %+v", got, want[1])
	}
	// The same delivery dead again (it was redelivered, then failed) is
	// one entry, with the newest outcome.
	again := want[1]
	again.Attempts, again.Error, again.StatusCode = 3, "no answer within 10s", 0
	must(t, s.PutDeadLetter(ctx, again))
	page, err := s.DeadLetters(ctx, h.ID, webhook.Page{Limit: 2})
	must(t, err)
	if len(page) != 2 || page[0].DeliveryID != "d2" || page[1].DeliveryID != "d1" || page[1].Attempts != 3 ||
		page[1].Error != "no answer within 10s" {
		t.Errorf("first page = %+v", page)
	}
	rest, err := s.DeadLetters(ctx, h.ID, webhook.Page{Before: page[1].ID})
	must(t, err)
	if len(rest) != 1 || rest[0].DeliveryID != "d0" || string(rest[0].Event.Data) != `{"critical":1}` {
		t.Errorf("second page = %+v", rest)
	}
	must(t, s.DeleteDeadLetter(ctx, "d1"))
	wantErr(t, s.DeleteDeadLetter(ctx, "d1"), webhook.ErrNotFound, "delete a deleted dead letter")
	_, err = s.DeadLetter(ctx, "d1")
	wantErr(t, err, webhook.ErrNotFound, "get a deleted dead letter")
	missing := deadLetter(webhook.Hook{ID: 999, ProjectID: "p1", Project: "team-a"}, "dx", at)
	wantErr(t, s.PutDeadLetter(ctx, missing), webhook.ErrNotFound, "dead letter of a missing hook")
	bad := deadLetter(h, "dy", at)
	bad.Event.Data = json.RawMessage(`{"no`)
	wantErr(t, s.PutDeadLetter(ctx, bad), webhook.ErrInvalid, "dead letter with broken data")
	noData := deadLetter(h, "dz", at)
	noData.Event.Data = nil
	must(t, s.PutDeadLetter(ctx, noData))
	if got, _ := s.DeadLetter(ctx, "dz"); got.Event.Data != nil {
		t.Errorf("dead letter without data came back with %q", got.Event.Data)
	}
}

func testPrune(t *testing.T, s webhook.Store) {
	ctx := context.Background()
	a := create(t, s, NewHook("p1", "team-a", "https://r.example/1"))
	b := create(t, s, NewHook("p1", "team-a", "https://r.example/2"))
	cutoff := at.Add(time.Hour)
	// a: 3 old attempts, 4 recent; b: 2 recent.
	for i := range 3 {
		must(t, s.RecordAttempt(ctx, attempt(a.ID, "old", i, at)))
	}
	for i := range 4 {
		must(t, s.RecordAttempt(ctx, attempt(a.ID, "new", i, cutoff.Add(time.Minute))))
	}
	for i := range 2 {
		must(t, s.RecordAttempt(ctx, attempt(b.ID, "new", i, cutoff.Add(time.Minute))))
	}
	must(t, s.PutDeadLetter(ctx, deadLetter(a, "dead-old", at)))
	for i := range 3 {
		must(t, s.PutDeadLetter(ctx, deadLetter(a, fmt.Sprintf("dead-new-%d", i), cutoff.Add(time.Minute))))
	}
	n, err := s.Prune(ctx, cutoff, 3)
	must(t, err)
	// 3 old attempts and 1 beyond a's newest 3; 1 old dead letter.
	if n != 5 {
		t.Errorf("Prune removed %d rows, want 5", n)
	}
	got, _ := s.Attempts(ctx, a.ID, webhook.Page{})
	if len(got) != 3 || got[0].Attempt != 3 || got[2].Attempt != 1 {
		t.Errorf("a keeps %+v, want its newest 3", got)
	}
	if got, _ := s.Attempts(ctx, b.ID, webhook.Page{}); len(got) != 2 {
		t.Errorf("b keeps %d attempts, want 2", len(got))
	}
	dead, _ := s.DeadLetters(ctx, a.ID, webhook.Page{})
	if len(dead) != 3 || dead[2].DeliveryID != "dead-new-0" {
		t.Errorf("dead letters kept = %+v", dead)
	}
	// Without a count limit only age prunes.
	n, err = s.Prune(ctx, cutoff, 0)
	must(t, err)
	if n != 0 {
		t.Errorf("second prune removed %d rows, want 0", n)
	}
	n, err = s.Prune(ctx, cutoff, 1)
	must(t, err)
	if n != 2+1+2 {
		t.Errorf("prune to 1 per hook removed %d rows, want 5", n)
	}
}
