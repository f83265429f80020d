package version

// Cache remembers what Parse returned for each (scheme, string) pair, so a
// matching pass parses each distinct version string once however many
// records name it. A Cache is not safe for concurrent use: give each
// goroutine its own.
type Cache struct {
	m map[cacheKey]parsed
}

type cacheKey struct {
	scheme string
	s      string
}

type parsed struct {
	v   Version
	err error
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{m: make(map[cacheKey]parsed)}
}

// Parse returns scheme.Parse(s), computing it at most once.
func (c *Cache) Parse(scheme Scheme, s string) (Version, error) {
	k := cacheKey{scheme.Name(), s}
	if p, ok := c.m[k]; ok {
		return p.v, p.err
	}
	v, err := scheme.Parse(s)
	c.m[k] = parsed{v, err}
	return v, err
}
