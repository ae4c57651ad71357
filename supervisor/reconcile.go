package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/supervisor/state"
)

// Reconciler drives one project's stack towards its spec. Its methods are safe for
// concurrent use; passes (ReconcileOnce, StopAll, RemoveAll) are serialised.
//
// The daemon loop (events, periodic resync, backoff), the proxy and the local API live
// elsewhere and use only the methods below.
type Reconciler struct {
	cfg   *config.Config
	eng   Engine
	state *state.Store
	log   *slog.Logger

	closers []func() error

	pass sync.Mutex // one pass at a time

	mu      sync.Mutex // guards the fields below
	force   map[string]bool
	secrets SecretFiles
	host    Host

	// verified holds the containers whose health gate passed by their ReadyProbe,
	// before Docker's first health check (container ID → struct{}).
	verified sync.Map
}

var _ Stack = (*Reconciler)(nil)

// NewReconciler returns a reconciler for cfg's project over an engine and a state
// store it does not own. Host facts are read once here.
func NewReconciler(cfg *config.Config, eng Engine, st *state.Store, log *slog.Logger) (*Reconciler, error) {
	cpus, mem, err := HostResources()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{cfg: cfg, eng: eng, state: st, log: log, force: map[string]bool{}, host: Host{CPUs: cpus, Memory: mem}}, nil
}

// OpenReconciler connects to the Docker Engine (DOCKER_HOST or the local socket),
// opens the state store in cfg.StateDir and returns a reconciler that owns both;
// Close releases them. This is what `corpintel supervisor` wires in as its Stack.
func OpenReconciler(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Reconciler, error) {
	eng, err := docker.New(ctx)
	if err != nil {
		return nil, err
	}
	st, err := state.Open(ctx, cfg.StateDir)
	if err != nil {
		eng.Close()
		return nil, err
	}
	r, err := NewReconciler(cfg, eng, st, log)
	if err != nil {
		st.Close()
		eng.Close()
		return nil, err
	}
	r.closers = []func() error{st.Close, eng.Close}
	return r, nil
}

// Close releases what OpenReconciler opened (a no-op for NewReconciler's).
func (r *Reconciler) Close() error {
	var errs []error
	for _, c := range r.closers {
		errs = append(errs, c())
	}
	r.closers = nil
	return errors.Join(errs...)
}

// Config returns the configuration the reconciler was built with.
func (r *Reconciler) Config() *config.Config { return r.cfg }

// Desired builds the current desired spec: config, secret files (created on first
// use), image IDs from the engine, and the stored scale. A missing image is an error
// that says how to get it.
func (r *Reconciler) Desired(ctx context.Context) (Spec, error) {
	r.mu.Lock()
	secrets := r.secrets
	r.mu.Unlock()
	if secrets == nil {
		var err error
		if secrets, err = EnsureSecrets(r.cfg.StateDir); err != nil {
			return Spec{}, err
		}
		r.mu.Lock()
		r.secrets = secrets
		r.mu.Unlock()
	}
	host := r.host
	host.ImageIDs = map[string]string{}
	for _, svc := range Services {
		res, _ := r.cfg.ServiceResources(svc)
		id, err := r.eng.ImageID(ctx, res.Image)
		if docker.IsNotFound(err) {
			return Spec{}, fmt.Errorf("image %s (service %s) is not on this engine: build it with `make images` or set %s.image in the config", res.Image, svc, svc)
		}
		if err != nil {
			return Spec{}, err
		}
		host.ImageIDs[res.Image] = id
	}
	spec, err := BuildSpec(r.cfg, secrets, host)
	if err != nil {
		return Spec{}, err
	}
	if n, ok, err := r.state.Scale(ctx, ServiceAPI); err != nil {
		return Spec{}, err
	} else if ok {
		spec = spec.WithScale(ServiceAPI, n)
	}
	r.mu.Lock()
	for i := range spec.Services {
		spec.Services[i].ForceRecreate = r.force[spec.Services[i].Name]
	}
	r.mu.Unlock()
	return spec, nil
}

// Observe returns what the engine has for the project (containers with state, health,
// restart count and IP on the stack network; the proxy picks ready API replicas from
// it).
func (r *Reconciler) Observe(ctx context.Context) (Observed, error) {
	done, err := r.state.JobsDone(ctx)
	if err != nil {
		return Observed{}, err
	}
	return Observe(ctx, r.eng, r.cfg.Project, NetworkName(r.cfg.Project), done)
}

// ReconcileOnce runs one observe → plan → execute pass and returns the plan it
// executed. On error the plan is still returned (steps before the failing one ran).
// Restart loops appear as backoff steps (Plan.Backoffs) and are not errors.
func (r *Reconciler) ReconcileOnce(ctx context.Context) (Plan, error) {
	r.pass.Lock()
	defer r.pass.Unlock()
	spec, err := r.Desired(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("reconcile: %w", err)
	}
	obs, err := r.Observe(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("reconcile: %w", err)
	}
	r.verified.Range(func(id, _ any) bool {
		if !slices.ContainsFunc(obs.Containers, func(c ObservedContainer) bool { return c.ID == id }) {
			r.verified.Delete(id)
		}
		return true
	})
	plan := BuildPlan(spec, obs)
	if !plan.HasChanges() {
		for _, b := range plan.Backoffs() {
			r.log.Warn("restart loop", "service", b.Service, "replica", b.Replica, "reason", b.Reason)
		}
		return plan, nil
	}
	r.log.Info("reconcile plan", "project", spec.Project, "steps", len(plan.Steps))
	x := &executor{eng: r.eng, spec: spec, log: r.log, jobDone: r.state.MarkJobDone,
		verified: func(id string) { r.verified.Store(id, struct{}{}) }}
	if err := x.run(ctx, plan); err != nil {
		return plan, fmt.Errorf("reconcile: %w", err)
	}
	// Forced recreates are done; clear the marks this pass honoured.
	r.mu.Lock()
	for _, svc := range spec.Services {
		if svc.ForceRecreate {
			delete(r.force, svc.Name)
		}
	}
	r.mu.Unlock()
	return plan, nil
}

