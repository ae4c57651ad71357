package reconcile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/internal/stack"
	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/corpintel/corpintel/supervisor/state"
)

// testStack is a real project on the local engine, removed when the test ends (even
// when it fails).
type testStack struct {
	cfg *config.Config
	eng *docker.Client
	r   *Reconciler
	st  *state.Store
}

// newStack configures a small dev stack under a unique project name. Images come from
// the config defaults (built by `make images`), overridable with CORPINTEL_*_IMAGE.
func newStack(t *testing.T, mutate func(*config.Config)) *testStack {
	t.Helper()
	testenv.Docker(t)
	ctx := context.Background()
	eng, err := docker.New(ctx)
	testenv.Require(t, "docker", err)
	t.Cleanup(func() { eng.Close() })

	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CORPINTEL_") && strings.Contains(strings.SplitN(kv, "=", 2)[0], "_IMAGE") {
			env = append(env, kv)
		}
	}
	cfgFile := t.TempDir() + "/corpintel.toml"
	if err := os.WriteFile(cfgFile, []byte(`
profile = "dev"
[api]
memory = "256MiB"
cpus = 0.5
[postgres]
memory = "512MiB"
[redis]
memory = "128MiB"
[minio]
memory = "512MiB"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(config.Options{Path: cfgFile, Environ: env})
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	cfg.Project = "cit-" + hex.EncodeToString(b)
	cfg.StateDir = t.TempDir()
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, svc := range stack.Services {
		res, _ := cfg.ServiceResources(svc)
		if _, err := eng.ImageID(ctx, res.Image); err != nil {
			testenv.Require(t, "docker", err) // run `make images` first
		}
	}
	st, err := state.Open(ctx, cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r, err := New(Options{Config: cfg, Engine: eng, Store: st, Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := r.RemoveProject(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		assertNothingLabelled(t, eng, cfg.Project)
	})
	return &testStack{cfg: cfg, eng: eng, r: r, st: st}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func assertNothingLabelled(t *testing.T, eng *docker.Client, project string) {
	t.Helper()
	ctx := context.Background()
	sel := map[string]string{stack.LabelProject: project}
	cs, err1 := eng.ListContainers(ctx, sel)
	ns, err2 := eng.ListNetworks(ctx, sel)
	vs, err3 := eng.ListVolumes(ctx, sel)
	if len(cs)+len(ns)+len(vs) > 0 || err1 != nil || err2 != nil || err3 != nil {
		t.Errorf("left behind: %d containers, networks %q, volumes %q (%v %v %v)", len(cs), ns, vs, err1, err2, err3)
	}
}

func (s *testStack) reconcile(t *testing.T) Plan {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := s.r.Pass(ctx)
	if err != nil {
		t.Fatalf("Pass: %v\nplan:\n%s", err, p)
	}
	t.Logf("plan:\n%s", p)
	return p
}

// byName returns the project's containers by name.
func (s *testStack) byName(t *testing.T) map[string]ObservedContainer {
	t.Helper()
	obs, err := s.r.observe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]ObservedContainer{}
	for _, c := range obs.Containers {
		m[c.Name] = c
	}
	return m
}

func (s *testStack) assertReady(t *testing.T, names ...string) map[string]ObservedContainer {
	t.Helper()
	got := s.byName(t)
	for _, n := range names {
		// Ready per Docker, or verified by its ready probe while Docker's first health
		// check is still to come.
		if c, ok := got[n]; !ok || !s.r.Snapshot().Serving(c) {
			t.Errorf("%s not ready: %+v", n, c)
		}
	}
	if len(got) != len(names) {
		var have []string
		for n := range got {
			have = append(have, n)
		}
		slices.Sort(have)
		t.Errorf("containers %q, want %q", have, names)
	}
	return got
}

func TestIntegrationReconcile(t *testing.T) {
	s := newStack(t, nil)
	p := s.cfg.Project
	ctx := context.Background()

	// Empty project → everything created in dependency order and healthy.
	plan := s.reconcile(t)
	if !plan.HasChanges() {
		t.Fatal("first pass planned nothing")
	}
	all := []string{p + "-postgres", p + "-redis", p + "-minio", p + "-api-1"}
	first := s.assertReady(t, all...)
	if done, _ := s.st.JobsDone(ctx); !done[stack.JobSeed] {
		t.Error("seed not recorded as done")
	}

	// No secret values in any container's environment; secrets are 0400 files.
	secrets, err := EnsureSecrets(s.cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := os.ReadFile(secrets[stack.ServicePostgres][stack.SecretPostgresPassword])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range first {
		ct, err := s.eng.InspectContainer(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.Join(ct.Env, "\n"), strings.TrimSpace(string(pw))) {
			t.Errorf("%s: password in env", c.Name)
		}
	}

	// Second pass: no-op.
	if plan := s.reconcile(t); plan.HasChanges() {
		t.Errorf("second pass not a no-op:\n%s", plan)
	}

	// A recreate-relevant API setting recreates only the API.
	s.cfg.API.JWTIssuer = "changed"
	plan = s.reconcile(t)
	for _, st := range plan.Steps {
		if st.Service != "" && st.Service != stack.ServiceAPI {
			t.Errorf("unexpected step %s", st)
		}
	}
	after := s.assertReady(t, all...)
	for _, n := range all {
		changed := after[n].ID != first[n].ID
		if changed != strings.Contains(n, "-api-") {
			t.Errorf("%s: recreated = %v", n, changed)
		}
	}

	// Scale up and down; the stored scale survives a new reconciler.
	if err := s.r.SetScale(ctx, stack.ServiceAPI, 2); err != nil {
		t.Fatal(err)
	}
	s.reconcile(t)
	s.assertReady(t, append(all, p+"-api-2")...)
	r2, err := New(Options{Config: s.cfg, Engine: s.eng, Store: s.st})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := r2.Scale(ctx, stack.ServiceAPI); n != 2 || err != nil {
		t.Errorf("stored scale %d %v", n, err)
	}
	if err := s.r.SetScale(ctx, stack.ServiceAPI, 1); err != nil {
		t.Fatal(err)
	}
	s.reconcile(t)
	before := s.assertReady(t, all...)

	// A killed container is replaced; others are untouched.
	if err := s.eng.KillContainer(ctx, before[p+"-redis"].ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	s.reconcile(t)
	after = s.assertReady(t, all...)
	if after[p+"-redis"].ID == before[p+"-redis"].ID || after[p+"-postgres"].ID != before[p+"-postgres"].ID {
		t.Error("kill: wrong containers replaced")
	}

	// Defect: a replica that crash-looped and was then killed stayed exited for ever.
	// Its process is killed from the host until Docker has restarted it three times
	// (RestartCount 3, Docker's own policy), then `docker kill` stops it for good: the
	// next pass replaces it.
	api := p + "-api-1"
	for i := 1; i <= RestartLoopThreshold; i++ {
		ct, err := s.eng.InspectContainer(ctx, after[api].ID)
		if err != nil || ct.Pid == 0 {
			t.Fatalf("inspect %s: pid %d %v", api, ct.Pid, err)
		}
		if err := syscall.Kill(ct.Pid, syscall.SIGKILL); err != nil {
			testenv.Require(t, "root (to kill a container's process from the host)", err)
		}
		deadline := time.Now().Add(time.Minute)
		for {
			ct, err = s.eng.InspectContainer(ctx, after[api].ID)
			if err == nil && ct.RestartCount >= i && ct.State == StateRunning || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if ct.RestartCount < i {
			t.Fatalf("docker did not restart %s (restarts %d, state %s)", api, ct.RestartCount, ct.State)
		}
	}
	if err := s.eng.KillContainer(ctx, after[api].ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	plan = s.reconcile(t)
	if !strings.Contains(plan.String(), "restart loop") {
		t.Errorf("plan does not name the loop:\n%s", plan)
	}
	after = s.assertReady(t, all...)

	// A requested restart of a stateful service recreates it stop-first.
	if err := s.r.MarkRestart(ctx, stack.ServiceRedis); err != nil {
		t.Fatal(err)
	}
	s.reconcile(t)
	again := s.assertReady(t, all...)
	if again[p+"-redis"].ID == after[p+"-redis"].ID {
		t.Error("restart did not recreate redis")
	}
	if plan := s.reconcile(t); plan.HasChanges() {
		t.Errorf("restart mark not cleared:\n%s", plan)
	}

	// Unlabelled containers are never touched: a stranger survives everything.
	stranger, err := s.eng.CreateContainer(ctx, docker.CreateRequest{Name: p + "-stranger", Image: s.cfg.Redis.Image, Cmd: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.eng.RemoveContainer(context.Background(), stranger, true) })
	s.reconcile(t)
	if _, err := s.eng.InspectContainer(ctx, stranger); err != nil {
		t.Errorf("stranger gone: %v", err)
	}

	// Stop keeps containers and volumes, and holds across a new reconciler (a
	// supervisor restart); Start and the next pass bring everything back.
	if _, err := s.r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for n, c := range s.byName(t) {
		if c.State == StateRunning {
			t.Errorf("%s still running after Stop", n)
		}
	}
	r3, err := New(Options{Config: s.cfg, Engine: s.eng, Store: s.st})
	if err != nil {
		t.Fatal(err)
	}
	if plan, err := r3.Pass(ctx); err != nil || plan.HasChanges() {
		t.Errorf("a stopped stack was planned for: %v\n%s", err, plan)
	}
	if err := s.r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s.reconcile(t)
	s.assertReady(t, all...)
}
