// Package supervisor is the corpintel daemon: a Daemon wires the parts — the reconciler
// (supervisor/reconcile) that keeps the stack converged, the edge (supervisor/edge)
// that takes the traffic, status (supervisor/health), the local API the CLI uses
// (supervisor/localapi) and the state store (supervisor/state) — and implements the
// operations (status, scale, restart, start, stop, logs, create-admin) that the local
// API and, later, the console both call. Long operations that may lose data (backup,
// restore, drill, upgrade, rotation) run under the one operation lock and journal of
// the state store (RunOperation).
//
// Restarting the supervisor never stops the stack: the containers outlive it.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/internal/sdnotify"
	"github.com/corpintel/corpintel/internal/stack"
	"github.com/corpintel/corpintel/supervisor/edge"
	"github.com/corpintel/corpintel/supervisor/edge/certs"
	"github.com/corpintel/corpintel/supervisor/health"
	"github.com/corpintel/corpintel/supervisor/localapi"
	"github.com/corpintel/corpintel/supervisor/reconcile"
	"github.com/corpintel/corpintel/supervisor/state"
	"github.com/prometheus/client_golang/prometheus"
)

// Engine is the Docker Engine as the daemon uses it (internal/docker.Client): what the
// reconciler needs, its event stream, resource counters and logs.
type Engine interface {
	reconcile.Engine
	reconcile.EventSource
	health.UsageReader
	FollowLogs(ctx context.Context, id, tail string, follow, timestamps bool, stdout, stderr io.Writer) error
}

var _ Engine = (*docker.Client)(nil)

// Options configure a Daemon.
type Options struct {
	Config *config.Config
	Engine Engine
	Store  *state.Store
	Log    *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Resync is the period of the full reconcile that catches missed events (10 s).
	Resync time.Duration
	// Reload re-reads the config (SIGHUP); nil disables reload.
	Reload func() (*config.Config, error)
	// Hangup delivers reload requests (SIGHUP).
	Hangup <-chan os.Signal
	// Ready is called once the listeners are up and the loop runs, with where
	// everything answers.
	Ready func(Endpoints)
	// Metrics is the registry of the supervisor's own exposition (/metrics on the
	// loopback listener); nil makes a new one. Parts register their collectors on it.
	Metrics *prometheus.Registry
	// Resume continues operations of a kind that a previous supervisor left running
	// (found in the journal at start). An operation of a kind without one is marked
	// interrupted and reported in status.
	Resume map[string]func(ctx context.Context, op *Op) error
	// Admin is the console, served under /admin by the edge on the loopback and the
	// public HTTPS listener (console/, wired by cmd/corpintel).
	Admin http.Handler
	// Notify talks to systemd (READY, STATUS, the watchdog; systemd.go); nil: not
	// under systemd.
	Notify *sdnotify.Notifier
}

// Daemon is the running supervisor.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	rec     *reconcile.Reconciler
	edge    *edge.Edge
	status  *health.Collector
	store   *state.Store
	owner   string // this process, as the owner of the operations it runs
	metrics *prometheus.Registry
	obs     *observability // metrics collectors and alerts (alerting.go)
	kick    chan struct{}
	running atomic.Bool
	inject  <-chan func() // tests: run on the reconcile loop (systemd.go)

	mu          sync.Mutex
	interrupted []state.Operation
	localLn     net.Listener   // while Run runs (tests close it to stop a part)
	certs       *certs.Manager // while Run runs with a public listener
	prober      *certs.Prober

	watchMu   sync.Mutex
	watchers  map[chan struct{}]struct{}
	lastPrint string
}

