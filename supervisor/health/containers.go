package health

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/supervisor/alerts"
	"github.com/corpintel/corpintel/supervisor/reconcile"
)

// Container metrics, the cAdvisor equivalents, per service and replica (the only
// labels: container ids and names would grow without bound as containers are
// replaced).
var (
	famContainerUp      = gauge("corpintel_container_up", "1 when the service replica's container runs.", "service", "replica")
	famContainerHealthy = gauge("corpintel_container_healthy", "1 when the service replica serves: healthy for Docker, or answered the supervisor's probe.", "service", "replica")
	famContainerRestart = counter(alerts.MetricContainerRestarts,
		"Restarts of a service replica: Docker's own restarts of its container plus replacements of the container (a killed, crashed or recreated one), while this supervisor runs.",
		"service", "replica")
	famContainerCPU      = counter("corpintel_container_cpu_seconds_total", "CPU time used by the replica's current container.", "service", "replica")
	famContainerCPUUsed  = gauge("corpintel_container_cpu_used_cores", "CPU used by the replica's container since the previous cycle, in cores (1 = one busy core).", "service", "replica")
	famContainerMem      = gauge("corpintel_container_memory_usage_bytes", "Memory used by the replica's container, without the inactive page cache (as docker stats shows it).", "service", "replica")
	famContainerMemLimit = gauge("corpintel_container_memory_limit_bytes", "Memory limit of the replica's container.", "service", "replica")
)

// slotForget is how long a replica's restart count is kept after its last container
// disappeared: a replacement removes the old container before the new one shows up.
const slotForget = 30 * time.Minute

// ContainersOptions configure the container collector.
type ContainersOptions struct {
	// Snapshot is the reconciler's last observation (never the engine itself).
	Snapshot func() reconcile.Snapshot
	// Usage reads one-shot resource counters; nil leaves CPU and memory out.
	Usage UsageReader
	Now   func() time.Time
}

// Containers collects per-replica state, restarts and resources of the stack's
// service containers.
type Containers struct {
	o ContainersOptions

	mu    sync.Mutex
	slots map[string]*slot
	prev  map[string]docker.Usage
}

type slot struct {
	id       string
	restarts int // Docker's RestartCount of the current container
	base     int // restarts and replacements of the containers before it
	seen     time.Time
}

// NewContainers returns the container collector.
func NewContainers(o ContainersOptions) *Containers {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Containers{o: o, slots: map[string]*slot{}, prev: map[string]docker.Usage{}}
}

// Name implements Source.
func (c *Containers) Name() string { return "containers" }

func replicaLabel(oc reconcile.ObservedContainer) string {
	if oc.Replica > 0 && oc.Service == "api" {
		return strconv.Itoa(oc.Replica)
	}
	return ""
}

// Collect implements Source.
func (c *Containers) Collect(ctx context.Context, b *Batch) error {
	snap := c.o.Snapshot()
	if snap.Err != "" {
		return fmt.Errorf("containers: the last observation failed: %s", snap.Err)
	}
	now := c.o.Now()
	c.mu.Lock()
	for k, s := range c.slots {
		if now.Sub(s.seen) > slotForget {
			delete(c.slots, k)
		}
	}
	c.mu.Unlock()
	// One container per replica: during a recreate two may carry the same labels for
	// a moment; the one that serves (else runs, else started last) is the replica.
	picked := map[string]reconcile.ObservedContainer{}
	for _, oc := range snap.Observed.Containers {
		if oc.Service == "" {
			continue // one-shot jobs
		}
		k := oc.Service + "/" + replicaLabel(oc)
		if cur, ok := picked[k]; !ok || better(snap, oc, cur) {
			picked[k] = oc
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	seen := map[string]bool{}
	for k, oc := range picked {
		svc, rep := oc.Service, replicaLabel(oc)
		seen[oc.ID] = true
		b.add(famContainerUp, bool01(oc.State == reconcile.StateRunning), svc, rep)
		b.add(famContainerHealthy, bool01(snap.Serving(oc)), svc, rep)
		b.add(famContainerRestart, float64(c.restarts(k, oc, now)), svc, rep)
		if oc.State != reconcile.StateRunning || c.o.Usage == nil {
			continue
		}
		wg.Go(func() {
			u, err := c.o.Usage.Usage(ctx, oc.ID)
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("containers: usage of %s: %w", oc.Name, err))
				mu.Unlock()
				return
			}
			b.add(famContainerCPU, float64(u.CPUTotal)/1e9, svc, rep)
			b.add(famContainerMem, float64(u.MemoryUsage), svc, rep)
			if u.MemoryLimit > 0 {
				b.add(famContainerMemLimit, float64(u.MemoryLimit), svc, rep)
			}
			c.mu.Lock()
			prev, ok := c.prev[oc.ID]
			c.prev[oc.ID] = u
			c.mu.Unlock()
			if ok {
				b.add(famContainerCPUUsed, docker.CPUPercent(prev, u)/100, svc, rep)
			}
		})
	}
	wg.Wait()
	c.mu.Lock()
	for id := range c.prev {
		if !seen[id] {
			delete(c.prev, id)
		}
	}
	c.mu.Unlock()
	return errors.Join(errs...)
}

func better(snap reconcile.Snapshot, a, b reconcile.ObservedContainer) bool {
	if sa, sb := snap.Serving(a), snap.Serving(b); sa != sb {
		return sa
	}
	if ra, rb := a.State == reconcile.StateRunning, b.State == reconcile.StateRunning; ra != rb {
		return ra
	}
	return a.StartedAt.After(b.StartedAt)
}

// restarts is the replica's restart counter: it grows by Docker's restarts of the
// container and by one for each new container in the replica's place, so a container
// that is killed and replaced (Docker never restarts a killed one) counts too.
func (c *Containers) restarts(key string, oc reconcile.ObservedContainer, now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.slots[key]
	switch {
	case s == nil:
		s = &slot{id: oc.ID}
		c.slots[key] = s
	case s.id != oc.ID:
		s.base += s.restarts + 1
		s.id = oc.ID
	case oc.RestartCount < s.restarts: // cannot happen for one container; be safe
		s.base += s.restarts
	}
	s.restarts, s.seen = oc.RestartCount, now
	return s.base + s.restarts
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
