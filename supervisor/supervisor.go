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

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// Stack is what the daemon needs from the reconciler (reconcile.go); the command wires
// the real one in, tests a fake.
type Stack interface {
	// Reconcile observes, plans and executes once. changed reports whether the plan had
	// any step; summary is the plan's String() for the log.
	Reconcile(ctx context.Context) (changed bool, summary string, err error)
	// SetScale records the desired replicas of a service (persisted by the reconciler).
	SetScale(service string, replicas int) error
	// MarkRestart makes the next Reconcile recreate the service's containers.
	MarkRestart(service string) error
	// StopAll stops every container of the stack, keeping volumes.
	StopAll(ctx context.Context) error
	// Services lists the services of the spec with their desired replicas, in start order.
	Services() []DesiredService
}

// DockerAPI is the part of the Docker Engine API that the daemon reads directly (events,
// status, logs, proxy backends); everything that changes the engine goes through Stack.
type DockerAPI interface {
	statusDocker
	eventSource
	ContainerLogs(ctx context.Context, containerID string, options container.LogsOptions) (io.ReadCloser, error)
}

// proxiedService is the service the loopback proxy balances over.
const proxiedService = ServiceAPI

// apiPort is where every API replica listens on the stack network.
const apiPort = "8080"

// MaxScale bounds `scale` (DESIGN.md "Replicas").
const MaxScale = 16

// Options configure a Daemon.
type Options struct {
	Project string
	Profile string
	// Listen is the loopback proxy address (127.0.0.1:8000).
	Listen string
	// Socket is the local API's unix socket path.
	Socket string
	// Resync is the period of the full reconcile that catches missed events (10 s).
	Resync time.Duration
	Docker DockerAPI
	Stack  Stack
	// Reload builds a new Stack from the re-read config (SIGHUP). Nil disables reload.
	Reload func() (Stack, error)
	// Hangup delivers reload requests (SIGHUP).
	Hangup <-chan os.Signal
	Log    *slog.Logger
	// Ready is called once both listeners are up.
	Ready func(apiURL string)
}

// Daemon is the running supervisor.
type Daemon struct {
	opts  Options
	log   *slog.Logger
	proxy *Proxy
	stats statsCache

	// refreshMu orders proxy backend refreshes so an older listing never wins.
	refreshMu sync.Mutex
	// probed holds API replicas that answered the supervisor's own ready probe while
	// Docker's first health check was still to come (container ID → struct{}), and
	// recheck is set while a refresh waits to probe the others again.
	probed   sync.Map
	recheck  atomic.Bool
	apiProbe *ReadyProbe // apiReady; tests point it elsewhere
	// reconcileMu serialises reconciles and the operations that change desired state.
	reconcileMu sync.Mutex

	mu            sync.Mutex // guards the fields below
	stack         Stack
	stopped       bool
	lastReconcile time.Time
	lastErr       string
	restarts      restartTracker
	diedSince     map[string]bool // services that lost a container since the last reconcile
}

