package webhook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"berth.dev/berth/internal/jobs"
	"berth.dev/berth/internal/metrics"
	"berth.dev/berth/internal/webhook"
	"berth.dev/berth/internal/webhook/sqlite"
)

// harness is a dispatcher on a real store and a real job queue in a
// temporary directory.
type harness struct {
	store *sqlite.Store
	q     *jobs.Queue
	d     *webhook.Dispatcher
	reg   *metrics.Registry
}

type setup struct {
	opts    webhook.Options
	workers int
	logger  *slog.Logger
	// stopped leaves the queue unstarted; start it with harness.start.
	stopped bool
	// guarded keeps private receivers refused, as a server does by
	// default; otherwise the harness allows them, since every test
	// receiver listens on loopback.
	guarded bool
}

func newHarness(t *testing.T, s setup) *harness {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reg := metrics.NewRegistry()
	q, err := jobs.Open(ctx, jobs.Config{Path: filepath.Join(dir, "jobs.db"), DeliverWorkers: s.workers,
		RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, PollInterval: 10 * time.Millisecond,
		Logger: s.logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		q.Stop(stop)
		q.Close()
	})
	opts := s.opts
	opts.Store, opts.Queue, opts.Metrics, opts.Logger = store, q, reg, s.logger
	opts.AllowPrivate = !s.guarded
	if opts.Timeout == 0 {
		// Generous: only the hung receivers' tests wait for it.
		opts.Timeout = 5 * time.Second
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 3
	}
	if opts.Version == "" {
		opts.Version = "1.2.3"
	}
	d, err := webhook.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{store: store, q: q, d: d, reg: reg}
	if !s.stopped {
		h.start(t)
	}
	return h
}

