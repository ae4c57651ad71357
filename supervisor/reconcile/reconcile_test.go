package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/internal/docker/dockertest"
	"github.com/corpintel/corpintel/internal/stack"
	"github.com/corpintel/corpintel/supervisor/state"
)

func newFakeReconciler(t *testing.T, profile string) (*Reconciler, *dockertest.Engine) {
	t.Helper()
	cfg := testConfig(t, profile, func(c *config.Config) { c.StateDir = t.TempDir() })
	f := dockertest.New(t)
	for _, svc := range stack.Services {
		res, _ := cfg.ServiceResources(svc)
		f.Images[res.Image] = "sha256:" + svc
	}
	st, err := state.Open(context.Background(), cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r, err := New(Options{Config: cfg, Engine: f, Store: st, Log: slog.New(slog.DiscardHandler), Host: testHost})
	if err != nil {
		t.Fatal(err)
	}
	r.store = st
	return r, f
}

func names(cs []docker.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name+":"+c.State)
	}
	slices.Sort(out)
	return out
}

func snapshot(t *testing.T, f *dockertest.Engine) []string {
	t.Helper()
	cs, err := f.ListContainers(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return names(cs)
}

func TestReconcileWithFake(t *testing.T) {
	ctx := context.Background()
	r, f := newFakeReconciler(t, "dev")

	p, err := r.Pass(ctx)
	if err != nil {
		t.Fatalf("first pass: %v\n%s", err, p)
	}
	want := []string{"cit-api-1:running", "cit-minio:running", "cit-postgres:running", "cit-redis:running"}
	if got := snapshot(t, f); !slices.Equal(got, want) {
		t.Fatalf("containers %q, want %q", got, want)
	}
	if p, err := r.Pass(ctx); err != nil || p.HasChanges() {
		t.Fatalf("second pass: %v\n%s", err, p)
	}

	// API config change: new-first rollout.
	f.Calls = nil
	r.Config().API.JWTAudience = "other"
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	wantCalls := []string{
		"create cit-job-migrate", "start cit-job-migrate", "remove cit-job-migrate",
		"create cit-api-1-next", "start cit-api-1-next", "stop cit-api-1", "remove cit-api-1", "rename cit-api-1-next cit-api-1",
	}
	if !slices.Equal(f.Calls, wantCalls) {
		t.Errorf("rollout calls\n%q\nwant\n%q", f.Calls, wantCalls)
	}

	// Postgres restart: stop-first, old kept aside until the new one is healthy.
	f.Calls = nil
	if err := r.MarkRestart(ctx, stack.ServicePostgres); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	wantCalls = []string{"stop cit-postgres", "rename cit-postgres cit-postgres-old", "create cit-postgres", "start cit-postgres", "remove cit-postgres-old"}
	if !slices.Equal(f.Calls, wantCalls) {
		t.Errorf("recreate calls\n%q\nwant\n%q", f.Calls, wantCalls)
	}
	if p, _ := r.Pass(ctx); p.HasChanges() {
		t.Errorf("restart mark not cleared: %s", p)
	}

	// Scale, stored.
	if err := r.SetScale(ctx, stack.ServiceAPI, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t, f); len(got) != 6 {
		t.Errorf("after scale 3: %q", got)
	}
	if got := r.Services(ctx); !slices.Equal(got, []ServiceScale{{stack.ServicePostgres, 1}, {stack.ServiceRedis, 1}, {stack.ServiceMinIO, 1}, {stack.ServiceAPI, 3}}) {
		t.Errorf("Services() = %+v", got)
	}
	if d, err := r.Desired(ctx); err != nil || d.Services[3].Replicas != 3 {
		t.Errorf("Desired: %v", err)
	}
	if obs, err := r.observe(ctx); err != nil || len(obs.ServiceContainers(stack.ServiceAPI)) != 3 || obs.ServiceContainers(stack.ServiceAPI)[0].IP == "" {
		t.Errorf("Observe: %+v %v", obs, err)
	}

	// Stop (API replicas before PostgreSQL), then RemoveProject.
	f.Calls = nil
	stop, err := r.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range snapshot(t, f) {
		if !strings.HasSuffix(c, ":exited") {
			t.Errorf("after Stop: %s", c)
		}
	}
	wantCalls = []string{"stop cit-api-1", "stop cit-api-2", "stop cit-api-3", "stop cit-minio", "stop cit-redis", "stop cit-postgres"}
	if !slices.Equal(f.Calls, wantCalls) || len(stop.Steps) != 6 {
		t.Errorf("stop calls %q\nplan %s", f.Calls, stop)
	}
	if p, err := r.Pass(ctx); err != nil || p.HasChanges() {
		t.Errorf("a pass after Stop planned: %v\n%s", err, p)
	}
	if stopped, err := r.Stopped(ctx); !stopped || err != nil {
		t.Errorf("Stopped = %v %v", stopped, err)
	}
	if err := r.RemoveProject(ctx); err != nil {
		t.Fatal(err)
	}
	if len(f.Containers)+len(f.Networks)+len(f.Volumes) != 0 {
		t.Errorf("after RemoveProject: %d %d %d", len(f.Containers), len(f.Networks), len(f.Volumes))
	}
}

func TestReconcileStatefulRollback(t *testing.T) {
	ctx := context.Background()
	r, f := newFakeReconciler(t, "prod")
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	old := f.ByName("cit-postgres").ID
	// The new postgres exits at once (e.g. a bad setting); the old one starts fine.
	f.OnStart = func(c *docker.Container) {
		if c.Labels[stack.LabelService] == stack.ServicePostgres && c.ID != old {
			c.State, c.Health, c.ExitCode = StateExited, "", 1
		}
	}
	r.Config().Postgres.WorkMem = 32 * config.MiB
	_, err := r.Pass(ctx)
	if err == nil || !strings.Contains(err.Error(), "rolled back") || !strings.Contains(err.Error(), "exited with code 1") || !strings.Contains(err.Error(), "log line of cit-postgres") {
		t.Fatalf("err = %v", err)
	}
	pg := f.ByName("cit-postgres")
	if pg == nil || pg.ID != old || pg.State != StateRunning {
		t.Errorf("old postgres not restored: %+v", pg)
	}
	if got := snapshot(t, f); len(got) != 5 {
		t.Errorf("containers after rollback: %q", got)
	}
}

func TestReconcileRolloutFailureKeepsOld(t *testing.T) {
	ctx := context.Background()
	r, f := newFakeReconciler(t, "prod")
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	f.OnStart = func(c *docker.Container) {
		if c.Labels[stack.LabelService] == stack.ServiceAPI {
			c.Health = HealthUnhealthy
			c.HealthLog = []docker.HealthResult{{ExitCode: 1, Output: "connection refused\n"}}
		}
	}
	r.Config().LogLevel = "warn"
	_, err := r.Pass(ctx)
	if err == nil || !strings.Contains(err.Error(), "keeps running") || !strings.Contains(err.Error(), "last health check exit 1: connection refused") {
		t.Fatalf("err = %v", err)
	}
	want := []string{"cit-api-1:running", "cit-api-2:running", "cit-minio:running", "cit-postgres:running", "cit-redis:running"}
	if got := snapshot(t, f); !slices.Equal(got, want) {
		t.Errorf("containers %q", got)
	}
}

func TestReconcileJobFailure(t *testing.T) {
	ctx := context.Background()
	r, f := newFakeReconciler(t, "dev")
	f.JobExit[stack.JobMigrate] = 3
	_, err := r.Pass(ctx)
	if err == nil || !strings.Contains(err.Error(), "job migrate exited with code 3") || !strings.Contains(err.Error(), "log line of cit-job-migrate") {
		t.Fatalf("err = %v", err)
	}
	if f.ByName("cit-job-migrate") != nil || f.ByName("cit-api-1") != nil {
		t.Error("job container left or API started after a failed migration")
	}
	if done, _ := r.store.JobsDone(ctx); done[stack.JobSeed] {
		t.Error("seed recorded")
	}
	f.Fail["wait"] = errors.New("boom")
	if _, err := r.Pass(ctx); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("wait failure: %v", err)
	}
}

