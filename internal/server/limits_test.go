package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestDeriveLimits(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Limits
		nofile uint64
		want   connectionLimits
	}{
		{"a 200-descriptor limit leaves room for files", Limits{}, 200, connectionLimits{max: 68, perIP: 17, uploads: 34}},
		{"a tiny limit still serves a few", Limits{}, 50, connectionLimits{max: minConnections, perIP: minConnections / 4, uploads: minConnections / 2}},
		{"a huge limit is capped", Limits{}, 1 << 20, connectionLimits{max: maxDerivedConnections, perIP: maxDerivedConnections / 4, uploads: maxDerivedConnections / 2}},
		{"configured values win", Limits{MaxConnections: 10, MaxConnectionsPerIP: 10, MaxUploads: 3}, 200, connectionLimits{max: 10, perIP: 10, uploads: 3}},
		{"shares follow a configured total", Limits{MaxConnections: 3}, 1 << 20, connectionLimits{max: 3, perIP: 1, uploads: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := deriveLimits(tc.cfg, tc.nofile); got != tc.want {
				t.Errorf("deriveLimits = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// limitedServer is a server with auth on, served by Serve on a real
// listener (so that its connection limits apply), with a second account,
// mallory, who may push to the project mal.
type limitedServer struct {
	*authServer
	host      string
	mallory   []string
	stop      func()
	stopped   chan error
	malloryID string
}

func serveLimited(t *testing.T, adjust func(*Config)) *limitedServer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Data = t.TempDir()
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.Auth.AdminPassword = testAdminPassword
	adjust(&cfg)
	s, err := New(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &limitedServer{authServer: &authServer{t: t, s: s, url: "http://" + ln.Addr().String()},
		host: ln.Addr().String(), stopped: make(chan error, 1)}
	go func() { l.stopped <- s.Serve(ctx, ln) }()
	var once sync.Once
	l.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-l.stopped; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(l.stop)
	l.expect(l.api(adminCreds, "POST", "/projects", map[string]any{"name": "mal"}), 201, "create project")
	l.expect(l.api(adminCreds, "POST", "/users", map[string]any{"name": "mallory", "password": "mallory-password"}), 201, "create mallory")
	l.expect(l.api(adminCreds, "PUT", "/projects/mal/members/mallory", map[string]any{"role": "developer"}), 200, "add mallory")
	l.mallory = basicAuth("mallory", "mallory-password")
	return l
}

// waitFor polls cond until it holds or a generous bound passes: it waits
// for an event, it does not time one.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The attack: one account opens many uploads from one address and sends
// their bodies a byte at a time, plus connections that never finish their
// headers. The server must stay reachable: the attacker's connections are
// bounded (per address), its uploads are bounded (per account, 429 with
// Retry-After past it), another client pushes and pulls while they hold,
// and once the attacker stops sending, its uploads are cut after the idle
// timeout and their places come back.
func TestSlowUploadersDoNotLockOthersOut(t *testing.T) {
	const (
		idle         = 2 * time.Second
		maxConns     = 24
		perIP        = 12
		perAccount   = 4
		slowHeaders  = 4
		slowUploads  = 30
		tricklePause = 200 * time.Millisecond
	)
	l := serveLimited(t, func(c *Config) {
		c.Limits.BodyIdleTimeout = idle
		c.Limits.MaxConnections = maxConns
		c.Limits.MaxConnectionsPerIP = perIP
		c.Limits.MaxUploads = 16
		c.Limits.MaxUploadsPerAccount = perAccount
	})
	s := l.s
	attacker := netip.MustParseAddr("127.0.0.2")
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: attacker.AsSlice()}}

	// Connections that send half their headers and wait.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range slowHeaders {
		c, err := dialer.Dial("tcp", l.host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /v2/ HTTP/1.1\r\nHost: %s\r\n", l.host)
		held = append(held, c)
	}
	waitFor(t, "the slow-header connections to be accepted", func() bool {
		return s.listener.Load().fromAddr(attacker) == slowHeaders
	})

	// Uploads whose bodies trickle in until stop is closed, a third of
	// them chunked. Under 256 KiB: net/http would read what a refused one
	// has left before answering.
	type outcome struct {
		status     int // 0: the connection closed without an answer
		retryAfter string
		body       string
	}
	stop := make(chan struct{})
	outcomes := make(chan outcome, slowUploads)
	var attackers sync.WaitGroup
	layer := digest.FromString("the layer mallory never sends")
	for i := range slowUploads {
		c, err := dialer.Dial("tcp", l.host)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		attackers.Add(1)
		go func() {
			defer attackers.Done()
			length, piece := "Content-Length: 100000", "x"
			if i%3 == 0 {
				length, piece = "Transfer-Encoding: chunked", "1\r\nx\r\n"
			}
			fmt.Fprintf(c, "POST /v2/mal/app/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: %s\r\n%s: %s\r\n"+
				"Content-Type: application/octet-stream\r\n%s\r\n\r\n%s", layer, l.host, l.mallory[0], l.mallory[1], length, piece)
			go func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(tricklePause):
					}
					if _, err := c.Write([]byte(piece)); err != nil {
						return
					}
				}
			}()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				outcomes <- outcome{}
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			outcomes <- outcome{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(body)}
		}()
	}

	// Every attacking connection but the uploads that got a slot is
	// answered or closed at once; those hold their slots.
	var early []outcome
	waitFor(t, "the attacker's surplus to be refused", func() bool {
		for {
			select {
			case o := <-outcomes:
				early = append(early, o)
				continue
			default:
			}
			return len(early) == slowUploads-perAccount && s.reg.InFlightUploads() == perAccount
		}
	})
	throttled, closed := 0, 0
	for _, o := range early {
		switch {
		case o.status == http.StatusTooManyRequests && o.retryAfter != "" && strings.Contains(o.body, "TOOMANYREQUESTS"):
			throttled++
		case o.status == 0:
			closed++
		default:
			t.Errorf("an attacking upload was answered %d %q", o.status, o.body)
		}
	}
	if throttled == 0 || closed == 0 {
		t.Errorf("%d uploads throttled (429), %d connections refused: want both limits to act", throttled, closed)
	}
	lln := s.listener.Load()
	if n := lln.fromAddr(attacker); n > perIP {
		t.Errorf("the attacker holds %d connections, more than its share of %d", n, perIP)
	}

	// Someone else pushes and pulls meanwhile.
	img := makeImage("pushed during the attack")
	l.expect(l.push("library/app", "v1", img, adminCreds), http.StatusCreated, "push during the attack")
	r := l.expect(l.do("GET", "/v2/library/app/manifests/v1", nil, adminCreds...), http.StatusOK, "pull manifest")
	if r.body != string(img.manifest) {
		t.Errorf("pulled manifest differs")
	}
	r = l.expect(l.do("GET", "/v2/library/app/blobs/"+digest.FromBytes(img.layer).String(), nil, adminCreds...), http.StatusOK, "pull layer")
	if r.body != string(img.layer) {
		t.Errorf("pulled layer differs")
	}
	if n := s.reg.InFlightUploads(); n != perAccount {
		t.Fatalf("%d uploads in flight after the other client's push, want the attacker's %d still held: "+
			"the push did not happen while they held", n, perAccount)
	}
	if peak := lln.peak.Load(); peak > maxConns {
		t.Errorf("%d connections were open at once, more than the limit of %d", peak, maxConns)
	}

	// The attacker stops sending: its uploads are cut after the idle
	// timeout, answered (400, no body data) or closed.
	close(stop)
	done := make(chan struct{})
	go func() { attackers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("stalled uploads were not cut")
	}
	close(outcomes)
	for o := range outcomes {
		if o.status != 0 && (o.status != http.StatusBadRequest || !strings.Contains(o.body, "no request body data")) {
			t.Errorf("a stalled upload ended with %d %q, want 400 for the idle body", o.status, o.body)
		}
	}
	if n := s.reg.InFlightUploads(); n != 0 {
		t.Errorf("%d upload slots still taken after the stalled uploads were cut", n)
	}
	for _, c := range held {
		c.Close()
	}
	waitFor(t, "the attacker's connections to be released", func() bool { return lln.fromAddr(attacker) == 0 })
	// Mallory's own later pushes work again.
	blob := []byte("an honest blob")
	l.expect(l.do("POST", "/v2/mal/app/blobs/uploads/?digest="+digest.FromBytes(blob).String(), blob, l.mallory...),
		http.StatusCreated, "mallory's upload after the attack")
}

