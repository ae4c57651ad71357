package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/corpintel/corpintel/supervisor/alerts"
	"github.com/corpintel/corpintel/supervisor/reconcile"
)

// The stateful services, each asked over the stack network by the supervisor itself:
// up is its ready probe (the same question as the health gate: PostgreSQL's startup
// message, Redis PING, MinIO's liveness), the rest comes from a read-only client.
var (
	famServiceUp = gauge(alerts.MetricServiceUp, "1 when the service answered the supervisor's own probe, else 0.", "service")

	famPGConns       = gauge("corpintel_postgres_connections", "Client connections to PostgreSQL (pg_stat_activity).")
	famPGMaxConns    = gauge("corpintel_postgres_max_connections", "PostgreSQL's max_connections.")
	famPGConnsUsed   = gauge("corpintel_postgres_connections_used_ratio", "Client connections as a share of max_connections.")
	famPGLockWaits   = gauge("corpintel_postgres_lock_waits", "Sessions waiting for a lock right now.")
	famPGDBSize      = gauge("corpintel_postgres_database_size_bytes", "Size of the stack's database.")
	famPGDeadlocks   = counter("corpintel_postgres_deadlocks_total", "Deadlocks detected in the stack's database.")
	famPGXacts       = counter("corpintel_postgres_transactions_total", "Transactions in the stack's database by outcome.", "outcome")
	famPGReplicas    = gauge("corpintel_postgres_replicas", "Streaming replicas connected to PostgreSQL.")
	famPGReplLag     = gauge("corpintel_postgres_replication_lag_seconds", "Largest replay lag of the streaming replicas (only when replicas exist).")
	famRedisHits     = counter("corpintel_redis_keyspace_hits_total", "Successful key lookups in Redis.")
	famRedisMisses   = counter("corpintel_redis_keyspace_misses_total", "Failed key lookups in Redis.")
	famRedisHitRatio = gauge("corpintel_redis_hit_ratio", "Share of key lookups that hit, since Redis started (the seed's target is above 0.8).")
	famRedisMem      = gauge("corpintel_redis_memory_used_bytes", "Memory Redis uses (used_memory).")
	famRedisMaxMem   = gauge("corpintel_redis_memory_max_bytes", "Redis's maxmemory (0: unlimited).")
	famRedisEvicted  = counter("corpintel_redis_evicted_keys_total", "Keys evicted because of maxmemory.")
	famRedisClients  = gauge("corpintel_redis_connected_clients", "Client connections to Redis.")
	famMinIOFree     = gauge("corpintel_minio_free_bytes", "Usable free space of MinIO's drives (MinIO's own cluster metrics).")
	famMinIOTotal    = gauge("corpintel_minio_total_bytes", "Usable total space of MinIO's drives.")
)

// Target names a service's container address on the stack network ("" when it has no
// running container with one).
type Target func() string

// ServiceTarget reads the address of a service's running container from the
// reconciler's snapshot.
func ServiceTarget(snapshot func() reconcile.Snapshot, service string) Target {
	return func() string {
		for _, c := range snapshot().Observed.ServiceContainers(service) {
			if c.State == reconcile.StateRunning && c.IP != "" {
				return c.IP
			}
		}
		return ""
	}
}

// Desired reports whether a service should be running: false after `corpintel stop`
// or `scale api=0`, a choice rather than an outage, so its probes report nothing
// (absent: not known) instead of "down". Nil means always.
type Desired func(service string) bool

func (d Desired) wanted(service string) bool { return d == nil || d(service) }

// Prober asks a container whether it serves (reconcile.ReadyProbe).
type Prober interface {
	Check(ctx context.Context, ip string) error
}

// Secret returns a secret's current value (reconcile.ReadSecret over the state dir).
type Secret func() (string, error)

// errNotWanted ends a collection quietly: the service is meant to be down.
var errNotWanted = errors.New("not wanted")

// startGrace decides whether a failed probe counts: after the service is wanted again
// (the supervisor started, `corpintel start`, a scale up), only once it answered or the
// grace passed — a cold start is not an outage.
type startGrace struct {
	grace    time.Duration
	now      func() time.Time
	mu       sync.Mutex
	wanted   bool
	since    time.Time
	answered bool
}

