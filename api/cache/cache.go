// Package cache is the API's Redis cache-aside layer: JSON values loaded on a miss,
// concurrent misses for one key collapsed into one load per replica, invalidation by key
// and by namespace generation, and a cache outage never failing a request (the loader
// answers instead).
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"
)

// RequestsName is the counter of cache look-ups by result (hit, miss, error).
const RequestsName = "corpintel_api_cache_requests_total"

// Cache is a Redis cache-aside. Keys are stored as
//
//	<prefix>k:<key>                         GetOrLoad, Delete
//	<prefix>n:<namespace>:<generation>:<key> GetOrLoadIn, Bump
//	<prefix>g:<namespace>                   a namespace's generation
type Cache struct {
	rdb       redis.UniversalClient
	prefix    string
	requests  *prometheus.CounterVec
	hits      prometheus.Counter
	misses    prometheus.Counter
	errs      prometheus.Counter
	group     singleflight.Group
	log       *slog.Logger
	opTimeout time.Duration
	now       func() time.Time
	local     *local // nil without WithLocal
	localHits prometheus.Counter

	// joined, when set (tests), is called once a caller has joined a key's load.
	joined func(key string)
}

// Option configures a Cache.
type Option func(*Cache)

// WithLogger sets where cache problems are logged (default: discarded).
func WithLogger(log *slog.Logger) Option { return func(c *Cache) { c.log = log } }

// WithTimeout bounds every Redis call, so a stalled Redis costs a request at most this
// long before the loader answers instead (default 250ms).
func WithTimeout(d time.Duration) Option { return func(c *Cache) { c.opTimeout = d } }

// New creates a cache storing its keys under prefix (e.g. "corpintel:cache:") and
// registers corpintel_api_cache_requests_total on reg (required; never the global one
// in tests).
func New(rdb redis.UniversalClient, prefix string, reg prometheus.Registerer, opts ...Option) (*Cache, error) {
	if reg == nil {
		return nil, errors.New("cache: a prometheus.Registerer is required")
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: RequestsName,
		Help: "Cache look-ups by result: hit, miss (loaded), error (Redis failed; loaded without the cache).",
	}, []string{"result"})
	err := reg.Register(requests)
	if err != nil {
		return nil, fmt.Errorf("cache: register metrics: %w", err)
	}
	c := &Cache{
		rdb: rdb, prefix: prefix, requests: requests,
		hits: requests.WithLabelValues("hit"), misses: requests.WithLabelValues("miss"), errs: requests.WithLabelValues("error"),
		log: slog.New(slog.DiscardHandler), opTimeout: 250 * time.Millisecond, now: time.Now,
	}
	for _, o := range opts {
		o(c)
	}
	if c.local != nil {
		if c.localHits, err = newLocalHits(reg); err != nil {
			return nil, fmt.Errorf("cache: register metrics: %w", err)
		}
	}
	return c, nil
}

// GetOrLoad returns the value cached under key, or calls load, caches its result for ttl
// (JSON-encoded) and returns it. Concurrent misses for one key share one load within this
// replica. Load errors are returned and not cached. When Redis fails the value comes
// from load and the look-up counts as "error". Values handed to several callers are
// decoded separately, so callers may modify what they get.
//
// Delete(key) invalidates it; for data that changes use GetOrLoadIn, whose namespace
// generation also protects against a load that raced a write.
func GetOrLoad[T any](ctx context.Context, c *Cache, key string, ttl time.Duration, load func(ctx context.Context) (T, error)) (T, error) {
	v, _, err := get(ctx, c, c.keyLookup(key), ttl, load, false)
	return v, err
}

// GetOrLoadJSON is GetOrLoad for a handler that only passes the value on: it returns the
// value's JSON, on a hit exactly the bytes Redis holds, without decoding and re-encoding
// them. The bytes may be shared with concurrent callers: do not modify them.
func GetOrLoadJSON[T any](ctx context.Context, c *Cache, key string, ttl time.Duration, load func(ctx context.Context) (T, error)) ([]byte, error) {
	_, b, err := get(ctx, c, c.keyLookup(key), ttl, load, true)
	return b, err
}

// GetOrLoadIn is GetOrLoad for a key inside namespace (e.g. "companies:search"):
// Bump(namespace) invalidates every key of the namespace at once. The generation is read
// before loading (in the same round trip as the value), so a load that raced a write and
// a Bump stores its stale result under the old generation, where nobody looks any more.
func GetOrLoadIn[T any](ctx context.Context, c *Cache, namespace, key string, ttl time.Duration, load func(ctx context.Context) (T, error)) (T, error) {
	v, _, err := get(ctx, c, c.namespaceLookup(namespace, key), ttl, load, false)
	return v, err
}

