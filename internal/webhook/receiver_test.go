package webhook_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"berth.dev/berth/internal/webhook"
)

// A project admin's webhook cannot make berth reach its own host or
// network: refused when the hook is made if the URL says so, and at
// delivery if the name resolves there. With allow_private the same hooks
// work.
func TestPrivateReceivers(t *testing.T) {
	h := newHarness(t, setup{guarded: true, opts: webhook.Options{MaxAttempts: 1}})
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080/hook", false},
		{"http://[::1]/hook", false},
		{"http://[::ffff:127.0.0.1]/hook", false},
		{"http://169.254.169.254/latest/meta-data/", false},
		{"http://10.0.0.5/hook", false},
		{"http://172.16.3.4/hook", false},
		{"http://192.168.1.1/hook", false},
		{"http://100.64.0.1/hook", false},
		{"http://0.0.0.0:5000/hook", false},
		{"http://[fd00::1]/hook", false},
		{"http://[fe80::1]/hook", false},
		{"http://localhost:5000/hook", false},
		{"http://api.localhost./hook", false},
		{"https://hooks.example.com/berth", true},
		{"https://93.184.215.14/hook", true},
		{"http://[2001:db8::1]/hook", true},
	} {
		err := h.d.CheckReceiver(c.url)
		if c.ok != (err == nil) {
			t.Errorf("CheckReceiver(%s) = %v, want ok %v", c.url, err, c.ok)
		}
		if err != nil && (!errors.Is(err, webhook.ErrInvalid) || !errors.Is(err, webhook.ErrPrivateReceiver) ||
			!strings.Contains(err.Error(), "webhooks.allow_private")) {
			t.Errorf("CheckReceiver(%s) = %v: want ErrInvalid and ErrPrivateReceiver, naming the setting", c.url, err)
		}
	}

	// At delivery: a hook made before (or a name that resolves to
	// loopback) never reaches the receiver.
	rcv := newReceiver(t, always(http.StatusOK))
	u, _ := url.Parse(rcv.URL)
	byName := h.hook(t, "p1", "team-a", "http://localhost:"+u.Port()+"/hook", "")
	byAddr := h.hook(t, "p1", "team-a", rcv.URL+"/hook", "")
	h.dispatch(t, "p1", webhook.Event{ID: "e1", Type: webhook.TypeScanCompleted, Subject: "team-a/app@sha256:1"})
	for _, j := range h.settled(t) {
		if j.State != rivertype.JobStateDiscarded {
			t.Errorf("delivery job %d ended %s, want discarded", j.ID, j.State)
		}
	}
	if n := len(rcv.got()); n != 0 {
		t.Errorf("the loopback receiver got %d requests", n)
	}
	for _, hk := range []webhook.Hook{byName, byAddr} {
		as := h.attempts(t, hk.ID)
		if len(as) != 1 || !strings.Contains(as[0].Error, "private receiver address") {
			t.Errorf("hook %s: attempts %+v, want one refused as private", hk.URL, as)
		}
	}

	open := newHarness(t, setup{})
	if err := open.d.CheckReceiver("http://127.0.0.1:8080/hook"); err != nil {
		t.Errorf("with allow_private: %v", err)
	}
	hk := open.hook(t, "p1", "team-a", "http://localhost:"+u.Port()+"/hook", "")
	open.dispatch(t, "p1", webhook.Event{ID: "e2", Type: webhook.TypeScanCompleted, Subject: "team-a/app@sha256:2"})
	open.settled(t)
	if n := len(rcv.got()); n != 1 {
		t.Errorf("with allow_private the receiver got %d requests, want 1 (attempts %+v)", n, open.attempts(t, hk.ID))
	}
}

// The proxy the operator configured is dialled even on loopback: it, not
// berth, then reaches the receiver by name.
func TestPrivateReceiversThroughAProxy(t *testing.T) {
	var mu sync.Mutex
	var proxied []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		proxied = append(proxied, r.URL.String())
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(proxy.Close)
	pu, _ := url.Parse(proxy.URL)
	h := newHarness(t, setup{guarded: true, opts: webhook.Options{MaxAttempts: 1, Timeout: 5 * time.Second,
		Proxy: http.ProxyURL(pu)}})
	h.hook(t, "p1", "team-a", "http://hooks.example.com/berth", "")
	h.dispatch(t, "p1", webhook.Event{ID: "e1", Type: webhook.TypeScanCompleted, Subject: "team-a/app@sha256:1"})
	for _, j := range h.settled(t) {
		if j.State != rivertype.JobStateCompleted {
			t.Errorf("delivery through the proxy ended %s", j.State)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(proxied) != 1 || proxied[0] != "http://hooks.example.com/berth" {
		t.Errorf("the proxy was asked for %v", proxied)
	}
}
