// Package health turns what the supervisor knows into status and metrics.
//
// Status (status.go): per service the replicas, state, health, uptime, restarts, CPU
// and memory, whether it is backing off or held, and the operation that runs — from the
// reconciler's last snapshot (never the engine's container list itself) plus one-shot
// resource counters per container.
//
// Metrics (metrics.go): collectors for the host, the containers, PostgreSQL, Redis,
// MinIO, the Docker Engine and the API replicas fill one batch per cycle; the batch is
// the supervisor's /metrics and, with its recent history (24 h at one minute, and every
// cycle for the rate windows), the alert engine's samples and the console's charts.
package health

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/supervisor/edge/certs"
	"github.com/corpintel/corpintel/supervisor/reconcile"
	"github.com/corpintel/corpintel/supervisor/state"
)

// StatusReport is what `corpintel status` shows; it travels as JSON over the local API.
type StatusReport struct {
	Project string `json:"project"`
	Profile string `json:"profile,omitempty"`
	// Listen is where the supervisor's loopback listener answers (http://<listen>/health).
	Listen string `json:"listen"`
	// Supervisor is false when the report was made by the CLI straight from the engine
	// because no supervisor answers (nothing repairs the stack then).
	Supervisor bool `json:"supervisor"`
	// Stopped is set after `corpintel stop`: the reconciler leaves the stack down until
	// `corpintel start`, across supervisor restarts.
	Stopped       bool             `json:"stopped"`
	StoppedAt     time.Time        `json:"stopped_at,omitzero"`
	LastReconcile time.Time        `json:"last_reconcile,omitzero"`
	LastError     string           `json:"last_error,omitempty"`
	Operation     *state.Operation `json:"operation,omitempty"`
	// Interrupted lists operations a previous supervisor left unfinished, as found at
	// start (shown until the next operation ends).
	Interrupted []state.Operation `json:"interrupted,omitempty"`
	Services    []ServiceStatus   `json:"services"`
	// Maintenance names the operation the edge answers 503 for ("" when serving).
	Maintenance string `json:"maintenance,omitempty"`
	// TLS is the certificate manager's view, TLSServed what the HTTPS listener actually
	// serves (read from a handshake).
	TLS       *certs.Status       `json:"tls,omitempty"`
	TLSServed []certs.ProbeResult `json:"tls_served,omitempty"`
}

// ServiceStatus is one line of the status table.
type ServiceStatus struct {
	Service string `json:"service"`
	Desired int    `json:"desired"`
	Running int    `json:"running"`
	Healthy int    `json:"healthy"`
	// State summarises the service: running, degraded, starting, stopped, missing,
	// restarting, backoff or held.
	State string `json:"state"`
	// Health is healthy when every desired replica is healthy.
	Health      string    `json:"health"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	Image       string    `json:"image,omitempty"`
	CPUPercent  float64   `json:"cpu_percent"`
	MemoryBytes uint64    `json:"memory_bytes"`
	Restarts    int       `json:"restarts"`
	// Backoff explains why a failing container is not replaced yet; NextAttempt is
	// when it will be.
	Backoff     string    `json:"backoff,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Held explains why the reconciler leaves the service alone (an operation owns it,
	// or a recreate failed and was rolled back).
	Held       string            `json:"held,omitempty"`
	Containers []ContainerStatus `json:"containers"`
}

// ContainerStatus describes one container of a service.
type ContainerStatus struct {
	Name         string    `json:"name"`
	ID           string    `json:"id"`
	State        string    `json:"state"`
	Health       string    `json:"health"`
	StartedAt    time.Time `json:"started_at,omitzero"`
	RestartCount int       `json:"restart_count"`
	Image        string    `json:"image"`
	IP           string    `json:"ip,omitempty"`
	CPUPercent   float64   `json:"cpu_percent"`
	MemoryBytes  uint64    `json:"memory_bytes"`
}

// Healthy reports whether every service has all its desired replicas healthy.
func (r StatusReport) Healthy() bool {
	if len(r.Services) == 0 {
		return false
	}
	for _, s := range r.Services {
		if s.Healthy < s.Desired || s.Running != s.Desired {
			return false
		}
	}
	return true
}

// UsageReader reads a container's resource counters (internal/docker.Client).
type UsageReader interface {
	Usage(ctx context.Context, id string) (docker.Usage, error)
}

// Collector builds service status from snapshots. It keeps the previous resource
// reading per container, so CPU % comes from two readings without waiting for the
// engine's own sampling.
type Collector struct {
	usage UsageReader
	mu    sync.Mutex
	prev  map[string]docker.Usage
}

// NewCollector returns a collector reading resource counters through u (nil: none).
func NewCollector(u UsageReader) *Collector {
	return &Collector{usage: u, prev: map[string]docker.Usage{}}
}

