package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/internal/stack"
	"github.com/corpintel/corpintel/supervisor/state"
)

// Store is the part of the state store the reconciler keeps its memory in
// (supervisor/state implements it).
type Store interface {
	Scale(ctx context.Context, service string) (int, bool, error)
	SetScale(ctx context.Context, service string, n int) error
	JobsDone(ctx context.Context) (map[string]bool, error)
	MarkJobDone(ctx context.Context, job string) error
	Stopped(ctx context.Context) (bool, time.Time, error)
	SetStopped(ctx context.Context, stopped bool) error
	Holds(ctx context.Context) (map[string]state.Hold, error)
	SetHold(ctx context.Context, service string, h state.Hold) error
	ClearHold(ctx context.Context, service string) error
	OwnedServices(ctx context.Context) (map[string]string, error)
	LiveVolumes(ctx context.Context) (map[string]string, error)
}

var _ Store = (*state.Store)(nil)

// Options configure a Reconciler.
type Options struct {
	Config *config.Config
	Engine Engine
	Store  Store
	Log    *slog.Logger
	// Now is the clock (default time.Now); backoffs and reports use it.
	Now func() time.Time
	// Backoff is the replacement backoff policy (default DefaultBackoff).
	Backoff BackoffPolicy
	// Host overrides the host facts (tests); zero reads them from /proc.
	Host Host
	// OnSnapshot, when set, is called with every new snapshot (after every observe):
	// the edge takes its backends from it.
	OnSnapshot func(Snapshot)
	// Drain, when set, is called before an API replica is told to stop: the edge takes
	// it out of its backend set and waits for its requests in flight (until ctx ends).
	Drain func(ctx context.Context, containerID string)
}

// Reconciler drives one project's stack towards its spec. Its methods are safe for
// concurrent use; passes (Pass, Stop, RemoveProject, RunJob) are serialised.
type Reconciler struct {
	eng        Engine
	store      Store
	log        *slog.Logger
	now        func() time.Time
	onSnapshot func(Snapshot)
	drain      func(ctx context.Context, id string)

	pass sync.Mutex // one pass at a time

	mu      sync.Mutex // guards the fields below
	cfg     *config.Config
	force   map[string]bool
	secrets SecretFiles
	host    Host
	last    PassReport

	ready   ReadySet
	backoff *backoffs
	snap    atomic.Pointer[Snapshot]
	hb      heartbeat // the event loop's turns (Heartbeat)
}

// PassReport is what the last pass did, for status.
type PassReport struct {
	At    time.Time
	Error string
	// Reports are the backoff and hold steps of the last plan.
	Reports []Step
}

// New returns a reconciler for the config's project over an engine and a state store
// it does not own.
func New(opts Options) (*Reconciler, error) {
	if opts.Config == nil || opts.Engine == nil || opts.Store == nil {
		return nil, errors.New("reconcile: config, engine and store are required")
	}
	host := opts.Host
	if host.CPUs == 0 {
		cpus, mem, err := HostResources()
		if err != nil {
			return nil, err
		}
		host = Host{CPUs: cpus, Memory: mem}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Backoff.Max == 0 {
		opts.Backoff = DefaultBackoff
	}
	r := &Reconciler{eng: opts.Engine, store: opts.Store, log: opts.Log, now: opts.Now, onSnapshot: opts.OnSnapshot, drain: opts.Drain,
		cfg: opts.Config, force: map[string]bool{}, host: host, backoff: newBackoffs(opts.Backoff)}
	r.snap.Store(&Snapshot{ready: &r.ready})
	return r, nil
}

// Config returns the configuration in use.
func (r *Reconciler) Config() *config.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg
}