// Unfinished upload sessions are capped per account (429 with Retry-After)
// and expire on their own once idle, with garbage collection never run.
func TestUploadSessionsAreCappedAndExpire(t *testing.T) {
	const perAccount = 3
	l := serveLimited(t, func(c *Config) {
		c.Registry.UploadTTL = time.Second
		c.Registry.MaxUploadSessionsPerAccount = perAccount
		c.GC.Interval = 0
	})
	var sessions []string
	for i := range perAccount {
		r := l.expect(l.do("POST", "/v2/mal/app/blobs/uploads/", nil, l.mallory...), http.StatusAccepted, fmt.Sprintf("session %d", i))
		sessions = append(sessions, r.header.Get("Location"))
	}
	r := l.do("POST", "/v2/mal/app/blobs/uploads/", nil, l.mallory...)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "TOOMANYREQUESTS") {
		t.Fatalf("a session past the account's limit = %d %q (Retry-After %q), want 429 TOOMANYREQUESTS",
			r.status, r.body, r.header.Get("Retry-After"))
	}
	// Another account is not held back.
	l.expect(l.do("POST", "/v2/mal/app/blobs/uploads/", nil, adminCreds...), http.StatusAccepted, "admin's session")
	// The idle sessions expire on the timer, and their places come back.
	waitFor(t, "idle sessions to expire", func() bool {
		for _, loc := range sessions {
			r := l.do("GET", loc, nil, l.mallory...)
			if r.status != http.StatusNotFound || !strings.Contains(r.body, "BLOB_UPLOAD_UNKNOWN") {
				return false
			}
		}
		return true
	})
	l.expect(l.do("POST", "/v2/mal/app/blobs/uploads/", nil, l.mallory...), http.StatusAccepted, "a session once the idle ones expired")
	if runs := l.s.metrics.gcRuns.WithLabelValues("ok").Value(); runs != 0 {
		t.Errorf("garbage collection ran %v times; the sessions must expire without it", runs)
	}
	if n := l.s.metrics.uploadsExpired.Value(); n < perAccount {
		t.Errorf("berth_upload_sessions_expired_total = %v, want at least %d", n, perAccount)
	}
}
