package health

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/supervisor/reconcile"
)

// scriptedUsage returns counters that grow by one second of CPU per call.
type scriptedUsage struct {
	mu    sync.Mutex
	calls map[string]int
	fail  map[string]bool
}

func (u *scriptedUsage) Usage(_ context.Context, id string) (docker.Usage, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.fail[id] {
		return docker.Usage{}, errors.New("no stats")
	}
	u.calls[id]++
	n := uint64(u.calls[id])
	return docker.Usage{CPUTotal: n * 1e9, SystemTotal: n * 4e9, OnlineCPUs: 2, MemoryUsage: 64 << 20, MemoryLimit: 1 << 30}, nil
}

func running(id, service string, replica, restarts int) reconcile.ObservedContainer {
	return reconcile.ObservedContainer{ID: id, Name: "p-" + service, Service: service, Replica: replica, State: reconcile.StateRunning,
		Health: reconcile.HealthHealthy, RestartCount: restarts, IP: "10.0.0.1", StartedAt: time.Unix(int64(len(id)), 0)}
}

func TestContainers(t *testing.T) {
	clk := newClock()
	snap := reconcile.Snapshot{Observed: reconcile.Observed{Containers: []reconcile.ObservedContainer{
		running("pg1", "postgres", 0, 0),
		running("api1", "api", 1, 1),
		{ID: "api2", Service: "api", Replica: 2, State: reconcile.StateExited},
		{ID: "job", Job: "migrate", State: reconcile.StateExited},
	}}}
	var mu sync.Mutex
	get := func() reconcile.Snapshot { mu.Lock(); defer mu.Unlock(); return snap }
	set := func(cs ...reconcile.ObservedContainer) { mu.Lock(); snap.Observed.Containers = cs; mu.Unlock() }
	usage := &scriptedUsage{calls: map[string]int{}, fail: map[string]bool{}}
	c := NewContainers(ContainersOptions{Snapshot: get, Usage: usage, Now: clk.Now})
	collect := func() map[string]float64 {
		t.Helper()
		b := &Batch{}
		if err := c.Collect(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		return batchValues(b)
	}
	got := collect()
	for k, v := range map[string]float64{
		"corpintel_container_up{postgres,}": 1, "corpintel_container_healthy{postgres,}": 1, "corpintel_container_up{api,2}": 0,
		"corpintel_container_restarts_total{api,1}": 1, "corpintel_container_memory_usage_bytes{api,1}": 64 << 20,
		"corpintel_container_memory_limit_bytes{postgres,}": 1 << 30, "corpintel_container_cpu_seconds_total{api,1}": 1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["corpintel_container_cpu_used_cores{api,1}"]; ok {
		t.Error("a CPU rate from one reading")
	}
	for k := range got {
		if strings.Contains(k, "migrate") || strings.Contains(k, "{,") {
			t.Errorf("a job got a series: %s", k)
		}
	}
	got = collect()
	if got["corpintel_container_cpu_used_cores{api,1}"] != 0.5 { // 1 s of 4 host-seconds on 2 CPUs
		t.Errorf("cpu cores %v", got["corpintel_container_cpu_used_cores{api,1}"])
	}

	// Docker restarts the API twice, then the supervisor replaces it (a kill): the
	// replica's counter goes on 1 → 3 → 4, never back.
	set(running("pg1", "postgres", 0, 0), running("api1", "api", 1, 3))
	if got := collect()["corpintel_container_restarts_total{api,1}"]; got != 3 {
		t.Errorf("after two Docker restarts: %v", got)
	}
	set(running("pg1", "postgres", 0, 0))
	collect()
	set(running("pg1", "postgres", 0, 0), running("api1-new", "api", 1, 0))
	if got := collect()["corpintel_container_restarts_total{api,1}"]; got != 4 {
		t.Errorf("after the replacement: %v", got)
	}
	// A rollout: old and new container of replica 1 side by side — one series, the
	// serving new one.
	starting := running("api1-newer", "api", 1, 0)
	starting.Health = reconcile.HealthStarting
	set(running("pg1", "postgres", 0, 0), running("api1-new", "api", 1, 0), starting)
	got = collect()
	if got["corpintel_container_restarts_total{api,1}"] != 4 || got["corpintel_container_healthy{api,1}"] != 1 {
		t.Errorf("during a rollout: restarts %v healthy %v", got["corpintel_container_restarts_total{api,1}"], got["corpintel_container_healthy{api,1}"])
	}
	// A slot unseen for long is forgotten; usage errors are reported, the rest stays.
	clk.Add(slotForget + time.Minute)
	usage.fail["pg1"] = true
	set(running("pg1", "postgres", 0, 0), running("api9", "api", 1, 0))
	b := &Batch{}
	err := c.Collect(context.Background(), b)
	if err == nil || !strings.Contains(err.Error(), "usage of p-postgres") {
		t.Errorf("usage error: %v", err)
	}
	if got := batchValues(b)["corpintel_container_restarts_total{api,1}"]; got != 0 {
		t.Errorf("a forgotten replica's count: %v", got)
	}

	if err := NewContainers(ContainersOptions{Snapshot: func() reconcile.Snapshot { return reconcile.Snapshot{Err: "engine down"} }}).
		Collect(context.Background(), &Batch{}); err == nil || !strings.Contains(err.Error(), "engine down") {
		t.Errorf("failed observation: %v", err)
	}
	if c.Name() != "containers" {
		t.Error(c.Name())
	}
}
