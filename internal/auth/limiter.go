package auth

import (
	"container/list"
	"sync"
	"time"
)

// loginLimiter throttles failed logins. It is checked before a password is
// verified, so a flood costs no bcrypt work once throttled, and it keeps
// limiting whatever it is fed; its memory is bounded, and when a table is
// full it forgets the entry that failed least recently, never the new one.
//
//   - Per account: maxAccount failures within window lock the account out
//     for lockout, doubling with each lockout in a row up to 64 times that
//     (maxLockoutDoublings); the count of lockouts in a row is
//     forgotten at the next successful login or a day after the last
//     lockout ended. Real accounts are tracked by id in a table of their
//     own, so a flood of invented names cannot push them out; names that
//     are no account are tracked alike (the same answers, so that the
//     answers do not tell which names exist) in a bounded table of their
//     own.
//   - Per source address: maxIP failures within window; the address waits
//     until the oldest of them leaves the window.
//   - Globally: past maxGlobal failures within window in all, logins that
//     need a password check are refused until the rate falls (the caller
//     lets through logins verified within the last minutes, which guess
//     nothing). This caps the bcrypt work a flood from many addresses can
//     cause, and it limits guessing even if the per-key tables are
//     churned faster than they can hold.
type loginLimiter struct {
	mu         sync.Mutex
	window     time.Duration
	maxAccount int
	maxIP      int
	maxGlobal  int
	lockout    time.Duration
	accounts   *lru[accountState] // real accounts, by id
	names      *lru[accountState] // names that are no account
	ips        *lru[[]time.Time]  // recent failures per address, oldest first
	global     failureRing
}

// maxTrackedKeys bounds each of the limiter's tables.
const maxTrackedKeys = 100_000

// maxLockoutDoublings caps the backoff: the longest lockout is 64 times
// the first (an hour for the default minute).
const maxLockoutDoublings = 6

// levelMemory is how long after a lockout ends the next one still counts
// as "in a row".
const levelMemory = 24 * time.Hour

// accountState is what the limiter knows of one account (or name).
type accountState struct {
	fails       []time.Time // failures since the last lockout, oldest first
	level       int         // lockouts in a row
	lockedUntil time.Time
}

func newLoginLimiter(window time.Duration, maxAccount, maxIP, maxGlobal int, lockout time.Duration) *loginLimiter {
	return &loginLimiter{window: window, maxAccount: maxAccount, maxIP: maxIP, maxGlobal: maxGlobal, lockout: lockout,
		accounts: newLRU[accountState](maxTrackedKeys), names: newLRU[accountState](maxTrackedKeys),
		ips: newLRU[[]time.Time](maxTrackedKeys), global: newFailureRing(window)}
}

func (l *loginLimiter) off() bool { return l.window <= 0 }

// table returns where an account's state lives: by id for a real account,
// by name otherwise; nil for no account (a refresh token names none).
func (l *loginLimiter) table(id, name string) (*lru[accountState], string) {
	switch {
	case id != "":
		return l.accounts, id
	case name != "":
		return l.names, name
	}
	return nil, ""
}

// check returns how long the caller must wait because the account (by
// id when it is a real account, else by name; neither when both are
// empty) or the address is locked out, and, apart, how long logins that
// need a password check must wait because of the failures of everyone.
func (l *loginLimiter) check(id, name, ip string, now time.Time) (wait, global time.Duration) {
	if l.off() {
		return 0, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, key := l.table(id, name); t != nil {
		if st := t.get(key); st != nil && now.Before(st.lockedUntil) {
			wait = st.lockedUntil.Sub(now)
		}
	}
	if fails := l.ips.get(ip); fails != nil && l.maxIP > 0 && len(*fails) >= l.maxIP {
		// The limit-th newest failure must leave the window first.
		if until := (*fails)[len(*fails)-l.maxIP].Add(l.window); now.Before(until) {
			wait = max(wait, until.Sub(now))
		}
	}
	if l.maxGlobal > 0 {
		global = l.global.wait(l.maxGlobal, now)
	}
	return wait, global
}

// fail records a failed login and, when it locks the account (or name)
// out, returns the lockout; one with an AccountID is a real account's, for
// the caller to persist.
func (l *loginLimiter) fail(id, name, ip string, now time.Time) *Lockout {
	if l.off() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.global.add(now)
	if l.maxIP > 0 {
		fails := l.ips.touch(ip)
		*fails = append(*fails, now)
		if len(*fails) > l.maxIP {
			*fails = (*fails)[len(*fails)-l.maxIP:]
		}
		l.ips.trim(func(f *[]time.Time) bool { return now.Sub((*f)[len(*f)-1]) > l.window })
	}
	t, key := l.table(id, name)
	if t == nil || l.maxAccount <= 0 {
		return nil
	}
	st := t.touch(key)
	defer t.trim(func(st *accountState) bool { return l.stale(st, now) })
	if st.level > 0 && now.Sub(st.lockedUntil) > levelMemory {
		st.level = 0
	}
	kept := st.fails[:0]
	for _, f := range st.fails {
		if now.Sub(f) < l.window {
			kept = append(kept, f)
		}
	}
	st.fails = append(kept, now)
	if len(st.fails) < l.maxAccount {
		return nil
	}
	st.lockedUntil = now.Add(l.lockout << min(st.level, maxLockoutDoublings))
	st.level++
	st.fails = nil
	return &Lockout{AccountID: id, Level: st.level, Until: st.lockedUntil}
}

// stale reports whether an account's state no longer matters at now.
func (l *loginLimiter) stale(st *accountState, now time.Time) bool {
	if st.level > 0 {
		return now.Sub(st.lockedUntil) > levelMemory
	}
	return len(st.fails) == 0 || now.Sub(st.fails[len(st.fails)-1]) >= l.window
}

// succeed forgets an account's failures and lockouts: the owner got in.
// It reports whether the account had a lockout on record (which the
// caller then deletes from the store).
func (l *loginLimiter) succeed(id, name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, key := l.table(id, name)
	if t == nil {
		return false
	}
	st := t.get(key)
	t.remove(key)
	return st != nil && st.level > 0
}

// restore loads lockouts persisted by an earlier process.
func (l *loginLimiter) restore(lockouts []Lockout) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, lo := range lockouts {
		st := l.accounts.touch(lo.AccountID)
		st.level, st.lockedUntil = lo.Level, lo.Until
	}
}

