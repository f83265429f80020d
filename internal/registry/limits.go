package registry

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"berth.dev/berth/internal/meta"
)

// Retry-After answers for the limits below. An upload slot frees when a
// transfer ends, usually within seconds; a session place when a session
// finishes, is cancelled or expires.
const (
	uploadRetryAfter  = 2 * time.Second
	sessionRetryAfter = time.Minute
)

// account names who a request acts as, for the per-account limits: the
// authenticated subject, or for anonymous requests (auth off) the peer
// address, so that one anonymous client cannot use up everyone's share.
func account(q *request) string {
	if q.subject.Name != "" {
		return q.subject.Name
	}
	host, _, err := net.SplitHostPort(q.r.RemoteAddr)
	if err != nil {
		host = q.r.RemoteAddr
	}
	// A space: no account name can contain one.
	return "anonymous " + host
}

func tooManyRequests(reason string, retryAfter time.Duration) error {
	return &apiError{code: errTooManyRequests, reason: reason,
		header: http.Header{"Retry-After": {strconv.Itoa(int(retryAfter / time.Second))}}}
}

func tooManySessions(e *meta.TooManyUploadsError) error {
	return tooManyRequests(fmt.Sprintf("too many unfinished uploads (%d) for this %s: finish or cancel some, "+
		"or wait for idle ones to expire", e.Limit, e.Scope), sessionRetryAfter)
}

// uploadSlots bounds the requests sending blob content at once, in all and
// per account: each holds a connection and an open file for as long as its
// client takes, so a few slow clients must not take every one.
type uploadSlots struct {
	max, perAccount int // zero: no limit

	mu        sync.Mutex
	total     int
	byAccount map[string]int
}

// acquire takes a slot for account, or answers 429 TOOMANYREQUESTS.
func (s *uploadSlots) acquire(account string) (release func(), err error) {
	if s.max <= 0 && s.perAccount <= 0 {
		return func() {}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.max > 0 && s.total >= s.max:
		return nil, tooManyRequests(fmt.Sprintf("the registry is receiving %d uploads already; try again shortly", s.max), uploadRetryAfter)
	case s.perAccount > 0 && s.byAccount[account] >= s.perAccount:
		return nil, tooManyRequests(fmt.Sprintf("this account is sending %d uploads already; try again when one ends", s.perAccount), uploadRetryAfter)
	}
	if s.byAccount == nil {
		s.byAccount = map[string]int{}
	}
	s.total++
	s.byAccount[account]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.total--
			if s.byAccount[account]--; s.byAccount[account] == 0 {
				delete(s.byAccount, account)
			}
		})
	}, nil
}

// InFlightUploads reports how many requests are sending blob content now.
func (reg *Registry) InFlightUploads() int {
	reg.uploads.mu.Lock()
	defer reg.uploads.mu.Unlock()
	return reg.uploads.total
}
