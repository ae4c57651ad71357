package api

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/api/audit"
	"github.com/corpintel/corpintel/api/auth"
	"github.com/corpintel/corpintel/api/blob"
	"github.com/corpintel/corpintel/api/companies"
	"github.com/corpintel/corpintel/api/db"
	"github.com/corpintel/corpintel/api/documents"
	"github.com/corpintel/corpintel/api/gdpr"
	"github.com/corpintel/corpintel/api/seed"
	"github.com/corpintel/corpintel/api/server"
	"github.com/corpintel/corpintel/api/timeseries"
	"github.com/corpintel/corpintel/api/users"
	"github.com/corpintel/corpintel/api/web"
	"github.com/prometheus/client_golang/prometheus"
)

// Background work every replica runs; each job takes an advisory lock, so one replica
// does it at a time.
const (
	auditRetentionEvery = time.Hour
	documentReapEvery   = 15 * time.Minute
)

// App is the assembled API: its handler and the background work that goes with it.
type App struct {
	Handler *server.Handler
	Auth    *auth.Service
	run     []func(ctx context.Context)
}

// Run starts the background work and blocks until ctx ends.
func (a *App) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, f := range a.run {
		wg.Go(func() { f(ctx) })
	}
	wg.Wait()
}

// Build assembles every module over d. The database must be migrated.
func Build(ctx context.Context, d app.Deps, reg *prometheus.Registry) (*App, error) {
	cfg := d.Config
	rec := audit.NewRecorder(d.Pool, blob.Objects{S: d.Blob}, d.Log, d.Now)
	d.Audit = rec
	as, err := auth.New(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	comp := companies.New(d)
	ts := timeseries.New(d)
	if _, err := timeseries.Prepare(ctx, d.Pool, d.Log, d.Now()); err != nil {
		return nil, err
	}
	docs := documents.New(d)
	g := gdpr.New(d.Pool, rec, d.Log, d.Now, cfg.KEK, audit.GDPRSource(), documents.GDPRSource(), gdpr.ProfileSource())
	mods := []web.Module{as, users.New(d), comp, ts, docs, audit.New(d), g}

	h, err := server.New(server.Options{
		Log: d.Log, Registry: reg, Auth: as, Audit: rec, Modules: mods, CORSOrigins: cfg.CORSOrigins, TrustedProxies: cfg.TrustedProxies,
		Checks: []server.Check{
			{Name: "postgres", Probe: d.Pool.Ping},
			{Name: "redis", Probe: func(ctx context.Context) error { return d.Redis.Ping(ctx).Err() }},
			{Name: "minio", Probe: d.Blob.Ping},
		},
	})
	if err != nil {
		return nil, err
	}
	a := &App{Handler: h, Auth: as}
	a.run = append(a.run, as.Run, d.Cache.Follow,
		func(ctx context.Context) { rec.RunRetention(ctx, auditRetentionEvery) },
		func(ctx context.Context) { docs.RunReaper(ctx, documentReapEvery) },
	)
	return a, nil
}

// Serve runs the API until ctx ends, then drains in-flight requests.
func Serve(ctx context.Context, cfg app.Config, log *slog.Logger) error {
	d, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer d.Close()
	// Migrations normally ran as the supervisor's one-shot job; this is a no-op then,
	// and makes a stand-alone replica safe.
	if err := db.Migrate(ctx, d.Pool, log); err != nil {
		return err
	}
	tr, err := setupTracing(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer tr.shutdown()
	a, err := Build(ctx, d.Deps, d.reg)
	if err != nil {
		return err
	}
	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	go a.Run(bg)
	return server.Serve(ctx, tr.wrap(a.Handler), cfg.Listen, cfg.ShutdownTimeout, log)
}

// Seed loads deterministic sample data.
func Seed(ctx context.Context, cfg app.Config, log *slog.Logger, companies, years int, rnd int64) error {
	pool, err := migratedDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer pool.Close()
	st, err := seed.Run(ctx, pool, log, seed.Options{Companies: companies, Years: years, Seed: rnd})
	if err != nil {
		return err
	}
	log.Info("seed done", "companies", st.Companies, "skipped", st.Skipped, "points", st.Points, "duration", st.Duration.String())
	return nil
}

// CreateAdmin creates an admin user.
func CreateAdmin(ctx context.Context, cfg app.Config, log *slog.Logger, email, name string, password []byte) (string, error) {
	pool, err := migratedDB(ctx, cfg, log)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	return users.CreateAdmin(ctx, pool, email, name, password)
}

// RotateKeys adds a new active JWT signing key.
func RotateKeys(ctx context.Context, cfg app.Config, log *slog.Logger) (string, error) {
	if len(cfg.KEK) < 32 {
		return "", fmt.Errorf("rotate-keys: %w", cfg.RequireServing())
	}
	pool, err := migratedDB(ctx, cfg, log)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	return auth.RotateKeys(ctx, pool, cfg.KEK, time.Now())
}
