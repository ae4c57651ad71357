package edge

import (
	"math"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit configures the per-client token buckets of a public listener (the seed's
// nginx limit: 10 requests per second per IP).
type RateLimit struct {
	// Rate is the sustained requests per second of one client (0: no limit).
	Rate float64
	// Burst is how many requests a client may make at once.
	Burst int
	// Routes override Rate and Burst for paths with a prefix (the longest wins), each
	// with buckets of its own.
	Routes []RouteLimit
	// Allow lists the clients that are never limited (monitoring, a benchmark — which
	// then says so).
	Allow Prefixes
	// MaxClients bounds the clients tracked at once; past it, new clients share one
	// bucket, so an address-spraying flood cannot grow memory without bound.
	MaxClients int
	// Idle is how long a client's bucket is kept without requests.
	Idle time.Duration
}

// RouteLimit is a rate limit for one path prefix.
type RouteLimit struct {
	Prefix string
	Rate   float64
	Burst  int
}

// limiter holds the buckets.
type limiter struct {
	cfg    RateLimit
	now    func() time.Time
	mu     sync.Mutex
	groups map[string]*bucketGroup // "" is the default group
}

type bucketGroup struct {
	limit    rate.Limit
	burst    int
	clients  map[netip.Prefix]*clientBucket
	overflow *rate.Limiter
}

type clientBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(cfg RateLimit, now func() time.Time) *limiter {
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 50_000
	}
	if cfg.Idle <= 0 {
		cfg.Idle = 3 * time.Minute
	}
	if cfg.Burst <= 0 {
		cfg.Burst = max(1, int(math.Ceil(cfg.Rate)))
	}
	if now == nil {
		now = time.Now
	}
	l := &limiter{cfg: cfg, now: now, groups: map[string]*bucketGroup{}}
	l.groups[""] = newGroup(cfg.Rate, cfg.Burst)
	for _, r := range cfg.Routes {
		l.groups[r.Prefix] = newGroup(r.Rate, max(r.Burst, 1))
	}
	return l
}

func newGroup(r float64, burst int) *bucketGroup {
	return &bucketGroup{limit: rate.Limit(r), burst: burst, clients: map[netip.Prefix]*clientBucket{},
		overflow: rate.NewLimiter(rate.Limit(r), burst)}
}

// clientPrefix groups IPv6 clients by /64 (one host usually owns a whole /64) and keeps
// IPv4 clients apart.
func clientPrefix(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// allow takes a token for a request of client to path; when there is none it returns
// how long until there is.
func (l *limiter) allow(client netip.Addr, path string) (ok bool, retryAfter time.Duration) {
	if l.cfg.Rate <= 0 && len(l.cfg.Routes) == 0 || l.cfg.Allow.Contains(client) {
		return true, 0
	}
	group := ""
	for _, r := range l.cfg.Routes {
		if strings.HasPrefix(path, r.Prefix) && len(r.Prefix) > len(group) {
			group = r.Prefix
		}
	}
	now := l.now()
	l.mu.Lock()
	g := l.groups[group]
	if g.limit <= 0 {
		l.mu.Unlock()
		return true, 0
	}
	key := clientPrefix(client)
	var lim *rate.Limiter
	if b, ok := g.clients[key]; ok {
		b.seen = now
		lim = b.lim
	} else if l.tracked() < l.cfg.MaxClients {
		lim = rate.NewLimiter(g.limit, g.burst)
		g.clients[key] = &clientBucket{lim: lim, seen: now}
	} else {
		lim = g.overflow
	}
	l.mu.Unlock()
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// tracked counts the buckets of all groups (l.mu held).
func (l *limiter) tracked() int {
	n := 0
	for _, g := range l.groups {
		n += len(g.clients)
	}
	return n
}

// clients is how many clients are tracked now.
func (l *limiter) clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tracked()
}

// sweep forgets the clients idle for longer than Idle; a full bucket after that long
// would be full again anyway.
func (l *limiter) sweep() {
	cut := l.now().Add(-l.cfg.Idle)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, g := range l.groups {
		for k, b := range g.clients {
			if b.seen.Before(cut) {
				delete(g.clients, k)
			}
		}
	}
}

// retryAfterSeconds rounds a wait up to whole seconds (Retry-After has no fractions).
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