// SetConfig swaps in a re-read configuration (SIGHUP). Names that objects on the engine
// and files on disk already carry cannot change under a running stack: the project
// (every name derives from it) and the state directory (secrets and the state store —
// a new one would generate fresh secrets next to running containers).
func (r *Reconciler) SetConfig(cfg *config.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case cfg.Project != r.cfg.Project:
		return fmt.Errorf("project cannot change on reload (%q → %q): restart the supervisor", r.cfg.Project, cfg.Project)
	case cfg.StateDir != r.cfg.StateDir:
		return fmt.Errorf("state_dir cannot change on reload (%s → %s): it holds the secrets of the running containers; move it with the supervisor stopped and restart it", r.cfg.StateDir, cfg.StateDir)
	}
	r.cfg = cfg
	r.secrets = nil // re-read: a rotated secret takes effect on reload
	return nil
}

// Desired builds the current desired spec: config, secret files (created on first
// use), image IDs from the engine, and the stored scale. A missing image is an error
// that says how to get it.
func (r *Reconciler) Desired(ctx context.Context) (Spec, error) {
	r.mu.Lock()
	cfg, secrets, host := r.cfg, r.secrets, r.host
	r.mu.Unlock()
	if secrets == nil {
		var err error
		if secrets, err = EnsureSecrets(cfg.StateDir); err != nil {
			return Spec{}, err
		}
		r.mu.Lock()
		r.secrets = secrets
		r.mu.Unlock()
	}
	live, err := r.store.LiveVolumes(ctx)
	if err != nil {
		return Spec{}, err
	}
	host.LiveVolumes = live
	host.ImageIDs = map[string]string{}
	for _, svc := range stack.Services {
		res, _ := cfg.ServiceResources(svc)
		id, err := r.eng.ImageID(ctx, res.Image)
		if docker.IsNotFound(err) {
			return Spec{}, fmt.Errorf("image %s (service %s) is not on this engine: build it with `make images`, load a bundle, or set %s.image in the config", res.Image, svc, svc)
		}
		if err != nil {
			return Spec{}, err
		}
		host.ImageIDs[res.Image] = id
	}
	spec, err := BuildSpec(cfg, secrets, host)
	if err != nil {
		return Spec{}, err
	}
	if n, ok, err := r.store.Scale(ctx, stack.ServiceAPI); err != nil {
		return Spec{}, err
	} else if ok {
		spec = spec.WithScale(stack.ServiceAPI, n)
	}
	r.mu.Lock()
	for i := range spec.Services {
		spec.Services[i].ForceRecreate = r.force[spec.Services[i].Name]
	}
	r.mu.Unlock()
	return spec, nil
}

// observe reads the engine and the state store's facts into one Observed and publishes
// it as the new snapshot.
func (r *Reconciler) observe(ctx context.Context) (Observed, error) {
	obs, err := Observe(ctx, r.eng, r.Config().Project)
	if err != nil {
		r.publish(Snapshot{At: r.now(), Err: err.Error()})
		return Observed{}, err
	}
	obs.Now = r.now()
	if obs.JobsDone, err = r.store.JobsDone(ctx); err == nil {
		if obs.Held, err = r.holds(ctx); err == nil {
			obs.Owned, err = r.store.OwnedServices(ctx)
		}
	}
	if err != nil {
		return Observed{}, fmt.Errorf("observe: %w", err)
	}
	obs.Backoff = r.backoff.snapshot()
	r.ready.Retain(obs.Containers)
	r.publish(Snapshot{At: obs.Now, Observed: obs})
	return obs, nil
}

func (r *Reconciler) holds(ctx context.Context) (map[string]HeldRecreate, error) {
	hs, err := r.store.Holds(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]HeldRecreate, len(hs))
	for svc, h := range hs {
		out[svc] = HeldRecreate{Hash: h.Hash, At: h.At, Err: h.Error}
	}
	return out, nil
}

func (r *Reconciler) publish(s Snapshot) {
	s.ready = &r.ready
	r.snap.Store(&s)
	if r.onSnapshot != nil {
		r.onSnapshot(s)
	}
}

// Snapshot is the last observation (with the ready set), from which status and the
// edge's backends are derived without asking the engine again.
func (r *Reconciler) Snapshot() Snapshot { return *r.snap.Load() }

