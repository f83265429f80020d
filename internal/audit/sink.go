package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// AnchorSink receives the chain's signed tips as the Log records them
// outside the store: a copy beyond the reach of whoever controls the data
// directory.
type AnchorSink interface {
	Send(ctx context.Context, cp Checkpoint) error
}

// HTTPSink POSTs each anchor as JSON (the same object as a line of the
// anchor file: seq, hash, time, signature) to URL. A receiver that appends
// every body as a line builds a file `berth audit verify --anchors` reads.
type HTTPSink struct {
	URL    string
	Client *http.Client // nil: a client with a 10 s timeout
}

// Send implements AnchorSink; any 2xx answer is success.
func (s HTTPSink) Send(ctx context.Context, cp Checkpoint) error {
	body, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("audit anchor sink: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("audit anchor sink %s: %w", redactURL(s.URL), err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("audit anchor sink %s: %s", redactURL(s.URL), resp.Status)
	}
	return nil
}

// redactURL hides a password in the URL's user information, which may
// appear in log lines.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Sink retries: from sinkRetryMin doubling to sinkRetryMax; on Close one
// last attempt of at most sinkFinal.
const (
	sinkRetryMin = time.Second
	sinkRetryMax = 5 * time.Minute
	sinkFinal    = 5 * time.Second
	sinkTimeout  = 10 * time.Second
)

// sinkSender delivers the newest anchor to a sink from its own goroutine,
// so that a slow or dead sink never holds up the writer (nor, through it,
// a request). Only the newest undelivered anchor is kept: each one
// vouches for everything before it.
type sinkSender struct {
	sink AnchorSink
	log  func(msg string, args ...any)

	next chan Checkpoint // capacity 1: the newest undelivered anchor
	stop chan struct{}
	done chan struct{}
	// ctx ends every attempt once close has waited sinkFinal, so that a
	// sink that does not answer delays a shutdown by that much at most.
	ctx    context.Context
	cancel context.CancelFunc
}

func newSinkSender(sink AnchorSink, warn func(string, ...any)) *sinkSender {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sinkSender{sink: sink, log: warn, next: make(chan Checkpoint, 1), stop: make(chan struct{}), done: make(chan struct{}),
		ctx: ctx, cancel: cancel}
	go s.run()
	return s
}

// offer replaces any undelivered anchor with cp, without blocking: the
// sender may put back a failed one between the drain and the put, and
// then that one is drained again.
func (s *sinkSender) offer(cp Checkpoint) {
	for {
		select {
		case s.next <- cp:
			return
		default:
		}
		select {
		case <-s.next:
		default:
		}
	}
}

func (s *sinkSender) send(cp Checkpoint, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	return s.sink.Send(ctx, cp)
}

func (s *sinkSender) run() {
	defer close(s.done)
	wait := sinkRetryMin
	failing := false
	for {
		var cp Checkpoint
		select {
		case cp = <-s.next:
		case <-s.stop:
			s.final()
			return
		}
		err := s.send(cp, sinkTimeout)
		if err == nil {
			if failing {
				s.log("audit anchor sink reachable again", "seq", cp.Seq)
			}
			failing, wait = false, sinkRetryMin
			continue
		}
		if !failing {
			s.log("audit anchor sink failed; retrying with the newest anchor", "error", err, "seq", cp.Seq)
		}
		failing = true
		// Put it back unless a newer one arrived meanwhile.
		select {
		case s.next <- cp:
		default:
		}
		select {
		case <-time.After(wait):
		case <-s.stop:
			s.final()
			return
		}
		wait = min(2*wait, sinkRetryMax)
	}
}

// final makes one bounded attempt with what is pending.
func (s *sinkSender) final() {
	select {
	case cp := <-s.next:
		if err := s.send(cp, sinkFinal); err != nil {
			s.log("audit anchor sink: the newest anchor was not delivered", "error", err, "seq", cp.Seq)
		}
	default:
	}
}

// close makes the last delivery and stops, within about sinkFinal.
func (s *sinkSender) close() {
	close(s.stop)
	t := time.AfterFunc(sinkFinal, s.cancel)
	<-s.done
	t.Stop()
	s.cancel()
}