func TestReconcileErrors(t *testing.T) {
	ctx := context.Background()
	r, f := newFakeReconciler(t, "dev")
	delete(f.Images, "corpintel/api:latest")
	if _, err := r.Pass(ctx); err == nil || !strings.Contains(err.Error(), "make images") {
		t.Errorf("missing image: %v", err)
	}
	f.Images["corpintel/api:latest"] = "sha256:api"
	f.Fail["list"] = errors.New("engine gone")
	if _, err := r.Pass(ctx); err == nil || !strings.Contains(err.Error(), "engine gone") {
		t.Errorf("list failure: %v", err)
	}
	if _, err := r.Stop(ctx); err == nil {
		t.Error("Stop with failing list")
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveProject(ctx); err == nil {
		t.Error("RemoveProject with failing list")
	}
	delete(f.Fail, "list")
	f.Fail["create"] = errors.New("no space")
	if _, err := r.Pass(ctx); err == nil || !strings.Contains(err.Error(), "start cit-postgres: no space") {
		t.Errorf("create failure: %v", err)
	}

	for _, c := range []struct {
		svc string
		n   int
		err string
	}{
		{"api", 17, "between 0 and 16"},
		{"api", -1, "between 0 and 16"},
		{"postgres", 2, "only api can be scaled"},
		{"nginx", 1, `unknown service "nginx" (valid: postgres, redis, minio, api)`},
	} {
		if err := r.SetScale(ctx, c.svc, c.n); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("SetScale(%s, %d) = %v", c.svc, c.n, err)
		}
	}
	if err := r.MarkRestart(ctx, "nginx"); err == nil {
		t.Error("MarkRestart(nginx)")
	}
	if _, err := r.Scale(ctx, "nginx"); err == nil {
		t.Error("Scale(nginx)")
	}
	if n, err := r.Scale(ctx, stack.ServiceRedis); n != 1 || err != nil {
		t.Errorf("Scale(redis) = %d %v", n, err)
	}
	if n, err := r.Scale(ctx, stack.ServiceAPI); n != 1 || err != nil {
		t.Errorf("Scale(api) = %d %v", n, err)
	}
	other := *r.Config()
	other.Project = "elsewhere"
	if err := r.SetConfig(&other); err == nil || !strings.Contains(err.Error(), "project cannot change") {
		t.Errorf("project change on reload: %v", err)
	}
	other = *r.Config()
	other.StateDir = t.TempDir()
	if err := r.SetConfig(&other); err == nil || !strings.Contains(err.Error(), "state_dir cannot change on reload") {
		t.Errorf("state_dir change on reload: %v", err)
	}
	other = *r.Config()
	other.LogLevel = "error"
	if err := r.SetConfig(&other); err != nil || r.Config().LogLevel != "error" {
		t.Errorf("reload: %v", err)
	}
}