// NewDaemon checks opts and returns a daemon that has not started yet.
func NewDaemon(opts Options) (*Daemon, error) {
	switch {
	case opts.Project == "":
		return nil, errors.New("supervisor: empty project name")
	case opts.Docker == nil || opts.Stack == nil:
		return nil, errors.New("supervisor: Docker and Stack are required")
	case opts.Listen == "" || opts.Socket == "":
		return nil, errors.New("supervisor: listen address and socket path are required")
	}
	if opts.Resync <= 0 {
		opts.Resync = 10 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Daemon{
		opts:      opts,
		log:       opts.Log,
		proxy:     NewProxy(opts.Log),
		stack:     opts.Stack,
		diedSince: make(map[string]bool),
		apiProbe:  apiReady,
	}, nil
}

// Proxy returns the loopback proxy (the edge wraps it later).
func (d *Daemon) Proxy() *Proxy { return d.proxy }

// Run serves the proxy and the local API and keeps the stack reconciled until ctx ends.
// It never stops the stack on the way out: the containers outlive the supervisor.
func (d *Daemon) Run(ctx context.Context) error {
	proxyLn, err := ListenProxy(d.opts.Listen)
	if err != nil {
		return err
	}
	localLn, err := ListenLocalAPI(d.opts.Socket)
	if err != nil {
		_ = proxyLn.Close()
		return err
	}
	proxySrv := newProxyServer(d.proxy, d.log)
	localSrv := &http.Server{Handler: NewLocalAPIHandler(d, d.log), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	serve := func(name string, srv *http.Server, ln net.Listener) {
		wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error(name+" stopped", "err", err)
			}
		})
	}
	serve("proxy", proxySrv, proxyLn)
	serve("local API", localSrv, localLn)
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = proxySrv.Shutdown(sctx)
		_ = localSrv.Shutdown(sctx)
		wg.Wait()
		_ = os.Remove(d.opts.Socket)
		d.log.Info("supervisor stopped; the stack keeps running")
	}()

	apiURL := "http://" + proxyLn.Addr().String()
	d.log.Info("supervisor started", "project", d.opts.Project, "profile", d.opts.Profile,
		"api", apiURL, "socket", d.opts.Socket)
	if d.opts.Ready != nil {
		d.opts.Ready(apiURL)
	}

	evctx, cancelEvents := context.WithCancel(ctx)
	defer cancelEvents()
	evch := make(chan stackEvent, 64)
	kick := make(chan struct{}, 1)
	wg.Go(func() { watchEvents(evctx, d.opts.Docker, d.opts.Project, evch, d.log) })
	wg.Go(func() { d.dispatch(evctx, evch, kick) })

	d.loop(ctx, kick)
	cancelEvents()
	return nil
}

// dispatch handles events as they come, also while a reconcile runs: the proxy learns
// about replicas going up or down at once, and a lost container asks for a reconcile.
func (d *Daemon) dispatch(ctx context.Context, evch <-chan stackEvent, kick chan<- struct{}) {
	for {
		var ev stackEvent
		select {
		case <-ctx.Done():
			return
		case ev = <-evch:
		}
		if ev.Action == "" { // the event stream reconnected: we may have missed something
			d.refreshBackends(ctx)
			notify(kick)
			continue
		}
		if ev.Service == "" {
			// One-shot jobs: the reconcile that runs them waits for them itself.
			continue
		}
		d.log.Debug("docker event", "service", ev.Service, "action", ev.Action, "container", shortID(ev.Container))
		if ev.Service == proxiedService && ev.healthChange() {
			d.refreshBackends(ctx)
		}
		if ev.gone() || ev.unhealthy() {
			d.mu.Lock()
			d.diedSince[ev.Service] = true
			d.mu.Unlock()
			notify(kick)
		}
	}
}

// notify sends on a 1-buffered channel without blocking; pending kicks coalesce.
func notify(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// loop runs the reconciles: on start, on kicks from events, on the resync ticker and on
// reload requests. Every path goes through one timer so that bursts coalesce.
func (d *Daemon) loop(ctx context.Context, kick <-chan struct{}) {
	timer := time.NewTimer(0) // the initial reconcile adopts what exists
	next := time.Now()
	schedule := func(delay time.Duration) {
		at := time.Now().Add(delay)
		if !next.IsZero() && !at.Before(next) {
			return
		}
		next = at
		timer.Reset(delay)
	}
	resync := time.NewTicker(d.opts.Resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-kick:
			// A short delay coalesces the events of one incident (die + destroy,
			// several containers killed together).
			schedule(max(100*time.Millisecond, d.backoffDelay(time.Now())))
		case <-resync.C:
			schedule(d.backoffDelay(time.Now()))
		case <-d.opts.Hangup:
			d.reload()
			schedule(0)
		case <-timer.C:
			next = time.Time{}
			_ = d.reconcile(ctx, "loop") // logged and shown in status; retried on resync
		}
	}
}

func shortID(id string) string { return id[:min(12, len(id))] }