// Refresh observes without planning (after a health event, for status) and probes the
// containers that Docker has not checked yet — e.g. restarted by Docker itself after a
// crash, so no health gate ran, or gated by another supervisor process. It reports
// whether some still do not answer (ask again shortly).
func (r *Reconciler) Refresh(ctx context.Context) (pending bool, err error) {
	obs, err := r.observe(ctx)
	if err != nil {
		return false, err
	}
	probes := ReadyProbes(r.Config())
	var mu sync.Mutex
	var wg sync.WaitGroup
	probed := false
	for _, c := range obs.Containers {
		probe := probes[c.Service]
		if probe == nil || c.State != StateRunning || c.Health != HealthStarting || r.ready.Has(c.ID) {
			continue
		}
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			perr := probe.Check(pctx, c.IP)
			cancel()
			mu.Lock()
			defer mu.Unlock()
			if perr != nil {
				pending = true
				return
			}
			r.ready.Add(c.ID)
			probed = true
		})
	}
	wg.Wait()
	if probed { // the ready set changed: tell the edge
		r.publish(Snapshot{At: obs.Now, Observed: obs})
	}
	return pending, nil
}

// Pass runs one observe → plan → execute pass and returns the plan it executed. On
// error the plan is still returned (steps before the failing one ran). A stack the
// operator stopped is observed but not planned for.
func (r *Reconciler) Pass(ctx context.Context) (Plan, error) {
	r.pass.Lock()
	defer r.pass.Unlock()
	plan, err := r.passLocked(ctx)
	r.mu.Lock()
	r.last = PassReport{At: r.now(), Reports: plan.Reports()}
	if err != nil {
		r.last.Error = err.Error()
	}
	r.mu.Unlock()
	return plan, err
}

func (r *Reconciler) passLocked(ctx context.Context) (Plan, error) {
	stopped, _, err := r.store.Stopped(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("reconcile: %w", err)
	}
	if stopped {
		_, err := r.observe(ctx)
		return Plan{}, err
	}
	spec, err := r.Desired(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("reconcile: %w", err)
	}
	obs, err := r.observe(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("reconcile: %w", err)
	}
	r.mu.Lock()
	secrets := r.secrets
	r.mu.Unlock()
	if err := PruneSecretCopies(r.Config().StateDir, secrets, obs.Mounted()); err != nil {
		r.log.Warn("prune superseded secret copies", "err", err)
	}
	plan := BuildPlan(spec, obs)
	for _, s := range plan.Reports() {
		r.log.Warn("leaving a service alone", "kind", string(s.Kind), "service", s.Service, "replica", s.Replica, "reason", s.Reason)
	}
	if !plan.HasChanges() {
		r.noteHealth(spec, obs, plan, len(plan.Steps))
		return plan, nil
	}
	r.log.Info("reconcile plan", "project", spec.Project, "steps", len(plan.Steps))
	done, err := r.executor(spec).run(ctx, plan)
	r.noteHealth(spec, obs, plan, done)
	if err == nil {
		// Forced recreates are done; clear the marks this pass honoured.
		r.mu.Lock()
		for _, svc := range spec.Services {
			if svc.ForceRecreate {
				delete(r.force, svc.Name)
			}
		}
		r.mu.Unlock()
	}
	for _, s := range plan.Steps[:done] {
		if (s.Kind == StepRecreate || s.Kind == StepStart) && stack.Stateful(s.Service) && (err == nil || s != plan.Steps[done-1]) {
			if cerr := r.store.ClearHold(context.WithoutCancel(ctx), s.Service); cerr != nil {
				r.log.Warn("clear held recreate", "service", s.Service, "err", cerr)
			}
		}
	}
	if err != nil {
		return plan, fmt.Errorf("reconcile: %w", err)
	}
	return plan, nil
}

