package registry

import (
	"container/list"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/meta"
)

// manifestCache keeps hot manifests and tag resolutions in memory, bounded
// by bytes, least recently used out first.
//
// It stays correct under concurrent writes with a generation counter: a
// reader notes the generation before reading the database and stores what
// it read only if no write has invalidated anything since. Writers
// invalidate after their transaction commits. So a value read before a
// commit is either stored before the invalidation (and removed by it) or
// refused because the generation moved.
type manifestCache struct {
	// off keeps the cache empty while changes made elsewhere may go
	// unheard (reset).
	off      atomic.Bool
	mu       sync.Mutex
	gen      uint64
	maxBytes int64
	bytes    int64
	entries  map[cacheKey]*list.Element
	lru      list.List // of *cacheEntry, most recent at the front
}

type cacheKey struct {
	repo string
	ref  string // a tag, or a digest's string
	tag  bool
}

type cacheEntry struct {
	key      cacheKey
	manifest *servedManifest // for digest keys
	digest   digest.Digest   // for tag keys
	size     int64
}

// servedManifest is a manifest with its response header values prepared
// once, so that serving it from the cache allocates nothing for headers.
// The slices are shared by every response and must never be modified.
type servedManifest struct {
	*meta.Manifest
	contentType   []string
	contentLength []string
	digest        []string
	etag          []string
}

func newServedManifest(m *meta.Manifest) *servedManifest {
	return &servedManifest{
		Manifest:      m,
		contentType:   []string{m.MediaType},
		contentLength: []string{strconv.Itoa(len(m.Content))},
		digest:        []string{string(m.Digest)},
		etag:          []string{`"` + string(m.Digest) + `"`},
	}
}

// entryOverhead approximates the bookkeeping bytes of one entry.
const entryOverhead = 160

func newManifestCache(maxBytes int64) *manifestCache {
	return &manifestCache{maxBytes: maxBytes, entries: map[cacheKey]*list.Element{}}
}

func (c *manifestCache) enabled() bool { return c != nil && c.maxBytes > 0 && !c.off.Load() }

// reset forgets everything and fails every fill that began before it;
// with off set the cache stays empty until the next reset without it.
func (c *manifestCache) reset(off bool) {
	if c == nil || c.maxBytes <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off.Store(off)
	c.gen++
	clear(c.entries)
	c.lru.Init()
	c.bytes = 0
}

// tag returns a cached tag resolution, or the generation to pass to putTag.
func (c *manifestCache) tag(repo, tag string) (digest.Digest, uint64, bool) {
	if !c.enabled() {
		return "", 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[cacheKey{repo: repo, ref: tag, tag: true}]; ok {
		c.lru.MoveToFront(el)
		return el.Value.(*cacheEntry).digest, c.gen, true
	}
	return "", c.gen, false
}

// manifest returns a cached manifest, or the generation to pass to
// putManifest.
func (c *manifestCache) manifest(repo string, d digest.Digest) (*servedManifest, uint64, bool) {
	if !c.enabled() {
		return nil, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[cacheKey{repo: repo, ref: string(d)}]; ok {
		c.lru.MoveToFront(el)
		return el.Value.(*cacheEntry).manifest, c.gen, true
	}
	return nil, c.gen, false
}

func (c *manifestCache) putTag(repo, tag string, d digest.Digest, gen uint64) {
	c.put(&cacheEntry{key: cacheKey{repo: repo, ref: tag, tag: true}, digest: d,
		size: int64(len(repo)+len(tag)+len(d)) + entryOverhead}, gen)
}

func (c *manifestCache) putManifest(repo string, m *servedManifest, gen uint64) {
	c.put(&cacheEntry{key: cacheKey{repo: repo, ref: string(m.Digest)}, manifest: m,
		size: int64(len(repo)+len(m.Content)+len(m.Digest)+len(m.MediaType)) + entryOverhead}, gen)
}

func (c *manifestCache) put(e *cacheEntry, gen uint64) {
	if !c.enabled() || e.size > c.maxBytes/8 {
		return // one huge manifest must not flush everything else
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return // a write happened since the caller read the database
	}
	if el, ok := c.entries[e.key]; ok {
		c.remove(el)
	}
	c.entries[e.key] = c.lru.PushFront(e)
	c.bytes += e.size
	for c.bytes > c.maxBytes {
		c.remove(c.lru.Back())
	}
}

func (c *manifestCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.entries, e.key)
	c.bytes -= e.size
}

// invalidate forgets the given tags and manifests of repo and fails every
// fill that began before it. Call it after the change is committed.
func (c *manifestCache) invalidate(repo string, tags []string, digests ...digest.Digest) {
	if !c.enabled() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, t := range tags {
		if el, ok := c.entries[cacheKey{repo: repo, ref: t, tag: true}]; ok {
			c.remove(el)
		}
	}
	for _, d := range digests {
		if el, ok := c.entries[cacheKey{repo: repo, ref: string(d)}]; ok {
			c.remove(el)
		}
	}
}