// New checks opts and returns a daemon that has not started. Its operations also work
// without Run — that is how the CLI serves `status` and `stop` when no supervisor runs.
func New(opts Options) (*Daemon, error) {
	if opts.Config == nil || opts.Engine == nil || opts.Store == nil {
		return nil, errors.New("supervisor: config, engine and state store are required")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Metrics == nil {
		opts.Metrics = prometheus.NewRegistry()
	}
	d := &Daemon{opts: opts, metrics: opts.Metrics, log: opts.Log, now: opts.Now, status: health.NewCollector(opts.Engine),
		store: opts.Store, kick: make(chan struct{}, 1),
		owner: fmt.Sprintf("supervisor pid %d started %s", os.Getpid(), opts.Now().UTC().Format(time.RFC3339Nano))}
	var err error
	if d.edge, err = d.newEdge(opts.Config); err != nil {
		return nil, err
	}
	rec, err := reconcile.New(reconcile.Options{Config: opts.Config, Engine: opts.Engine, Store: opts.Store, Log: opts.Log, Now: opts.Now,
		OnSnapshot: d.onSnapshot, Drain: d.drain})
	if err != nil {
		return nil, err
	}
	d.rec = rec
	if d.obs, err = newObservability(opts.Config, d); err != nil {
		return nil, err
	}
	return d, nil
}

// Metrics is the registry of the supervisor's /metrics.
func (d *Daemon) Metrics() *prometheus.Registry { return d.metrics }

// Proxy returns the edge's forwarding part.
func (d *Daemon) Proxy() *edge.Proxy { return d.edge.Proxy() }

// Edge returns the front door.
func (d *Daemon) Edge() *edge.Edge { return d.edge }

// Reconciler returns the daemon's reconciler.
func (d *Daemon) Reconciler() *reconcile.Reconciler { return d.rec }

// Run serves the loopback listener and the local API and keeps the stack reconciled
// until ctx ends, or until one of those parts stops on its own — then Run returns that
// part's error. It never stops the stack on the way out: the containers outlive the
// supervisor.
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.rec.Config()
	proxyLn, err := edge.Listen(cfg.Listen)
	if err != nil {
		return err
	}
	localLn, err := localapi.Listen(cfg.Socket)
	if err != nil {
		_ = proxyLn.Close()
		return err
	}
	public, err := d.listenPublic(cfg)
	if err != nil {
		_ = proxyLn.Close()
		_ = localLn.Close()
		return err
	}
	defer public.close()
	d.mu.Lock()
	d.certs, d.prober = public.certs, public.prober
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.certs, d.prober = nil, nil
		d.mu.Unlock()
	}()
	if err := d.recoverOperations(ctx); err != nil {
		_ = proxyLn.Close()
		_ = localLn.Close()
		return err
	}
	runObservability, err := d.startObservability(ctx, "http://"+proxyLn.Addr().String()+"/health")
	if err != nil {
		_ = proxyLn.Close()
		_ = localLn.Close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	proxySrv := edge.NewServer(d.edge.Handler(edge.Loopback), d.log)
	localSrv := &http.Server{Handler: localapi.NewHandler(d, d.log), ReadHeaderTimeout: 10 * time.Second, ConnContext: localapi.ConnContext}

	errc := make(chan error, 8)
	var wg sync.WaitGroup
	serve := func(name string, srv *http.Server, run func() error) {
		wg.Go(func() {
			if err := run(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s stopped: %w", name, err)
			}
		})
	}
	serve("loopback listener", proxySrv, func() error { return proxySrv.Serve(proxyLn) })
	serve("local API", localSrv, func() error { return localSrv.Serve(localLn) })
	publicSrvs := d.servePublic(ctx, cfg, public, errc, serve)
	wg.Go(func() { d.edge.Run(ctx) })
	wg.Go(func() {
		err := d.rec.Run(ctx, reconcile.LoopOptions{Events: d.opts.Engine, Resync: d.opts.Resync, Kick: d.kick,
			Heartbeat: d.loopHeartbeat(), Inject: d.loopInject(ctx)})
		if ctx.Err() == nil {
			errc <- fmt.Errorf("reconcile loop stopped: %w", err)
		}
	})
	wg.Go(func() { d.watchHangup(ctx) })
	wg.Go(func() { runObservability(ctx) })
	wg.Go(func() { d.notifySystemd(ctx) })
	d.running.Store(true)
	d.mu.Lock()
	d.localLn = localLn
	d.mu.Unlock()

	apiURL := "http://" + proxyLn.Addr().String()
	d.log.Info("supervisor started", "project", cfg.Project, "profile", cfg.Profile, "api", apiURL, "socket", cfg.Socket)
	if d.opts.Ready != nil {
		ep := Endpoints{API: apiURL, Socket: cfg.Socket}
		if public.https != nil {
			ep.HTTPS = "https://" + displayAddr(public.https.Addr())
		}
		if public.http != nil {
			ep.HTTP = "http://" + displayAddr(public.http.Addr())
		}
		d.opts.Ready(ep)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		d.log.Error("supervisor part failed; shutting down", "err", runErr)
	}
	cancel()
	d.running.Store(false)
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer scancel()
	_ = proxySrv.Shutdown(sctx)
	_ = localSrv.Shutdown(sctx)
	for _, srv := range publicSrvs {
		_ = srv.Shutdown(sctx)
	}
	wg.Wait()
	_ = os.Remove(cfg.Socket)
	d.log.Info("supervisor stopped; the stack keeps running")
	return runErr
}

