// Package api is the platform REST API that `corpintel api` serves: it connects to
// PostgreSQL, Redis and MinIO as the environment says (see docs/ARCHITECTURE.md), builds
// every resource module and serves them under /api/v1 through api/server.
//
// The resource packages (auth, users, companies, timeseries, documents, audit, gdpr)
// each own their routes, SQL and migrations; this package only wires them.
package api

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/api/blob"
	"github.com/corpintel/corpintel/api/cache"
	"github.com/corpintel/corpintel/api/db"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// connectWait is how long the API keeps retrying its dependencies at start before it
// gives up (Docker then restarts it): long enough for a stack coming up together.
const connectWait = 90 * time.Second

// Healthcheck asks the API listening on listen (":8080") for /health; the image's health
// check runs it, since the image has no curl.
func Healthcheck(ctx context.Context, listen string) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("healthcheck: listen address %q: %w", listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /health answered %s", resp.Status)
	}
	return nil
}

func dbConfig(cfg app.Config, reg prometheus.Registerer, log *slog.Logger) db.Config {
	return db.Config{
		Host: cfg.PGHost, Port: cfg.PGPort, DB: cfg.PGDB, User: cfg.PGUser, Password: cfg.PGPassword,
		PoolMax: cfg.PGPoolMax, Registerer: reg, Logger: log,
	}
}

// retry calls fn until it succeeds, ctx ends or wait has passed, logging each failure.
func retry(ctx context.Context, log *slog.Logger, what string, wait time.Duration, fn func(context.Context) error) error {
	deadline := time.Now().Add(wait)
	delay := 250 * time.Millisecond
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		log.Warn("waiting for dependency", "dependency", what, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// openDB opens the pool (which does not connect) and waits until PostgreSQL answers,
// while the stack comes up.
func openDB(ctx context.Context, cfg app.Config, reg prometheus.Registerer, log *slog.Logger) (*pgxpool.Pool, error) {
	pool, err := db.Open(ctx, dbConfig(cfg, reg, log))
	if err != nil {
		return nil, err
	}
	err = retry(ctx, log, "connect to PostgreSQL at "+net.JoinHostPort(cfg.PGHost, fmt.Sprint(cfg.PGPort)), connectWait, pool.Ping)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// Migrate applies the embedded migrations once (under an advisory lock).
func Migrate(ctx context.Context, cfg app.Config, log *slog.Logger) error {
	cfg.PGPoolMax = 2
	pool, err := openDB(ctx, cfg, nil, log)
	if err != nil {
		return err
	}
	defer pool.Close()
	return db.Migrate(ctx, pool, log)
}

// deps connects every dependency the serving API needs. Close releases them.
type deps struct {
	app.Deps
	reg *prometheus.Registry
}

func (d *deps) Close() {
	if d.Redis != nil {
		_ = d.Redis.Close()
	}
	if d.Pool != nil {
		d.Pool.Close()
	}
}

func connect(ctx context.Context, cfg app.Config, log *slog.Logger) (*deps, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d := &deps{reg: reg}
	d.Config, d.Log, d.Reg, d.Now = cfg, log, reg, time.Now
	var err error
	if d.Pool, err = openDB(ctx, cfg, reg, log); err != nil {
		return nil, err
	}
	err = retry(ctx, log, "connect to Redis at "+cfg.RedisAddr, connectWait, func(ctx context.Context) error {
		rdb, err := cache.Connect(ctx, cfg.RedisAddr, cfg.RedisPassword)
		if err != nil {
			return err
		}
		d.Redis = rdb
		return nil
	})
	if err != nil {
		d.Close()
		return nil, err
	}
	if d.Cache, err = cache.New(d.Redis, "ci:", reg, cache.WithLogger(log), cache.WithLocal(int64(cfg.LocalCacheMB)<<20)); err != nil {
		d.Close()
		return nil, fmt.Errorf("cache: %w", err)
	}
	err = retry(ctx, log, "connect to MinIO at "+cfg.MinIOEndpoint, connectWait, func(ctx context.Context) error {
		st, err := blob.New(ctx, cfg.MinIOEndpoint, cfg.MinIOAccessKey, cfg.MinIOSecretKey, cfg.MinIOBucket, cfg.MinIOTLS)
		if err != nil {
			return err
		}
		if err := st.EnsureBucket(ctx); err != nil {
			return err
		}
		d.Blob = st
		return nil
	})
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// migratedDB opens the database for a one-shot command and migrates it first (a no-op
// when the supervisor's migrate job ran), so the command works on a fresh stack too.
func migratedDB(ctx context.Context, cfg app.Config, log *slog.Logger) (*pgxpool.Pool, error) {
	pool, err := openDB(ctx, cfg, nil, log)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, pool, log); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}
