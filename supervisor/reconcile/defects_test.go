package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/internal/docker/dockertest"
	"github.com/corpintel/corpintel/internal/stack"
)

// testClock is a settable clock for the reconciler's backoffs.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time          { return c.t }
func (c *testClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func clocked(t *testing.T, profile string) (*Reconciler, *dockertest.Engine, *testClock) {
	t.Helper()
	r, f := newFakeReconciler(t, profile)
	clk := &testClock{t: planNow}
	r.now = clk.now
	return r, f, clk
}

// Defect 1: a replica that crash-looped (Docker restarted it three times) and was then
// killed stayed exited for ever, because the restart-loop rule had no time component.
// Now it is replaced at once; repeated failures back off per service, exponentially,
// and a healthy period forgives them.
func TestLoopingReplicaIsReplacedAndBacksOff(t *testing.T) {
	ctx := context.Background()
	r, f, clk := clocked(t, "prod")
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	api2 := f.ByName("cit-api-2")
	api2.State, api2.Health, api2.ExitCode, api2.RestartCount = StateExited, "", 137, 3
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if c := f.ByName("cit-api-2"); c == nil || c.ID == api2.ID || c.State != StateRunning {
		t.Fatalf("looping replica not replaced: %+v", c)
	}

	// From now on every API container dies at once: the first two replacements are
	// immediate, then the service waits 5 s, 10 s, … — and PostgreSQL killed meanwhile
	// is repaired at once all the same.
	f.OnStart = func(c *docker.Container) {
		if c.Labels[stack.LabelService] == stack.ServiceAPI {
			c.State, c.Health, c.ExitCode = StateExited, "", 1
		}
	}
	kill := func(name string) {
		c := f.ByName(name)
		c.State, c.Health, c.ExitCode = StateExited, "", 137
	}
	kill("cit-api-1")
	var waits []string
	for range 6 {
		p, _ := r.Pass(ctx)
		if reps := p.Reports(); len(reps) > 0 {
			waits = append(waits, reps[0].Reason[strings.Index(reps[0].Reason, "(in "):])
			clk.advance(r.NextWake().Sub(clk.now()))
			continue
		}
		waits = append(waits, "replaced")
	}
	// The looping replica's replacement was the first failure of the service.
	want := []string{"replaced", "replaced", "(in 5s)", "replaced", "(in 10s)", "replaced"}
	if strings.Join(waits, " ") != strings.Join(want, " ") {
		t.Errorf("backoff sequence %q, want %q", waits, want)
	}
	kill("cit-postgres")
	p, _ := r.Pass(ctx)
	if !strings.Contains(p.String(), "recreate       postgres/1") || !strings.Contains(p.String(), "backoff        api/1") {
		t.Errorf("postgres not repaired at once while the API backs off:\n%s", p)
	}
	if b := r.Backoffs()[stack.ServiceAPI]; b.Failures < 4 || !b.Until.After(clk.now()) {
		t.Errorf("api backoff %+v", b)
	}
	if len(r.LastPass().Reports) == 0 {
		t.Error("last pass lost its backoff report")
	}

	// The image is fixed; after a healthy period the failures are forgiven.
	f.OnStart = nil
	clk.advance(r.NextWake().Sub(clk.now()))
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	clk.advance(DefaultBackoff.Reset)
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if b, ok := r.Backoffs()[stack.ServiceAPI]; ok {
		t.Errorf("backoff not reset after a healthy period: %+v", b)
	}
	// A restart by the operator also clears a backoff.
	r.backoff.replaced(stack.ServiceRedis, clk.now())
	if err := r.MarkRestart(ctx, stack.ServiceRedis); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Backoffs()[stack.ServiceRedis]; ok {
		t.Error("restart kept the backoff")
	}
}

func TestBackoffPolicy(t *testing.T) {
	var got []time.Duration
	for n := range 12 {
		got = append(got, DefaultBackoff.delay(n))
	}
	want := []time.Duration{0, 0, 0, 5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 180 * time.Second, 180 * time.Second, 180 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
}

// Defect 2: rotating a secret deleted the files that running containers mount, so a
// rollback or Docker's own restart of an old container failed. A version stays while
// an observed container mounts it.
func TestRotatedSecretStaysWhileMounted(t *testing.T) {
	ctx := context.Background()
	r, f, _ := clocked(t, "prod")
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	dir := r.Config().StateDir
	old := filepath.Join(dir, "secrets", stack.ServiceRedis, stack.SecretRedisPassword+".v1")
	if err := os.WriteFile(filepath.Join(dir, "secrets", stack.SecretRedisPassword+".v2"), []byte("rotated\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	// The new redis fails its gate: the recreate rolls back to the old container,
	// which mounts v1.
	f.OnStart = func(c *docker.Container) {
		if c.Labels[stack.LabelService] == stack.ServiceRedis && strings.HasSuffix(c.Mounts[len(c.Mounts)-1].Source, ".v2") {
			c.State, c.Health, c.ExitCode = StateExited, "", 1
		}
	}
	if err := r.SetConfig(r.Config()); err != nil { // a reload re-reads the secrets
		t.Fatal(err)
	}
	if _, err := r.Pass(ctx); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("recreate with the rotated secret: %v", err)
	}
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("the v1 copy the old redis mounts was pruned: %v", err)
	}
	// Docker restarting the old container still finds its file; once the service runs
	// on v2, v1's copy goes.
	f.OnStart = nil
	if err := r.MarkRestart(ctx, stack.ServiceRedis); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("unmounted v1 copy kept: %v", err)
	}
}

// Defect 3: a stateful recreate that rolled back was retried on every pass, stopping
// PostgreSQL each time. The failed spec is held until the config changes or the
// operator restarts the service.
func TestFailedStatefulRecreateIsHeld(t *testing.T) {
	ctx := context.Background()
	r, f, _ := clocked(t, "prod")
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	old := f.ByName("cit-postgres").ID
	f.OnStart = func(c *docker.Container) {
		if c.Labels[stack.LabelService] == stack.ServicePostgres && c.ID != old {
			c.State, c.Health, c.ExitCode = StateExited, "", 1
		}
	}
	cfg := *r.Config()
	cfg.Postgres.WorkMem = 32 * config.MiB
	if err := r.SetConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pass(ctx); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("first attempt: %v", err)
	}
	for range 3 {
		f.Calls = nil
		p, err := r.Pass(ctx)
		if err != nil || p.HasChanges() || len(f.Calls) != 0 {
			t.Fatalf("held recreate retried: %v %q\n%s", err, f.Calls, p)
		}
		if !strings.Contains(p.String(), "hold           postgres/1") || !strings.Contains(p.String(), "corpintel restart postgres") {
			t.Fatalf("hold not reported:\n%s", p)
		}
	}
	// The hold survives a supervisor restart (a new reconciler on the same store).
	r2, err := New(Options{Config: r.Config(), Engine: f, Store: r.store, Host: testHost})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := r2.Pass(ctx); p.HasChanges() {
		t.Fatalf("hold lost on restart:\n%s", p)
	}
	// Killed while held: the old container is started again, as it is.
	f.ByName("cit-postgres").State = StateExited
	if p, err := r2.Pass(ctx); err != nil || !strings.Contains(p.String(), "revive") || f.ByName("cit-postgres").State != StateRunning {
		t.Fatalf("held postgres not revived: %v\n%s", err, p)
	}
	// The operator fixes the cause and restarts: tried again, and the hold goes.
	f.OnStart = nil
	if err := r2.MarkRestart(ctx, stack.ServicePostgres); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if c := f.ByName("cit-postgres"); c.ID == old || c.Labels[stack.LabelConfigHash] == "" {
		t.Errorf("postgres not recreated after the restart: %+v", c)
	}
	if hs, _ := r2.store.Holds(ctx); len(hs) != 0 {
		t.Errorf("hold kept after a successful recreate: %v", hs)
	}
}

