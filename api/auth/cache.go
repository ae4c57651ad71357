package auth

import (
	"sync"
	"time"

	"github.com/corpintel/corpintel/api/web"
)

// tokenCache holds verified access tokens until they expire, so that a repeated token
// costs a map lookup instead of a signature check and a database query. Revocations
// evict entries (see Service.handle); every eviction bumps gen, and a verification that
// started before an eviction does not insert its result (it may predate the revocation).
type tokenCache struct {
	mu      sync.RWMutex
	max     int
	entries map[string]*cacheEntry
	gen     uint64
}

type cacheEntry struct {
	p   *web.Principal
	sid string
	exp time.Time
}

func newTokenCache(max int) *tokenCache {
	if max <= 0 {
		max = 100_000
	}
	return &tokenCache{max: max, entries: make(map[string]*cacheEntry)}
}

func (c *tokenCache) get(token string, now time.Time) (*web.Principal, bool) {
	c.mu.RLock()
	e, ok := c.entries[token]
	c.mu.RUnlock()
	if !ok || !now.Before(e.exp) {
		return nil, false
	}
	return e.p, true
}

func (c *tokenCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put stores e unless the cache changed generation since gen was read.
func (c *tokenCache) put(token string, e *cacheEntry, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.entries) >= c.max {
		for k, v := range c.entries {
			if !now.Before(v.exp) {
				delete(c.entries, k)
			}
		}
		// Still full: drop an arbitrary tenth (map order is random).
		for k := range c.entries {
			if len(c.entries) < c.max-c.max/10 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[token] = e
}

func (c *tokenCache) evict(match func(*cacheEntry) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k, v := range c.entries {
		if match(v) {
			delete(c.entries, k)
		}
	}
}

func (c *tokenCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
}

func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
