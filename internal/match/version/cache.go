package version

import (
	"sync"
	"sync/atomic"
)

// Cache remembers what Parse returned for each (scheme, string) pair, so
// matching parses each distinct version string once however many records
// and scans name it. It is safe for concurrent use. It holds at most
// maxEntries results and starts afresh when full, which keeps a
// long-running server's memory bounded.
type Cache struct {
	m          sync.Map // cacheKey → parsed
	n          atomic.Int64
	maxEntries int64
}

type cacheKey struct {
	scheme string
	s      string
}

type parsed struct {
	v   Version
	err error
}

// DefaultCacheEntries bounds a Cache made by NewCache.
const DefaultCacheEntries = 1 << 18

// NewCache returns an empty cache of DefaultCacheEntries entries.
func NewCache() *Cache {
	return &Cache{maxEntries: DefaultCacheEntries}
}

// Parse returns scheme.Parse(s), computing it once while cached.
func (c *Cache) Parse(scheme Scheme, s string) (Version, error) {
	k := cacheKey{scheme.Name(), s}
	if p, ok := c.m.Load(k); ok {
		p := p.(parsed)
		return p.v, p.err
	}
	v, err := scheme.Parse(s)
	if c.n.Add(1) > c.maxEntries {
		c.m.Clear()
		c.n.Store(1)
	}
	c.m.Store(k, parsed{v, err})
	return v, err
}
