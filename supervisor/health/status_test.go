package health

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/supervisor/reconcile"
)

func TestSummarise(t *testing.T) {
	run := func(health string) ContainerStatus {
		return ContainerStatus{State: "running", Health: health, Image: "img", StartedAt: time.Unix(100, 0)}
	}
	cases := []struct {
		name       string
		desired    int
		cs         []ContainerStatus
		state, hlt string
	}{
		{"healthy", 1, []ContainerStatus{run("healthy")}, "running", "healthy"},
		{"no health check", 1, []ContainerStatus{run("none")}, "running", "healthy"},
		{"starting", 2, []ContainerStatus{run("healthy"), run("starting")}, "starting", "starting"},
		{"unhealthy", 1, []ContainerStatus{run("unhealthy")}, "degraded", "unhealthy"},
		{"missing", 1, nil, "missing", "-"},
		{"exited", 1, []ContainerStatus{{State: "exited"}}, "stopped", "-"},
		{"restarting", 1, []ContainerStatus{{State: "restarting", RestartCount: 4}}, "restarting", "-"},
		{"scaled to zero", 0, nil, "stopped", "-"},
		{"too many", 1, []ContainerStatus{run("healthy"), run("healthy")}, "degraded", "healthy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := summarise(reconcile.ServiceScale{Name: "api", Replicas: c.desired}, c.cs)
			if s.State != c.state || s.Health != c.hlt {
				t.Errorf("state/health = %s/%s, want %s/%s", s.State, s.Health, c.state, c.hlt)
			}
		})
	}
}

func TestStatusReportHealthy(t *testing.T) {
	r := StatusReport{Project: "p", Listen: "127.0.0.1:8000", Services: []ServiceStatus{
		{Service: "api", Desired: 2, Running: 2, Healthy: 2, State: "running"},
		{Service: "redis", Desired: 1, Running: 1, Healthy: 1},
	}}
	if !r.Healthy() {
		t.Error("healthy report judged unhealthy")
	}
	r.Services[1].Healthy = 0
	if r.Healthy() || (StatusReport{}).Healthy() {
		t.Error("unhealthy report judged healthy")
	}
}

// usage is a resource reader whose counters the test sets.
type usage map[string]docker.Usage

func (u usage) Usage(_ context.Context, id string) (docker.Usage, error) {
	v, ok := u[id]
	if !ok {
		return docker.Usage{}, errors.New("gone")
	}
	return v, nil
}

func TestCollectorServices(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	obs := reconcile.Observed{Containers: []reconcile.ObservedContainer{
		{ID: "pg", Name: "p-postgres", Service: "postgres", Replica: 1, State: "running", Health: "healthy", ImageRef: "corpintel/postgres:15", StartedAt: now.Add(-time.Hour)},
		{ID: "a1", Name: "p-api-1", Service: "api", Replica: 1, State: "running", Health: "starting", IP: "10.0.0.5"},
		{ID: "a2", Name: "p-api-2", Service: "api", Replica: 2, State: "exited", RestartCount: 4},
		{ID: "j", Name: "p-job-migrate", Job: "migrate", State: "running"},
	}}
	u := usage{"pg": {CPUTotal: 1e9, SystemTotal: 10e9, OnlineCPUs: 2, MemoryUsage: 100 << 20}}
	c := NewCollector(u)
	in := Inputs{
		Snapshot: reconcile.Snapshot{Observed: obs},
		Desired:  []reconcile.ServiceScale{{Name: "postgres", Replicas: 1}, {Name: "redis", Replicas: 1}, {Name: "api", Replicas: 2}},
		Backoffs: map[string]reconcile.Backoff{"api": {Failures: 4, Until: now.Add(20 * time.Second)}},
		Reports: []reconcile.Step{
			{Kind: reconcile.StepBackoff, Service: "api", Replica: 2, Reason: "exited; next attempt at …"},
			{Kind: reconcile.StepHold, Service: "redis", Replica: 1, Reason: "owned by backup #3"},
		},
		Now: now,
	}
	got := c.Services(context.Background(), in)
	if len(got) != 3 {
		t.Fatalf("services %+v", got)
	}
	pg, rd, api := got[0], got[1], got[2]
	if pg.State != "running" || pg.Image != "corpintel/postgres:15" || pg.MemoryBytes != 100<<20 || pg.CPUPercent != 0 {
		t.Errorf("postgres %+v", pg)
	}
	if rd.State != "held" || rd.Held != "owned by backup #3" {
		t.Errorf("redis %+v", rd)
	}
	if api.State != "backoff" || api.Backoff == "" || !api.NextAttempt.Equal(now.Add(20*time.Second)) || api.Restarts != 4 || api.Running != 1 {
		t.Errorf("api %+v", api)
	}
	if api.Containers[0].Health != "starting" {
		t.Errorf("a starting replica not probed is not healthy: %+v", api.Containers[0])
	}
	// A second reading gives a CPU rate.
	u["pg"] = docker.Usage{CPUTotal: 2e9, SystemTotal: 20e9, OnlineCPUs: 2, MemoryUsage: 100 << 20}
	if got := c.Services(context.Background(), in); got[0].CPUPercent != 20 {
		t.Errorf("cpu %v", got[0].CPUPercent)
	}
	// Readings of containers that are gone are dropped.
	in.Snapshot = reconcile.Snapshot{}
	c.Services(context.Background(), in)
	if len(c.prev) != 0 {
		t.Errorf("stale readings %v", c.prev)
	}
	if cpu, mem := NewCollector(nil).sample(context.Background(), "x"); cpu != 0 || mem != 0 {
		t.Error("sample without a reader")
	}
}