// An API replica leaves the edge (drain) before it is told to stop, and only after
// its replacement passed its gate and the edge learned about it.
func TestDrainBeforeStop(t *testing.T) {
	ctx := context.Background()
	r, f, _ := clocked(t, "prod")
	var events []string
	r.drain = func(_ context.Context, id string) {
		f.Do(func(e *dockertest.Engine) {
			for _, c := range e.Containers {
				if c.ID == id {
					events = append(events, "drain "+c.Name+" "+c.State)
				}
			}
		})
	}
	r.onSnapshot = func(s Snapshot) {
		if n := len(s.Backends(stack.ServiceAPI, stack.PortAPI)); n > 0 {
			events = append(events, "backends "+strconv.Itoa(n))
		}
	}
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	events = nil
	if err := r.MarkRestart(ctx, stack.ServiceAPI); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(events, " | ")
	// Per replica: the new one is announced (3 serving for a moment), then the old one
	// drained while still running.
	for _, want := range []string{"backends 3 | drain cit-api-1 running", "backends 3 | drain cit-api-2 running"} {
		if !strings.Contains(got, want) {
			t.Errorf("events %q lack %q", got, want)
		}
	}
	events = nil
	if err := r.SetScale(ctx, stack.ServiceAPI, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(events, " | "), "drain cit-api-2 running") {
		t.Errorf("scale down without drain: %q", events)
	}
	events = nil
	if _, err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(events, " | "), "drain cit-api-1 running") {
		t.Errorf("stop without drain: %q", events)
	}
}