func (h *harness) start(t *testing.T) {
	t.Helper()
	if err := h.q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) hook(t *testing.T, projectID string, project, url string, secret webhook.Secret, events ...string) webhook.Hook {
	t.Helper()
	if len(events) == 0 {
		events = []string{webhook.TypeScanCompleted}
	}
	hk, err := h.store.Create(context.Background(), webhook.NewHook{ProjectID: projectID, Project: project,
		URL: url, Events: events, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return hk
}

func (h *harness) dispatch(t *testing.T, projectID string, ev webhook.Event) {
	t.Helper()
	if err := h.d.Dispatch(context.Background(), projectID, ev); err != nil {
		t.Fatal(err)
	}
}

// deliveries lists the delivery jobs, whatever their state.
func (h *harness) deliveries(t *testing.T) []*rivertype.JobRow {
	t.Helper()
	js, err := h.q.List(context.Background(), river.NewJobListParams().Queues(jobs.QueueDeliver).First(1000))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// settled waits until no delivery job is waiting or running.
func (h *harness) settled(t *testing.T) []*rivertype.JobRow {
	t.Helper()
	var js []*rivertype.JobRow
	waitFor(t, "delivery jobs to finish", func() bool {
		js = h.deliveries(t)
		for _, j := range js {
			switch j.State {
			case rivertype.JobStateCompleted, rivertype.JobStateDiscarded, rivertype.JobStateCancelled:
			default:
				return false
			}
		}
		return true
	})
	return js
}

func (h *harness) attempts(t *testing.T, hookID int64) []webhook.Attempt {
	t.Helper()
	as, err := h.store.Attempts(context.Background(), hookID, webhook.Page{Limit: webhook.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(as) // oldest first
	return as
}

func (h *harness) deadLetters(t *testing.T, hookID int64) []webhook.DeadLetter {
	t.Helper()
	ds, err := h.store.DeadLetters(context.Background(), hookID, webhook.Page{})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func (h *harness) metric(t *testing.T, series string) string {
	t.Helper()
	for line := range strings.SplitSeq(string(h.reg.AppendText(nil)), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	t.Fatalf("no series %s", series)
	return ""
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		// Not too often: the queue's database has one connection.
		time.Sleep(25 * time.Millisecond)
	}
}

// request is what a receiver got.
type request struct {
	header http.Header
	body   []byte
}

// receiver records every request and answers with status(n), n counting
// requests from 1.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
	status   func(n int) int
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	r := &receiver{status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests = append(r.requests, request{req.Header.Clone(), body})
		n := len(r.requests)
		r.mu.Unlock()
		w.WriteHeader(r.status(n))
	}))
	t.Cleanup(r.Close)
	return r
}

func always(code int) func(int) int { return func(int) int { return code } }

func (r *receiver) got() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests)
}

func TestSignedCloudEvent(t *testing.T) {
	for _, c := range []struct {
		name, source, wantSource string
	}{
		{"default source", "", "/berth/projects/team-a"},
		{"server url", "https://registry.example/", "https://registry.example/projects/team-a"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, setup{opts: webhook.Options{Source: c.source}})
			signed := newReceiver(t, always(http.StatusNoContent))
			unsigned := newReceiver(t, always(http.StatusOK))
			pushOnly := newReceiver(t, always(http.StatusOK))
			otherProject := newReceiver(t, always(http.StatusOK))
			const secret = "0123456789abcdef-topsecret"
			hook := h.hook(t, "p7", "team-a", signed.URL+"/hooks/berth", secret)
			h.hook(t, "p7", "team-a", unsigned.URL, "", webhook.TypeScanCompleted, webhook.TypeScanFailed)
			h.hook(t, "p7", "team-a", pushOnly.URL, secret, webhook.TypeArtifactPushed)
			h.hook(t, "p8", "team-b", otherProject.URL, secret)

			when := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600))
			data := map[string]any{"repository": "team-a/app", "digest": "sha256:abc", "critical": 2}
			h.dispatch(t, "p7", webhook.Event{ID: "scan-42", Type: webhook.TypeScanCompleted,
				Subject: "team-a/app@sha256:abc", Time: when, Data: data})
			js := h.settled(t)
			if len(js) != 2 {
				t.Fatalf("%d delivery jobs, want 2 (the two subscribed hooks of the project)", len(js))
			}
			if n := len(pushOnly.got()) + len(otherProject.got()); n != 0 {
				t.Errorf("hooks not subscribed got %d requests", n)
			}

			reqs := signed.got()
			if len(reqs) != 1 {
				t.Fatalf("signed receiver got %d requests, want 1", len(reqs))
			}
			req := reqs[0]
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write(req.body)
			want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
			if got := req.header.Get("X-Berth-Signature-256"); !hmac.Equal([]byte(got), []byte(want)) {
				t.Errorf("signature %q, want %q", got, want)
			}
			for k, v := range map[string]string{
				"Content-Type": "application/cloudevents+json; charset=utf-8",
				"User-Agent":   "berth-webhook/1.2.3",
			} {
				if got := req.header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if req.header.Get("X-Berth-Delivery") == "" {
				t.Error("no X-Berth-Delivery header")
			}

			// CloudEvents 1.0, structured JSON mode: every attribute.
			var ev map[string]json.RawMessage
			if err := json.Unmarshal(req.body, &ev); err != nil {
				t.Fatalf("body is not JSON: %v\n%s", err, req.body)
			}
			attr := func(name string) string {
				var s string
				if err := json.Unmarshal(ev[name], &s); err != nil {
					t.Errorf("attribute %s = %s: %v", name, ev[name], err)
				}
				return s
			}
			for name, want := range map[string]string{
				"specversion":     "1.0",
				"id":              "scan-42",
				"source":          c.wantSource,
				"type":            "dev.berth.scan.completed",
				"subject":         "team-a/app@sha256:abc",
				"datacontenttype": "application/json",
			} {
				if got := attr(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			at, err := time.Parse(time.RFC3339, attr("time"))
			if err != nil || !at.Equal(when) {
				t.Errorf("time = %s (%v), want %s", ev["time"], err, when)
			}
			var gotData map[string]any
			json.Unmarshal(ev["data"], &gotData)
			wantData := map[string]any{"repository": "team-a/app", "digest": "sha256:abc", "critical": 2.0}
			if !reflect.DeepEqual(gotData, wantData) {
				t.Errorf("data = %s", ev["data"])
			}
			if len(ev) != 8 {
				t.Errorf("event has %d members, want the 8 attributes: %s", len(ev), req.body)
			}

			// The hook without a secret gets the same event, unsigned.
			u := unsigned.got()
			if len(u) != 1 {
				t.Fatalf("unsigned receiver got %d requests", len(u))
			}
			if u[0].header.Get("X-Berth-Signature-256") != "" || !bytes.Equal(u[0].body, req.body) {
				t.Errorf("unsigned delivery: signature %q, body %s", u[0].header.Get("X-Berth-Signature-256"), u[0].body)
			}
			log := h.attempts(t, hook.ID)
			if len(log) != 1 || !log[0].OK() || log[0].StatusCode != 204 || log[0].EventID != "scan-42" ||
				log[0].Attempt != 1 || log[0].DeliveryID != req.header.Get("X-Berth-Delivery") {
				t.Errorf("delivery log = %+v", log)
			}
			if got := h.metric(t, `berth_webhook_deliveries_total{outcome="delivered"}`); got != "2" {
				t.Errorf("delivered = %s, want 2", got)
			}
		})
	}
}