// reload swaps in a stack built from the re-read config.
func (d *Daemon) reload() {
	if d.opts.Reload == nil {
		d.log.Warn("reload requested but not supported")
		return
	}
	st, err := d.opts.Reload()
	if err != nil {
		d.log.Error("reload failed; keeping the previous config", "err", err)
		return
	}
	d.reconcileMu.Lock()
	d.mu.Lock()
	old := d.stack
	d.stack = st
	d.mu.Unlock()
	// A restart the old stack did not get to (its pass failed) is still owed.
	if p, ok := old.(interface{ PendingRestarts() []string }); ok {
		for _, svc := range p.PendingRestarts() {
			if err := st.MarkRestart(svc); err != nil {
				d.log.Warn("restart request lost on reload", "service", svc, "err", err)
			}
		}
	}
	d.reconcileMu.Unlock()
	d.log.Info("config reloaded")
}

func (d *Daemon) currentStack() Stack {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stack
}

// reconcile runs one reconcile unless the operator stopped the stack.
func (d *Daemon) reconcile(ctx context.Context, reason string) error {
	d.reconcileMu.Lock()
	defer d.reconcileMu.Unlock()
	return d.reconcileLocked(ctx, reason)
}

func (d *Daemon) reconcileLocked(ctx context.Context, reason string) error {
	d.mu.Lock()
	stopped, st := d.stopped, d.stack
	died := d.diedSince
	d.diedSince = make(map[string]bool)
	d.mu.Unlock()
	if stopped {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	start := time.Now()
	changed, summary, err := st.Reconcile(rctx)
	d.mu.Lock()
	d.lastReconcile = time.Now()
	d.lastErr = ""
	if err != nil {
		d.lastErr = err.Error()
	}
	if changed {
		for svc := range died {
			d.restarts.record(svc, start)
		}
	}
	d.mu.Unlock()
	switch {
	case err != nil:
		d.log.Error("reconcile failed", "reason", reason, "err", err, "took", time.Since(start).Round(time.Millisecond))
	case changed:
		d.log.Info("reconciled", "reason", reason, "plan", summary, "took", time.Since(start).Round(time.Millisecond))
	}
	d.refreshBackends(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	return nil
}

// backoffDelay is how long the next automatic reconcile must wait for a service in a
// restart loop.
func (d *Daemon) backoffDelay(now time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.restarts.delay(now)
}

// apiReady is how the supervisor asks an API replica whether it serves (see ReadyProbe).
var apiReady = &ReadyProbe{Kind: ProbeHTTP, Port: 8080, Path: "/health"}

// recheckEvery is how often replicas that Docker has not checked yet are probed again.
const recheckEvery = 250 * time.Millisecond

// verified reports whether a container whose Docker health is still "starting" is known
// to serve: it passed its health gate (reconciler) or answered the daemon's own probe.
func (d *Daemon) verified(id string) bool {
	if _, ok := d.probed.Load(id); ok {
		return true
	}
	v, ok := d.currentStack().(interface{ Verified(id string) bool })
	return ok && v.Verified(id)
}

// probeStarting probes the running API replicas that Docker has not checked yet (e.g.
// restarted by Docker after a crash, so no health gate ran) and, while some do not
// answer yet, refreshes the backends again shortly. Probed entries of containers that
// are gone are dropped.
func (d *Daemon) probeStarting(ctx context.Context, list []container.Summary) {
	present := map[string]bool{}
	pending := false
	for _, c := range list {
		present[c.ID] = true
		if c.State != container.StateRunning || !strings.Contains(c.Status, "(health: starting)") || d.verified(c.ID) {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err := d.apiProbe.Check(pctx, summaryIP(c))
		cancel()
		if err == nil {
			d.probed.Store(c.ID, struct{}{})
		} else {
			pending = true
		}
	}
	d.probed.Range(func(id, _ any) bool {
		if !present[id.(string)] {
			d.probed.Delete(id)
		}
		return true
	})
	if pending && ctx.Err() == nil && d.recheck.CompareAndSwap(false, true) {
		time.AfterFunc(recheckEvery, func() {
			d.recheck.Store(false)
			d.refreshBackends(ctx)
		})
	}
}

// refreshBackends points the proxy at the running, healthy API replicas.
func (d *Daemon) refreshBackends(ctx context.Context) {
	d.refreshMu.Lock()
	defer d.refreshMu.Unlock()
	list, err := d.opts.Docker.ContainerList(ctx, container.ListOptions{Filters: projectFilter(d.opts.Project, proxiedService)})
	if err != nil {
		d.log.Warn("proxy: cannot list API replicas", "err", err)
		return
	}
	d.probeStarting(ctx, list)
	d.proxy.SetBackends(healthyBackends(list, d.verified))
}

// healthyBackends picks the replicas that may take traffic: running and healthy (or
// without a health check), with an address on the stack network.
func healthyBackends(list []container.Summary, verified func(id string) bool) []string {
	var out []string
	for _, c := range list {
		starting := strings.Contains(c.Status, "(health: starting)")
		if c.State != container.StateRunning || strings.Contains(c.Status, "(unhealthy)") || starting && !verified(c.ID) {
			continue
		}
		if ip := summaryIP(c); ip != "" {
			out = append(out, net.JoinHostPort(ip, apiPort))
		}
	}
	slices.Sort(out)
	return out
}

// summaryIP is the container's address on its (first) network, or "".
func summaryIP(c container.Summary) string {
	if c.NetworkSettings == nil {
		return ""
	}
	for _, ep := range c.NetworkSettings.Networks {
		if ep != nil && ep.IPAddress != "" {
			return ep.IPAddress
		}
	}
	return ""
}

// restartTracker detects restart loops: a service whose containers had to be replaced
// three times within two minutes waits, doubling from 5 s up to 2 min.
type restartTracker struct {
	replaced map[string][]time.Time
	until    map[string]time.Time
}

const (
	loopWindow    = 2 * time.Minute
	loopThreshold = 3
	loopMaxDelay  = 2 * time.Minute
)

func (t *restartTracker) record(svc string, now time.Time) {
	if t.replaced == nil {
		t.replaced, t.until = make(map[string][]time.Time), make(map[string]time.Time)
	}
	recent := slices.DeleteFunc(t.replaced[svc], func(at time.Time) bool { return now.Sub(at) > loopWindow })
	recent = append(recent, now)
	t.replaced[svc] = recent
	if n := len(recent); n >= loopThreshold {
		delay := min(5*time.Second<<(n-loopThreshold), loopMaxDelay)
		t.until[svc] = now.Add(delay)
	}
}

// delay is the wait until the last backoff expires (0 when none is active).
func (t *restartTracker) delay(now time.Time) time.Duration {
	var d time.Duration
	for _, u := range t.until {
		d = max(d, u.Sub(now))
	}
	return d
}

// describe reports an active backoff of svc for status.
func (t *restartTracker) describe(svc string, now time.Time) string {
	u, ok := t.until[svc]
	if !ok || !u.After(now) {
		return ""
	}
	return fmt.Sprintf("restart loop: %d replacements in %s, next try in %s", len(t.replaced[svc]), loopWindow, u.Sub(now).Round(time.Second))
}

// knownService checks svc against the spec, listing the valid names on error.
func (d *Daemon) knownService(svc string) error {
	var names []string
	for _, s := range d.currentStack().Services() {
		if s.Name == svc {
			return nil
		}
		names = append(names, s.Name)
	}
	return requestErrorf("unknown service %q (valid: %s)", svc, strings.Join(names, ", "))
}

// Status implements Operations.
func (d *Daemon) Status(ctx context.Context) (StatusReport, error) {
	desired := d.currentStack().Services()
	svcs, err := collectStatus(ctx, d.opts.Docker, &d.stats, d.opts.Project, desired, d.verified)
	if err != nil {
		return StatusReport{}, err
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range svcs {
		if b := d.restarts.describe(svcs[i].Service, now); b != "" {
			svcs[i].Backoff = b
			if svcs[i].State != "running" {
				svcs[i].State = "backoff"
			}
		}
	}
	return StatusReport{
		Project: d.opts.Project, Profile: d.opts.Profile, Listen: d.opts.Listen,
		Stopped: d.stopped, LastReconcile: d.lastReconcile, LastError: d.lastErr, Services: svcs,
	}, nil
}

// Scale implements Operations: it records the new scale and reconciles before answering.
func (d *Daemon) Scale(ctx context.Context, service string, replicas int) error {
	if err := d.knownService(service); err != nil {
		return err
	}
	if service != proxiedService {
		return requestErrorf("only %s can be scaled; %s runs exactly one container", proxiedService, service)
	}
	if replicas < 0 || replicas > MaxScale {
		return requestErrorf("replicas must be between 0 and %d, got %d", MaxScale, replicas)
	}
	d.reconcileMu.Lock()
	defer d.reconcileMu.Unlock()
	if err := d.currentStack().SetScale(service, replicas); err != nil {
		return fmt.Errorf("scale %s=%d: %w", service, replicas, err)
	}
	d.log.Info("scale", "service", service, "replicas", replicas)
	return d.reconcileLocked(ctx, "scale")
}

// Restart implements Operations: the service's containers are recreated now.
func (d *Daemon) Restart(ctx context.Context, service string) error {
	if err := d.knownService(service); err != nil {
		return err
	}
	d.reconcileMu.Lock()
	defer d.reconcileMu.Unlock()
	if err := d.currentStack().MarkRestart(service); err != nil {
		return fmt.Errorf("restart %s: %w", service, err)
	}
	d.log.Info("restart", "service", service)
	return d.reconcileLocked(ctx, "restart")
}

// Start implements Operations: it undoes Stop and reconciles at once (a no-op
// reconcile when the stack was not stopped).
func (d *Daemon) Start(ctx context.Context) error {
	d.reconcileMu.Lock()
	defer d.reconcileMu.Unlock()
	d.mu.Lock()
	was := d.stopped
	d.stopped = false
	d.mu.Unlock()
	if was {
		d.log.Info("starting the stack on operator request")
	}
	if err := d.reconcileLocked(ctx, "start"); err != nil {
		return err
	}
	d.refreshBackends(ctx)
	return nil
}

// Stop implements Operations: every container stops, data stays, and the reconciler
// leaves the stack down until Start (`corpintel start`) or a supervisor restart.
func (d *Daemon) Stop(ctx context.Context) error {
	d.reconcileMu.Lock()
	defer d.reconcileMu.Unlock()
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	d.proxy.SetBackends(nil)
	d.log.Info("stopping the stack on operator request")
	if err := d.currentStack().StopAll(ctx); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return nil
}

// Logs implements Operations: the logs of every container of service, prefixed with
// the container name when there are several.
func (d *Daemon) Logs(ctx context.Context, service string, opts LogOptions, w io.Writer) error {
	if err := d.knownService(service); err != nil {
		return err
	}
	list, err := d.opts.Docker.ContainerList(ctx, container.ListOptions{All: true, Filters: projectFilter(d.opts.Project, service)})
	if err != nil {
		return fmt.Errorf("logs %s: list containers: %w", service, err)
	}
	if len(list) == 0 {
		return requestErrorf("service %s has no containers (see `corpintel status`)", service)
	}
	slices.SortFunc(list, func(a, b container.Summary) int { return strings.Compare(firstOr(a.Names, ""), firstOr(b.Names, "")) })
	lo := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow, Tail: "all"}
	if opts.Tail >= 0 {
		lo.Tail = fmt.Sprint(opts.Tail)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(list))
	for i, c := range list {
		name := strings.TrimPrefix(firstOr(c.Names, c.ID), "/")
		var out io.Writer = &lockedWriter{mu: &mu, w: w}
		if len(list) > 1 {
			out = &prefixWriter{prefix: name + " | ", w: out}
		}
		wg.Go(func() {
			rc, err := d.opts.Docker.ContainerLogs(ctx, c.ID, lo)
			if err != nil {
				errs[i] = fmt.Errorf("logs of %s: %w", name, err)
				return
			}
			defer rc.Close()
			if _, err := stdcopy.StdCopy(out, out, rc); err != nil && ctx.Err() == nil {
				errs[i] = fmt.Errorf("logs of %s: %w", name, err)
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