func (r *Reconciler) executor(spec Spec) *executor {
	return &executor{eng: r.eng, spec: spec, log: r.log, jobDone: r.store.MarkJobDone, ready: &r.ready, drain: r.drain,
		joined: func(ctx context.Context) {
			if _, err := r.Refresh(ctx); err != nil {
				r.log.Warn("refresh after a new replica", "err", err)
			}
		},
		rolledBack: func(service, hash string, err error) {
			h := state.Hold{Hash: hash, At: r.now(), Error: err.Error()}
			if serr := r.store.SetHold(context.Background(), service, h); serr != nil {
				r.log.Error("record held recreate", "service", service, "err", serr)
			}
			r.log.Error("holding the service on its old container until the config changes or `corpintel restart "+service+"`",
				"service", service, "failed_hash", short(hash))
		}}
}

// noteHealth feeds the backoffs: the failing containers the plan replaced (the first
// done steps ran) and the services that were healthy.
func (r *Reconciler) noteHealth(spec Spec, obs Observed, plan Plan, done int) {
	now := r.now()
	failing := map[string]bool{}
	for i, s := range plan.Steps {
		if s.Kind == StepBackoff || s.Failure {
			failing[s.Service] = true
		}
		if s.Failure && i < done {
			r.backoff.replaced(s.Service, now)
		}
	}
	snap := r.Snapshot()
	for _, svc := range spec.Services {
		healthy := !failing[svc.Name]
		for _, c := range obs.ServiceContainers(svc.Name) {
			healthy = healthy && snap.Serving(c)
		}
		r.backoff.observe(svc.Name, healthy, now)
	}
}

// NextWake is when a backoff ends (zero: none pending): the loop runs a pass then.
func (r *Reconciler) NextWake() time.Time { return r.backoff.nextWake(r.now()) }

// Backoffs returns the services whose replacements are backing off.
func (r *Reconciler) Backoffs() map[string]Backoff { return r.backoff.snapshot() }

// LastPass reports the last pass (time, error, services in backoff or on hold).
func (r *Reconciler) LastPass() PassReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// ServiceScale is one service's desired replica count.
type ServiceScale struct {
	Name     string
	Replicas int
}

// Services lists the services with their desired replicas, in start order.
func (r *Reconciler) Services(ctx context.Context) []ServiceScale {
	out := make([]ServiceScale, 0, len(stack.Services))
	for _, svc := range stack.Services {
		n, err := r.Scale(ctx, svc)
		if err != nil {
			r.log.Warn("read desired scale", "service", svc, "err", err)
			n = r.Config().API.Replicas
		}
		out = append(out, ServiceScale{Name: svc, Replicas: n})
	}
	return out
}

// SetScale stores the desired replica count of a service (only "api" scales, 0…16);
// it takes effect on the next pass and survives supervisor restarts.
func (r *Reconciler) SetScale(ctx context.Context, service string, n int) error {
	if err := stack.ValidateScale(service, n); err != nil {
		return err
	}
	return r.store.SetScale(ctx, service, n)
}

// Scale returns the desired replica count of a service (stored scale, else config).
func (r *Reconciler) Scale(ctx context.Context, service string) (int, error) {
	if err := stack.CheckService(service); err != nil {
		return 0, err
	}
	if !stack.Scalable(service) {
		return 1, nil
	}
	n, ok, err := r.store.Scale(ctx, service)
	if err != nil || ok {
		return n, err
	}
	return r.Config().API.Replicas, nil
}

// MarkRestart makes the next pass recreate every container of the service (stop-first
// for stateful services, new-first for the API), even when nothing changed. It is also
// the operator's way out of a held recreate and a backoff.
func (r *Reconciler) MarkRestart(ctx context.Context, service string) error {
	if err := stack.CheckService(service); err != nil {
		return err
	}
	if err := r.store.ClearHold(ctx, service); err != nil {
		return err
	}
	r.backoff.forget(service)
	r.mu.Lock()
	r.force[service] = true
	r.mu.Unlock()
	return nil
}

