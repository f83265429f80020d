package webhook

import (
	"bytes"
	"cmp"
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
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"berth.dev/berth/internal/jobs"
	"berth.dev/berth/internal/metrics"
)

// Headers of a delivery besides Content-Type and User-Agent.
const (
	// HeaderSignature carries "sha256=" and the hex HMAC-SHA256 of the
	// exact body keyed with the hook's secret; absent when the hook has
	// no secret.
	HeaderSignature = "X-Berth-Signature-256"
	// HeaderDelivery identifies one delivery of one event to one hook; it
	// stays the same across that delivery's retries.
	HeaderDelivery = "X-Berth-Delivery"
	// ContentType is CloudEvents' structured JSON mode.
	ContentType = "application/cloudevents+json; charset=utf-8"
)

// MaxDataSize bounds an event's encoded data: it is stored in every
// delivery job and dead letter.
const MaxDataSize = 256 << 10

// Defaults of Options.
const (
	DefaultSource        = "/berth"
	DefaultTimeout       = 10 * time.Second
	DefaultMaxAttempts   = 8
	DefaultRetention     = 30 * 24 * time.Hour
	DefaultKeepPerHook   = 1000
	DefaultPruneInterval = time.Hour
)

// Event is something that happened in a project.
type Event struct {
	// ID identifies the event; every delivery and retry of it carries the
	// same id, so receivers can drop duplicates. A caller that may
	// dispatch an event again (after a crash) sets an id derived from
	// what caused it, and the second dispatch is then not delivered
	// again; empty means a random id.
	ID string
	// Type is one of EventTypes.
	Type string
	// Subject names what the event is about, typically
	// "repository@digest".
	Subject string
	// Time is when it happened; zero means now.
	Time time.Time
	// Data is encoded as JSON into the event's data; nil means none.
	Data any
}

// Options configure a Dispatcher.
type Options struct {
	Store Store
	// Queue runs the deliveries (jobs.QueueDeliver) and the log's pruning
	// (jobs.QueueMaintenance). New registers their workers, so it must be
	// called before the queue starts.
	Queue   *jobs.Queue
	Metrics *metrics.Registry // optional
	Logger  *slog.Logger
	// Version goes into the User-Agent header: berth-webhook/<Version>.
	Version string
	// Source prefixes every event's CloudEvents source; "/projects/<name>"
	// follows. A server reachable at a public URL sets that URL. Default
	// DefaultSource.
	Source string
	// Timeout bounds one attempt, from connecting to reading the answer.
	Timeout time.Duration
	// MaxAttempts is how many times a delivery is tried before it becomes
	// a dead letter.
	MaxAttempts int
	// Retention and KeepPerHook bound the delivery log: attempts and dead
	// letters older than Retention go, and each hook keeps at most its
	// newest KeepPerHook of each. PruneInterval is how often that runs.
	Retention     time.Duration
	KeepPerHook   int
	PruneInterval time.Duration
	// AllowPrivate lets deliveries reach loopback, private and link-local
	// addresses (receiver.go says why they are refused by default).
	AllowPrivate bool
	// Proxy chooses the HTTP proxy of a delivery; nil:
	// http.ProxyFromEnvironment.
	Proxy func(*http.Request) (*url.URL, error)
}

// Dispatcher turns events into delivery jobs and works them.
type Dispatcher struct {
	store       Store
	q           *jobs.Queue
	log         *slog.Logger
	client      *http.Client
	userAgent   string
	source      string
	timeout     time.Duration
	maxAttempts int
	retention   time.Duration
	keep        int
	metrics     *deliveryMetrics
	// allowPrivate: see Options.AllowPrivate.
	allowPrivate bool
}