// GetOrLoadJSONIn is GetOrLoadIn returning JSON, like GetOrLoadJSON.
func GetOrLoadJSONIn[T any](ctx context.Context, c *Cache, namespace, key string, ttl time.Duration, load func(ctx context.Context) (T, error)) ([]byte, error) {
	_, b, err := get(ctx, c, c.namespaceLookup(namespace, key), ttl, load, true)
	return b, err
}

// Delete removes keys stored with GetOrLoad.
func (c *Cache) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	full := make([]string, len(keys))
	args := make([]any, 1, len(keys)+1)
	args[0] = c.channel()
	for i, k := range keys {
		full[i] = c.prefix + "k:" + k
		args = append(args, localKey("", k))
		c.local.invalidate(localKey("", k))
	}
	ctx, cancel := context.WithTimeout(ctx, c.opTimeout)
	defer cancel()
	if err := publishScript.Run(ctx, c.rdb, full, args...).Err(); err != nil {
		return fmt.Errorf("cache: delete %v: %w", keys, err)
	}
	return nil
}

// Bump invalidates every key of namespace in O(1) by moving it to a new generation;
// entries of old generations expire with their TTL.
func (c *Cache) Bump(ctx context.Context, namespace string) error {
	c.local.invalidate("n:" + namespace)
	ctx, cancel := context.WithTimeout(ctx, c.opTimeout)
	defer cancel()
	if err := bumpScript.Run(ctx, c.rdb, []string{c.genKey(namespace)}, c.now().UnixNano(), c.channel(), "n:"+namespace).Err(); err != nil {
		return fmt.Errorf("cache: bump %s: %w", namespace, err)
	}
	return nil
}

func (c *Cache) genKey(namespace string) string { return c.prefix + "g:" + namespace }

// A generation counter that is missing (never set, or evicted: Redis runs allkeys-lru)
// starts from the current time in nanoseconds instead of 0, so a counter recreated after
// an eviction never returns to a generation whose entries may still be cached.
//
// getInScript reads (or starts) the generation and the value stored under it in one
// round trip. It names the value's key in ARGV, not KEYS, because the key depends on the
// generation it reads; that is fine on the single Redis the stack runs (not on a cluster).
var (
	getInScript = redis.NewScript(`
local g = redis.call('GET', KEYS[1])
if not g then
  g = ARGV[1]
  redis.call('SET', KEYS[1], g)
end
return {g, redis.call('GET', ARGV[2] .. g .. ARGV[3])}`)
	bumpScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], ARGV[1])
