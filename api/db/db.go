// Package db opens the API's PostgreSQL connection pool (with query-duration metrics and
// pool statistics for Prometheus) and applies the SQL migrations embedded in the binary.
package db

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Config says how to reach PostgreSQL and how to size the pool. Zero values take the
// defaults noted per field.
type Config struct {
	Host     string // default "postgres"
	Port     int    // default 5432
	DB       string // default "corporate_intel"
	User     string // default "intel_user"
	Password string
	SSLMode  string // default "disable" (the stack network is private)

	// PoolMax is this replica's share of max_connections (CORPINTEL_PG_POOL_MAX); default 10.
	PoolMax int
	// PoolMin connections are kept open; default 0.
	PoolMin int

	AppName          string        // application_name, default "corpintel-api"
	ConnectTimeout   time.Duration // default 5s
	StatementTimeout time.Duration // server-side statement_timeout; default 30s, negative disables
	// IdleInTxTimeout ends sessions that sit idle inside a transaction (a leaked tx must not
	// hold locks forever); default 60s, negative disables.
	IdleInTxTimeout time.Duration
	MaxConnLifetime time.Duration // default 30m (jittered by 10%)
	MaxConnIdleTime time.Duration // default 5m

	// Registerer, when set, gets the query-duration histogram and the pool statistics.
	Registerer prometheus.Registerer
	// SlowQuery is the duration from which a query is logged at warn level; default 1s.
	SlowQuery time.Duration
	// Logger receives slow-query warnings; default: discard.
	Logger *slog.Logger
	// Tracers are further pgx tracers (e.g. OpenTelemetry), called after the metrics tracer.
	Tracers []pgx.QueryTracer
}

func (c Config) withDefaults() Config {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Host, "postgres")
	def(&c.DB, "corporate_intel")
	def(&c.User, "intel_user")
	def(&c.SSLMode, "disable")
	def(&c.AppName, "corpintel-api")
	if c.Port == 0 {
		c.Port = 5432
	}
	if c.PoolMax <= 0 {
		c.PoolMax = 10
	}
	durs := []struct {
		d *time.Duration
		v time.Duration
	}{
		{&c.ConnectTimeout, 5 * time.Second},
		{&c.StatementTimeout, 30 * time.Second},
		{&c.IdleInTxTimeout, 60 * time.Second},
		{&c.MaxConnLifetime, 30 * time.Minute},
		{&c.MaxConnIdleTime, 5 * time.Minute},
		{&c.SlowQuery, time.Second},
	}
	for _, x := range durs {
		if *x.d == 0 {
			*x.d = x.v
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// quoteConnValue quotes a value for a keyword/value connection string.
func quoteConnValue(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// connString renders the config as a keyword/value connection string (safe for any
// password characters, unlike a URL someone forgot to escape).
func (c Config) connString() string {
	kv := []string{
		"host=" + quoteConnValue(c.Host),
		"port=" + strconv.Itoa(c.Port),
		"dbname=" + quoteConnValue(c.DB),
		"user=" + quoteConnValue(c.User),
		"password=" + quoteConnValue(c.Password),
		"sslmode=" + quoteConnValue(c.SSLMode),
		"application_name=" + quoteConnValue(c.AppName),
		"connect_timeout=" + strconv.Itoa(max(1, int(c.ConnectTimeout.Round(time.Second)/time.Second))),
	}
	return strings.Join(kv, " ")
}

// Open creates the connection pool. It does not wait for PostgreSQL to be reachable (the
// readiness check reports that); call pool.Ping to fail fast. With cfg.Registerer set it
// registers corpintel_api_db_query_duration_seconds and the pool statistics there.
func Open(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	cfg = cfg.withDefaults()
	pcfg, err := pgxpool.ParseConfig(cfg.connString())
	if err != nil {
		return nil, fmt.Errorf("postgres %s:%d/%s: parse config: %w", cfg.Host, cfg.Port, cfg.DB, err)
	}
	pcfg.MaxConns = int32(min(cfg.PoolMax, 1<<20))
	pcfg.MinConns = int32(min(max(cfg.PoolMin, 0), cfg.PoolMax))
	pcfg.MaxConnLifetime = cfg.MaxConnLifetime
	pcfg.MaxConnLifetimeJitter = cfg.MaxConnLifetime / 10
	pcfg.MaxConnIdleTime = cfg.MaxConnIdleTime
	pcfg.HealthCheckPeriod = 30 * time.Second
	params := pcfg.ConnConfig.RuntimeParams
	if cfg.StatementTimeout > 0 {
		params["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	}
	if cfg.IdleInTxTimeout > 0 {
		params["idle_in_transaction_session_timeout"] = strconv.FormatInt(cfg.IdleInTxTimeout.Milliseconds(), 10)
	}

	var tracers []pgx.QueryTracer
	var qt *QueryTracer
	if cfg.Registerer != nil {
		qt, err = NewQueryTracer(cfg.Registerer, cfg.Logger, cfg.SlowQuery)
		if err != nil {
			return nil, err
		}
		tracers = append(tracers, qt)
	}
	tracers = append(tracers, cfg.Tracers...)
	switch len(tracers) {
	case 0:
	case 1:
		pcfg.ConnConfig.Tracer = tracers[0]
	default:
		pcfg.ConnConfig.Tracer = multitracer.New(tracers...)
	}

	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		if qt != nil {
			cfg.Registerer.Unregister(qt.hist)
		}
		return nil, fmt.Errorf("postgres %s:%d/%s: open pool: %w", cfg.Host, cfg.Port, cfg.DB, err)
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(NewPoolCollector(pool)); err != nil {
			pool.Close()
			cfg.Registerer.Unregister(qt.hist)
			return nil, fmt.Errorf("register pool collector: %w", err)
		}
	}
	return pool, nil
}

// HasExtension reports whether the extension is installed in the current database.
func HasExtension(ctx context.Context, pool *pgxpool.Pool, name string) (bool, error) {
	var ok bool
	err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = $1)", name).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("check extension %s: %w", name, err)
	}
	return ok, nil
}

// TimescaleAvailable reports whether TimescaleDB can be used: installed in this database,
// or offered by the server (pg_available_extensions) and preloaded
// (shared_preload_libraries), without which CREATE EXTENSION timescaledb fails.
func TimescaleAvailable(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	const q = `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
		OR (EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
		    AND current_setting('shared_preload_libraries') LIKE '%timescaledb%')`
	var ok bool
	if err := pool.QueryRow(ctx, q).Scan(&ok); err != nil {
		return false, fmt.Errorf("check timescaledb: %w", err)
	}
	return ok, nil
}

// errNoRegisterer is returned by NewQueryTracer without a registry: metrics must never
// land on the global one by accident.
var errNoRegisterer = errors.New("db: a prometheus.Registerer is required")