// Stop records the operator's stop (kept until Start, across supervisor restarts and
// reboots) and stops every container of the project — jobs first, PostgreSQL last —
// keeping the containers and volumes.
func (r *Reconciler) Stop(ctx context.Context) (Plan, error) {
	r.pass.Lock()
	defer r.pass.Unlock()
	if err := r.store.SetStopped(ctx, true); err != nil {
		return Plan{}, fmt.Errorf("stop: %w", err)
	}
	obs, err := r.observe(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("stop: %w", err)
	}
	plan := BuildStopPlan(r.Config().Project, obs)
	x := &executor{eng: r.eng, log: r.log, drain: r.drain}
	if _, err := x.run(ctx, plan); err != nil {
		return plan, fmt.Errorf("stop: %w", err)
	}
	_, _ = r.observe(ctx)
	return plan, nil
}

// Start clears the operator's stop; the next pass brings the stack up.
func (r *Reconciler) Start(ctx context.Context) error {
	if err := r.store.SetStopped(ctx, false); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	return nil
}

// Stopped reports whether the operator stopped the stack.
func (r *Reconciler) Stopped(ctx context.Context) (bool, error) {
	stopped, _, err := r.store.Stopped(ctx)
	return stopped, err
}

// RemoveProject removes every object labelled with the project: containers, the
// network and the volumes (data is lost). For tests, uninstall --purge and throwaway
// projects.
func (r *Reconciler) RemoveProject(ctx context.Context) error {
	r.pass.Lock()
	defer r.pass.Unlock()
	return RemoveProject(ctx, r.eng, r.Config().Project, r.log)
}

// RemoveProject removes every container, network and volume labelled with project by
// executing its remove plan; it keeps going past errors.
func RemoveProject(ctx context.Context, eng Engine, project string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	obs, err := Observe(ctx, eng, project)
	if err != nil {
		return fmt.Errorf("remove project %s: %w", project, err)
	}
	x := &executor{eng: eng, log: log}
	var errs []error
	for _, s := range BuildRemovePlan(project, obs).Steps {
		errs = append(errs, x.runStep(ctx, s))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove project %s: %w", project, err)
	}
	return nil
}

// RunJob runs a one-shot job that is not part of the spec's own jobs (create-admin)
// to completion, as a one-step plan, under the pass lock.
func (r *Reconciler) RunJob(ctx context.Context, job func(Spec) (JobSpec, error)) error {
	r.pass.Lock()
	defer r.pass.Unlock()
	spec, err := r.Desired(ctx)
	if err != nil {
		return err
	}
	j, err := job(spec)
	if err != nil {
		return err
	}
	spec.Jobs = append(spec.Jobs, j)
	plan := Plan{Steps: []Step{{Kind: StepRunJob, Job: j.Name, Name: stack.JobContainerName(spec.Project, j.Name), Reason: "requested"}}}
	_, err = r.executor(spec).run(ctx, plan)
	return err
}

// Snapshot is one observation of the stack with what the supervisor knows on top of
// it (which starting containers already answered its probe).
type Snapshot struct {
	At       time.Time
	Observed Observed
	// Err is set when the observation failed (the engine did not answer).
	Err   string
	ready *ReadySet
}

// Serving reports whether a container takes traffic: ready by Docker's account, or
// still "starting" for Docker but known to answer its probe.
func (s Snapshot) Serving(c ObservedContainer) bool {
	if c.Ready() {
		return true
	}
	return c.State == StateRunning && c.Health == HealthStarting && s.ready != nil && s.ready.Has(c.ID)
}

// Backends lists the host:port of the serving replicas of a service on the stack
// network, sorted (the edge's backend set).
func (s Snapshot) Backends(service string, port int) []string {
	var out []string
	for _, c := range s.Observed.ServiceContainers(service) {
		if c.IP != "" && s.Serving(c) {
			out = append(out, net.JoinHostPort(c.IP, strconv.Itoa(port)))
		}
	}
	slices.Sort(out)
	return out
}