// hangingReceiver accepts requests and never answers until the test ends.
type hangingReceiver struct {
	*httptest.Server
	entered  chan struct{}
	release  chan struct{}
	returned atomic.Int64
}

func newHangingReceiver(t *testing.T) *hangingReceiver {
	r := &hangingReceiver{entered: make(chan struct{}, 100), release: make(chan struct{})}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.entered <- struct{}{}
		<-r.release // not the request's context: the handler outlives the client
		r.returned.Add(1)
	}))
	t.Cleanup(func() {
		close(r.release)
		r.Close()
	})
	return r
}

// closingReceiver drops the connection without answering.
func newClosingReceiver(t *testing.T, hits *atomic.Int64) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hits.Add(1)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		conn.Close()
	}))
	t.Cleanup(s.Close)
	return s
}

func TestFailingReceiversEndInTheDeadLetterList(t *testing.T) {
	// One worker: a hung receiver that held it past the timeout would
	// stop every other delivery.
	h := newHarness(t, setup{workers: 1, opts: webhook.Options{Timeout: 750 * time.Millisecond, MaxAttempts: 3}})
	hung := newHangingReceiver(t)
	failing := newReceiver(t, always(http.StatusInternalServerError))
	var closed atomic.Int64
	closing := newClosingReceiver(t, &closed)
	elsewhere := newReceiver(t, always(http.StatusOK))
	var redirected atomic.Int64
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		redirected.Add(1)
		http.Redirect(w, req, elsewhere.URL+"/stolen", http.StatusFound)
	}))
	t.Cleanup(redirecting.Close)
	good := newReceiver(t, always(http.StatusOK))

	hooks := map[string]webhook.Hook{
		"hang":     h.hook(t, "p1", "team-a", hung.URL, "k"),
		"500":      h.hook(t, "p1", "team-a", failing.URL, "k"),
		"close":    h.hook(t, "p1", "team-a", closing.URL, "k"),
		"redirect": h.hook(t, "p1", "team-a", redirecting.URL, "k"),
	}
	goodHook := h.hook(t, "p1", "team-a", good.URL, "k")

	h.dispatch(t, "p1", webhook.Event{ID: "first", Type: webhook.TypeScanCompleted, Subject: "team-a/app@sha256:1"})
	// The hung receiver holds a request; dispatching returns all the same,
	// before the receiver is released.
	<-hung.entered
	h.dispatch(t, "p1", webhook.Event{ID: "second", Type: webhook.TypeScanCompleted, Subject: "team-a/app@sha256:2"})
	if n := hung.returned.Load(); n != 0 {
		t.Fatalf("a hung handler returned (%d) before the test released it", n)
	}

	js := h.settled(t)
	if len(js) != 10 {
		t.Errorf("%d delivery jobs, want 5 hooks × 2 events", len(js))
	}
	// Every delivery finished while the hung handlers were still held: a
	// hung receiver costs a worker the timeout, no more.
	if n := hung.returned.Load(); n != 0 {
		t.Fatalf("hung handlers returned (%d) before the test released them", n)
	}
	if got := good.got(); len(got) != 2 {
		t.Errorf("the good receiver got %d requests, want 2", len(got))
	}
	if n := len(elsewhere.got()); n != 0 {
		t.Errorf("a redirect was followed %d times", n)
	}

	for _, c := range []struct {
		name   string
		status int
		error  string
		hits   func() int
	}{
		{"hang", 0, "no answer within 750ms", func() int { return len(hung.entered) + 1 }}, // one taken above
		{"500", 500, "HTTP 500", func() int { return len(failing.got()) }},
		{"close", 0, "EOF", func() int { return int(closed.Load()) }},
		{"redirect", 302, "HTTP 302: redirects are not followed", func() int { return int(redirected.Load()) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			hook := hooks[c.name]
			if n := c.hits(); n != 6 {
				t.Errorf("receiver got %d requests, want 3 attempts × 2 events", n)
			}
			dead := h.deadLetters(t, hook.ID)
			if len(dead) != 2 {
				t.Fatalf("%d dead letters, want 2: %+v", len(dead), dead)
			}
			byDelivery := map[string][]webhook.Attempt{}
			for _, a := range h.attempts(t, hook.ID) {
				byDelivery[a.DeliveryID] = append(byDelivery[a.DeliveryID], a)
			}
			for _, d := range dead {
				if d.Attempts != 3 || d.StatusCode != c.status || !strings.Contains(d.Error, c.error) ||
					d.ProjectID != "p1" || d.Event.Type != webhook.TypeScanCompleted {
					t.Errorf("dead letter = %+v", d)
				}
				log := byDelivery[d.DeliveryID]
				if len(log) != 3 {
					t.Fatalf("delivery %s has %d attempts logged, want 3: %+v", d.DeliveryID, len(log), log)
				}
				for i, a := range log {
					if a.Attempt != i+1 || a.OK() || a.StatusCode != c.status || !strings.Contains(a.Error, c.error) ||
						a.EventID != d.Event.ID {
						t.Errorf("attempt %d = %+v", i+1, a)
					}
				}
			}
			if ids := []string{dead[0].Event.ID, dead[1].Event.ID}; !reflect.DeepEqual(ids, []string{"second", "first"}) {
				t.Errorf("dead letters, newest first, hold events %v", ids)
			}
		})
	}
	if n := len(h.deadLetters(t, goodHook.ID)); n != 0 {
		t.Errorf("the good hook has %d dead letters", n)
	}
	for outcome, want := range map[string]string{"delivered": "2", "failed": "16", "dead": "8"} {
		if got := h.metric(t, `berth_webhook_deliveries_total{outcome="`+outcome+`"}`); got != want {
			t.Errorf("%s = %s, want %s", outcome, got, want)
		}
	}
	if got := h.metric(t, `berth_webhook_delivery_duration_seconds_count{outcome="dead"}`); got != "8" {
		t.Errorf("dead attempts timed: %s, want 8", got)
	}
}

