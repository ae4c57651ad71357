package cache

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corpintel/corpintel/internal/follow"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// The local layer keeps hot values' JSON in the replica's memory, in front of Redis, so
// that a hit costs a map look-up instead of a Redis round trip. Every Delete and Bump
// publishes what it invalidated on a Redis channel (in the same round trip), and every
// replica that follows the channel (Follow) drops those entries. The layer answers only
// while its replica follows the channel; when the subscription breaks it is emptied and
// switched off, and when the subscription is back it starts empty, since invalidations
// published meanwhile were lost. The replica that writes drops its own entries at once,
// before it answers; other replicas drop theirs when the message arrives (normally well
// under a millisecond later). TTLs stay as Redis has them, capped at LocalMaxTTL.

// LocalMaxTTL caps how long the local layer keeps a value, whatever its TTL in Redis.
const LocalMaxTTL = 30 * time.Second

// localMaxValue is the largest value the local layer keeps.
const localMaxValue = 256 << 10

// followPing is how long the subscription may stay silent before it is pinged; a ping
// unanswered for another followPing switches the local layer off.
const followPing = 5 * time.Second

// WithLocal adds a local layer of at most maxBytes (values' JSON) to the cache. It
// answers once Follow runs and has subscribed.
func WithLocal(maxBytes int64) Option {
	return func(c *Cache) {
		if maxBytes > 0 {
			c.local = &local{maxBytes: maxBytes, entries: map[string]*localEntry{}, byNS: map[string]map[string]struct{}{}}
		}
	}
}

type local struct {
	live     atomic.Bool // following invalidations: entries may be served
	mu       sync.RWMutex
	entries  map[string]*localEntry
	byNS     map[string]map[string]struct{} // namespace → its entries' keys
	bytes    int64
	maxBytes int64
	gen      uint64 // bumped by every invalidation
}

type localEntry struct {
	b     []byte
	exp   time.Time
	ns    string
	shape string
}

// localKey is the local layer's key of a plain key ("k:") or a namespaced one ("n:").
func localKey(namespace, key string) string {
	if namespace == "" {
		return "k:" + key
	}
	return "n:" + namespace + ":" + key
}

func (l *local) get(key, shape string, now time.Time) ([]byte, bool) {
	if l == nil || !l.live.Load() {
		return nil, false
	}
	l.mu.RLock()
	e, ok := l.entries[key]
	l.mu.RUnlock()
	if !ok || e.shape != shape || !now.Before(e.exp) {
		return nil, false
	}
	return e.b, true
}

// generation returns the invalidation count a later put must still see.
func (l *local) generation() uint64 {
	if l == nil {
		return 0
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.gen
}

// put keeps b under key unless an invalidation happened since gen was read (the value
// may predate it) or the layer is off.
func (l *local) put(key, namespace, shape string, b []byte, ttl time.Duration, gen uint64, now time.Time) {
	if l == nil || !l.live.Load() || len(b) > localMaxValue || ttl <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen != gen {
		return
	}
	l.removeLocked(key)
	for k := range l.entries { // random order: an arbitrary victim
		if l.bytes+int64(len(b)) <= l.maxBytes {
			break
		}
		l.removeLocked(k)
	}
	l.entries[key] = &localEntry{b: b, exp: now.Add(min(ttl, LocalMaxTTL)), ns: namespace, shape: shape}
	l.bytes += int64(len(b))
	if namespace != "" {
		keys := l.byNS[namespace]
		if keys == nil {
			keys = map[string]struct{}{}
			l.byNS[namespace] = keys
		}
		keys[key] = struct{}{}
	}
}

func (l *local) removeLocked(key string) {
	e, ok := l.entries[key]
	if !ok {
		return
	}
	delete(l.entries, key)
	l.bytes -= int64(len(e.b))
	if e.ns != "" {
		if keys := l.byNS[e.ns]; keys != nil {
			delete(keys, key)
			if len(keys) == 0 {
				delete(l.byNS, e.ns)
			}
		}
	}
}

// invalidate applies one published message: "k:<key>" or "n:<namespace>".
func (l *local) invalidate(msg string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gen++
	if ns, ok := strings.CutPrefix(msg, "n:"); ok {
		for key := range l.byNS[ns] {
			l.removeLocked(key)
		}
		return
	}
	l.removeLocked(msg)
}

// reset empties the layer and switches it on or off.
func (l *local) reset(live bool) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gen++
	clear(l.entries)
	clear(l.byNS)
	l.bytes = 0
	l.live.Store(live)
}

func (l *local) size() (entries int, bytes int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.entries), l.bytes
}

// channel is where invalidations are published.
func (c *Cache) channel() string { return c.prefix + "invalidate" }

// Local reports whether the local layer is serving (it exists and follows invalidations).
func (c *Cache) Local() bool { return c.local != nil && c.local.live.Load() }

// Follow subscribes to the invalidation channel until ctx ends, keeping the local layer
// on while subscribed (see WithLocal). Without a local layer it returns at once.
func (c *Cache) Follow(ctx context.Context) {
	if c.local == nil {
		return
	}
	defer c.local.reset(false)
	follow.Loop(ctx, 5*time.Second, func(ctx context.Context) (bool, error) {
		subscribed := c.followOnce(ctx)
		c.local.reset(false)
		return subscribed, nil
	}, func(_ error, retryIn time.Duration) {
		c.log.WarnContext(ctx, "cache invalidations interrupted; local cache off until resubscribed", "retry_in", retryIn)
	})
}

// followOnce runs one subscription until it fails; it reports whether it subscribed.
func (c *Cache) followOnce(ctx context.Context) bool {
	ps := c.rdb.Subscribe(ctx)
	defer func() { _ = ps.Close() }()
	// A blocked receive does not watch ctx; closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	if err := ps.Subscribe(ctx, c.channel()); err != nil {
		return false
	}
	subscribed, pinged := false, false
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, followPing)
		var ne net.Error
		switch {
		case err == nil:
		case errors.As(err, &ne) && ne.Timeout() && !pinged:
			if err := ps.Ping(ctx); err != nil {
				return subscribed
			}
			pinged = true
			continue
		default:
			// A closed or broken subscription (go-redis reconnects on the next
			// receive, but what was published meanwhile is lost), or an unanswered ping.
			return subscribed
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				subscribed = true
				c.local.reset(true)
			}
		case *redis.Message:
			c.local.invalidate(m.Payload)
		}
	}
	return subscribed
}

// publishScript deletes KEYS (none for a Bump) and publishes ARGV[2..] on ARGV[1].
var publishScript = redis.NewScript(`
if #KEYS > 0 then
  redis.call('DEL', unpack(KEYS))
end
for i = 2, #ARGV do
  redis.call('PUBLISH', ARGV[1], ARGV[i])
end
return 0`)

// newLocalHits registers the local layer's hit counter.
func newLocalHits(reg prometheus.Registerer) (prometheus.Counter, error) {
	hits := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "corpintel_api_cache_local_hits_total",
		Help: "Cache hits answered by the replica's local layer (also counted as hits in " + RequestsName + ").",
	})
	return hits, reg.Register(hits)
}