end
local g = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return g`)
)

// lookup is where get looks: the local layer's key and namespace, and find, which looks
// in Redis and returns the key a loaded value is stored under (or, with err, the key
// concurrent loads share) and the stored bytes (nil when absent).
type lookup struct {
	local, namespace string
	find             func(ctx context.Context) (key string, stored []byte, err error)
}

func (c *Cache) keyLookup(key string) lookup {
	full := c.prefix + "k:" + key
	return lookup{local: localKey("", key), find: func(ctx context.Context) (string, []byte, error) {
		ctx, cancel := context.WithTimeout(ctx, c.opTimeout)
		defer cancel()
		b, err := c.rdb.Get(ctx, full).Bytes()
		if errors.Is(err, redis.Nil) {
			return full, nil, nil
		}
		return full, b, err
	}}
}

func (c *Cache) namespaceLookup(namespace, key string) lookup {
	return lookup{local: localKey(namespace, key), namespace: namespace, find: func(ctx context.Context) (string, []byte, error) {
		ctx, cancel := context.WithTimeout(ctx, c.opTimeout)
		defer cancel()
		base := c.prefix + "n:" + namespace + ":"
		v, err := getInScript.Run(ctx, c.rdb, []string{c.genKey(namespace)}, c.now().UnixNano(), base, ":"+key).Slice()
		if err != nil {
			return "nogen:" + namespace + ":" + key, nil, err
		}
		if len(v) != 2 {
			return "nogen:" + namespace + ":" + key, nil, fmt.Errorf("generation of %s: unexpected reply %v", namespace, v)
		}
		var gen string
		switch g := v[0].(type) {
		case string:
			gen = g
		case int64:
			gen = strconv.FormatInt(g, 10)
		default:
			return "nogen:" + namespace + ":" + key, nil, fmt.Errorf("generation of %s: unexpected reply %T", namespace, v[0])
		}
		full := base + gen + ":" + key
		if s, ok := v[1].(string); ok {
			return full, []byte(s), nil
		}
		return full, nil, nil
	}}
}

// get is the cache-aside: look up, check the stored value's shape, load on a miss. With
// raw it returns the JSON and leaves the value zero; otherwise the value and no JSON.
func get[T any](ctx context.Context, c *Cache, at lookup, ttl time.Duration, load func(ctx context.Context) (T, error), raw bool) (T, []byte, error) {
	var zero T
	shape := shapeOf[T]()
	if body, ok := c.local.get(at.local, shape, c.now()); ok {
		if v, b, ok := hit[T](c, body, raw); ok {
			c.localHits.Inc()
			return v, b, nil
		}
	}
	gen := c.local.generation()
	full, stored, err := at.find(ctx)
	if err != nil {
		c.errs.Inc()
		c.log.WarnContext(ctx, "cache unavailable; loading without it", "key", full, "err", err)
		l, shared, err := shareLoad(ctx, c, full, shape, load, nil)
		if err != nil {
			return zero, nil, err
		}
		return l.answer(full, shared, raw)
	}
	if body, ok := unwrap(stored, shape); ok {
		if v, b, ok := hit[T](c, body, raw); ok {
			c.local.put(at.local, at.namespace, shape, body, ttl, gen, c.now())
			return v, b, nil
		}
	}
	// Absent, or a value of another shape (written by another version): load and
	// overwrite it.
	c.misses.Inc()
	l, shared, err := shareLoad(ctx, c, full, shape, load, func(lctx context.Context, b []byte) {
		sctx, cancel := context.WithTimeout(lctx, c.opTimeout)
		defer cancel()
		if err := c.rdb.Set(sctx, full, b, ttl).Err(); err != nil {
			c.log.WarnContext(lctx, "cache store failed", "key", full, "err", err)
		}
	})
	if err != nil {
		return zero, nil, err
	}
	c.local.put(at.local, at.namespace, shape, l.b, ttl, gen, c.now())
	return l.answer(full, shared, raw)
}

// hit returns a stored value's JSON (raw) or its decoded value, counting the hit; ok is
// false when the JSON does not decode.
func hit[T any](c *Cache, body []byte, raw bool) (v T, b []byte, ok bool) {
	if raw {
		c.hits.Inc()
		return v, body, true
	}
	if json.Unmarshal(body, &v) != nil {
		return v, nil, false
	}
	c.hits.Inc()
	return v, nil, true
}

type loaded[T any] struct {
	v T
	b []byte // JSON of v, for callers that share another caller's load
}

// answer is what get returns from a load: the JSON (raw), the loaded value to the caller
// that ran the load, and a fresh decode to callers that shared it (so callers may
// modify what they get).
func (l loaded[T]) answer(key string, shared, raw bool) (T, []byte, error) {
	var v T
	switch {
	case raw:
		return v, l.b, nil
	case !shared:
		return l.v, nil, nil
	}
	if err := json.Unmarshal(l.b, &v); err != nil {
		return v, nil, fmt.Errorf("cache: decode %s: %w", key, err)
	}
	return v, nil, nil
}

// shareLoad runs load once per key among concurrent callers of this replica and hands
// the stored form of its result (shape header and JSON) to store (when not nil). The
// load runs detached from the first caller's cancellation (others may still wait for
// it); each caller stops waiting when its own ctx ends.
func shareLoad[T any](ctx context.Context, c *Cache, key, shape string, load func(ctx context.Context) (T, error), store func(ctx context.Context, b []byte)) (l loaded[T], shared bool, err error) {
	ch := c.group.DoChan(key, func() (any, error) {
		lctx := context.WithoutCancel(ctx)
		v, err := load(lctx)
		if err != nil {
			return nil, err
		}
		wrapped, err := wrap(v, shape)
		if err != nil {
			return nil, fmt.Errorf("cache: encode %s: %w", key, err)
		}
		if store != nil {
			store(lctx, wrapped)
		}
		return loaded[T]{v: v, b: wrapped[len(shape)+1:]}, nil
	})
	if c.joined != nil {
		c.joined(key)
	}
	select {
	case <-ctx.Done():
		return l, false, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return l, false, r.Err
		}
		return r.Val.(loaded[T]), r.Shared, nil
	}
}

// NewClient returns a Redis client tuned for a cache in front of a request path: short
// timeouts and one retry, so an outage costs milliseconds, not seconds. It does not
// connect; the API can start while Redis is down.
func NewClient(addr, password string) *redis.Client {
	return redis.NewClient(clientOptions(addr, password))
}

func clientOptions(addr, password string) *redis.Options {
	return &redis.Options{
		Addr:        addr,
		Password:    password,
		DialTimeout: time.Second,
		// go-redis retries a refused dial 5 times, 100ms apart, by default: 0.5s per
		// command while Redis is down.
		DialerRetries:      1,
		DialerRetryTimeout: 10 * time.Millisecond,
		ReadTimeout:        500 * time.Millisecond,
		WriteTimeout:       500 * time.Millisecond,
		MaxRetries:         1,
		MinRetryBackoff:    5 * time.Millisecond,
		MaxRetryBackoff:    50 * time.Millisecond,
	}
}

// Connect returns a client (see NewClient) after checking Redis answers.
func Connect(ctx context.Context, addr, password string) (*redis.Client, error) {
	c := NewClient(addr, password)
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	return c, nil
}
