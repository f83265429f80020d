package version

import "sync"

// Cache remembers what Parse returned for each (scheme, string) pair, so
// matching parses each distinct version string once however many records
// and scans name it. It is safe for concurrent use. It holds at most
// DefaultCacheEntries results and starts afresh when full, which keeps a
// long-running server's memory bounded.
type Cache struct {
	mu sync.RWMutex
	m  map[cacheKey]parsed
}

type cacheKey struct {
	scheme string
	s      string
}

type parsed struct {
	v   Version
	err error
}

// DefaultCacheEntries bounds a Cache.
const DefaultCacheEntries = 1 << 18

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{m: make(map[cacheKey]parsed)}
}

// Parse returns scheme.Parse(s), computing it once while cached.
func (c *Cache) Parse(scheme Scheme, s string) (Version, error) {
	k := cacheKey{scheme.Name(), s}
	c.mu.RLock()
	p, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return p.v, p.err
	}
	v, err := scheme.Parse(s)
	c.mu.Lock()
	if len(c.m) >= DefaultCacheEntries {
		clear(c.m)
	}
	c.m[k] = parsed{v, err}
	c.mu.Unlock()
	return v, err
}