func TestRetriedUntilDelivered(t *testing.T) {
	h := newHarness(t, setup{})
	r := newReceiver(t, func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	hook := h.hook(t, "p1", "team-a", r.URL, "k")
	h.dispatch(t, "p1", webhook.Event{ID: "e1", Type: webhook.TypeScanCompleted, Data: []string{"x"}})
	js := h.settled(t)
	if len(js) != 1 || js[0].State != rivertype.JobStateCompleted || js[0].Attempt != 2 {
		t.Fatalf("jobs = %+v", js)
	}
	reqs := r.got()
	if len(reqs) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(reqs))
	}
	// A retry sends the same bytes, signature and delivery id.
	for _, k := range []string{"X-Berth-Delivery", "X-Berth-Signature-256"} {
		if reqs[0].header.Get(k) != reqs[1].header.Get(k) {
			t.Errorf("%s changed between attempts", k)
		}
	}
	if !bytes.Equal(reqs[0].body, reqs[1].body) {
		t.Errorf("body changed between attempts:\n%s\n%s", reqs[0].body, reqs[1].body)
	}
	log := h.attempts(t, hook.ID)
	if len(log) != 2 || log[0].StatusCode != 500 || log[0].OK() || log[1].StatusCode != 200 || !log[1].OK() ||
		log[1].Attempt != 2 {
		t.Errorf("delivery log = %+v", log)
	}
	if d := h.deadLetters(t, hook.ID); len(d) != 0 {
		t.Errorf("dead letters = %+v", d)
	}
	for outcome, want := range map[string]string{"delivered": "1", "failed": "1", "dead": "0"} {
		if got := h.metric(t, `berth_webhook_deliveries_total{outcome="`+outcome+`"}`); got != want {
			t.Errorf("%s = %s, want %s", outcome, got, want)
		}
	}
}

