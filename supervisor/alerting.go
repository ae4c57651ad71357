package supervisor

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/stack"
	"github.com/corpintel/corpintel/supervisor/alerts"
	"github.com/corpintel/corpintel/supervisor/alerts/notify"
	"github.com/corpintel/corpintel/supervisor/edge"
	"github.com/corpintel/corpintel/supervisor/health"
	"github.com/corpintel/corpintel/supervisor/localapi"
	"github.com/corpintel/corpintel/supervisor/reconcile"
	"github.com/corpintel/corpintel/supervisor/state"
)

// The daemon's metrics and alerts: the edge's request counters, the collectors of
// supervisor/health (host, containers, PostgreSQL, Redis, MinIO, Docker, API) on the
// daemon's registry, and the alert engine over their samples, the state store's
// operation lock and its own tables (migration 0010).

// observability is what the daemon keeps of it.
type observability struct {
	edge   *edge.Answers // what the edge answered itself
	alerts alerts.Config // decoded and validated, defaults filled in

	metrics atomic.Pointer[health.Metrics]
	engine  atomic.Pointer[alerts.Engine]
	good    atomic.Pointer[reconcile.Snapshot] // the last observation that succeeded

	mu    sync.Mutex
	extra []health.Source // AddMetricSource
}

// AddMetricSource adds a collector to the supervisor's metrics — how other parts (the
// backups' last success and verification, the certificates' expiry) feed /metrics and
// the alert rules (metric names in supervisor/alerts/metrics.go). Call it before Run.
func (d *Daemon) AddMetricSource(s health.Source) {
	d.obs.mu.Lock()
	defer d.obs.mu.Unlock()
	d.obs.extra = append(d.obs.extra, s)
}

// alertsReloaded says, on SIGHUP, that a changed [alerts] table takes effect at the next
// start (the engine and its channels are built once).
func (d *Daemon) alertsReloaded(next *config.Config) {
	ac, err := AlertsConfig(next)
	if err == nil && !reflect.DeepEqual(ac, d.obs.alerts) {
		d.log.Warn("the [alerts] configuration changed; it takes effect when the supervisor restarts (systemctl restart corpintel)")
	}
}

// AlertsConfig decodes and validates the [alerts] table of cfg (defaults filled in);
// every problem is a *config.Error naming "alerts.<key>" in the config file, so the CLI
// exits with status 2 on it like on any other config problem. Relative secret file
// paths of channels are resolved under <state_dir>/secrets/alerts.
func AlertsConfig(cfg *config.Config) (alerts.Config, error) {
	var ac alerts.Config
	if err := cfg.DecodeAlerts(&ac); err != nil {
		return alerts.Config{}, err
	}
	if err := ac.Validate(); err != nil {
		file := cfg.File
		if file == "" {
			file = "config"
		}
		var out []error
		for _, e := range flatten(err) {
			var ce *alerts.ConfigError
			if errors.As(e, &ce) {
				out = append(out, &config.Error{File: file, Key: "alerts." + ce.Key, Problem: ce.Problem})
				continue
			}
			out = append(out, &config.Error{File: file, Key: "alerts", Problem: e.Error()})
		}
		return alerts.Config{}, errors.Join(out...)
	}
	dir := filepath.Join(cfg.StateDir, "secrets", "alerts")
	for i := range ac.Channels {
		c := &ac.Channels[i]
		for _, p := range []*string{&c.RoutingKeyFile, &c.URLFile, &c.BearerTokenFile, &c.PasswordFile} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
	}
	return ac.WithDefaults(), nil
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func newObservability(cfg *config.Config, d *Daemon) (*observability, error) {
	ac, err := AlertsConfig(cfg)
	if err != nil {
		return nil, err
	}
	em, err := edge.NewAnswers(d.metrics)
	if err != nil {
		return nil, fmt.Errorf("edge metrics: %w", err)
	}
	d.Proxy().CountAnswers(em)
	// The supervisor's own footprint (RSS, goroutines, GC) beside what it watches.
	for _, c := range []prometheus.Collector{collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector()} {
		if err := d.metrics.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("process metrics: %w", err)
			}
		}
	}
	return &observability{edge: em, alerts: ac}, nil
}

