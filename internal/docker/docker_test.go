package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
)

func TestUnreachableEngine(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/no.sock")
	_, err := New(context.Background())
	if !IsUnreachable(err) || !strings.Contains(err.Error(), "is dockerd running? (systemctl start docker)") || !strings.Contains(err.Error(), "no.sock") {
		t.Errorf("err = %v", err)
	}
}

func TestCPUPercent(t *testing.T) {
	prev := Usage{CPUTotal: 1e9, SystemTotal: 10e9, OnlineCPUs: 2}
	cur := Usage{CPUTotal: 2e9, SystemTotal: 20e9, OnlineCPUs: 2}
	if got := CPUPercent(prev, cur); got != 20 {
		t.Errorf("CPUPercent = %v", got)
	}
	cur.OnlineCPUs = 0
	if got := CPUPercent(prev, cur); got != 10 {
		t.Errorf("CPUPercent without CPU count = %v", got)
	}
	if got := CPUPercent(cur, prev); got != 0 { // counters went back (new container)
		t.Errorf("CPUPercent after reset = %v", got)
	}
}

func TestTailBuffer(t *testing.T) {
	b := tailBuffer{max: 4}
	_, _ = b.Write([]byte("abc"))
	_, _ = b.Write([]byte("defg"))
	if b.String() != "defg" {
		t.Errorf("tail %q", b.String())
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
	if root, err := c.RootDir(ctx); err != nil || !strings.HasPrefix(root, "/") {
		t.Errorf("RootDir = %q, %v", root, err)
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
	events, evErr := c.Events(evctx, labels, "start", "die")

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
	// A container just started may report empty counters for a moment.
	var u Usage
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if u, err = c.Usage(ctx, id); err != nil || u.CPUTotal > 0 {
			break
		}
	}
	if err != nil || u.MemoryLimit != 64<<20 || u.CPUTotal == 0 || u.MemoryUsage == 0 {
		t.Errorf("usage %+v %v", u, err)
	}
	if len(ct.Mounts) != 1 || ct.Mounts[0].Type != "volume" || ct.Mounts[0].Source != name || ct.Mounts[0].Target != "/data" || ct.Mounts[0].ReadOnly {
		t.Errorf("mounts %+v", ct.Mounts)
	}
	// Exec streams stdout, keeps stderr's tail, reports the exit code, feeds stdin.
	x, err := c.Exec(ctx, id, ExecRequest{Cmd: []string{"sh", "-c", "head -c 300000 /dev/zero; cat; echo oops >&2; exit 3"}, Stdin: strings.NewReader("tail")})
	if err != nil {
		t.Fatal(err)
	}
	out, rerr := io.ReadAll(x.Stdout)
	code, errTail, werr := x.Wait()
	if rerr != nil || werr != nil || len(out) != 300004 || string(out[300000:]) != "tail" || code != 3 || errTail != "oops\n" {
		t.Errorf("exec: %d bytes, %q, code %d, stderr %q, %v %v", len(out), out[max(0, len(out)-4):], code, errTail, rerr, werr)
	}
	if _, err := c.Exec(ctx, "no-such-container-x", ExecRequest{Cmd: []string{"true"}}); !IsNotFound(err) {
		t.Errorf("exec in missing container: %v", err)
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
	if _, err := c.Usage(ctx, id); !IsNotFound(err) {
		t.Errorf("usage removed: %v", err)
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
