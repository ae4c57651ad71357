package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/docker/docker/api/types/container"
)

func TestUnreachableEngine(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/no.sock")
	_, err := New(context.Background())
	if !IsUnreachable(err) || !strings.Contains(err.Error(), "is dockerd running? (systemctl start docker)") || !strings.Contains(err.Error(), "no.sock") {
		t.Errorf("err = %v", err)
	}
}

func TestStatsFrom(t *testing.T) {
	var s container.StatsResponse
	s.MemoryStats.Usage, s.MemoryStats.Limit = 100<<20, 1<<30
	s.MemoryStats.Stats = map[string]uint64{"inactive_file": 20 << 20}
	s.CPUStats.CPUUsage.TotalUsage, s.PreCPUStats.CPUUsage.TotalUsage = 2e9, 1e9
	s.CPUStats.SystemUsage, s.PreCPUStats.SystemUsage = 20e9, 10e9
	s.CPUStats.OnlineCPUs = 2
	got := statsFrom(s)
	if got.MemoryUsage != 80<<20 || got.MemoryLimit != 1<<30 || got.CPUPercent != 20 {
		t.Errorf("stats = %+v", got)
	}
	s.MemoryStats.Stats = map[string]uint64{"total_inactive_file": 50 << 20}
	s.CPUStats.OnlineCPUs = 0
	s.CPUStats.CPUUsage.PercpuUsage = []uint64{1, 2, 3, 4}
	if got := statsFrom(s); got.MemoryUsage != 50<<20 || got.CPUPercent != 40 {
		t.Errorf("cgroup v1 stats = %+v", got)
	}
}

const testImage = "corpintel/base:bookworm"