// lru is a table bounded to max entries that forgets the least recently
// touched entry first.
type lru[S any] struct {
	max   int
	order *list.List // of *lruItem[S]; front: most recently touched
	items map[string]*list.Element
}

type lruItem[S any] struct {
	key   string
	state S
}

func newLRU[S any](max int) *lru[S] {
	return &lru[S]{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (c *lru[S]) len() int { return len(c.items) }

// get returns key's state, or nil.
func (c *lru[S]) get(key string) *S {
	if e := c.items[key]; e != nil {
		return &e.Value.(*lruItem[S]).state
	}
	return nil
}

// touch returns key's state, created if needed, as the most recent entry;
// a full table forgets its least recent entry to make room.
func (c *lru[S]) touch(key string) *S {
	if e := c.items[key]; e != nil {
		c.order.MoveToFront(e)
		return &e.Value.(*lruItem[S]).state
	}
	if len(c.items) >= c.max {
		c.remove(c.order.Back().Value.(*lruItem[S]).key)
	}
	e := c.order.PushFront(&lruItem[S]{key: key})
	c.items[key] = e
	return &e.Value.(*lruItem[S]).state
}

func (c *lru[S]) remove(key string) {
	if e := c.items[key]; e != nil {
		c.order.Remove(e)
		delete(c.items, key)
	}
}

// trim forgets the least recent entries while stale says they no longer
// matter: a few per call, so memory follows the live entries without a
// sweep over the whole table.
func (c *lru[S]) trim(stale func(*S) bool) {
	for range 4 {
		e := c.order.Back()
		if e == nil || e == c.order.Front() {
			return
		}
		it := e.Value.(*lruItem[S])
		if !stale(&it.state) {
			return
		}
		c.remove(it.key)
	}
}

// failureRing counts failures over the last window in ringSlots slots of
// window/ringSlots each: constant memory whatever the rate, and a running
// total, so that the check on every login costs no loop.
type failureRing struct {
	slot   time.Duration
	counts [ringSlots]int
	head   int64 // the newest slot number seen (time / slot)
	total  int   // the sum of counts
}

const ringSlots = 64

func newFailureRing(window time.Duration) failureRing {
	return failureRing{slot: max(window/ringSlots, time.Nanosecond)}
}

func slotIndex(n int64) int64 { return (n%ringSlots + ringSlots) % ringSlots }

// advance moves the ring to now, forgetting the slots that left the
// window. A clock that steps back leaves the ring as it is.
func (r *failureRing) advance(now time.Time) int64 {
	n := now.UnixNano() / int64(r.slot)
	switch {
	case n <= r.head:
	case n-r.head >= ringSlots:
		r.counts, r.total = [ringSlots]int{}, 0
	default:
		for m := r.head + 1; m <= n; m++ {
			i := slotIndex(m)
			r.total -= r.counts[i]
			r.counts[i] = 0
		}
	}
	r.head = max(r.head, n)
	return n
}

func (r *failureRing) add(now time.Time) {
	if n := r.advance(now); r.head-n < ringSlots {
		r.counts[slotIndex(n)]++
		r.total++
	}
}

// wait returns how long until fewer than limit failures remain within the
// window, or zero.
func (r *failureRing) wait(limit int, now time.Time) time.Duration {
	r.advance(now)
	if r.total < limit {
		return 0
	}
	// Slots leave the window oldest first; wait for enough of them.
	total := r.total
	for m := r.head - ringSlots + 1; m <= r.head; m++ {
		total -= r.counts[slotIndex(m)]
		if total < limit {
			// Slot m leaves the window when slot m+ringSlots begins.
			return max(time.Unix(0, (m+ringSlots)*int64(r.slot)).Sub(now), time.Nanosecond)
		}
	}
	return r.slot
}