// executorFor runs single steps against a fake with a short health deadline.
func executorFor(t *testing.T, f *dockertest.Engine, timeout time.Duration) (*executor, ServiceSpec) {
	t.Helper()
	spec := testSpec(t, "prod", nil)
	for i := range spec.Services {
		spec.Services[i].HealthTimeout = timeout
	}
	f.Networks[spec.Network] = map[string]string{stack.LabelProject: "cit"}
	svc, _ := spec.Service(stack.ServiceRedis)
	return &executor{eng: f, spec: spec, log: slog.New(slog.DiscardHandler)}, svc
}

func TestHealthGate(t *testing.T) {
	cases := []struct {
		name    string
		onStart func(c *docker.Container)
		want    string
	}{
		{"never healthy", func(c *docker.Container) { c.Health = HealthStarting }, "not healthy within 300ms (state running, health starting)"},
		{"restarting", func(c *docker.Container) { c.State, c.Health, c.RestartCount = StateRestarting, HealthStarting, 2 }, "restarting (2 restarts)"},
		{"oom", func(c *docker.Container) { c.State, c.Health, c.ExitCode, c.OOMKilled = StateExited, "", 137, true }, "OOM-killed"},
		{"no health check", func(c *docker.Container) { c.Health = "" }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := dockertest.New(t)
			f.OnStart = c.onStart
			x, svc := executorFor(t, f, 300*time.Millisecond)
			_, err := x.startGated(context.Background(), svc, 1, "cit-redis")
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if len(f.Containers) != 0 {
				t.Error("failed container not removed")
			}
		})
	}
	// Cancellation ends the gate with the context's error.
	f := dockertest.New(t)
	f.OnStart = func(c *docker.Container) { c.Health = HealthStarting }
	x, svc := executorFor(t, f, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := x.startGated(ctx, svc, 1, "cit-redis"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled gate: %v", err)
	}
}