// observe records whether the service is wanted now.
func (g *startGrace) observe(wanted bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if wanted && !g.wanted {
		g.since, g.answered = g.clock(), false
	}
	g.wanted = wanted
}

func (g *startGrace) clock() time.Time {
	if g.now == nil {
		return time.Now()
	}
	return g.now()
}

// counts records a probe's outcome and says whether a failure counts.
func (g *startGrace) counts(ok bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ok {
		g.answered = true
		return true
	}
	return g.answered || g.clock().Sub(g.since) >= g.grace
}

// probeUp adds the service's up value and reports the address it answered on. A
// failure inside the start grace adds nothing (not known yet).
func probeUp(ctx context.Context, b *Batch, service string, desired Desired, g *startGrace, target Target, probe Prober) (string, error) {
	wanted := desired.wanted(service)
	g.observe(wanted)
	if !wanted {
		return "", errNotWanted
	}
	down := func(err error) (string, error) {
		if g.counts(false) {
			b.add(famServiceUp, 0, service)
		}
		return "", err
	}
	ip := target()
	if ip == "" {
		return down(fmt.Errorf("%s: no running container with an address on the stack network", service))
	}
	if err := probe.Check(ctx, ip); err != nil {
		return down(fmt.Errorf("%s: probe: %w", service, err))
	}
	g.counts(true)
	b.add(famServiceUp, 1, service)
	return ip, nil
}

// PostgresOptions configure the PostgreSQL collector.
type PostgresOptions struct {
	Desired Desired
	// StartGrace: see startGrace (0: every failure counts).
	StartGrace time.Duration
	Now        func() time.Time
	Target     Target
	Probe      Prober
	Port       int
	User, DB   string
	Password   Secret
}

// Postgres collects PostgreSQL's availability, connections, lock waits, size and
// replication over one read-only session (default_transaction_read_only, a statement
// timeout), reopened when the container's address changes.
type Postgres struct {
	o     PostgresOptions
	grace startGrace
	mu    sync.Mutex
	conn  *pgx.Conn
	ip    string
}

// NewPostgres returns the PostgreSQL collector.
func NewPostgres(o PostgresOptions) *Postgres {
	return &Postgres{o: o, grace: startGrace{grace: o.StartGrace, now: o.Now}}
}

// Name implements Source.
func (p *Postgres) Name() string { return "postgres" }

// Close ends the session.
func (p *Postgres) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked()
}

func (p *Postgres) closeLocked() {
	if p.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = p.conn.Close(ctx)
		cancel()
		p.conn = nil
	}
}

const pgStatsQuery = `SELECT
	(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
	current_setting('max_connections')::int,
	(SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'),
	pg_database_size(current_database()),
	coalesce((SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()), 0),
	coalesce((SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()), 0),
	coalesce((SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()), 0),
	(SELECT count(*) FROM pg_stat_replication),
	coalesce((SELECT extract(epoch FROM max(replay_lag)) FROM pg_stat_replication), 0)::float8`