func TestSameEventDispatchedTwiceIsDeliveredOnce(t *testing.T) {
	h := newHarness(t, setup{stopped: true})
	r := newReceiver(t, always(http.StatusOK))
	r2 := newReceiver(t, always(http.StatusOK))
	h.hook(t, "p1", "team-a", r.URL, "k")
	h.hook(t, "p1", "team-a", r2.URL, "k")
	ev := webhook.Event{ID: "push-17", Type: webhook.TypeScanCompleted, Subject: "team-a/app@sha256:1"}
	// Twice while queued (a caller retrying after a crash) ...
	h.dispatch(t, "p1", ev)
	h.dispatch(t, "p1", ev)
	h.start(t)
	h.settled(t)
	// ... and once more after it was delivered.
	h.dispatch(t, "p1", ev)
	h.dispatch(t, "p1", webhook.Event{ID: "push-18", Type: webhook.TypeScanCompleted})
	js := h.settled(t)
	if len(js) != 4 {
		t.Errorf("%d delivery jobs, want one per hook and event (4)", len(js))
	}
	for _, rc := range []*receiver{r, r2} {
		var ids []string
		for _, req := range rc.got() {
			var ev struct{ ID string }
			json.Unmarshal(req.body, &ev)
			ids = append(ids, ev.ID)
		}
		slices.Sort(ids)
		if !reflect.DeepEqual(ids, []string{"push-17", "push-18"}) {
			t.Errorf("receiver got events %v, want each once", ids)
		}
	}
}