// Verified reports whether the container passed its health gate by its ReadyProbe: it
// serves, though Docker's first health check may still be to come.
func (r *Reconciler) Verified(id string) bool {
	_, ok := r.verified.Load(id)
	return ok
}

// Reconcile is ReconcileOnce for the daemon (the Stack interface): whether the plan
// changed anything and its String.
func (r *Reconciler) Reconcile(ctx context.Context) (changed bool, summary string, err error) {
	p, err := r.ReconcileOnce(ctx)
	return p.HasChanges(), p.String(), err
}

// Services lists the services with their desired replicas, in start order.
func (r *Reconciler) Services() []DesiredService {
	out := make([]DesiredService, 0, len(Services))
	for _, svc := range Services {
		n, err := r.Scale(context.Background(), svc)
		if err != nil {
			r.log.Warn("read desired scale", "service", svc, "err", err)
			n = r.cfg.API.Replicas
		}
		out = append(out, DesiredService{Name: svc, Replicas: n})
	}
	return out
}

// SetScale stores the desired replica count of a service (only "api" scales, 0…16);
// it takes effect on the next pass and survives supervisor restarts.
func (r *Reconciler) SetScale(service string, n int) error {
	ctx := context.Background()
	if service != ServiceAPI {
		if slices.Contains(Services, service) {
			return fmt.Errorf("service %s runs exactly one container and cannot be scaled (only api scales)", service)
		}
		return fmt.Errorf("unknown service %q (services: %s)", service, strings.Join(Services, ", "))
	}
	if n < 0 || n > config.MaxReplicas {
		return fmt.Errorf("scale %s=%d: must be 0…%d", service, n, config.MaxReplicas)
	}
	return r.state.SetScale(ctx, service, n)
}

// Scale returns the desired replica count of a service (stored scale, else config).
func (r *Reconciler) Scale(ctx context.Context, service string) (int, error) {
	if !slices.Contains(Services, service) {
		return 0, fmt.Errorf("unknown service %q (services: %s)", service, strings.Join(Services, ", "))
	}
	if service != ServiceAPI {
		return 1, nil
	}
	n, ok, err := r.state.Scale(ctx, service)
	if err != nil || ok {
		return n, err
	}
	return r.cfg.API.Replicas, nil
}

// MarkRestart makes the next pass recreate every container of the service (stop-first
// for stateful services, new-first for the API), even when nothing changed.
func (r *Reconciler) MarkRestart(service string) error {
	if !slices.Contains(Services, service) {
		return fmt.Errorf("unknown service %q (services: %s)", service, strings.Join(Services, ", "))
	}
	r.mu.Lock()
	r.force[service] = true
	r.mu.Unlock()
	return nil
}

// PendingRestarts lists the services marked for a recreate that no pass has done yet
// (e.g. because it failed), so that a reload can carry them over.
func (r *Reconciler) PendingRestarts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.force))
	for svc := range r.force {
		out = append(out, svc)
	}
	slices.Sort(out)
	return out
}

// StopAll stops every container of the project, API first and PostgreSQL last; the
// containers and volumes stay (the next pass replaces the stopped containers).
func (r *Reconciler) StopAll(ctx context.Context) error {
	r.pass.Lock()
	defer r.pass.Unlock()
	cs, err := r.eng.ListContainers(ctx, map[string]string{LabelProject: r.cfg.Project})
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	order := func(c docker.Container) int { // reverse dependency order; jobs last
		i := slices.Index(Services, c.Labels[LabelService])
		return -i
	}
	slices.SortStableFunc(cs, func(a, b docker.Container) int { return order(a) - order(b) })
	var errs []error
	for _, c := range cs {
		if c.State != StateRunning && c.State != StateRestarting && c.State != StatePaused {
			continue
		}
		grace := 10 * time.Second
		if c.Labels[LabelService] == ServicePostgres {
			grace = 60 * time.Second
		}
		r.log.Info("stop", "container", c.Name)
		if err := r.eng.StopContainer(ctx, c.ID, grace); err != nil && !docker.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return nil
}

// RemoveAll removes every object labelled with the project: containers, the network
// and the volumes (data is lost). For tests and uninstall; it keeps going past errors.
func (r *Reconciler) RemoveAll(ctx context.Context) error {
	r.pass.Lock()
	defer r.pass.Unlock()
	return RemoveProject(ctx, r.eng, r.cfg.Project)
}

// RemoveProject removes every container, network and volume labelled with project.
func RemoveProject(ctx context.Context, eng Engine, project string) error {
	sel := map[string]string{LabelProject: project}
	var errs []error
	cs, err := eng.ListContainers(ctx, sel)
	errs = append(errs, err)
	for _, c := range cs {
		errs = append(errs, eng.RemoveContainer(ctx, c.ID, true))
	}
	nets, err := eng.ListNetworks(ctx, sel)
	errs = append(errs, err)
	for _, n := range nets {
		errs = append(errs, eng.RemoveNetwork(ctx, n))
	}
	vols, err := eng.ListVolumes(ctx, sel)
	errs = append(errs, err)
	for _, v := range vols {
		errs = append(errs, eng.RemoveVolume(ctx, v))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove project %s: %w", project, err)
	}
	return nil
}
