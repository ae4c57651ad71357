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
	if err := reg.Register(requests); err != nil {
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
	return getOrLoad(ctx, c, c.prefix+"k:"+key, ttl, load)
}

// GetOrLoadIn is GetOrLoad for a key inside namespace (e.g. "companies:search"):
// Bump(namespace) invalidates every key of the namespace at once. The generation is read
// before loading, so a load that raced a write and a Bump stores its stale result under
// the old generation, where nobody looks any more.
func GetOrLoadIn[T any](ctx context.Context, c *Cache, namespace, key string, ttl time.Duration, load func(ctx context.Context) (T, error)) (T, error) {
	gen, err := c.generation(ctx, namespace)
	if err != nil {
		c.errs.Inc()
		c.log.WarnContext(ctx, "cache unavailable; loading without it", "namespace", namespace, "err", err)
		return shareLoad(ctx, c, "nogen:"+namespace+":"+key, load, nil)
	}
	return getOrLoad(ctx, c, c.prefix+"n:"+namespace+":"+gen+":"+key, ttl, load)
}

// Delete removes keys stored with GetOrLoad.
func (c *Cache) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = c.prefix + "k:" + k
	}
	ctx, cancel := context.WithTimeout(ctx, c.opTimeout)
	defer cancel()
	if err := c.rdb.Del(ctx, full...).Err(); err != nil {
		return fmt.Errorf("cache: delete %v: %w", keys, err)
	}
	return nil
}

// Bump invalidates every key of namespace in O(1) by moving it to a new generation;
// entries of old generations expire with their TTL.
func (c *Cache) Bump(ctx context.Context, namespace string) error {
	ctx, cancel := context.WithTimeout(ctx, c.opTimeout)
	defer cancel()
	if err := bumpScript.Run(ctx, c.rdb, []string{c.genKey(namespace)}, c.now().UnixNano()).Err(); err != nil {
		return fmt.Errorf("cache: bump %s: %w", namespace, err)
	}
	return nil
}

func (c *Cache) genKey(namespace string) string { return c.prefix + "g:" + namespace }

// A generation counter that is missing (never set, or evicted: Redis runs allkeys-lru)
// starts from the current time in nanoseconds instead of 0, so a counter recreated after
// an eviction never returns to a generation whose entries may still be cached.
var (
	generationScript = redis.NewScript(`
local g = redis.call('GET', KEYS[1])
if not g then
  g = ARGV[1]
  redis.call('SET', KEYS[1], g)
end
return g`)
	bumpScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], ARGV[1])
end
return redis.call('INCR', KEYS[1])`)
)

func (c *Cache) generation(ctx context.Context, namespace string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opTimeout)
	defer cancel()
	v, err := generationScript.Run(ctx, c.rdb, []string{c.genKey(namespace)}, c.now().UnixNano()).Result()
	if err != nil {
		return "", err
	}
	switch g := v.(type) {
	case string:
		return g, nil
	case int64:
		return strconv.FormatInt(g, 10), nil
	default:
		return "", fmt.Errorf("generation of %s: unexpected reply %T", namespace, v)
	}
}

func getOrLoad[T any](ctx context.Context, c *Cache, fullKey string, ttl time.Duration, load func(ctx context.Context) (T, error)) (T, error) {
	gctx, cancel := context.WithTimeout(ctx, c.opTimeout)
	b, err := c.rdb.Get(gctx, fullKey).Bytes()
	cancel()
	switch {
	case err == nil:
		var v T
		if uerr := json.Unmarshal(b, &v); uerr == nil {
			c.hits.Inc()
			return v, nil
		}
		// A value of an older shape: reload and overwrite it.
		c.misses.Inc()
	case errors.Is(err, redis.Nil):
		c.misses.Inc()
	default:
		c.errs.Inc()
		c.log.WarnContext(ctx, "cache unavailable; loading without it", "key", fullKey, "err", err)
		return shareLoad(ctx, c, fullKey, load, nil)
	}
	return shareLoad(ctx, c, fullKey, load, func(lctx context.Context, b []byte) {
		sctx, cancel := context.WithTimeout(lctx, c.opTimeout)
		defer cancel()
		if err := c.rdb.Set(sctx, fullKey, b, ttl).Err(); err != nil {
			c.log.WarnContext(lctx, "cache store failed", "key", fullKey, "err", err)
		}
	})
}

type loaded[T any] struct {
	v T
	b []byte // JSON of v, for callers that share another caller's load
}

// shareLoad runs load once per key among concurrent callers of this replica and hands
// the JSON of its result to store (when not nil). The load runs detached from the first
// caller's cancellation (others may still wait for it); each caller stops waiting when
// its own ctx ends.
func shareLoad[T any](ctx context.Context, c *Cache, key string, load func(ctx context.Context) (T, error), store func(ctx context.Context, b []byte)) (T, error) {
	ch := c.group.DoChan(key, func() (any, error) {
		lctx := context.WithoutCancel(ctx)
		v, err := load(lctx)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("cache: encode %s: %w", key, err)
		}
		if store != nil {
			store(lctx, b)
		}
		return loaded[T]{v: v, b: b}, nil
	})
	if c.joined != nil {
		c.joined(key)
	}
	var zero T
	select {
	case <-ctx.Done():
		return zero, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return zero, r.Err
		}
		l := r.Val.(loaded[T])
		if !r.Shared {
			return l.v, nil
		}
		var v T
		if err := json.Unmarshal(l.b, &v); err != nil {
			return zero, fmt.Errorf("cache: decode %s: %w", key, err)
		}
		return v, nil
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