func TestDeletedProjectKeepsNoHooks(t *testing.T) {
	h := newHarness(t, setup{stopped: true})
	ctx := context.Background()
	r := newReceiver(t, always(http.StatusOK))
	h.hook(t, "p1", "team-a", r.URL, "k")
	h.hook(t, "p1", "team-a", r.URL+"/2", "k", webhook.TypeArtifactPushed)
	// A delivery is queued, then the project is deleted.
	h.dispatch(t, "p1", webhook.Event{ID: "e1", Type: webhook.TypeScanCompleted})
	if err := h.store.DeleteProjectHooks(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if hooks, _ := h.store.List(ctx, "p1"); len(hooks) != 0 {
		t.Errorf("deleted project's hooks: %+v", hooks)
	}
	// The project created again under the same name has a new id: it sees
	// none of the old hooks, and its events go nowhere.
	if hooks, _ := h.store.List(ctx, "p2"); len(hooks) != 0 {
		t.Errorf("re-created project sees %+v", hooks)
	}
	h.dispatch(t, "p2", webhook.Event{ID: "e2", Type: webhook.TypeScanCompleted})
	h.dispatch(t, "p1", webhook.Event{ID: "e3", Type: webhook.TypeArtifactPushed})
	h.start(t)
	js := h.settled(t)
	if len(js) != 1 || js[0].State != rivertype.JobStateCancelled {
		t.Errorf("jobs = %+v, want the one queued before the deletion, cancelled", js)
	}
	if n := len(r.got()); n != 0 {
		t.Errorf("a deleted project's receiver got %d requests", n)
	}
}

func TestRedeliverDeadLetter(t *testing.T) {
	h := newHarness(t, setup{opts: webhook.Options{MaxAttempts: 2}})
	ctx := context.Background()
	var code atomic.Int64
	code.Store(http.StatusServiceUnavailable)
	r := newReceiver(t, func(int) int { return int(code.Load()) })
	hook := h.hook(t, "p1", "team-a", r.URL, "k")
	h.dispatch(t, "p1", webhook.Event{ID: "e1", Type: webhook.TypeScanCompleted, Data: map[string]int{"n": 1}})
	h.settled(t)
	dead := h.deadLetters(t, hook.ID)
	if len(dead) != 1 {
		t.Fatalf("dead letters = %+v", dead)
	}
	first := r.got()[0]

	if _, err := h.d.Redeliver(ctx, "p2", dead[0].DeliveryID); !errors.Is(err, webhook.ErrNotFound) {
		t.Errorf("redeliver through another project: %v", err)
	}
	code.Store(http.StatusOK)
	id, err := h.d.Redeliver(ctx, "p1", dead[0].DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	if id == dead[0].DeliveryID || id == "" {
		t.Errorf("redelivery id %q", id)
	}
	h.settled(t)
	reqs := r.got()
	if len(reqs) != 3 {
		t.Fatalf("receiver got %d requests, want 2 failed + 1 redelivered", len(reqs))
	}
	last := reqs[2]
	// The same event (receivers dedupe on its id), as a new delivery.
	if !bytes.Equal(last.body, first.body) || last.header.Get("X-Berth-Delivery") != id {
		t.Errorf("redelivered %s with delivery %q, want %s with %q", last.body, last.header.Get("X-Berth-Delivery"), first.body, id)
	}
	if d := h.deadLetters(t, hook.ID); len(d) != 0 {
		t.Errorf("dead letters after redelivery = %+v", d)
	}
	if _, err := h.d.Redeliver(ctx, "p1", dead[0].DeliveryID); !errors.Is(err, webhook.ErrNotFound) {
		t.Errorf("second redelivery: %v", err)
	}
}

// TestRedeliverWhileTheEventIsQueued: a dead letter whose event is queued
// again (dispatched anew) is not queued a second time; once that delivery
// is done, redelivering names it and clears the dead letter.
func TestRedeliverWhileTheEventIsQueued(t *testing.T) {
	h := newHarness(t, setup{stopped: true})
	ctx := context.Background()
	r := newReceiver(t, always(http.StatusOK))
	hook := h.hook(t, "p1", "team-a", r.URL, "k")
	ev := webhook.Event{ID: "e1", Type: webhook.TypeScanCompleted}
	if err := h.store.PutDeadLetter(ctx, webhook.DeadLetter{DeliveryID: "old", HookID: hook.ID, ProjectID: "p1",
		Attempts: 3, Error: "HTTP 500", At: time.Now(),
		Event: webhook.Stored{ID: ev.ID, Type: ev.Type, Source: "/berth/projects/team-a", Time: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	h.dispatch(t, "p1", ev)
	if _, err := h.d.Redeliver(ctx, "p1", "old"); !errors.Is(err, webhook.ErrPending) {
		t.Errorf("redeliver while queued: %v, want ErrPending", err)
	}
	if _, err := h.store.DeadLetter(ctx, "old"); err != nil {
		t.Errorf("the dead letter went although nothing was redelivered: %v", err)
	}
	h.start(t)
	h.settled(t)
	id, err := h.d.Redeliver(ctx, "p1", "old")
	if err != nil {
		t.Fatal(err)
	}
	reqs := r.got()
	if len(reqs) != 1 || reqs[0].header.Get("X-Berth-Delivery") != id {
		t.Errorf("receiver got %d requests; redelivery names %q", len(reqs), id)
	}
	if _, err := h.store.DeadLetter(ctx, "old"); !errors.Is(err, webhook.ErrNotFound) {
		t.Errorf("dead letter of a delivered event: %v", err)
	}
	if js := h.settled(t); len(js) != 1 {
		t.Errorf("%d delivery jobs, want 1", len(js))
	}
}

// TestLogIsPruned: the periodic prune keeps each hook's newest attempts.
func TestLogIsPruned(t *testing.T) {
	h := newHarness(t, setup{opts: webhook.Options{KeepPerHook: 2, PruneInterval: 100 * time.Millisecond}})
	r := newReceiver(t, always(http.StatusOK))
	hook := h.hook(t, "p1", "team-a", r.URL, "k")
	for i := range 4 {
		h.dispatch(t, "p1", webhook.Event{ID: fmt.Sprint(i), Type: webhook.TypeScanCompleted})
	}
	h.settled(t)
	if n := len(r.got()); n != 4 {
		t.Fatalf("receiver got %d requests, want 4", n)
	}
	waitFor(t, "the log to be pruned to 2 attempts", func() bool { return len(h.attempts(t, hook.ID)) == 2 })
}

func TestDispatchRefusesBadEvents(t *testing.T) {
	h := newHarness(t, setup{stopped: true})
	h.hook(t, "p1", "team-a", "https://r.example/hook", "k")
	for _, c := range []struct {
		name string
		ev   webhook.Event
	}{
		{"unknown type", webhook.Event{Type: "dev.berth.scan.started"}},
		{"data not JSON", webhook.Event{Type: webhook.TypeScanCompleted, Data: make(chan int)}},
		{"data too big", webhook.Event{Type: webhook.TypeScanCompleted, Data: strings.Repeat("x", webhook.MaxDataSize)}},
		{"long id", webhook.Event{ID: strings.Repeat("i", 257), Type: webhook.TypeScanCompleted}},
	} {
		if err := h.d.Dispatch(context.Background(), "p1", c.ev); !errors.Is(err, webhook.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", c.name, err)
		}
	}
	if js := h.deliveries(t); len(js) != 0 {
		t.Errorf("bad events queued %d jobs", len(js))
	}
}

// syncBuffer is a log destination for several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSecretsAndCredentialsNeverLogged(t *testing.T) {
	const secret, password, token = "hmac-key-9f8e7d", "pa55w0rd-in-url", "t0ken-in-query"
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHarness(t, setup{logger: logger, opts: webhook.Options{MaxAttempts: 2}})
	r := newReceiver(t, always(http.StatusBadGateway))
	url := strings.Replace(r.URL, "http://", "http://user:"+password+"@", 1) + "/hook?token=" + token
	hook := h.hook(t, "p1", "team-a", url, secret)
	h.dispatch(t, "p1", webhook.Event{ID: "e1", Type: webhook.TypeScanCompleted})
	h.settled(t)
	if len(h.deadLetters(t, hook.ID)) != 1 {
		t.Fatal("the delivery did not fail; the test proves nothing")
	}
	// A hook handed to a logger shows neither its secret nor the URL's
	// credentials; printed or encoded, it never shows its secret.
	n := webhook.NewHook{ProjectID: "p1", Project: "team-a", URL: url, Events: []string{webhook.TypeScanCompleted}, Secret: secret}
	logger.Info("a new hook", "hook", n, "secret", n.Secret)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("a new hook", "hook", n, "stored", hook)
	logger.Info("a stored hook", "hook", hook)
	enc, _ := json.Marshal(n)
	printed := fmt.Sprintf("%v %+v %#v %s %s", n, n, n, n.Secret, enc)
	if strings.Contains(printed, secret) {
		t.Errorf("a printed hook shows its secret: %s", printed)
	}
	if !strings.Contains(buf.String(), `"has_secret":true`) {
		t.Errorf("the hook was not logged:\n%s", buf.String())
	}

	var stored strings.Builder
	for _, a := range h.attempts(t, hook.ID) {
		stored.WriteString(a.Error + "\n")
	}
	for _, d := range h.deadLetters(t, hook.ID) {
		stored.WriteString(d.Error + "\n")
	}
	for _, j := range h.deliveries(t) {
		for _, e := range j.Errors {
			stored.WriteString(e.Error + "\n")
		}
	}
	for where, text := range map[string]string{"log": buf.String(), "stored errors": stored.String()} {
		if !strings.Contains(text, "e") {
			t.Errorf("%s is empty; the test proves nothing", where)
		}
		for _, s := range []string{secret, password, token} {
			if strings.Contains(text, s) {
				t.Errorf("%s shows %q:\n%s", where, s, text)
			}
		}
	}
	if !strings.Contains(buf.String(), "webhook delivery failed") {
		t.Errorf("the failures were not logged:\n%s", buf.String())
	}
}
