package auth

import (
	"sync"
	"time"
)

// loginLimiter throttles failed logins per account and per source address
// over a sliding window. It is checked before a password is verified, so a
// flood costs no bcrypt work once throttled.
type loginLimiter struct {
	mu         sync.Mutex
	window     time.Duration
	maxAccount int
	maxIP      int
	accounts   map[string][]time.Time // recent failures, oldest first
	ips        map[string][]time.Time
	swept      time.Time
}

// maxTrackedKeys bounds the limiter's memory under a flood of invented
// account names or addresses; past it, new keys go untracked until the
// next sweep (the per-address limit still holds for known addresses).
const maxTrackedKeys = 100_000

func newLoginLimiter(window time.Duration, maxAccount, maxIP int) *loginLimiter {
	return &loginLimiter{window: window, maxAccount: maxAccount, maxIP: maxIP,
		accounts: map[string][]time.Time{}, ips: map[string][]time.Time{}}
}

// check returns how long the caller must wait, or zero. An empty account
// (a refresh token names none) is limited by address only.
func (l *loginLimiter) check(account, ip string, now time.Time) time.Duration {
	if l.window <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	if account != "" {
		wait = l.waitFor(l.accounts[account], l.maxAccount, now)
	}
	return max(wait, l.waitFor(l.ips[ip], l.maxIP, now))
}

func (l *loginLimiter) waitFor(fails []time.Time, limit int, now time.Time) time.Duration {
	if limit <= 0 || len(fails) < limit {
		return 0
	}
	// The limit-th newest failure must leave the window before another
	// attempt is allowed.
	until := fails[len(fails)-limit].Add(l.window)
	if !now.Before(until) {
		return 0
	}
	return until.Sub(now)
}

// fail records a failed login.
func (l *loginLimiter) fail(account, ip string, now time.Time) {
	if l.window <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > l.window {
		l.sweep(now)
	}
	if account != "" {
		l.add(l.accounts, account, l.maxAccount, now)
	}
	l.add(l.ips, ip, l.maxIP, now)
}

func (l *loginLimiter) add(m map[string][]time.Time, key string, limit int, now time.Time) {
	if limit <= 0 {
		return
	}
	fails, ok := m[key]
	if !ok && len(m) >= maxTrackedKeys {
		return
	}
	fails = append(fails, now)
	if len(fails) > limit {
		fails = fails[len(fails)-limit:]
	}
	m[key] = fails
}

// succeed forgets an account's failures: the owner got in.
func (l *loginLimiter) succeed(account string) {
	l.mu.Lock()
	delete(l.accounts, account)
	l.mu.Unlock()
}

func (l *loginLimiter) sweep(now time.Time) {
	for _, m := range []map[string][]time.Time{l.accounts, l.ips} {
		for k, fails := range m {
			if now.Sub(fails[len(fails)-1]) > l.window {
				delete(m, k)
			}
		}
	}
	l.swept = now
}