// Inputs is what one status collection looks at.
type Inputs struct {
	Snapshot reconcile.Snapshot
	Desired  []reconcile.ServiceScale
	Backoffs map[string]reconcile.Backoff
	// Reports are the backoff and hold steps of the last plan.
	Reports []reconcile.Step
	Now     time.Time
}

// Services summarises every desired service.
func (c *Collector) Services(ctx context.Context, in Inputs) []ServiceStatus {
	byService := map[string][]ContainerStatus{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	seen := map[string]bool{}
	for _, oc := range in.Snapshot.Observed.Containers {
		if !slices.ContainsFunc(in.Desired, func(d reconcile.ServiceScale) bool { return d.Name == oc.Service }) {
			continue // one-shot jobs and the like are not services
		}
		seen[oc.ID] = true
		wg.Go(func() {
			cs := ContainerStatus{Name: oc.Name, ID: oc.ID, State: oc.State, Image: oc.ImageRef, Health: cmp.Or(oc.Health, "none"),
				IP: oc.IP, StartedAt: oc.StartedAt, RestartCount: oc.RestartCount}
			if cs.Health == reconcile.HealthStarting && in.Snapshot.Serving(oc) {
				cs.Health = reconcile.HealthHealthy
			}
			if oc.State == reconcile.StateRunning {
				cs.CPUPercent, cs.MemoryBytes = c.sample(ctx, oc.ID)
			}
			mu.Lock()
			byService[oc.Service] = append(byService[oc.Service], cs)
			mu.Unlock()
		})
	}
	wg.Wait()
	c.forget(seen)

	out := make([]ServiceStatus, 0, len(in.Desired))
	for _, d := range in.Desired {
		cs := byService[d.Name]
		slices.SortFunc(cs, func(a, b ContainerStatus) int { return cmp.Compare(a.Name, b.Name) })
		s := summarise(d, cs)
		for _, rep := range in.Reports {
			if rep.Service != d.Name {
				continue
			}
			switch rep.Kind {
			case reconcile.StepBackoff:
				s.Backoff = rep.Reason
				if b, ok := in.Backoffs[d.Name]; ok && b.Until.After(in.Now) {
					s.NextAttempt = b.Until
				}
				if s.State != "running" {
					s.State = "backoff"
				}
			case reconcile.StepHold:
				s.Held = rep.Reason
				if s.State != "running" {
					s.State = "held"
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// sample reads a container's counters; CPU % needs the previous reading.
func (c *Collector) sample(ctx context.Context, id string) (cpu float64, mem uint64) {
	if c.usage == nil {
		return 0, 0
	}
	u, err := c.usage.Usage(ctx, id)
	if err != nil {
		return 0, 0
	}
	c.mu.Lock()
	prev, ok := c.prev[id]
	c.prev[id] = u
	c.mu.Unlock()
	if ok {
		cpu = docker.CPUPercent(prev, u)
	}
	return cpu, u.MemoryUsage
}

// forget drops readings of containers that no longer exist.
func (c *Collector) forget(keep map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.prev {
		if !keep[id] {
			delete(c.prev, id)
		}
	}
}

// summarise folds the containers of one service into a status line.
func summarise(d reconcile.ServiceScale, cs []ContainerStatus) ServiceStatus {
	s := ServiceStatus{Service: d.Name, Desired: d.Replicas, Containers: cs}
	if s.Containers == nil {
		s.Containers = []ContainerStatus{}
	}
	restarting, starting := 0, 0
	for _, c := range cs {
		s.Restarts += c.RestartCount
		switch c.State {
		case reconcile.StateRunning:
			s.Running++
			s.CPUPercent += c.CPUPercent
			s.MemoryBytes += c.MemoryBytes
			if s.StartedAt.IsZero() || (!c.StartedAt.IsZero() && c.StartedAt.Before(s.StartedAt)) {
				s.StartedAt = c.StartedAt
			}
			switch c.Health {
			case reconcile.HealthHealthy, "none":
				s.Healthy++
			case reconcile.HealthStarting:
				starting++
			}
		case reconcile.StateRestarting:
			restarting++
		}
		if s.Image == "" {
			s.Image = c.Image
		}
	}
	switch {
	case d.Replicas == 0 && s.Running == 0:
		s.State, s.Health = "stopped", "-"
		return s
	case restarting > 0:
		s.State = "restarting"
	case len(cs) == 0:
		s.State = "missing"
	case s.Running == 0:
		s.State = "stopped"
	case s.Healthy >= d.Replicas && s.Running == d.Replicas:
		s.State = "running"
	case starting > 0:
		s.State = "starting"
	default:
		s.State = "degraded"
	}
	switch {
	case s.Running > 0 && s.Healthy >= d.Replicas:
		s.Health = "healthy"
	case starting > 0:
		s.Health = "starting"
	case s.Running > 0:
		s.Health = "unhealthy"
	default:
		s.Health = "-"
	}
	return s
}