// New returns a Dispatcher and registers its workers on opts.Queue.
func New(opts Options) (*Dispatcher, error) {
	if opts.Store == nil || opts.Queue == nil {
		return nil, errors.New("webhook dispatcher: a store and a job queue are required")
	}
	source := strings.TrimSuffix(cmp.Or(opts.Source, DefaultSource), "/")
	if _, err := url.Parse(source); err != nil || source == "" {
		return nil, fmt.Errorf("webhook dispatcher: source %q is not a URI reference", opts.Source)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		store:       opts.Store,
		q:           opts.Queue,
		log:         log.With("component", "webhook"),
		userAgent:   "berth-webhook/" + cmp.Or(opts.Version, "dev"),
		source:      source,
		timeout:     positive(opts.Timeout, DefaultTimeout),
		maxAttempts: positive(opts.MaxAttempts, DefaultMaxAttempts),
		retention:   positive(opts.Retention, DefaultRetention),
		keep:        positive(opts.KeepPerHook, DefaultKeepPerHook),
	}
	d.allowPrivate = opts.AllowPrivate
	proxy := opts.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	d.client = newClient(d.timeout, receiverTransport(d.timeout, opts.AllowPrivate, proxy))
	if opts.Metrics != nil {
		d.metrics = newDeliveryMetrics(opts.Metrics)
	}
	jobs.AddWorker(d.q, &deliverWorker{d: d})
	jobs.AddWorker(d.q, &pruneWorker{d: d})
	d.q.Every(positive(opts.PruneInterval, DefaultPruneInterval), true, func() (river.JobArgs, *river.InsertOpts) {
		return pruneArgs{}, &river.InsertOpts{Queue: jobs.QueueMaintenance}
	})
	return d, nil
}

