package supervisor

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
	"github.com/corpintel/corpintel/supervisor/state"
)

func newFakeReconciler(t *testing.T, profile string) (*Reconciler, *fakeEngine) {
	t.Helper()
	cfg := testConfig(t, profile, func(c *config.Config) { c.StateDir = t.TempDir() })
	f := newFakeEngine(t)
	for _, svc := range Services {
		res, _ := cfg.ServiceResources(svc)
		f.images[res.Image] = "sha256:" + svc
	}
	st, err := state.Open(context.Background(), cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r, err := NewReconciler(cfg, f, st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
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

func (f *fakeEngine) snapshot(t *testing.T) []string {
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

	p, err := r.ReconcileOnce(ctx)
	if err != nil {
		t.Fatalf("first pass: %v\n%s", err, p)
	}
	want := []string{"cit-api-1:running", "cit-minio:running", "cit-postgres:running", "cit-redis:running"}
	if got := f.snapshot(t); !slices.Equal(got, want) {
		t.Fatalf("containers %q, want %q", got, want)
	}
	if p, err := r.ReconcileOnce(ctx); err != nil || p.HasChanges() {
		t.Fatalf("second pass: %v\n%s", err, p)
	}
	if changed, summary, err := r.Reconcile(ctx); changed || err != nil || summary != "no changes\n" {
		t.Errorf("Reconcile = %v %q %v", changed, summary, err)
	}

	// API config change: new-first rollout.
	f.calls = nil
	r.cfg.API.JWTAudience = "other"
	if _, err := r.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	wantCalls := []string{
		"create cit-job-migrate", "start cit-job-migrate", "remove cit-job-migrate",
		"create cit-api-1-next", "start cit-api-1-next", "stop cit-api-1", "remove cit-api-1", "rename cit-api-1-next cit-api-1",
	}
	if !slices.Equal(f.calls, wantCalls) {
		t.Errorf("rollout calls\n%q\nwant\n%q", f.calls, wantCalls)
	}

	// Postgres restart: stop-first, old kept aside until the new one is healthy.
	f.calls = nil
	if err := r.MarkRestart(ServicePostgres); err != nil {
		t.Fatal(err)
	}
	if p := r.PendingRestarts(); !slices.Equal(p, []string{ServicePostgres}) {
		t.Errorf("pending restarts %v", p)
	}
	if _, err := r.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if p := r.PendingRestarts(); len(p) != 0 {
		t.Errorf("pending restarts after the pass: %v", p)
	}
	wantCalls = []string{"stop cit-postgres", "rename cit-postgres cit-postgres-old", "create cit-postgres", "start cit-postgres", "remove cit-postgres-old"}
	if !slices.Equal(f.calls, wantCalls) {
		t.Errorf("recreate calls\n%q\nwant\n%q", f.calls, wantCalls)
	}
	if p, _ := r.ReconcileOnce(ctx); p.HasChanges() {
		t.Errorf("restart mark not cleared: %s", p)
	}

	// Scale, stored.
	if err := r.SetScale(ServiceAPI, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.snapshot(t); len(got) != 6 {
		t.Errorf("after scale 3: %q", got)
	}
	if got := r.Services(); !slices.Equal(got, []DesiredService{{ServicePostgres, 1}, {ServiceRedis, 1}, {ServiceMinIO, 1}, {ServiceAPI, 3}}) {
		t.Errorf("Services() = %+v", got)
	}
	if d, err := r.Desired(ctx); err != nil || d.Services[3].Replicas != 3 {
		t.Errorf("Desired: %v", err)
	}
	if obs, err := r.Observe(ctx); err != nil || len(obs.ServiceContainers(ServiceAPI)) != 3 || obs.ServiceContainers(ServiceAPI)[0].IP == "" {
		t.Errorf("Observe: %+v %v", obs, err)
	}

	// StopAll then RemoveAll.
	if err := r.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.snapshot(t) {
		if !strings.HasSuffix(c, ":exited") {
			t.Errorf("after StopAll: %s", c)
		}
	}
	if err := r.RemoveAll(ctx); err != nil {
		t.Fatal(err)
	}
	if len(f.containers)+len(f.networks)+len(f.volumes) != 0 {
		t.Errorf("after RemoveAll: %d %d %d", len(f.containers), len(f.networks), len(f.volumes))
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
}

func TestReconcileStatefulRollback(t *testing.T) {
	ctx := context.Background()
	r, f := newFakeReconciler(t, "prod")
	if _, err := r.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	old := f.byName("cit-postgres").ID
	// The new postgres exits at once (e.g. a bad setting); the old one starts fine.
	f.onStart = func(c *docker.Container) {
		if c.Labels[LabelService] == ServicePostgres && c.ID != old {
			c.State, c.Health, c.ExitCode = StateExited, "", 1
		}
	}
	r.cfg.Postgres.WorkMem = 32 * config.MiB
	_, err := r.ReconcileOnce(ctx)
	if err == nil || !strings.Contains(err.Error(), "rolled back") || !strings.Contains(err.Error(), "exited with code 1") || !strings.Contains(err.Error(), "log line of cit-postgres") {
		t.Fatalf("err = %v", err)
	}
	pg := f.byName("cit-postgres")
	if pg == nil || pg.ID != old || pg.State != StateRunning {
		t.Errorf("old postgres not restored: %+v", pg)
	}
	if got := f.snapshot(t); len(got) != 5 {
		t.Errorf("containers after rollback: %q", got)
	}
}

func TestReconcileRolloutFailureKeepsOld(t *testing.T) {
	ctx := context.Background()
	r, f := newFakeReconciler(t, "prod")
	if _, err := r.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	f.onStart = func(c *docker.Container) {
		if c.Labels[LabelService] == ServiceAPI {
			c.Health = HealthUnhealthy
			c.HealthLog = []docker.HealthResult{{ExitCode: 1, Output: "connection refused\n"}}
		}
	}
	r.cfg.LogLevel = "warn"
	_, err := r.ReconcileOnce(ctx)
	if err == nil || !strings.Contains(err.Error(), "keeps running") || !strings.Contains(err.Error(), "last health check exit 1: connection refused") {
		t.Fatalf("err = %v", err)
	}
	want := []string{"cit-api-1:running", "cit-api-2:running", "cit-minio:running", "cit-postgres:running", "cit-redis:running"}
	if got := f.snapshot(t); !slices.Equal(got, want) {
		t.Errorf("containers %q", got)
	}
}

func TestReconcileJobFailure(t *testing.T) {
	ctx := context.Background()
	r, f := newFakeReconciler(t, "dev")
	f.jobExit[JobMigrate] = 3
	_, err := r.ReconcileOnce(ctx)
	if err == nil || !strings.Contains(err.Error(), "job migrate exited with code 3") || !strings.Contains(err.Error(), "log line of cit-job-migrate") {
		t.Fatalf("err = %v", err)
	}
	if f.byName("cit-job-migrate") != nil || f.byName("cit-api-1") != nil {
		t.Error("job container left or API started after a failed migration")
	}
	if done, _ := r.state.JobsDone(ctx); done[JobSeed] {
		t.Error("seed recorded")
	}
	f.fail["wait"] = errors.New("boom")
	if _, err := r.ReconcileOnce(ctx); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("wait failure: %v", err)
	}
}

func TestReconcileErrors(t *testing.T) {
	ctx := context.Background()
	r, f := newFakeReconciler(t, "dev")
	delete(f.images, "corpintel/api:latest")
	if _, err := r.ReconcileOnce(ctx); err == nil || !strings.Contains(err.Error(), "make images") {
		t.Errorf("missing image: %v", err)
	}
	f.images["corpintel/api:latest"] = "sha256:api"
	f.fail["list"] = errors.New("engine gone")
	if _, err := r.ReconcileOnce(ctx); err == nil || !strings.Contains(err.Error(), "engine gone") {
		t.Errorf("list failure: %v", err)
	}
	if err := r.StopAll(ctx); err == nil {
		t.Error("StopAll with failing list")
	}
	if err := r.RemoveAll(ctx); err == nil {
		t.Error("RemoveAll with failing list")
	}
	delete(f.fail, "list")
	f.fail["create"] = errors.New("no space")
	if _, err := r.ReconcileOnce(ctx); err == nil || !strings.Contains(err.Error(), "start cit-postgres: no space") {
		t.Errorf("create failure: %v", err)
	}

	for _, c := range []struct {
		svc string
		n   int
		err string
	}{
		{"api", 17, "must be 0…16"},
		{"api", -1, "must be 0…16"},
		{"postgres", 2, "cannot be scaled"},
		{"nginx", 1, `unknown service "nginx" (services: postgres, redis, minio, api)`},
	} {
		if err := r.SetScale(c.svc, c.n); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("SetScale(%s, %d) = %v", c.svc, c.n, err)
		}
	}
	if err := r.MarkRestart("nginx"); err == nil {
		t.Error("MarkRestart(nginx)")
	}
	if _, err := r.Scale(ctx, "nginx"); err == nil {
		t.Error("Scale(nginx)")
	}
	if n, err := r.Scale(ctx, ServiceRedis); n != 1 || err != nil {
		t.Errorf("Scale(redis) = %d %v", n, err)
	}
	if n, err := r.Scale(ctx, ServiceAPI); n != 1 || err != nil {
		t.Errorf("Scale(api) = %d %v", n, err)
	}
	if r.Config() != r.cfg {
		t.Error("Config()")
	}
}

// executorFor runs single steps against a fake with a short health deadline.
func executorFor(t *testing.T, f *fakeEngine, timeout time.Duration) (*executor, ServiceSpec) {
	t.Helper()
	spec := testSpec(t, "prod", nil)
	for i := range spec.Services {
		spec.Services[i].HealthTimeout = timeout
	}
	f.networks[spec.Network] = map[string]string{LabelProject: "cit"}
	svc, _ := spec.Service(ServiceRedis)
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
			f := newFakeEngine(t)
			f.onStart = c.onStart
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
			if len(f.containers) != 0 {
				t.Error("failed container not removed")
			}
		})
	}
	// Cancellation ends the gate with the context's error.
	f := newFakeEngine(t)
	f.onStart = func(c *docker.Container) { c.Health = HealthStarting }
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
	f := newFakeEngine(t)
	x, svc := executorFor(t, f, 10*time.Second)
	f.onStart = func(c *docker.Container) { c.Health, c.IPs = HealthStarting, map[string]string{x.spec.Network: ip} }
	svc.Container.Ready = &ReadyProbe{Kind: ProbeHTTP, Port: port, Path: "/"}
	var verified []string
	x.verified = func(id string) { verified = append(verified, id) }
	id, err := x.startGated(context.Background(), svc, 1, "cit-redis")
	if err != nil {
		t.Fatal(err)
	}
	if len(verified) != 1 || verified[0] != id {
		t.Errorf("verified %v, want [%s]", verified, id)
	}
}

