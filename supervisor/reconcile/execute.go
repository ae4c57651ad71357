package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/internal/stack"
)

// Engine is the slice of the Docker Engine the reconciler uses (internal/docker.Client
// implements it; unit tests use a fake that fails on unexpected calls).
type Engine interface {
	ListContainers(ctx context.Context, labels map[string]string) ([]docker.Container, error)
	InspectContainer(ctx context.Context, id string) (docker.Container, error)
	CreateContainer(ctx context.Context, r docker.CreateRequest) (string, error)
	StartContainer(ctx context.Context, id string) error
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	RemoveContainer(ctx context.Context, id string, force bool) error
	RenameContainer(ctx context.Context, id, name string) error
	WaitContainer(ctx context.Context, id string) (int, error)
	Logs(ctx context.Context, id, tail string) (string, error)
	CreateNetwork(ctx context.Context, name string, labels map[string]string) error
	ListNetworks(ctx context.Context, labels map[string]string) ([]string, error)
	RemoveNetwork(ctx context.Context, name string) error
	CreateVolume(ctx context.Context, name string, labels map[string]string) error
	ListVolumes(ctx context.Context, labels map[string]string) ([]string, error)
	RemoveVolume(ctx context.Context, name string) error
	ImageID(ctx context.Context, ref string) (string, error)
}

var _ Engine = (*docker.Client)(nil)

// pollInterval is how often the health gate and job waits look at a container.
const pollInterval = 250 * time.Millisecond

// executor runs plan steps against the engine. It is the only writer of Docker state.
type executor struct {
	eng  Engine
	spec Spec
	log  *slog.Logger
	// jobDone records a run-once job after success.
	jobDone func(ctx context.Context, job string) error
	// ready, when set, learns the containers that passed their gate by ReadyProbe.
	ready *ReadySet
	// rolledBack, when set, learns a stateful recreate that failed and was rolled back
	// (the service, the spec hash that failed, why).
	rolledBack func(service, hash string, err error)
	// drain, when set, takes an API replica out of the edge's backend set and waits
	// for its requests in flight before the replica is told to stop.
	drain func(ctx context.Context, id string)
	// joined, when set, is told that a new API replica passed its gate, so that the
	// edge sends it traffic before an old one is drained.
	joined func(ctx context.Context)
}

// run executes the steps in order and stops at the first failure: later steps depend
// on earlier ones (API after migrate after postgres).
// Steps within one batch (see batches) run concurrently.
// It returns how many steps it started (all of them, or those up to the end of the
// failing batch).
func (x *executor) run(ctx context.Context, p Plan) (int, error) {
	started := 0
	for _, batch := range batches(p.Steps) {
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		for i, s := range batch {
			wg.Go(func() { errs[i] = x.runStep(ctx, s) })
		}
		wg.Wait()
		started += len(batch)
		if err := errors.Join(errs...); err != nil {
			return started, err
		}
	}
	return started, nil
}

