package companies

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cache is cache-aside over Redis for JSON values: Load returns the cached value of key
// or calls load and stores its result for ttl. Namespaces carry a generation counter;
// Bump makes every key built from the previous generation unreachable (they expire by
// TTL), which is how list and search results are invalidated on a write. A Redis
// failure is logged and degrades to loading from the database.
type Cache struct {
	rdb    redis.UniversalClient
	prefix string
	log    *slog.Logger
}

// NewCache returns a cache on rdb; prefix isolates its keys (tests use unique ones).
// A nil rdb disables caching.
func NewCache(rdb redis.UniversalClient, prefix string, log *slog.Logger) *Cache {
	return &Cache{rdb: rdb, prefix: prefix, log: log}
}

// Load fills dst (a pointer) from the cache, or from load on a miss. hit reports which.
func (c *Cache) Load(ctx context.Context, key string, ttl time.Duration, dst any, load func(context.Context) (any, error)) (hit bool, err error) {
	if c != nil && c.rdb != nil {
		b, err := c.rdb.Get(ctx, c.prefix+key).Bytes()
		switch {
		case err == nil:
			if json.Unmarshal(b, dst) == nil {
				return true, nil
			}
		case !errors.Is(err, redis.Nil):
			c.log.WarnContext(ctx, "cache read failed; loading from the database", "key", key, "err", err)
		}
	}
	v, err := load(ctx)
	if err != nil {
		return false, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("cache %s: encode: %w", key, err)
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return false, fmt.Errorf("cache %s: decode: %w", key, err)
	}
	if c != nil && c.rdb != nil {
		if err := c.rdb.Set(ctx, c.prefix+key, b, ttl).Err(); err != nil {
			c.log.WarnContext(ctx, "cache write failed", "key", key, "err", err)
		}
	}
	return false, nil
}

// Delete removes keys.
func (c *Cache) Delete(ctx context.Context, keys ...string) {
	if c == nil || c.rdb == nil || len(keys) == 0 {
		return
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = c.prefix + k
	}
	if err := c.rdb.Del(ctx, full...).Err(); err != nil {
		c.log.WarnContext(ctx, "cache invalidation failed", "keys", keys, "err", err)
	}
}

// LoadVersioned is Load for keys of a namespace with a generation: key is looked up
// within the namespace's current generation, and Bump(ns) invalidates all of them. When
// the generation cannot be read the value is loaded without caching.
func (c *Cache) LoadVersioned(ctx context.Context, ns, key string, ttl time.Duration, dst any, load func(context.Context) (any, error)) (bool, error) {
	gen, ok := c.generation(ctx, ns)
	if !ok {
		return (*Cache)(nil).Load(ctx, key, ttl, dst, load)
	}
	return c.Load(ctx, ns+":g"+gen+":"+key, ttl, dst, load)
}

func (c *Cache) generation(ctx context.Context, ns string) (string, bool) {
	if c == nil || c.rdb == nil {
		return "", false
	}
	n, err := c.rdb.Get(ctx, c.prefix+"gen:"+ns).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		c.log.WarnContext(ctx, "cache generation read failed", "ns", ns, "err", err)
		return "", false
	}
	return strconv.FormatInt(n, 10), true
}

// Bump advances the generation of ns.
func (c *Cache) Bump(ctx context.Context, ns string) {
	if c == nil || c.rdb == nil {
		return
	}
	if err := c.rdb.Incr(ctx, c.prefix+"gen:"+ns).Err(); err != nil {
		c.log.WarnContext(ctx, "cache generation bump failed", "ns", ns, "err", err)
	}
}