// Endpoints say where the supervisor answers.
type Endpoints struct {
	API    string // the loopback listener (plain HTTP)
	HTTPS  string // the public HTTPS listener ("" when off)
	HTTP   string // the public HTTP listener: ACME challenges and the redirect
	Socket string // the local API
}

// displayAddr prints a listener address a person can open (0.0.0.0 and :: as localhost).
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// watchHangup reloads the config on SIGHUP.
func (d *Daemon) watchHangup(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.opts.Hangup:
			if err := d.reload(); err != nil {
				d.log.Error("reload failed; keeping the previous config", "err", err)
				continue
			}
			d.log.Info("config reloaded")
			notifyKick(d.kick)
		}
	}
}

// reload swaps in the re-read config. Listen and socket are bound already and cannot
// change; the reconciler refuses a changed project or state dir.
func (d *Daemon) reload() error {
	if d.opts.Reload == nil {
		return errors.New("reload is not supported by this supervisor")
	}
	next, err := d.opts.Reload()
	if err != nil {
		return err
	}
	cur := d.rec.Config()
	if next.Listen != cur.Listen || next.Socket != cur.Socket {
		return fmt.Errorf("listen and socket cannot change on reload (%s, %s): restart the supervisor", cur.Listen, cur.Socket)
	}
	d.alertsReloaded(next)
	return d.rec.SetConfig(next)
}