func (x *executor) runStep(ctx context.Context, s Step) error {
	start := time.Now()
	x.log.Info("step", "step", s.String())
	if err := x.step(ctx, s); err != nil {
		return fmt.Errorf("%s %s: %w", s.Kind, s.Name, err)
	}
	if !s.Kind.reportOnly() {
		x.log.Info("step done", "kind", string(s.Kind), "name", s.Name, "duration", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// batches groups consecutive steps that may run at the same time: starting or
// recreating the stateful services (independent of each other; each still one
// container at a time on its own volume) and starting new API replicas. Everything
// else — network, volumes, removals, jobs, rollouts (one at a time keeps serving
// capacity) — runs alone, in plan order.
func batches(steps []Step) [][]Step {
	key := func(s Step) string {
		switch {
		case (s.Kind == StepStart || s.Kind == StepRecreate) && s.Service != "" && s.Service != stack.ServiceAPI:
			return "stateful"
		case s.Kind == StepStart && s.Service == stack.ServiceAPI:
			return "api-start"
		}
		return ""
	}
	var out [][]Step
	for i, s := range steps {
		k := key(s)
		if i > 0 && k != "" && k == key(steps[i-1]) {
			out[len(out)-1] = append(out[len(out)-1], s)
			continue
		}
		out = append(out, []Step{s})
	}
	return out
}

func (x *executor) step(ctx context.Context, s Step) error {
	switch s.Kind {
	case StepCreateNetwork:
		return x.eng.CreateNetwork(ctx, s.Name, map[string]string{stack.LabelProject: x.spec.Project})
	case StepCreateVolume:
		return x.eng.CreateVolume(ctx, s.Name, map[string]string{stack.LabelProject: x.spec.Project})
	case StepStart:
		svc := x.service(s.Service)
		if _, err := x.startGated(ctx, svc, s.Replica, s.Name); err != nil {
			return err
		}
		x.announce(ctx, svc.Name)
		return nil
	case StepRecreate:
		return x.recreateStopFirst(ctx, x.service(s.Service), s)
	case StepRollout:
		return x.rolloutNewFirst(ctx, x.service(s.Service), s)
	case StepRename:
		return x.eng.RenameContainer(ctx, s.OldID, s.Name)
	case StepRemove:
		return x.stopRemove(ctx, s.Service, s.OldID, x.stopGrace(s.Service))
	case StepRunJob:
		return x.runJob(ctx, s.Job)
	case StepStop:
		if err := x.stop(ctx, s.Service, s.OldID, x.stopGrace(s.Service)); err != nil && !docker.IsNotFound(err) {
			return err
		}
		return nil
	case StepRevive:
		svc := x.service(s.Service)
		if err := x.eng.StartContainer(ctx, s.OldID); err != nil {
			return err
		}
		return x.healthGate(ctx, s.OldID, s.Name, svc.Container.Ready, svc.HealthTimeout)
	case StepRemoveNetwork:
		return x.eng.RemoveNetwork(ctx, s.Name)
	case StepRemoveVolume:
		return x.eng.RemoveVolume(ctx, s.Name)
	case StepBackoff, StepHold:
		x.log.Warn("leaving a service alone", "kind", string(s.Kind), "service", s.Service, "replica", s.Replica, "reason", s.Reason)
		return nil
	}
	return fmt.Errorf("unknown step kind %q", s.Kind)
}

// stopGrace is how long a service's container gets to stop before it is killed: its
// spec's, or (plans run without a spec: stop, remove) enough for PostgreSQL to
// checkpoint and for an API replica to drain.
func (x *executor) stopGrace(service string) time.Duration {
	if svc, ok := x.spec.Service(service); ok {
		return svc.Container.StopGrace
	}
	if service == stack.ServicePostgres {
		return 60 * time.Second
	}
	return 30 * time.Second
}

// announce tells the edge about a new API replica that passed its gate.
func (x *executor) announce(ctx context.Context, service string) {
	if service == stack.ServiceAPI && x.joined != nil {
		x.joined(ctx)
	}
}

func (x *executor) service(name string) ServiceSpec {
	svc, ok := x.spec.Service(name)
	if !ok {
		panic("supervisor: plan names service " + name + " that the spec lacks") // BuildPlan never does
	}
	return svc
}

// createRequest turns a container spec into an engine request.
func (x *executor) createRequest(name string, c ContainerSpec, labels map[string]string, restart string) docker.CreateRequest {
	r := docker.CreateRequest{
		Name: name, Image: c.Image, Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, Labels: labels,
		NanoCPUs: c.NanoCPUs, Memory: c.Memory, ShmSize: c.ShmSize,
		Network: x.spec.Network, Aliases: c.Aliases, RestartPolicy: restart, StopTimeout: c.StopGrace,
		LogMaxSize: "10m", LogMaxFile: 3,
	}
	for _, m := range c.Mounts {
		r.Mounts = append(r.Mounts, docker.Mount(m))
	}
	if h := c.Health; h != nil {
		r.Health = &docker.HealthCheck{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	return r
}

func (x *executor) serviceLabels(svc ServiceSpec, replica int) map[string]string {
	return map[string]string{
		stack.LabelProject:    x.spec.Project,
		stack.LabelService:    svc.Name,
		stack.LabelReplica:    strconv.Itoa(replica),
		stack.LabelConfigHash: svc.Container.Hash,
	}
}

// startGated creates and starts a container and waits until it is healthy. On failure
// the new container is removed and the error carries its last health output and logs.
func (x *executor) startGated(ctx context.Context, svc ServiceSpec, replica int, name string) (string, error) {
	id, err := x.eng.CreateContainer(ctx, x.createRequest(name, svc.Container, x.serviceLabels(svc, replica), "unless-stopped"))
	if err != nil {
		return "", err
	}
	if err := x.eng.StartContainer(ctx, id); err != nil {
		return "", errors.Join(err, x.eng.RemoveContainer(context.WithoutCancel(ctx), id, true))
	}
	if err := x.healthGate(ctx, id, name, svc.Container.Ready, svc.HealthTimeout); err != nil {
		return "", errors.Join(err, x.eng.RemoveContainer(context.WithoutCancel(ctx), id, true))
	}
	return id, nil
}

// healthGate polls the container until it is healthy (or running, without a health
// check), and fails early when it exits, is marked unhealthy or keeps restarting. While
// Docker's first check is still to come, the container's ReadyProbe (when it has one)
// answering is enough; the container is then recorded as verified (see proxy backends).
func (x *executor) healthGate(ctx context.Context, id, name string, ready *ReadyProbe, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var last docker.Container
	for {
		c, err := x.eng.InspectContainer(ctx, id)
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("health gate: %w", err)
		}
		if err == nil {
			last = c
			switch {
			case c.State == StateRunning && (c.Health == HealthHealthy || c.Health == ""):
				return nil
			case c.State == StateExited || c.State == StateDead:
				return x.gateFailure(ctx, last, fmt.Sprintf("exited with code %d", c.ExitCode))
			case c.Health == HealthUnhealthy:
				return x.gateFailure(ctx, last, "unhealthy")
			case c.RestartCount >= 2:
				return x.gateFailure(ctx, last, fmt.Sprintf("restarting (%d restarts)", c.RestartCount))
			case c.State == StateRunning && c.Health == HealthStarting && ready != nil && ready.Check(ctx, c.IPs[x.spec.Network]) == nil:
				if x.ready != nil {
					x.ready.Add(id)
				}
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return x.gateFailure(context.WithoutCancel(ctx), last, fmt.Sprintf("not healthy within %s (state %s, health %s)", timeout, last.State, orNone(last.Health)))
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// gateFailure describes why a container failed its gate: the last health-check output
// and the tail of its logs.
func (x *executor) gateFailure(ctx context.Context, c docker.Container, why string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "container %s %s", c.Name, why)
	if c.OOMKilled {
		b.WriteString(" (OOM-killed: raise its memory limit)")
	}
	if n := len(c.HealthLog); n > 0 {
		h := c.HealthLog[n-1]
		fmt.Fprintf(&b, "; last health check exit %d: %s", h.ExitCode, strings.TrimSpace(h.Output))
	}
	if logs, err := x.eng.Logs(context.WithoutCancel(ctx), c.ID, "20"); err == nil && strings.TrimSpace(logs) != "" {
		fmt.Fprintf(&b, "\n--- last log lines of %s ---\n%s", c.Name, strings.TrimRight(logs, "\n"))
	}
	return errors.New(b.String())
}

// stop stops a container with grace; an API replica is drained from the edge first, so
// that no new request reaches it and those in flight finish.
func (x *executor) stop(ctx context.Context, service, id string, grace time.Duration) error {
	if service == stack.ServiceAPI && x.drain != nil {
		dctx, cancel := context.WithTimeout(ctx, grace/2)
		x.drain(dctx, id)
		cancel()
	}
	return x.eng.StopContainer(ctx, id, grace)
}

// stopRemove stops a container with grace and removes it.
func (x *executor) stopRemove(ctx context.Context, service, id string, grace time.Duration) error {
	if err := x.stop(ctx, service, id, grace); err != nil && !docker.IsNotFound(err) {
		return err
	}
	return x.eng.RemoveContainer(ctx, id, true)
}

// recreateStopFirst replaces a container without ever running two on one volume: stop
// old → rename it aside → create new → start → gate → remove old. On failure the new
// container is removed and the old one gets its name back and is started again.
func (x *executor) recreateStopFirst(ctx context.Context, svc ServiceSpec, s Step) error {
	aside := s.Name + "-old"
	if err := x.stop(ctx, svc.Name, s.OldID, svc.Container.StopGrace); err != nil && !docker.IsNotFound(err) {
		return err
	}
	if s.OldName != aside {
		if err := x.eng.RenameContainer(ctx, s.OldID, aside); err != nil {
			return err
		}
	}
	_, err := x.startGated(ctx, svc, s.Replica, s.Name)
	if err == nil {
		x.announce(ctx, svc.Name)
		return x.eng.RemoveContainer(ctx, s.OldID, true)
	}
	// Roll back to the old container (and so the old spec), and remember that this spec
	// failed so that the next pass does not stop the service again for it.
	bg := context.WithoutCancel(ctx)
	x.log.Error("recreate failed; rolling back to the old container", "service", svc.Name, "container", s.Name, "err", err)
	if x.rolledBack != nil && ctx.Err() == nil {
		x.rolledBack(svc.Name, svc.Container.Hash, err)
	}
	if rerr := x.eng.RenameContainer(bg, s.OldID, s.Name); rerr != nil {
		return errors.Join(err, fmt.Errorf("rollback: %w", rerr))
	}
	if rerr := x.eng.StartContainer(bg, s.OldID); rerr != nil {
		return errors.Join(err, fmt.Errorf("rollback: %w", rerr))
	}
	return fmt.Errorf("%w (rolled back to the old container)", err)
}

// rolloutNewFirst replaces a running stateless container: create the new one under a
// temporary name → start → gate → stop and remove the old → rename the new. On failure
// the old one keeps serving.
func (x *executor) rolloutNewFirst(ctx context.Context, svc ServiceSpec, s Step) error {
	tmp := s.Name + "-next"
	newID, err := x.startGated(ctx, svc, s.Replica, tmp)
	if err != nil {
		return fmt.Errorf("%w (the old container keeps running)", err)
	}
	x.announce(ctx, svc.Name)
	if err := x.stopRemove(ctx, svc.Name, s.OldID, svc.Container.StopGrace); err != nil {
		return err
	}
	return x.eng.RenameContainer(ctx, newID, s.Name)
}

// runJob runs a one-shot job container on the stack network, waits for it, and removes
// it; a failure carries the job's log tail.
func (x *executor) runJob(ctx context.Context, name string) error {
	var job JobSpec
	for _, j := range x.spec.Jobs {
		if j.Name == name {
			job = j
		}
	}
	if job.Name == "" {
		return fmt.Errorf("job %s not in spec", name)
	}
	cname := stack.JobContainerName(x.spec.Project, name)
	labels := map[string]string{stack.LabelProject: x.spec.Project, stack.LabelJob: name}
	id, err := x.eng.CreateContainer(ctx, x.createRequest(cname, job.Container, labels, "no"))
	if err != nil {
		return err
	}
	bg := context.WithoutCancel(ctx)
	defer func() {
		if err := x.eng.RemoveContainer(bg, id, true); err != nil {
			x.log.Warn("remove job container", "job", name, "err", err)
		}
	}()
	if err := x.eng.StartContainer(ctx, id); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, job.Timeout)
	defer cancel()
	code, err := x.eng.WaitContainer(wctx, id)
	if err != nil && errors.Is(wctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		hint := ""
		if name == stack.JobMigrate {
			hint = " (api.migrate_timeout); raise api.migrate_timeout if the migration needs longer"
		}
		return fmt.Errorf("job %s did not finish within %s%s — it was stopped%s", name, job.Timeout, hint, x.logTail(bg, id))
	}
	if err != nil {
		return fmt.Errorf("job %s: %w%s", name, err, x.logTail(bg, id))
	}
	if code != 0 {
		return fmt.Errorf("job %s exited with code %d%s", name, code, x.logTail(bg, id))
	}
	if x.jobDone == nil {
		return nil
	}
	if job.Name == stack.JobMigrate {
		return x.jobDone(ctx, MigratedKey(job))
	}
	if job.Once {
		return x.jobDone(ctx, name)
	}
	return nil
}

func (x *executor) logTail(ctx context.Context, id string) string {
	logs, err := x.eng.Logs(ctx, id, "50")
	if err != nil || strings.TrimSpace(logs) == "" {
		return ""
	}
	return "\n--- last log lines ---\n" + strings.TrimRight(logs, "\n")
}