// newClient is an HTTP client over tr that never follows a redirect (a
// receiver must not be able to send berth's signed request, or berth
// itself, to another address) and gives up on an attempt after timeout
// whatever the receiver does.
func newClient(timeout time.Duration, tr *http.Transport) *http.Client {
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// deliverArgs is one delivery job: one event to one hook. Jobs are unique
// by (hook, event), so dispatching an event again does not deliver it
// again while its first job is queued, running or completed (completed
// jobs are kept a day).
type deliverArgs struct {
	HookID     int64  `json:"hook_id" river:"unique"`
	EventID    string `json:"event_id" river:"unique"`
	ProjectID  string `json:"project_id"`
	DeliveryID string `json:"delivery_id"`
	Event      Stored `json:"event"`
}

func (deliverArgs) Kind() string { return "webhook_deliver" }

func (d *Dispatcher) insertOpts() *river.InsertOpts {
	return &river.InsertOpts{Queue: jobs.QueueDeliver, MaxAttempts: d.maxAttempts,
		UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Dispatch queues one delivery of ev to each of the project's hooks that
// subscribes to ev.Type. It makes no request itself.
func (d *Dispatcher) Dispatch(ctx context.Context, projectID string, ev Event) error {
	if !KnownType(ev.Type) {
		return fmt.Errorf("%w: unknown event type %q", ErrInvalid, ev.Type)
	}
	if len(ev.ID) > 256 {
		return fmt.Errorf("%w: event id longer than 256 bytes", ErrInvalid)
	}
	hooks, err := d.store.List(ctx, projectID)
	if err != nil {
		return fmt.Errorf("dispatch %s: %w", ev.Type, err)
	}
	var params []river.InsertManyParams
	var stored Stored
	for _, h := range hooks {
		if !h.Wants(ev.Type) {
			continue
		}
		if params == nil {
			if stored, err = prepare(ev); err != nil {
				return err
			}
		}
		e := stored
		e.Source = d.source + "/projects/" + url.PathEscape(h.Project)
		params = append(params, river.InsertManyParams{Args: deliverArgs{
			HookID: h.ID, EventID: e.ID, ProjectID: projectID, DeliveryID: uuid.NewString(), Event: e,
		}, InsertOpts: d.insertOpts()})
	}
	if err := d.q.InsertMany(ctx, params); err != nil {
		return fmt.Errorf("dispatch %s %s: %w", ev.Type, ev.ID, err)
	}
	return nil
}

// prepare fixes an event's id, time and data for its deliveries.
func prepare(ev Event) (Stored, error) {
	s := Stored{ID: ev.ID, Type: ev.Type, Subject: ev.Subject, Time: ev.Time.UTC()}
	if s.ID == "" {
		s.ID = uuid.NewString()
	}
	if ev.Time.IsZero() {
		s.Time = time.Now().UTC()
	}
	if ev.Data != nil {
		data, err := json.Marshal(ev.Data)
		if err != nil {
			return s, fmt.Errorf("%w: event %s data: %v", ErrInvalid, ev.Type, err)
		}
		if len(data) > MaxDataSize {
			return s, fmt.Errorf("%w: event %s data is %d bytes, more than %d", ErrInvalid, ev.Type, len(data), MaxDataSize)
		}
		s.Data = data
	}
	return s, nil
}

// Redeliver queues a dead letter of the project again, as a new delivery
// (its id is returned) of the same event, and removes it from the
// dead-letter list.
func (d *Dispatcher) Redeliver(ctx context.Context, projectID string, deliveryID string) (string, error) {
	dl, err := d.store.DeadLetter(ctx, deliveryID)
	if err != nil {
		return "", err
	}
	if dl.ProjectID != projectID {
		return "", fmt.Errorf("dead letter %q: %w", deliveryID, ErrNotFound)
	}
	args := deliverArgs{HookID: dl.HookID, EventID: dl.Event.ID, ProjectID: dl.ProjectID,
		DeliveryID: uuid.NewString(), Event: dl.Event}
	res, err := d.q.Insert(ctx, args, d.insertOpts())
	if err != nil {
		return "", fmt.Errorf("redeliver %s: %w", deliveryID, err)
	}
	if res.UniqueSkippedAsDuplicate {
		// The event's job is still there: the dead letter's own, not yet
		// finished, or a newer dispatch of the same event.
		if res.Job.State != rivertype.JobStateCompleted {
			return "", fmt.Errorf("redeliver %s: %w", deliveryID, ErrPending)
		}
		var done deliverArgs
		if err := json.Unmarshal(res.Job.EncodedArgs, &done); err != nil {
			return "", fmt.Errorf("redeliver %s: %w", deliveryID, err)
		}
		args.DeliveryID = done.DeliveryID
	}
	if err := d.store.DeleteDeadLetter(ctx, deliveryID); err != nil && !errors.Is(err, ErrNotFound) {
		return "", err
	}
	return args.DeliveryID, nil
}

// deliverWorker makes one attempt of a delivery per run.
type deliverWorker struct {
	river.WorkerDefaults[deliverArgs]
	d *Dispatcher
}

// Timeout bounds a run: the request's own timeout plus time to record it.
func (w *deliverWorker) Timeout(*river.Job[deliverArgs]) time.Duration {
	return w.d.timeout + 30*time.Second
}

func (w *deliverWorker) Work(ctx context.Context, j *river.Job[deliverArgs]) error {
	d, a := w.d, j.Args
	hook, secret, err := d.store.Secret(ctx, a.ProjectID, a.HookID)
	if errors.Is(err, ErrNotFound) {
		return river.JobCancel(fmt.Errorf("webhook %d no longer exists", a.HookID))
	}
	if err != nil {
		return err
	}
	log := d.log.With("webhook", hook.ID, "project", hook.Project, "url", RedactURL(hook.URL),
		"event", a.Event.Type, "event_id", a.Event.ID, "delivery", a.DeliveryID,
		"attempt", j.Attempt, "max_attempts", j.MaxAttempts)
	start := time.Now()
	status, failure := d.post(ctx, hook.URL, secret, a)
	elapsed := time.Since(start)
	rec := Attempt{HookID: hook.ID, DeliveryID: a.DeliveryID, EventID: a.Event.ID, EventType: a.Event.Type,
		Attempt: j.Attempt, At: start.UTC(), StatusCode: status, Error: failure, Duration: elapsed}
	if err := d.store.RecordAttempt(ctx, rec); err != nil && !errors.Is(err, ErrNotFound) {
		log.WarnContext(ctx, "webhook attempt not recorded", "error", err)
	}
	final := j.Attempt >= j.MaxAttempts
	if failure == "" {
		d.metrics.observe("delivered", elapsed)
		log.DebugContext(ctx, "webhook delivered", "status", status)
		if final {
			// A run after the last (the server died after recording the
			// dead letter) delivered it after all.
			d.store.DeleteDeadLetter(ctx, a.DeliveryID)
		}
		return nil
	}
	if !final {
		d.metrics.observe("failed", elapsed)
		log.WarnContext(ctx, "webhook delivery failed; will retry", "status", status, "error", failure)
		return fmt.Errorf("webhook %d: %s", hook.ID, failure)
	}
	d.metrics.observe("dead", elapsed)
	log.WarnContext(ctx, "webhook delivery failed on its last attempt; now a dead letter", "status", status, "error", failure)
	err = d.store.PutDeadLetter(ctx, DeadLetter{DeliveryID: a.DeliveryID, HookID: hook.ID, ProjectID: a.ProjectID,
		Attempts: j.Attempt, StatusCode: status, Error: failure, At: time.Now().UTC(), Event: a.Event})
	if err != nil && !errors.Is(err, ErrNotFound) {
		log.ErrorContext(ctx, "webhook dead letter not recorded", "error", err)
	}
	return fmt.Errorf("webhook %d: %s (last attempt)", hook.ID, failure)
}

// post makes one attempt. It returns the receiver's status (0 without an
// answer) and, when the attempt failed, why, in words that hold no part
// of the secret or of the URL's credentials.
func (d *Dispatcher) post(ctx context.Context, rawURL string, secret Secret, a deliverArgs) (int, string) {
	if err := ValidateURL(rawURL); err != nil {
		return 0, err.Error()
	}
	body, err := encode(a.Event)
	if err != nil {
		return 0, err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return 0, "cannot build the request"
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("User-Agent", d.userAgent)
	req.Header.Set(HeaderDelivery, a.DeliveryID)
	if secret != "" {
		req.Header.Set(HeaderSignature, Sign(secret, body))
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, describe(err, d.timeout)
	}
	defer resp.Body.Close()
	// Read a little of the answer so the connection can be reused; the
	// timeout still bounds a receiver that trickles it.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return code, ""
	case code >= 300 && code < 400:
		return code, fmt.Sprintf("HTTP %d: redirects are not followed", code)
	default:
		return code, fmt.Sprintf("HTTP %d", code)
	}
}

// describe words a failed request without its URL (url.Error quotes it,
// and with it the user information).
func describe(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Sprintf("no answer within %s", timeout)
		}
		err = ue.Err
	}
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}

// cloudEvent is a CloudEvents 1.0 event in structured JSON mode.
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
}