// defaultBackupRoot is where backups go unless [backup] root says otherwise.
func defaultBackupRoot(project string) string { return filepath.Join("/var/backups", project) }

// backupRoot is the configured backup root: [backup] root when this build's config has
// that section (the backup wiring adds it), else the default. Read by name so this file
// does not depend on the backup section's Go shape; once both are merged this is
// cfg.Backup.Root.
func backupRoot(cfg *config.Config) string { return backupRootOf(cfg, cfg.Project) }

func backupRootOf(cfg any, project string) string {
	v := reflect.ValueOf(cfg)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if b := v.FieldByName("Backup"); b.IsValid() && b.Kind() == reflect.Struct {
		if r := b.FieldByName("Root"); r.IsValid() && r.Kind() == reflect.String && r.String() != "" {
			return r.String()
		}
	}
	return defaultBackupRoot(project)
}

// engineRootDir asks the engine for its data root when it can tell.
func (d *Daemon) engineRootDir(ctx context.Context) string {
	if e, ok := d.opts.Engine.(interface {
		RootDir(ctx context.Context) (string, error)
	}); ok {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if dir, err := e.RootDir(ctx); err == nil && dir != "" {
			return dir
		}
	}
	return "/var/lib/docker"
}

// secret reads one of the stack's secrets from the state dir when asked (a rotation
// takes effect at the next reconnect).
func (d *Daemon) secret(name string) health.Secret {
	return func() (string, error) { return reconcile.ReadSecret(d.rec.Config().StateDir, name) }
}

// desired reports whether a service should run: not after `corpintel stop` or with a
// scale of 0 (a choice, not an outage). When the store cannot tell, it should.
func (d *Daemon) desired(service string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if stopped, err := d.rec.Stopped(ctx); err == nil && stopped {
		return false
	}
	n, err := d.rec.Scale(ctx, service)
	return err != nil || n > 0
}

// snapshot is the reconciler's last observation for the collectors; while the engine
// does not answer it is the last one that succeeded — the containers most likely still
// run, and their probes should say so rather than report every service down.
func (d *Daemon) snapshot() reconcile.Snapshot {
	s := d.rec.Snapshot()
	if s.Err == "" && !s.At.IsZero() {
		d.obs.good.Store(&s)
		return s
	}
	if g := d.obs.good.Load(); g != nil {
		return *g
	}
	return s
}

