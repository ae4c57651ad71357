package supervisor

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
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
			s := summarise(DesiredService{Name: "api", Replicas: c.desired}, c.cs)
			if s.State != c.state || s.Health != c.hlt {
				t.Errorf("state/health = %s/%s, want %s/%s", s.State, s.Health, c.state, c.hlt)
			}
		})
	}
}

func TestStatusReportHealthyAndJSON(t *testing.T) {
	r := StatusReport{Project: "p", Listen: "127.0.0.1:8000", Services: []ServiceStatus{
		{Service: "api", Desired: 2, Running: 2, Healthy: 2, State: "running", StartedAt: time.Now().Add(-3 * time.Hour)},
		{Service: "redis", Desired: 1, Running: 1, Healthy: 1, Backoff: "restart loop"},
	}}
	if !r.Healthy() {
		t.Error("healthy report judged unhealthy")
	}
	r.Services[1].Healthy = 0
	if r.Healthy() || (StatusReport{}).Healthy() {
		t.Error("unhealthy report judged healthy")
	}
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil || !strings.Contains(b.String(), `"service": "api"`) {
		t.Errorf("json %s %v", b.String(), err)
	}
	b.Reset()
	r.Stopped = true
	_ = r.WriteTable(&b, time.Now())
	for _, want := range []string{"3h00m", "(restart loop)", "corpintel stop", "API: http://127.0.0.1:8000 (health: /health)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestHumanFormats(t *testing.T) {
	durations := map[time.Duration]string{
		5 * time.Second: "5s", 90 * time.Second: "1m30s", 25 * time.Hour: "25h00m", 73 * time.Hour: "3d01h",
	}
	for d, want := range durations {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
	sizes := map[uint64]string{512: "512 B", 1536: "1.5 KiB", 300 << 20: "300.0 MiB", 3 << 30: "3.0 GiB"}
	for n, want := range sizes {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCPUAndMemory(t *testing.T) {
	prev := cpuSample{container: 1000, system: 10000, cpus: 2}
	cases := []struct {
		cur  cpuSample
		want float64
	}{
		{cpuSample{container: 1500, system: 11000, cpus: 2}, 100},
		{cpuSample{container: 1100, system: 12000, cpus: 0}, 5},
		{cpuSample{container: 900, system: 12000, cpus: 2}, 0},
		{cpuSample{container: 1100, system: 10000, cpus: 2}, 0},
	}
	for _, c := range cases {
		if got := cpuPercent(prev, c.cur); got != c.want {
			t.Errorf("cpuPercent(%+v) = %v, want %v", c.cur, got, c.want)
		}
	}
	mems := []struct {
		m    container.MemoryStats
		want uint64
	}{
		{container.MemoryStats{Usage: 100, Stats: map[string]uint64{"inactive_file": 30}}, 70},
		{container.MemoryStats{Usage: 100, Stats: map[string]uint64{"total_inactive_file": 40}}, 60},
		{container.MemoryStats{Usage: 100}, 100},
	}
	for _, c := range mems {
		if got := memoryUsage(c.m); got != c.want {
			t.Errorf("memoryUsage = %d, want %d", got, c.want)
		}
	}
	var sc statsCache
	sc.swap("a", cpuSample{})
	sc.swap("b", cpuSample{})
	sc.forget(map[string]bool{"a": true})
	if _, ok := sc.prev["b"]; ok {
		t.Error("forgotten container kept")
	}
}