// encode is the body of every attempt to deliver e.
func encode(e Stored) ([]byte, error) {
	ce := cloudEvent{SpecVersion: "1.0", ID: e.ID, Source: e.Source, Type: e.Type, Subject: e.Subject,
		Time: e.Time.UTC().Format(time.RFC3339Nano)}
	if len(e.Data) > 0 {
		ce.DataContentType, ce.Data = "application/json", e.Data
	}
	b, err := json.Marshal(ce)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	return b, nil
}

// Sign is the X-Berth-Signature-256 value of body: "sha256=" and the hex
// HMAC-SHA256 of body keyed with secret. Receivers compute the same over
// the exact bytes they received and compare in constant time.
func Sign(secret Secret, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// pruneArgs is the periodic job that bounds the delivery log.
type pruneArgs struct{}

func (pruneArgs) Kind() string { return "webhook_prune" }

type pruneWorker struct {
	river.WorkerDefaults[pruneArgs]
	d *Dispatcher
}

func (w *pruneWorker) Work(ctx context.Context, _ *river.Job[pruneArgs]) error {
	n, err := w.d.store.Prune(ctx, time.Now().Add(-w.d.retention), w.d.keep)
	if err != nil {
		return err
	}
	if n > 0 {
		w.d.log.InfoContext(ctx, "webhook delivery log pruned", "rows", n)
	}
	return nil
}

// deliveryMetrics count every attempt once, by outcome: delivered (2xx),
// failed (will be retried) or dead (the last attempt failed).
type deliveryMetrics struct {
	total    *metrics.CounterVec
	duration *metrics.HistogramVec
}

func newDeliveryMetrics(reg *metrics.Registry) *deliveryMetrics {
	m := &deliveryMetrics{
		total: reg.NewCounterVec("berth_webhook_deliveries_total",
			"Webhook delivery attempts by outcome: delivered, failed (retried later) or dead (the last attempt failed).",
			"outcome"),
		duration: reg.NewHistogramVec("berth_webhook_delivery_duration_seconds",
			"Time webhook delivery attempts took, by outcome.",
			[]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "outcome"),
	}
	for _, o := range []string{"delivered", "failed", "dead"} {
		m.total.WithLabelValues(o)
	}
	return m
}

func (m *deliveryMetrics) observe(outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.total.WithLabelValues(outcome).Inc()
	m.duration.WithLabelValues(outcome).Observe(d.Seconds())
}

func positive[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}