func notifyKick(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Status implements localapi.Operations.
func (d *Daemon) Status(ctx context.Context) (health.StatusReport, error) {
	if _, err := d.rec.Refresh(ctx); err != nil {
		return health.StatusReport{}, fmt.Errorf("status: %w", err)
	}
	cfg := d.rec.Config()
	last := d.rec.LastPass()
	rep := health.StatusReport{Project: cfg.Project, Profile: cfg.Profile, Listen: cfg.Listen, Supervisor: d.running.Load(),
		LastReconcile: last.At, LastError: last.Error}
	var err error
	if rep.Stopped, rep.StoppedAt, err = d.store.Stopped(ctx); err != nil {
		return health.StatusReport{}, err
	}
	if op, ok, err := d.store.RunningOperation(ctx); err != nil {
		return health.StatusReport{}, err
	} else if ok {
		rep.Operation = &op
	}
	d.mu.Lock()
	rep.Interrupted = slices.Clone(d.interrupted)
	if d.certs != nil {
		st := d.certs.Status()
		rep.TLS = &st
	}
	if d.prober != nil {
		rep.TLSServed = d.prober.Results()
	}
	d.mu.Unlock()
	if m := d.edge.InMaintenance(); m != nil {
		rep.Maintenance = m.Reason
	}
	rep.Services = d.status.Services(ctx, health.Inputs{Snapshot: d.rec.Snapshot(), Desired: d.rec.Services(ctx),
		Backoffs: d.rec.Backoffs(), Reports: last.Reports, Now: d.now()})
	return rep, nil
}

// ownedBy says which running operation owns a service ("" when none).
func (d *Daemon) ownedBy(ctx context.Context, service string) (string, error) {
	owned, err := d.store.OwnedServices(ctx)
	if err != nil {
		return "", err
	}
	return owned[service], nil
}

// Scale implements localapi.Operations: it records the new scale and reconciles before
// answering.
func (d *Daemon) Scale(ctx context.Context, service string, replicas int) error {
	if err := stack.ValidateScale(service, replicas); err != nil {
		return localapi.RequestErrorf("%v", err)
	}
	if op, err := d.ownedBy(ctx, service); err != nil || op != "" {
		return cmpErr(err, localapi.RequestErrorf("%s is owned by %s; scale it when that has ended", service, op))
	}
	if err := d.rec.SetScale(ctx, service, replicas); err != nil {
		return fmt.Errorf("scale %s=%d: %w", service, replicas, err)
	}
	d.log.Info("scale", "service", service, "replicas", replicas)
	return d.pass(ctx, "scale")
}

// Restart implements localapi.Operations: the service's containers are recreated now
// (also the way out of a held recreate or a backoff).
func (d *Daemon) Restart(ctx context.Context, service string) error {
	if err := stack.CheckService(service); err != nil {
		return localapi.RequestErrorf("%v", err)
	}
	if op, err := d.ownedBy(ctx, service); err != nil || op != "" {
		return cmpErr(err, localapi.RequestErrorf("%s is owned by %s; restart it when that has ended", service, op))
	}
	if err := d.rec.MarkRestart(ctx, service); err != nil {
		return fmt.Errorf("restart %s: %w", service, err)
	}
	d.log.Info("restart", "service", service)
	return d.pass(ctx, "restart")
}

// cmpErr returns err when set, else the request error.
func cmpErr(err, requestErr error) error {
	if err != nil {
		return err
	}
	return requestErr
}

// pass runs one reconcile pass for an operation and returns its error.
func (d *Daemon) pass(ctx context.Context, reason string) error {
	plan, err := d.rec.Pass(ctx)
	if err != nil {
		d.log.Error("reconcile failed", "reason", reason, "err", err)
		return err
	}
	if plan.HasChanges() {
		d.log.Info("reconciled", "reason", reason, "plan", plan.String())
	}
	return nil
}

// Start implements localapi.Operations: it undoes Stop and reconciles at once (a no-op
// pass when the stack was not stopped).
func (d *Daemon) Start(ctx context.Context) error {
	if err := d.rec.Start(ctx); err != nil {
		return err
	}
	d.log.Info("starting the stack on operator request")
	return d.pass(ctx, "start")
}

// Stop implements localapi.Operations: every container stops, data stays, and the
// reconciler leaves the stack down until Start — across supervisor restarts and
// reboots. It refuses while an operation runs (it would pull the stack from under it).
func (d *Daemon) Stop(ctx context.Context) error {
	if op, ok, err := d.store.RunningOperation(ctx); err != nil {
		return err
	} else if ok {
		return localapi.RequestErrorf("%s is running; stop the stack when it has ended", op.Name())
	}
	d.log.Info("stopping the stack on operator request")
	if _, err := d.rec.Stop(ctx); err != nil {
		return err
	}
	return nil
}

// Logs implements localapi.Operations: the logs of every container of service,
// prefixed with the container name when there are several.
func (d *Daemon) Logs(ctx context.Context, service string, opts localapi.LogOptions, w io.Writer) error {
	if err := stack.CheckService(service); err != nil {
		return localapi.RequestErrorf("%v", err)
	}
	if _, err := d.rec.Refresh(ctx); err != nil {
		return fmt.Errorf("logs %s: %w", service, err)
	}
	list := d.rec.Snapshot().Observed.ServiceContainers(service)
	if len(list) == 0 {
		return localapi.RequestErrorf("service %s has no containers (see `corpintel status`)", service)
	}
	slices.SortFunc(list, func(a, b reconcile.ObservedContainer) int { return strings.Compare(a.Name, b.Name) })
	tail := "all"
	if opts.Tail >= 0 {
		tail = fmt.Sprint(opts.Tail)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(list))
	for i, c := range list {
		var out io.Writer = &lockedWriter{mu: &mu, w: w}
		if len(list) > 1 {
			out = &prefixWriter{prefix: c.Name + " | ", w: out}
		}
		wg.Go(func() {
			if err := d.opts.Engine.FollowLogs(ctx, c.ID, tail, opts.Follow, false, out, out); err != nil && ctx.Err() == nil {
				errs[i] = fmt.Errorf("logs of %s: %w", c.Name, err)
			}
			if pw, ok := out.(*prefixWriter); ok {
				pw.flush()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// prefixWriter writes whole lines, each starting with prefix.
type prefixWriter struct {
	prefix string
	w      io.Writer
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := slices.Index(p.buf, '\n')
		if i < 0 {
			break
		}
		line := append([]byte(p.prefix), p.buf[:i+1]...)
		if _, err := p.w.Write(line); err != nil {
			return 0, err
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func (p *prefixWriter) flush() {
	if len(p.buf) > 0 {
		_, _ = p.w.Write(append([]byte(p.prefix), append(p.buf, '\n')...))
		p.buf = nil
	}
}