func TestExecutorSteps(t *testing.T) {
	ctx := context.Background()
	f := newFakeEngine(t)
	x, svc := executorFor(t, f, time.Second)
	id, err := x.startGated(ctx, svc, 1, "cit-redis-next")
	if err != nil {
		t.Fatal(err)
	}
	steps := Plan{Steps: []Step{
		{Kind: StepRename, Service: ServiceRedis, Replica: 1, Name: "cit-redis", OldID: id},
		{Kind: StepBackoff, Service: ServiceRedis, Replica: 1, Name: "cit-redis", Reason: "restart loop"},
		{Kind: StepRemove, Job: JobMigrate, Name: "x", OldID: "gone"},
		{Kind: StepRemove, Service: ServiceRedis, Replica: 1, Name: "cit-redis", OldID: id},
	}}
	if err := x.run(ctx, steps); err != nil {
		t.Fatal(err)
	}
	if len(f.containers) != 0 {
		t.Errorf("left %d containers", len(f.containers))
	}
	if err := x.run(ctx, Plan{Steps: []Step{{Kind: "bogus", Name: "b"}}}); err == nil || !strings.Contains(err.Error(), "unknown step kind") {
		t.Errorf("bogus step: %v", err)
	}
	if err := x.run(ctx, Plan{Steps: []Step{{Kind: StepRunJob, Job: "nope", Name: "n"}}}); err == nil || !strings.Contains(err.Error(), "not in spec") {
		t.Errorf("unknown job: %v", err)
	}
	// A failed start removes the created container.
	f.fail["start"] = errors.New("cannot start")
	if _, err := x.startGated(ctx, svc, 1, "cit-redis"); err == nil || len(f.containers) != 0 {
		t.Errorf("failed start: %v, %d containers", err, len(f.containers))
	}
	delete(f.fail, "start")
	// Rollback that cannot rename back reports both failures.
	old, err := x.startGated(ctx, svc, 1, "cit-redis")
	if err != nil {
		t.Fatal(err)
	}
	f.onStart = func(c *docker.Container) { c.State, c.Health = StateExited, "" }
	f.fail["rename"] = nil
	err = x.recreateStopFirst(ctx, svc, Step{Kind: StepRecreate, Service: ServiceRedis, Replica: 1, Name: "cit-redis", OldID: old, OldName: "cit-redis"})
	if err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Errorf("rollback: %v", err)
	}
	f.fail["rename"] = errors.New("rename broken")
	err = x.recreateStopFirst(ctx, svc, Step{Kind: StepRecreate, Service: ServiceRedis, Replica: 1, Name: "cit-redis", OldID: old, OldName: "cit-redis-old"})
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