// sources builds the collectors.
func (d *Daemon) sources(ctx context.Context, healthURL string) ([]health.Source, func()) {
	cfg := d.rec.Config()
	probes := reconcile.ReadyProbes(cfg)
	snap := d.snapshot
	paths := append([]string{"/", cfg.StateDir, d.engineRootDir(ctx), backupRoot(cfg)}, cfg.Metrics.DiskPaths...)
	grace := time.Duration(cfg.Metrics.StartGrace)
	pg := health.NewPostgres(health.PostgresOptions{Desired: d.desired, StartGrace: grace, Now: d.now, Target: health.ServiceTarget(snap, stack.ServicePostgres), Probe: probes[stack.ServicePostgres],
		Port: stack.PortPostgres, User: cfg.Postgres.User, DB: cfg.Postgres.DB, Password: d.secret(stack.SecretPostgresPassword)})
	rd := health.NewRedis(health.RedisOptions{Desired: d.desired, StartGrace: grace, Now: d.now, Target: health.ServiceTarget(snap, stack.ServiceRedis), Probe: probes[stack.ServiceRedis],
		Port: stack.PortRedis, Password: d.secret(stack.SecretRedisPassword)})
	srcs := []health.Source{
		health.NewHost(health.HostOptions{Paths: paths}),
		health.NewContainers(health.ContainersOptions{Snapshot: d.rec.Snapshot, Usage: d.opts.Engine, Now: d.now}),
		pg, rd,
		health.NewMinIO(health.MinIOOptions{Desired: d.desired, StartGrace: grace, Target: health.ServiceTarget(snap, stack.ServiceMinIO), Probe: probes[stack.ServiceMinIO],
			Port: stack.PortMinIO, AccessKey: d.secret(stack.SecretMinIORootUser), SecretKey: d.secret(stack.SecretMinIORootPassword), Now: d.now}),
		health.NewAPI(health.APIOptions{Snapshot: snap, Port: stack.PortAPI, HealthURL: healthURL, ProbeHeader: edge.ProbeHeader,
			Desired: d.desired, StartGrace: grace, EdgeAnswered: d.obs.edge.ByClass, Now: d.now}),
	}
	if p, ok := d.opts.Engine.(health.Pinger); ok {
		srcs = append(srcs, health.Docker{Engine: p})
	}
	d.obs.mu.Lock()
	srcs = append(srcs, d.obs.extra...)
	d.obs.mu.Unlock()
	return srcs, func() { pg.Close(); rd.Close() }
}

// startObservability builds the collectors and the alert engine; the returned function
// runs both until ctx ends. healthURL is GET /health through the loopback listener.
func (d *Daemon) startObservability(ctx context.Context, healthURL string) (func(context.Context), error) {
	cfg := d.rec.Config()
	r := d.obs.alerts.Rules
	srcs, closeSources := d.sources(ctx, healthURL)
	m, err := health.NewMetrics(health.MetricsOptions{Sources: srcs, Interval: time.Duration(cfg.Metrics.Interval), Now: d.now,
		Log: d.log.With("part", "metrics"),
		Needs: map[string]time.Duration{
			alerts.MetricAPIRequests:       r.HighErrorRate.Window.D(),
			alerts.MetricContainerRestarts: r.ContainerRestartLoop.Window.D(),
			alerts.MetricDiskUsedRatio:     r.DiskFullForecast.Window.D(),
		}})
	if err != nil {
		closeSources()
		return nil, err
	}
	if err := d.metrics.Register(m); err != nil {
		closeSources()
		return nil, fmt.Errorf("metrics: register the collectors: %w", err)
	}
	eng, err := alerts.New(ctx, alerts.Options{Config: d.obs.alerts, Source: m, Operations: operationSource{d.store},
		Store: alerts.NewSQLStore(d.store.DB()), Registerer: d.metrics, Logger: d.log.With("part", "alerts"), Now: d.now})
	if err != nil {
		d.metrics.Unregister(m)
		closeSources()
		return nil, err
	}
	d.warnMissingSecrets()
	d.obs.metrics.Store(m)
	d.obs.engine.Store(eng)
	return func(ctx context.Context) {
		defer closeSources()
		// The first samples after the reconciler's first observation (else every service
		// looks absent) and before the first evaluation, so the engine never starts on
		// nothing; the listeners serve by now, the health check goes through them.
		for d.rec.Snapshot().At.IsZero() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		m.CollectOnce(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { _ = m.Run(ctx) })
		wg.Go(func() { _ = eng.Run(ctx) })
		wg.Wait()
	}, nil
}

// warnMissingSecrets says at start which channels cannot deliver for want of their
// secret file (it names the file, never its content).
func (d *Daemon) warnMissingSecrets() {
	for _, c := range d.obs.alerts.Channels {
		for _, p := range []string{c.RoutingKeyFile, c.URLFile, c.BearerTokenFile, c.PasswordFile} {
			if p == "" {
				continue
			}
			if _, err := notify.ReadSecretFile(p); err != nil {
				d.log.Warn("alert channel cannot deliver until its secret file is in place; check with `corpintel alerts test --channel "+c.Name+"`",
					"channel", c.Name, "err", err)
			}
		}
	}
}