func TestEngine(t *testing.T) {
	testenv.Docker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := New(ctx)
	testenv.Require(t, "docker", err)
	defer c.Close()
	if _, err := c.ImageID(ctx, testImage); err != nil {
		testenv.Require(t, "docker", err) // `make images` builds it
	}
	if c.Host() == "" || c.APIVersion() == "" {
		t.Errorf("host %q version %q", c.Host(), c.APIVersion())
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "cit-docker-" + hex.EncodeToString(b)
	labels := map[string]string{"io.corpintel.project": name}
	t.Cleanup(func() {
		ctx := context.Background()
		cs, _ := c.ListContainers(ctx, labels)
		for _, ct := range cs {
			_ = c.RemoveContainer(ctx, ct.ID, true)
		}
		_ = c.RemoveNetwork(ctx, name)
		_ = c.RemoveVolume(ctx, name)
	})

	if _, err := c.ImageID(ctx, "corpintel/no-such-image:0"); !IsNotFound(err) {
		t.Errorf("missing image: %v", err)
	}
	if u, err := c.ImageUser(ctx, testImage); err != nil || u != "" {
		t.Errorf("ImageUser = %q %v", u, err)
	}
	if err := c.CreateNetwork(ctx, name, labels); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateVolume(ctx, name, labels); err != nil {
		t.Fatal(err)
	}
	if ns, err := c.ListNetworks(ctx, labels); err != nil || len(ns) != 1 || ns[0] != name {
		t.Errorf("networks %q %v", ns, err)
	}
	if vs, err := c.ListVolumes(ctx, labels); err != nil || len(vs) != 1 || vs[0] != name {
		t.Errorf("volumes %q %v", vs, err)
	}

	evctx, evcancel := context.WithCancel(ctx)
	events, evErr := c.Events(evctx, labels)

	id, err := c.CreateContainer(ctx, CreateRequest{
		Name: name, Image: testImage, Cmd: []string{"sh", "-c", "echo out; echo err >&2; exec sleep 60"},
		Env: []string{"A=1"}, Labels: labels, Network: name, Aliases: []string{"svc"},
		Mounts:   []Mount{{Type: "volume", Source: name, Target: "/data"}},
		Health:   &HealthCheck{Test: []string{"CMD", "true"}, Interval: time.Second, Timeout: time.Second, Retries: 3},
		NanoCPUs: 5e8, Memory: 64 << 20, RestartPolicy: "unless-stopped", StopTimeout: time.Second, LogMaxSize: "1m", LogMaxFile: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateContainer(ctx, CreateRequest{Name: name, Image: testImage}); err == nil {
		t.Error("duplicate name accepted")
	}
	if err := c.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	// Poll until healthy.
	deadline := time.Now().Add(30 * time.Second)
	var ct Container
	for {
		if ct, err = c.InspectContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		if ct.Health == "healthy" || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	if ct.Name != name || ct.State != "running" || ct.Health != "healthy" || ct.IPs[name] == "" || ct.Labels["io.corpintel.project"] != name || len(ct.HealthLog) == 0 {
		t.Errorf("inspect = %+v", ct)
	}
	select {
	case ev := <-events:
		if ev.ContainerID != id {
			t.Errorf("event for %s", ev.ContainerID)
		}
	case err := <-evErr:
		t.Fatalf("events: %v", err)
	case <-ctx.Done():
		t.Fatal("no event")
	}
	evcancel()

	if logs, err := c.Logs(ctx, id, "10"); err != nil || !strings.Contains(logs, "out") || !strings.Contains(logs, "err") {
		t.Errorf("logs %q %v", logs, err)
	}
	var stdout, stderr bytes.Buffer
	if err := c.FollowLogs(ctx, id, "all", false, false, &stdout, &stderr); err != nil || stdout.String() != "out\n" || stderr.String() != "err\n" {
		t.Errorf("FollowLogs %q %q %v", stdout.String(), stderr.String(), err)
	}
	if st, err := c.Stats(ctx, id); err != nil || st.MemoryLimit != 64<<20 {
		t.Errorf("stats %+v %v", st, err)
	}
	if cs, err := c.ListContainers(ctx, labels); err != nil || len(cs) != 1 {
		t.Errorf("list %d %v", len(cs), err)
	}
	if err := c.RenameContainer(ctx, id, name+"-x"); err != nil {
		t.Fatal(err)
	}
	if err := c.KillContainer(ctx, id, "KILL"); err != nil {
		t.Fatal(err)
	}
	if code, err := c.WaitContainer(ctx, id); err != nil || code != 137 {
		t.Errorf("wait = %d %v", code, err)
	}
	if err := c.StopContainer(ctx, id, time.Second); err != nil {
		t.Errorf("stop stopped: %v", err)
	}
	if err := c.RemoveContainer(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveContainer(ctx, id, true); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if _, err := c.InspectContainer(ctx, id); !IsNotFound(err) {
		t.Errorf("inspect removed: %v", err)
	}
	for _, err := range []error{c.StartContainer(ctx, id), c.StopContainer(ctx, id, time.Second), c.KillContainer(ctx, id, "KILL"), c.RenameContainer(ctx, id, "y")} {
		if !IsNotFound(err) {
			t.Errorf("on removed container: %v", err)
		}
	}
	if _, err := c.Logs(ctx, id, "1"); !IsNotFound(err) {
		t.Errorf("logs removed: %v", err)
	}
	if _, err := c.Stats(ctx, id); !IsNotFound(err) {
		t.Errorf("stats removed: %v", err)
	}
	if _, err := c.WaitContainer(ctx, id); !IsNotFound(err) {
		t.Errorf("wait removed: %v", err)
	}
	if err := c.RemoveNetwork(ctx, name); err != nil {
		t.Error(err)
	}
	if err := c.RemoveVolume(ctx, name); err != nil {
		t.Error(err)
	}
	if err := c.RemoveNetwork(ctx, name); err != nil {
		t.Errorf("second network remove: %v", err)
	}
	if err := c.CreateVolume(ctx, "bad/name", labels); err == nil {
		t.Error("bad volume name accepted")
	}
}