// Collect implements Source.
func (p *Postgres) Collect(ctx context.Context, b *Batch) error {
	ip, err := probeUp(ctx, b, "postgres", p.o.Desired, &p.grace, p.o.Target, p.o.Probe)
	if err != nil {
		p.Close()
		return quiet(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || p.ip != ip || p.conn.IsClosed() {
		p.closeLocked()
		if p.conn, err = p.connect(ctx, ip); err != nil {
			return fmt.Errorf("postgres: connect for statistics: %w", err)
		}
		p.ip = ip
	}
	var conns, maxConns, lockWaits, replicas int64
	var size, deadlocks, commits, rollbacks int64
	var lag float64
	err = p.conn.QueryRow(ctx, pgStatsQuery).Scan(&conns, &maxConns, &lockWaits, &size, &deadlocks, &commits, &rollbacks, &replicas, &lag)
	if err != nil {
		p.closeLocked()
		return fmt.Errorf("postgres: statistics: %w", err)
	}
	b.add(famPGConns, float64(conns))
	b.add(famPGMaxConns, float64(maxConns))
	if maxConns > 0 {
		b.add(famPGConnsUsed, float64(conns)/float64(maxConns))
	}
	b.add(famPGLockWaits, float64(lockWaits))
	b.add(famPGDBSize, float64(size))
	b.add(famPGDeadlocks, float64(deadlocks))
	b.add(famPGXacts, float64(commits), "commit")
	b.add(famPGXacts, float64(rollbacks), "rollback")
	b.add(famPGReplicas, float64(replicas))
	if replicas > 0 {
		b.add(famPGReplLag, lag)
	}
	return nil
}

func (p *Postgres) connect(ctx context.Context, ip string) (*pgx.Conn, error) {
	pw, err := p.o.Password()
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig("sslmode=disable connect_timeout=2")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Database, cfg.Password = ip, uint16(p.o.Port), p.o.User, p.o.DB, pw // #nosec G115 -- a TCP port
	cfg.RuntimeParams = map[string]string{
		"application_name":              "corpintel-supervisor-metrics",
		"default_transaction_read_only": "on",
		"statement_timeout":             "5000",
		"lock_timeout":                  "1000",
	}
	// The statistics query is the same each cycle: no statement cache to grow.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	return pgx.ConnectConfig(ctx, cfg)
}

// RedisOptions configure the Redis collector.
type RedisOptions struct {
	Desired    Desired
	StartGrace time.Duration
	Now        func() time.Time
	Target     Target
	Probe      Prober
	Port       int
	Password   Secret
}

// Redis collects Redis's availability, hit ratio, memory, evictions and clients (INFO).
type Redis struct {
	o      RedisOptions
	grace  startGrace
	mu     sync.Mutex
	client *redis.Client
	ip     string
}

// NewRedis returns the Redis collector.
func NewRedis(o RedisOptions) *Redis {
	return &Redis{o: o, grace: startGrace{grace: o.StartGrace, now: o.Now}}
}

// Name implements Source.
func (r *Redis) Name() string { return "redis" }

// Close closes the client.
func (r *Redis) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client != nil {
		_ = r.client.Close()
		r.client = nil
	}
}

// Collect implements Source.
func (r *Redis) Collect(ctx context.Context, b *Batch) error {
	ip, err := probeUp(ctx, b, "redis", r.o.Desired, &r.grace, r.o.Target, r.o.Probe)
	if err != nil {
		r.Close()
		return quiet(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client == nil || r.ip != ip {
		if r.client != nil {
			_ = r.client.Close()
		}
		pw, err := r.o.Password()
		if err != nil {
			r.client = nil
			return fmt.Errorf("redis: %w", err)
		}
		r.client = redis.NewClient(&redis.Options{Addr: net.JoinHostPort(ip, strconv.Itoa(r.o.Port)), Password: pw,
			PoolSize: 1, MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, DialerRetries: 1,
			DisableIdentity: true})
		r.ip = ip
	}
	info, err := r.client.Info(ctx, "stats", "memory", "clients").Result()
	if err != nil {
		return fmt.Errorf("redis: INFO: %w", err)
	}
	kv := parseRedisInfo(info)
	num := func(k string) (float64, bool) {
		v, err := strconv.ParseFloat(kv[k], 64)
		return v, err == nil
	}
	hits, ok1 := num("keyspace_hits")
	misses, ok2 := num("keyspace_misses")
	if ok1 && ok2 {
		b.add(famRedisHits, hits)
		b.add(famRedisMisses, misses)
		if hits+misses > 0 {
			b.add(famRedisHitRatio, hits/(hits+misses))
		}
	}
	for _, m := range []struct {
		f   *Family
		key string
	}{{famRedisMem, "used_memory"}, {famRedisMaxMem, "maxmemory"}, {famRedisEvicted, "evicted_keys"}, {famRedisClients, "connected_clients"}} {
		if v, ok := num(m.key); ok {
			b.add(m.f, v)
		}
	}
	if !ok1 || !ok2 {
		return errors.New("redis: INFO lacks keyspace_hits/keyspace_misses")
	}
	return nil
}

func quiet(err error) error {
	if errors.Is(err, errNotWanted) {
		return nil
	}
	return err
}

func parseRedisInfo(s string) map[string]string {
	out := map[string]string{}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '\n' {
			continue
		}
		line := s[start:i]
		start = i + 1
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if line == "" || line[0] == '#' {
			continue
		}
		for j := 0; j < len(line); j++ {
			if line[j] == ':' {
				out[line[:j]] = line[j+1:]
				break
			}
		}
	}
	return out
}
