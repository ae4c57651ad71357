package supervisor

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/internal/docker/dockertest"
	"github.com/corpintel/corpintel/internal/stack"
	"github.com/corpintel/corpintel/supervisor/health"
	"github.com/corpintel/corpintel/supervisor/localapi"
	"github.com/corpintel/corpintel/supervisor/state"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// testDaemon is a daemon over an in-memory engine and a real state store.
type testDaemon struct {
	d     *Daemon
	eng   *dockertest.Engine
	store *state.Store
	cfg   *config.Config
	stop  func()
}

func newTestDaemon(t *testing.T, eng *dockertest.Engine, stateDir string, mutate func(*Options)) *testDaemon {
	t.Helper()
	cfg := config.Default("prod")
	cfg.Project = "cit"
	cfg.Listen = freeAddr(t)
	cfg.StateDir = stateDir
	cfg.Socket = filepath.Join(t.TempDir(), "s.sock")
	cfg.Edge.HTTPS, cfg.Edge.HTTP = "127.0.0.1:0", "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if eng == nil {
		eng = dockertest.New(t)
		for _, svc := range stack.Services {
			res, _ := cfg.ServiceResources(svc)
			eng.Images[res.Image] = "sha256:" + svc
		}
	}
	store, err := state.Open(context.Background(), stateDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	opts := Options{Config: cfg, Engine: eng, Store: store, Log: slog.New(slog.DiscardHandler), Resync: 200 * time.Millisecond}
	if mutate != nil {
		mutate(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &testDaemon{d: d, eng: eng, store: store, cfg: cfg}
}

// run starts the daemon and returns a client of its local API; the daemon stops when
// the test ends or stop is called (and Run's error is checked).
func (td *testDaemon) run(t *testing.T) *localapi.Client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	ready := make(chan struct{})
	td.d.opts.Ready = func(Endpoints) { close(ready) }
	go func() { runErr = td.d.Run(ctx); close(done) }()
	td.stop = func() {
		cancel()
		<-done
		if runErr != nil {
			t.Errorf("Run: %v", runErr)
		}
		runErr = nil
	}
	t.Cleanup(td.stop)
	select {
	case <-ready:
	case <-done:
		t.Fatalf("Run ended early: %v", runErr)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon not ready")
	}
	return localapi.NewClient(td.cfg.Socket)
}

func waitStatus(t *testing.T, ops localapi.Operations, what string, cond func(health.StatusReport) bool) health.StatusReport {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last health.StatusReport
	var err error
	for time.Now().Before(deadline) {
		if last, err = ops.Status(context.Background()); err == nil && cond(last) {
			return last
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not reached; last status %+v, err %v", what, last, err)
	return last
}

func healthyWith(n int) func(health.StatusReport) bool {
	return func(r health.StatusReport) bool {
		return r.Healthy() && r.Services[3].Desired == n && r.Services[3].Running == n
	}
}

func TestDaemonOperations(t *testing.T) {
	ctx := context.Background()
	stateDir := t.TempDir()
	td := newTestDaemon(t, nil, stateDir, nil)
	c := td.run(t)
	rep := waitStatus(t, c, "healthy", healthyWith(2))
	if !rep.Supervisor || rep.Project != "cit" || rep.LastReconcile.IsZero() {
		t.Errorf("status %+v", rep)
	}
	if b := td.d.Proxy().Backends(); len(b) != 2 || !strings.HasSuffix(b[0], ":8080") {
		t.Errorf("edge backends %v", b)
	}

	// A killed container is replaced through the event loop, without an operator.
	td.eng.Kill("cit-redis")
	waitStatus(t, c, "redis replaced", func(r health.StatusReport) bool {
		return r.Healthy() && slices.Contains(td.eng.Names(), "cit-redis:running")
	})

	if err := c.Scale(ctx, "api", 3); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, "scaled", healthyWith(3))
	if len(td.d.Proxy().Backends()) != 3 {
		t.Errorf("backends after scale %v", td.d.Proxy().Backends())
	}
	var re *localapi.RequestError
	for _, err := range []error{c.Scale(ctx, "api", 17), c.Scale(ctx, "redis", 2), c.Restart(ctx, "nginx"), c.Logs(ctx, "nginx", localapi.LogOptions{}, &bytes.Buffer{})} {
		if !errors.As(err, &re) {
			t.Errorf("want a request error, got %v", err)
		}
	}
	var before string
	td.eng.Do(func(e *dockertest.Engine) { before = e.ByName("cit-minio").ID })
	if err := c.Restart(ctx, "minio"); err != nil {
		t.Fatal(err)
	}
	td.eng.Do(func(e *dockertest.Engine) {
		if e.ByName("cit-minio").ID == before {
			t.Error("restart did not recreate minio")
		}
	})

	var logs bytes.Buffer
	if err := c.Logs(ctx, "api", localapi.LogOptions{Tail: 5}, &logs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "cit-api-1 | log line of cit-api-1\n") || !strings.Contains(logs.String(), "cit-api-3 | ") {
		t.Errorf("logs %q", logs.String())
	}

	// create-admin runs a one-shot job with the password as a mounted file that is
	// gone afterwards, never in argv or the environment.
	if err := c.CreateAdmin(ctx, "admin@example.com", []byte("correct horse battery staple")); err != nil {
		t.Fatal(err)
	}
	var job docker.CreateRequest
	td.eng.Do(func(e *dockertest.Engine) {
		for _, r := range e.Created {
			if r.Name == "cit-job-create-admin" {
				job = r
			}
		}
	})
	var pwPath string
	for _, m := range job.Mounts {
		if m.Target == "/run/secrets/admin_password" && m.ReadOnly {
			pwPath = m.Source
		}
	}
	if pwPath == "" || strings.Contains(strings.Join(append(job.Env, job.Cmd...), " "), "correct horse") ||
		!slices.Equal(job.Cmd, []string{"api", "create-admin", "--email", "admin@example.com", "--password-file", "/run/secrets/admin_password"}) {
		t.Errorf("job %+v", job)
	}
	if _, err := os.Stat(pwPath); !os.IsNotExist(err) {
		t.Errorf("password file left behind: %v", err)
	}
	if slices.ContainsFunc(td.eng.Names(), func(n string) bool { return strings.Contains(n, "job-create-admin") }) {
		t.Error("job container left behind")
	}
	td.eng.Do(func(e *dockertest.Engine) { e.JobExit[stack.JobCreateAdmin] = 1 })
	if err := c.CreateAdmin(ctx, "dup@example.com", []byte("correct horse battery staple")); err == nil || !strings.Contains(err.Error(), "exited with code 1") {
		t.Errorf("failing create-admin job: %v", err)
	}
	if err := c.CreateAdmin(ctx, "no-at-sign", []byte("x")); !errors.As(err, &re) {
		t.Errorf("bad e-mail: %v", err)
	}
	if err := c.CreateAdmin(ctx, "a@b.c", nil); !errors.As(err, &re) {
		t.Errorf("no password: %v", err)
	}

	// Stop holds across a supervisor restart (a new daemon on the same store) until
	// Start.
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range td.eng.Names() {
		if strings.HasSuffix(n, ":running") {
			t.Errorf("%s still running after stop", n)
		}
	}
	if len(td.d.Proxy().Backends()) != 0 {
		t.Error("stopped stack still has backends")
	}
	rep = waitStatus(t, c, "stopped", func(r health.StatusReport) bool { return r.Stopped })
	if rep.StoppedAt.IsZero() {
		t.Error("stop time missing")
	}
	td.stop() // the supervisor goes away (a restart); its successor takes the state dir
	td2 := newTestDaemon(t, td.eng, stateDir, nil)
	c2 := td2.run(t)
	// Three passes of the new supervisor's loop (resync 200 ms): nothing may start.
	seen := map[time.Time]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for len(seen) < 3 && time.Now().Before(deadline) {
		if at := td2.d.Reconciler().LastPass().At; !at.IsZero() {
			seen[at] = true
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if len(seen) < 3 {
		t.Fatalf("the loop ran %d passes", len(seen))
	}
	for _, n := range td.eng.Names() {
		if strings.HasSuffix(n, ":running") {
			t.Errorf("%s started although the stack was stopped", n)
		}
	}
	if err := c2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c2, "started", func(r health.StatusReport) bool { return !r.Stopped && healthyWith(3)(r) })
}

// Without Run (the CLI when no supervisor answers), status and stop run the same code.
func TestDaemonWithoutRun(t *testing.T) {
	ctx := context.Background()
	td := newTestDaemon(t, nil, t.TempDir(), nil)
	if _, err := td.d.Reconciler().Pass(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := td.d.Status(ctx)
	if err != nil || rep.Supervisor || !rep.Healthy() {
		t.Fatalf("offline status %+v %v", rep, err)
	}
	if err := td.d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if stopped, _, _ := td.store.Stopped(ctx); !stopped {
		t.Error("offline stop not recorded")
	}
}

// The operation lock: a stand-in operation owns postgres; meanwhile the reconciler
// leaves postgres alone (also when it dies), a second operation is refused or waits,
// restart/stop of what it owns is refused; when it ends, postgres is repaired.
func TestOperationLockWithStandIn(t *testing.T) {
	ctx := context.Background()
	td := newTestDaemon(t, nil, t.TempDir(), nil)
	c := td.run(t)
	waitStatus(t, c, "healthy", healthyWith(2))

	inOp := make(chan struct{})
	release := make(chan struct{})
	opDone := make(chan error, 1)
	go func() {
		opDone <- td.d.RunOperation(ctx, OpRequest{Kind: "standin", Services: []string{"postgres"}, Detail: "test", Expected: time.Minute},
			func(ctx context.Context, op *Op) error {
				if err := op.Step(ctx, "dump", "postgres"); err != nil {
					return err
				}
				close(inOp)
				<-release
				return op.Step(ctx, "done", "")
			})
	}()
	<-inOp
	td.eng.Kill("cit-postgres")
	rep := waitStatus(t, c, "postgres held", func(r health.StatusReport) bool {
		return r.Services[0].State == "held" && strings.Contains(r.Services[0].Held, "owned by standin #1")
	})
	if rep.Operation == nil || rep.Operation.Name() != "standin #1" || rep.Operation.LastStep() != "dump" {
		t.Errorf("status operation %+v", rep.Operation)
	}
	if slices.Contains(td.eng.Names(), "cit-postgres:running") {
		t.Fatal("postgres repaired under the operation")
	}
	var re *localapi.RequestError
	if err := c.Restart(ctx, "postgres"); !errors.As(err, &re) || !strings.Contains(err.Error(), "owned by standin #1") {
		t.Errorf("restart of an owned service: %v", err)
	}
	if err := c.Stop(ctx); !errors.As(err, &re) {
		t.Errorf("stop during an operation: %v", err)
	}
	err := td.d.RunOperation(ctx, OpRequest{Kind: "other"}, func(context.Context, *Op) error { return nil })
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "standin #1") {
		t.Errorf("second operation: %v", err)
	}
	var waited atomic.Bool
	waitDone := make(chan error, 1)
	go func() {
		waitDone <- td.d.RunOperation(ctx, OpRequest{Kind: "waiter", Wait: true}, func(context.Context, *Op) error { waited.Store(true); return nil })
	}()
	close(release)
	if err := <-opDone; err != nil {
		t.Fatal(err)
	}
	if err := <-waitDone; err != nil || !waited.Load() {
		t.Errorf("waiting operation: %v %v", err, waited.Load())
	}
	waitStatus(t, c, "postgres repaired after the operation", func(r health.StatusReport) bool {
		return r.Healthy() && r.Operation == nil && slices.Contains(td.eng.Names(), "cit-postgres:running")
	})
	op, err := td.store.Operation(ctx, 1)
	if err != nil || op.State != state.OpSucceeded || len(op.Steps) != 2 {
		t.Errorf("journal %+v %v", op, err)
	}
	// A failing (or panicking) operation releases the lock with its error.
	err = td.d.RunOperation(ctx, OpRequest{Kind: "boom"}, func(context.Context, *Op) error { panic("kaboom") })
	if err == nil || !strings.Contains(err.Error(), "panicked: kaboom") {
		t.Errorf("panicking operation: %v", err)
	}
	if _, ok, _ := td.store.RunningOperation(ctx); ok {
		t.Error("lock kept after a panic")
	}
	if err := td.d.RunOperation(ctx, OpRequest{Kind: "x", Services: []string{"nginx"}}, nil); err == nil {
		t.Error("operation on an unknown service")
	}
}

// A supervisor that restarts mid-operation finds the journal: an operation with a
// resumer is resumed, any other is recorded as interrupted and reported.
func TestOperationFoundAfterRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	td := newTestDaemon(t, nil, dir, nil)
	left, err := td.store.BeginOperation(ctx, state.OpRequest{Kind: "standin", Services: []string{"redis"}, Owner: "a dead supervisor"})
	if err != nil {
		t.Fatal(err)
	}
	_ = td.store.OperationStep(ctx, left.ID, "copy", "")
	c := td.run(t)
	rep := waitStatus(t, c, "interrupted reported", func(r health.StatusReport) bool { return len(r.Interrupted) == 1 && r.Healthy() })
	if op := rep.Interrupted[0]; op.Name() != "standin #1" || !strings.Contains(op.Error, "during step copy") {
		t.Errorf("interrupted %+v", op)
	}
	if rep.Operation != nil {
		t.Errorf("lock still held: %+v", rep.Operation)
	}

	// With a resumer for the kind, the next supervisor continues it.
	dir2 := t.TempDir()
	resumed := make(chan string, 1)
	td2 := newTestDaemon(t, nil, dir2, func(o *Options) {
		o.Resume = map[string]func(context.Context, *Op) error{"standin": func(ctx context.Context, op *Op) error {
			resumed <- op.LastStep()
			return op.Step(ctx, "finished", "resumed")
		}}
	})
	left2, _ := td2.store.BeginOperation(ctx, state.OpRequest{Kind: "standin", Owner: "a dead supervisor"})
	_ = td2.store.OperationStep(ctx, left2.ID, "half", "")
	td2.run(t)
	select {
	case step := <-resumed:
		if step != "half" {
			t.Errorf("resumed at %q", step)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not resumed")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		op, _ := td2.store.Operation(ctx, left2.ID)
		if op.State == state.OpSucceeded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("resumed operation not ended: %+v", op)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunFailsOnBusyPortAndSocket(t *testing.T) {
	td := newTestDaemon(t, nil, t.TempDir(), nil)
	ln, err := net.Listen("tcp", td.cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := td.d.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("busy port: %v", err)
	}
	ln.Close()
	c := td.run(t)
	waitStatus(t, c, "healthy", healthyWith(2))
	other := newTestDaemon(t, td.eng, t.TempDir(), nil)
	other.d.rec.Config().Socket = td.cfg.Socket
	if err := other.d.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "another supervisor") {
		t.Errorf("second supervisor on one socket: %v", err)
	}
}

// A part that stops on its own (here the local API's listener) makes Run return its
// error instead of running on without it.
func TestRunReturnsWhenAPartStops(t *testing.T) {
	td := newTestDaemon(t, nil, t.TempDir(), nil)
	errc := make(chan error, 1)
	ready := make(chan struct{})
	td.d.opts.Ready = func(Endpoints) { close(ready) }
	go func() { errc <- td.d.Run(context.Background()) }()
	<-ready
	td.d.mu.Lock()
	ln := td.d.localLn
	td.d.mu.Unlock()
	_ = ln.Close()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "local API stopped") {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run kept going without its local API")
	}
}

func TestReload(t *testing.T) {
	hup := make(chan os.Signal, 1)
	var next atomic.Pointer[config.Config]
	td := newTestDaemon(t, nil, t.TempDir(), func(o *Options) {
		o.Hangup = hup
		o.Reload = func() (*config.Config, error) { return next.Load(), nil }
	})
	c := td.run(t)
	waitStatus(t, c, "healthy", healthyWith(2))
	moved := *td.cfg
	moved.StateDir = t.TempDir()
	next.Store(&moved)
	if err := td.d.reload(); err == nil || !strings.Contains(err.Error(), "state_dir cannot change") {
		t.Errorf("state dir change: %v", err)
	}
	relisten := *td.cfg
	relisten.Listen = "127.0.0.1:1"
	next.Store(&relisten)
	if err := td.d.reload(); err == nil || !strings.Contains(err.Error(), "listen and socket cannot change") {
		t.Errorf("listen change: %v", err)
	}
	changed := *td.cfg
	changed.LogLevel = "warn" // part of the API's environment: the replicas roll out
	next.Store(&changed)
	var before string
	td.eng.Do(func(e *dockertest.Engine) { before = e.ByName("cit-api-1").ID })
	hup <- os.Interrupt
	waitStatus(t, c, "rolled out after reload", func(r health.StatusReport) bool {
		var now string
		td.eng.Do(func(e *dockertest.Engine) {
			if a := e.ByName("cit-api-1"); a != nil {
				now = a.ID
			}
		})
		return r.Healthy() && now != "" && now != before
	})
	noReload := newTestDaemon(t, nil, t.TempDir(), nil)
	if err := noReload.d.reload(); err == nil {
		t.Error("reload without a reloader")
	}
}

func TestPrefixWriter(t *testing.T) {
	var b bytes.Buffer
	p := &prefixWriter{prefix: "x | ", w: &b}
	_, _ = p.Write([]byte("a\nb"))
	_, _ = p.Write([]byte("c\n"))
	_, _ = p.Write([]byte("tail"))
	p.flush()
	if b.String() != "x | a\nx | bc\nx | tail\n" {
		t.Errorf("%q", b.String())
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without config")
	}
}

// Maintenance mode follows the operation lock: on while an operation that asks for it
// runs, off after — and on again after a supervisor restart while the journal says the
// operation is still going (it is resumed).
func TestMaintenanceFollowsTheOperation(t *testing.T) {
	ctx := context.Background()
	td := newTestDaemon(t, nil, t.TempDir(), nil)
	td.run(t)
	inOp := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- td.d.RunOperation(ctx, OpRequest{Kind: "restore", Services: []string{"postgres"}, Maintenance: true, Expected: time.Minute},
			func(ctx context.Context, op *Op) error { close(inOp); <-release; return nil })
	}()
	<-inOp
	if m := td.d.Edge().InMaintenance(); m == nil || m.Reason != "restore #1" || m.RetryAfter != time.Minute {
		t.Errorf("maintenance during the operation: %+v", m)
	}
	rep, _ := td.d.Status(ctx)
	if rep.Maintenance != "restore #1" {
		t.Errorf("status maintenance %q", rep.Maintenance)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m := td.d.Edge().InMaintenance(); m != nil {
		t.Errorf("maintenance after the operation: %+v", m)
	}

	dir := t.TempDir()
	resumed := make(chan struct{})
	finish := make(chan struct{})
	td2 := newTestDaemon(t, nil, dir, func(o *Options) {
		o.Resume = map[string]func(context.Context, *Op) error{"upgrade": func(context.Context, *Op) error { close(resumed); <-finish; return nil }}
	})
	if _, err := td2.store.BeginOperation(ctx, state.OpRequest{Kind: "upgrade", Owner: "a dead supervisor", Maintenance: true}); err != nil {
		t.Fatal(err)
	}
	td2.run(t)
	<-resumed
	if m := td2.d.Edge().InMaintenance(); m == nil || m.Reason != "upgrade #1" {
		t.Errorf("maintenance not restored from the journal: %+v", m)
	}
	close(finish)
	deadline := time.Now().Add(5 * time.Second)
	for td2.d.Edge().InMaintenance() != nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if m := td2.d.Edge().InMaintenance(); m != nil {
		t.Errorf("maintenance after the resumed operation: %+v", m)
	}
}