// operationSource is the alert engine's view of the operation lock.
type operationSource struct{ store *state.Store }

// CurrentOperation implements alerts.OperationSource.
func (o operationSource) CurrentOperation(ctx context.Context) (*alerts.Operation, error) {
	op, ok, err := o.store.RunningOperation(ctx)
	if err != nil || !ok {
		return nil, err
	}
	return &alerts.Operation{Kind: op.Kind, Started: op.StartedAt, ExpectedEnd: op.ExpectedEnd, Maintenance: op.Maintenance}, nil
}

// errNoAlerts answers alert operations of a daemon that does not run (the CLI's
// offline path).
var errNoAlerts = localapi.RequestErrorf("alerts are evaluated by the running supervisor; start it with `corpintel supervisor` or `systemctl start corpintel`")

func (d *Daemon) alertEngine() (*alerts.Engine, error) {
	if e := d.obs.engine.Load(); e != nil {
		return e, nil
	}
	return nil, errNoAlerts
}

// Alerts implements localapi.Operations: active and recently resolved alerts, silences
// and channel states.
func (d *Daemon) Alerts(context.Context) (alerts.Snapshot, error) {
	e, err := d.alertEngine()
	if err != nil {
		return alerts.Snapshot{}, err
	}
	return e.Active(), nil
}

// Silence implements localapi.Operations.
func (d *Daemon) Silence(ctx context.Context, req alerts.SilenceRequest) (alerts.Silence, error) {
	e, err := d.alertEngine()
	if err != nil {
		return alerts.Silence{}, err
	}
	sl, err := e.Silence(ctx, req)
	if err != nil && strings.HasPrefix(err.Error(), "silence refused") {
		return alerts.Silence{}, localapi.RequestErrorf("%v", err)
	}
	if err == nil {
		d.log.Info("alert silence created", "id", sl.ID, "matchers", sl.Matchers.String(), "until", sl.EndsAt, "by", sl.CreatedBy, "comment", sl.Comment)
	}
	return sl, err
}

// Unsilence implements localapi.Operations.
func (d *Daemon) Unsilence(ctx context.Context, id string) (alerts.Silence, error) {
	e, err := d.alertEngine()
	if err != nil {
		return alerts.Silence{}, err
	}
	sl, err := e.Unsilence(ctx, id)
	if errors.Is(err, alerts.ErrNoSilence) {
		return alerts.Silence{}, localapi.RequestErrorf("%v", err)
	}
	if err == nil {
		d.log.Info("alert silence expired", "id", sl.ID)
	}
	return sl, err
}

// TestChannel implements localapi.Operations: a test notification through one channel.
func (d *Daemon) TestChannel(ctx context.Context, channel string) (notify.Result, error) {
	e, err := d.alertEngine()
	if err != nil {
		return notify.Result{}, err
	}
	res, err := e.TestChannel(ctx, channel)
	if errors.Is(err, notify.ErrUnknownChannel) {
		return notify.Result{}, localapi.RequestErrorf("%v", err)
	}
	if err != nil && res.Channel != "" {
		return res, nil // delivered or not: the result says how it went
	}
	return res, err
}

// PrometheusRules renders the rules as configured for this supervisor as a Prometheus
// rule file (the monitoring profile's Prometheus, an operator's own); it needs no
// running engine.
func (d *Daemon) PrometheusRules(context.Context) ([]byte, error) {
	return alerts.ExportPrometheusRules(d.obs.alerts)
}

// MetricsHistory returns the per-minute history of the series named name whose labels
// include match, since the given time (the console's charts); nil before Run.
func (d *Daemon) MetricsHistory(name string, match alerts.Labels, since time.Time) []alerts.Series {
	if m := d.obs.metrics.Load(); m != nil {
		return m.History(name, match, since)
	}
	return nil
}
