package supervisor

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// StatusReport is what `corpintel status` shows; it travels as JSON over the local API.
type StatusReport struct {
	Project string `json:"project"`
	Profile string `json:"profile,omitempty"`
	// Listen is where the supervisor's proxy answers (http://<listen>/health).
	Listen string `json:"listen"`
	// Stopped is true after `corpintel stop`: the reconciler leaves the stack down
	// until the supervisor is restarted.
	Stopped       bool            `json:"stopped"`
	LastReconcile time.Time       `json:"last_reconcile,omitzero"`
	LastError     string          `json:"last_error,omitempty"`
	Services      []ServiceStatus `json:"services"`
}

// ServiceStatus is one line of the status table.
type ServiceStatus struct {
	Service string `json:"service"`
	Desired int    `json:"desired"`
	Running int    `json:"running"`
	Healthy int    `json:"healthy"`
	// State summarises the service: running, degraded, starting, stopped, missing,
	// restarting or backoff.
	State string `json:"state"`
	// Health is healthy when every desired replica is healthy.
	Health      string            `json:"health"`
	StartedAt   time.Time         `json:"started_at,omitzero"`
	Image       string            `json:"image,omitempty"`
	CPUPercent  float64           `json:"cpu_percent"`
	MemoryBytes uint64            `json:"memory_bytes"`
	Restarts    int               `json:"restarts"`
	Backoff     string            `json:"backoff,omitempty"`
	Containers  []ContainerStatus `json:"containers"`
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

// WriteTable renders the report for people.
func (r StatusReport) WriteTable(w io.Writer, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tREPLICAS\tSTATE\tHEALTH\tUPTIME\tIMAGE\tCPU %\tMEMORY")
	for _, s := range r.Services {
		uptime := "-"
		if !s.StartedAt.IsZero() && s.Running > 0 {
			uptime = humanDuration(now.Sub(s.StartedAt))
		}
		state := s.State
		if s.Backoff != "" {
			state += " (" + s.Backoff + ")"
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%s\t%s\t%s\t%.1f\t%s\n", s.Service, s.Running, s.Desired, state,
			s.Health, uptime, cmp.Or(s.Image, "-"), s.CPUPercent, humanBytes(s.MemoryBytes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case r.Stopped:
		fmt.Fprintln(w, "\nThe stack was stopped with `corpintel stop`; restart the supervisor to bring it up again.")
	case r.LastError != "":
		fmt.Fprintf(w, "\nLast reconcile failed: %s\n", r.LastError)
	}
	_, err := fmt.Fprintf(w, "\nAPI: http://%s (health: /health)\n", r.Listen)
	return err
}

// WriteJSON renders the report for scripts.
func (r StatusReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// DesiredService is what the stack spec wants of one service.
type DesiredService struct {
	Name     string `json:"name"`
	Replicas int    `json:"replicas"`
}

// statusDocker is the part of the Docker Engine API that status needs.
type statusDocker interface {
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerInspect(ctx context.Context, containerID string) (container.InspectResponse, error)
	ContainerStatsOneShot(ctx context.Context, containerID string) (container.StatsResponseReader, error)
}

// cpuSample is one reading of a container's CPU counters.
type cpuSample struct {
	container, system uint64
	cpus              uint32
	at                time.Time
}

// statsCache keeps the previous one-shot reading per container so that CPU % can be
// computed from two readings without making `status` wait for Docker's own sampling.
type statsCache struct {
	mu   sync.Mutex
	prev map[string]cpuSample
}

func (c *statsCache) swap(id string, s cpuSample) (cpuSample, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prev == nil {
		c.prev = make(map[string]cpuSample)
	}
	old, ok := c.prev[id]
	c.prev[id] = s
	return old, ok
}

// forget drops readings of containers that no longer exist.
func (c *statsCache) forget(keep map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.prev {
		if !keep[id] {
			delete(c.prev, id)
		}
	}
}

// cpuPercent follows the docker CLI: container delta over system delta, times CPUs.
func cpuPercent(prev, cur cpuSample) float64 {
	if cur.container < prev.container || cur.system <= prev.system {
		return 0
	}
	cpus := float64(cur.cpus)
	if cpus == 0 {
		cpus = 1
	}
	return float64(cur.container-prev.container) / float64(cur.system-prev.system) * cpus * 100
}

// memoryUsage follows the docker CLI: usage minus the inactive page cache.
func memoryUsage(m container.MemoryStats) uint64 {
	for _, k := range []string{"inactive_file", "total_inactive_file"} {
		if v, ok := m.Stats[k]; ok && v < m.Usage {
			return m.Usage - v
		}
	}
	return m.Usage
}

// sampleStats reads one-shot stats of a container.
func (c *statsCache) sample(ctx context.Context, d statusDocker, id string) (cpu float64, mem uint64, err error) {
	r, err := d.ContainerStatsOneShot(ctx, id)
	if err != nil {
		return 0, 0, fmt.Errorf("stats of %s: %w", id, err)
	}
	defer r.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
		return 0, 0, fmt.Errorf("stats of %s: decode: %w", id, err)
	}
	cur := cpuSample{container: st.CPUStats.CPUUsage.TotalUsage, system: st.CPUStats.SystemUsage, cpus: st.CPUStats.OnlineCPUs, at: st.Read}
	if prev, ok := c.swap(id, cur); ok {
		cpu = cpuPercent(prev, cur)
	}
	return cpu, memoryUsage(st.MemoryStats), nil
}

// projectFilter selects the objects of one project, optionally of one service.
func projectFilter(project, service string) filters.Args {
	f := filters.NewArgs(filters.Arg("label", LabelProject+"="+project))
	if service != "" {
		f.Add("label", LabelService+"="+service)
	}
	return f
}

// collectStatus observes the project's containers and summarises them per desired
// service. It only reads.
//
// A container that Docker still reports as starting but that verified says serves
// (it answered the supervisor's ready probe) counts as healthy.
func collectStatus(ctx context.Context, d statusDocker, stats *statsCache, project string, desired []DesiredService, verified func(id string) bool) ([]ServiceStatus, error) {
	list, err := d.ContainerList(ctx, container.ListOptions{All: true, Filters: projectFilter(project, "")})
	if err != nil {
		return nil, fmt.Errorf("list containers of project %s: %w", project, err)
	}
	byService := make(map[string][]ContainerStatus)
	var mu sync.Mutex
	var wg sync.WaitGroup
	seen := make(map[string]bool)
	for _, c := range list {
		svc := c.Labels[LabelService]
		if !slices.ContainsFunc(desired, func(ds DesiredService) bool { return ds.Name == svc }) {
			continue // one-shot jobs and the like are not services
		}
		seen[c.ID] = true
		wg.Go(func() {
			cs := ContainerStatus{Name: strings.TrimPrefix(firstOr(c.Names, c.ID), "/"), ID: c.ID, State: string(c.State), Image: c.Image, Health: "none",
				IP: summaryIP(c)}
			if in, err := d.ContainerInspect(ctx, c.ID); err == nil && in.State != nil {
				if in.State.Health != nil {
					cs.Health = in.State.Health.Status
				}
				if cs.Health == HealthStarting && c.State == container.StateRunning && verified != nil && verified(c.ID) {
					cs.Health = HealthHealthy
				}
				cs.StartedAt, _ = time.Parse(time.RFC3339Nano, in.State.StartedAt)
				cs.RestartCount = in.RestartCount
			}
			if c.State == container.StateRunning {
				cs.CPUPercent, cs.MemoryBytes, _ = stats.sample(ctx, d, c.ID)
			}
			mu.Lock()
			byService[svc] = append(byService[svc], cs)
			mu.Unlock()
		})
	}
	wg.Wait()
	stats.forget(seen)

	out := make([]ServiceStatus, 0, len(desired))
	for _, ds := range desired {
		cs := byService[ds.Name]
		slices.SortFunc(cs, func(a, b ContainerStatus) int { return cmp.Compare(a.Name, b.Name) })
		out = append(out, summarise(ds, cs))
	}
	return out, nil
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// summarise folds the containers of one service into a status line.
func summarise(ds DesiredService, cs []ContainerStatus) ServiceStatus {
	s := ServiceStatus{Service: ds.Name, Desired: ds.Replicas, Containers: cs}
	if s.Containers == nil {
		s.Containers = []ContainerStatus{}
	}
	restarting, starting := 0, 0
	for _, c := range cs {
		s.Restarts += c.RestartCount
		switch c.State {
		case string(container.StateRunning):
			s.Running++
			s.CPUPercent += c.CPUPercent
			s.MemoryBytes += c.MemoryBytes
			if s.StartedAt.IsZero() || (!c.StartedAt.IsZero() && c.StartedAt.Before(s.StartedAt)) {
				s.StartedAt = c.StartedAt
			}
			switch c.Health {
			case "healthy", "none":
				s.Healthy++
			case "starting":
				starting++
			}
		case string(container.StateRestarting):
			restarting++
		}
		if s.Image == "" {
			s.Image = c.Image
		}
	}
	switch {
	case ds.Replicas == 0 && s.Running == 0:
		s.State, s.Health = "stopped", "-"
		return s
	case restarting > 0:
		s.State = "restarting"
	case len(cs) == 0:
		s.State = "missing"
	case s.Running == 0:
		s.State = "stopped"
	case s.Healthy >= ds.Replicas && s.Running == ds.Replicas:
		s.State = "running"
	case starting > 0:
		s.State = "starting"
	default:
		s.State = "degraded"
	}
	switch {
	case s.Running > 0 && s.Healthy >= ds.Replicas:
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