// A container that Docker has not checked yet passes its gate as soon as its ready
// probe answers, and is recorded as verified.
func TestHealthGateByReadyProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ip, port := hostPort(t, srv.Listener.Addr().String())
	f := dockertest.New(t)
	x, svc := executorFor(t, f, 10*time.Second)
	f.OnStart = func(c *docker.Container) { c.Health, c.IPs = HealthStarting, map[string]string{x.spec.Network: ip} }
	svc.Container.Ready = &ReadyProbe{Kind: ProbeHTTP, Port: port, Path: "/"}
	x.ready = &ReadySet{}
	id, err := x.startGated(context.Background(), svc, 1, "cit-redis")
	if err != nil {
		t.Fatal(err)
	}
	if !x.ready.Has(id) {
		t.Errorf("%s not in the ready set", id)
	}
}

func TestExecutorSteps(t *testing.T) {
	ctx := context.Background()
	f := dockertest.New(t)
	x, svc := executorFor(t, f, time.Second)
	id, err := x.startGated(ctx, svc, 1, "cit-redis-next")
	if err != nil {
		t.Fatal(err)
	}
	steps := Plan{Steps: []Step{
		{Kind: StepRename, Service: stack.ServiceRedis, Replica: 1, Name: "cit-redis", OldID: id},
		{Kind: StepBackoff, Service: stack.ServiceRedis, Replica: 1, Name: "cit-redis", Reason: "restart loop"},
		{Kind: StepRemove, Job: stack.JobMigrate, Name: "x", OldID: "gone"},
		{Kind: StepRemove, Service: stack.ServiceRedis, Replica: 1, Name: "cit-redis", OldID: id},
	}}
	if n, err := x.run(ctx, steps); err != nil || n != 4 {
		t.Fatal(n, err)
	}
	if len(f.Containers) != 0 {
		t.Errorf("left %d containers", len(f.Containers))
	}
	if _, err := x.run(ctx, Plan{Steps: []Step{{Kind: "bogus", Name: "b"}}}); err == nil || !strings.Contains(err.Error(), "unknown step kind") {
		t.Errorf("bogus step: %v", err)
	}
	if _, err := x.run(ctx, Plan{Steps: []Step{{Kind: StepRunJob, Job: "nope", Name: "n"}}}); err == nil || !strings.Contains(err.Error(), "not in spec") {
		t.Errorf("unknown job: %v", err)
	}
	// A failed start removes the created container.
	f.Fail["start"] = errors.New("cannot start")
	if _, err := x.startGated(ctx, svc, 1, "cit-redis"); err == nil || len(f.Containers) != 0 {
		t.Errorf("failed start: %v, %d containers", err, len(f.Containers))
	}
	delete(f.Fail, "start")
	// Rollback that cannot rename back reports both failures.
	old, err := x.startGated(ctx, svc, 1, "cit-redis")
	if err != nil {
		t.Fatal(err)
	}
	f.OnStart = func(c *docker.Container) { c.State, c.Health = StateExited, "" }
	f.Fail["rename"] = nil
	err = x.recreateStopFirst(ctx, svc, Step{Kind: StepRecreate, Service: stack.ServiceRedis, Replica: 1, Name: "cit-redis", OldID: old, OldName: "cit-redis"})
	if err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Errorf("rollback: %v", err)
	}
	f.Fail["rename"] = errors.New("rename broken")
	err = x.recreateStopFirst(ctx, svc, Step{Kind: StepRecreate, Service: stack.ServiceRedis, Replica: 1, Name: "cit-redis", OldID: old, OldName: "cit-redis-old"})
	if err == nil || !strings.Contains(err.Error(), "rollback: rename broken") {
		t.Errorf("broken rollback: %v", err)
	}
}

func TestParseMemTotal(t *testing.T) {
	if n, err := parseMemTotal(strings.NewReader("MemFree: 1 kB\nMemTotal:       24576000 kB\n")); err != nil || n != 24576000*1024 {
		t.Errorf("parse = %d %v", n, err)
	}
	if _, err := parseMemTotal(strings.NewReader("MemFree: 1 kB\n")); err == nil {
		t.Error("no MemTotal accepted")
	}
	if _, err := parseMemTotal(strings.NewReader("MemTotal: x kB\n")); err == nil {
		t.Error("bad MemTotal accepted")
	}
	cpus, mem, err := HostResources()
	if err != nil || cpus < 1 || mem <= 0 {
		t.Errorf("HostResources = %d %d %v", cpus, mem, err)
	}
}
