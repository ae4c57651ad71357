package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"
)

// fakeDocker serves a fixed set of containers. Methods a test does not configure panic
// through the nil embedded interface, so tests state what they rely on.
type fakeDocker struct {
	DockerAPI
	mu         sync.Mutex
	containers []container.Summary
	inspect    map[string]container.InspectResponse
	stats      map[string]container.StatsResponse
	logs       map[string]string
	events     chan events.Message
	eventErrs  chan error
	eventCalls int
}

func (f *fakeDocker) ContainerList(_ context.Context, o container.ListOptions) ([]container.Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []container.Summary
	for _, c := range f.containers {
		ok := true
		for _, l := range o.Filters.Get("label") {
			k, v, _ := strings.Cut(l, "=")
			if c.Labels[k] != v {
				ok = false
			}
		}
		if ok && (o.All || c.State == container.StateRunning) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeDocker) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	if in, ok := f.inspect[id]; ok {
		return in, nil
	}
	return container.InspectResponse{}, errors.New("no such container")
}

func (f *fakeDocker) ContainerStatsOneShot(_ context.Context, id string) (container.StatsResponseReader, error) {
	b, _ := json.Marshal(f.stats[id])
	return container.StatsResponseReader{Body: io.NopCloser(bytes.NewReader(b))}, nil
}

func (f *fakeDocker) ContainerLogs(_ context.Context, id string, _ container.LogsOptions) (io.ReadCloser, error) {
	var buf bytes.Buffer
	_, _ = stdcopy.NewStdWriter(&buf, stdcopy.Stdout).Write([]byte(f.logs[id]))
	return io.NopCloser(&buf), nil
}

func (f *fakeDocker) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	f.mu.Lock()
	f.eventCalls++
	f.mu.Unlock()
	return f.events, f.eventErrs
}

func summary(id, svc string, state container.ContainerState, status, ip string) container.Summary {
	return container.Summary{
		ID: id, Names: []string{"/p-" + id}, Image: "corpintel/" + svc, State: state, Status: status,
		Labels: map[string]string{LabelProject: "p", LabelService: svc},
		NetworkSettings: &container.NetworkSettingsSummary{Networks: map[string]*network.EndpointSettings{
			"p-corpintel": {IPAddress: ip},
		}},
	}
}

// fakeStack records what the daemon asked of the reconciler.
type fakeStack struct {
	mu         sync.Mutex
	services   []DesiredService
	reconciles int
	changed    bool
	err        error
	scales     map[string]int
	restarts   []string
	pending    []string // PendingRestarts
	stopped    bool
	reconciled chan struct{}
}

func (s *fakeStack) PendingRestarts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

func newFakeStack() *fakeStack {
	return &fakeStack{
		services:   []DesiredService{{"postgres", 1}, {"redis", 1}, {"minio", 1}, {"api", 1}},
		scales:     map[string]int{},
		reconciled: make(chan struct{}, 100),
	}
}

func (s *fakeStack) Reconcile(context.Context) (bool, string, error) {
	s.mu.Lock()
	s.reconciles++
	changed, err := s.changed, s.err
	s.mu.Unlock()
	s.reconciled <- struct{}{}
	return changed, "plan", err
}

func (s *fakeStack) SetScale(svc string, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scales[svc] = n
	for i := range s.services {
		if s.services[i].Name == svc {
			s.services[i].Replicas = n
		}
	}
	return nil
}

func (s *fakeStack) MarkRestart(svc string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restarts = append(s.restarts, svc)
	return nil
}

func (s *fakeStack) StopAll(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	return nil
}

func (s *fakeStack) Services() []DesiredService {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]DesiredService(nil), s.services...)
}

func waitReconcile(t *testing.T, s *fakeStack) {
	t.Helper()
	select {
	case <-s.reconciled:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconcile within 10 s")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestDaemonRun(t *testing.T) {
	apiBackend, apiAddr := backendServer(t, "replica")
	_ = apiBackend
	host, port, _ := net.SplitHostPort(apiAddr)
	_ = port
	fd := &fakeDocker{
		containers: []container.Summary{
			summary("pg", "postgres", container.StateRunning, "Up 1 minute (healthy)", "10.0.0.2"),
			summary("api1", "api", container.StateRunning, "Up 1 minute (healthy)", host),
		},
		inspect: map[string]container.InspectResponse{
			"pg": {ContainerJSONBase: &container.ContainerJSONBase{State: &container.State{StartedAt: time.Now().Add(-time.Hour).Format(time.RFC3339Nano), Health: &container.Health{Status: "healthy"}}}},
		},
		stats: map[string]container.StatsResponse{
			"pg": {MemoryStats: container.MemoryStats{Usage: 300 << 20, Stats: map[string]uint64{"inactive_file": 100 << 20}}},
		},
		logs:      map[string]string{"pg": "ready to accept connections\n"},
		events:    make(chan events.Message),
		eventErrs: make(chan error),
	}
	st := newFakeStack()
	st.changed = true
	reloaded := newFakeStack()
	hup := make(chan os.Signal, 1)
	sock := filepath.Join(t.TempDir(), "run", "p.sock")
	listen := freeAddr(t)
	var readyURL string
	d, err := NewDaemon(Options{
		Project: "p", Profile: "dev", Listen: listen, Socket: sock, Resync: time.Hour,
		Docker: fd, Stack: st, Hangup: hup, Log: discardLog(),
		Reload: func() (Stack, error) { return reloaded, nil },
		Ready:  func(u string) { readyURL = u },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	waitReconcile(t, st) // adopt on start
	if readyURL != "http://"+listen {
		t.Errorf("ready URL %q", readyURL)
	}

	// The socket is private: 0600 without the corpintel group.
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("socket mode %v, %v", fi.Mode(), err)
	}
	// A second supervisor on the same socket is refused.
	if _, err := ListenLocalAPI(sock); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Errorf("second listener: %v", err)
	}

	// A killed container triggers a reconcile quickly; exec noise does not.
	fd.events <- events.Message{Type: events.ContainerEventType, Action: "exec_start: pg_isready", Actor: events.Actor{ID: "pg", Attributes: map[string]string{LabelProject: "p", LabelService: "postgres"}}}
	fd.events <- events.Message{Type: events.ContainerEventType, Action: events.ActionDie, Actor: events.Actor{ID: "job", Attributes: map[string]string{LabelProject: "p", LabelJob: "migrate"}}}
	fd.events <- events.Message{Type: events.ContainerEventType, Action: events.ActionDie, Actor: events.Actor{ID: "api1", Attributes: map[string]string{LabelProject: "p", LabelService: "api"}}}
	waitReconcile(t, st)

	// The replacement is recorded right after Reconcile returns.
	for deadline := time.Now().Add(5 * time.Second); ; {
		d.mu.Lock()
		replaced := maps.Clone(d.restarts.replaced)
		d.mu.Unlock()
		if len(replaced["api"]) == 1 && len(replaced[""]) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replacements %v: a job's exit counted, or the API's did not", replaced)
		}
		time.Sleep(10 * time.Millisecond)
	}

	c := NewClient(sock)
	rep, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Project != "p" || len(rep.Services) != 4 || rep.Services[0].State != "running" || rep.Services[0].MemoryBytes != 200<<20 {
		t.Errorf("status %+v", rep)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table, time.Now()); err != nil || !strings.Contains(table.String(), "postgres  1/1") {
		t.Errorf("table:\n%s", table.String())
	}

	// Scale validates and reconciles before answering.
	cases := []struct {
		svc     string
		n       int
		wantErr string
	}{
		{"api", 3, ""},
		{"api", 17, "between 0 and 16"},
		{"postgres", 2, "only api"},
		{"nope", 1, "valid: postgres, redis, minio, api"},
	}
	for _, tc := range cases {
		err := c.Scale(ctx, tc.svc, tc.n)
		var re *RequestError
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("scale %s=%d: %v", tc.svc, tc.n, err)
		case tc.wantErr != "" && (!errors.As(err, &re) || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("scale %s=%d: err %v, want request error with %q", tc.svc, tc.n, err, tc.wantErr)
		}
	}
	waitReconcile(t, st)
	if st.scales["api"] != 3 {
		t.Errorf("scales %v", st.scales)
	}
	if err := c.Restart(ctx, "redis"); err != nil || len(st.restarts) != 1 {
		t.Errorf("restart: %v %v", err, st.restarts)
	}
	waitReconcile(t, st)

	var logs bytes.Buffer
	if err := c.Logs(ctx, "postgres", LogOptions{Tail: 10}, &logs); err != nil || logs.String() != "ready to accept connections\n" {
		t.Errorf("logs %q, %v", logs.String(), err)
	}
	if err := c.Logs(ctx, "minio", LogOptions{Tail: -1}, &logs); err == nil || !strings.Contains(err.Error(), "no containers") {
		t.Errorf("logs of service without containers: %v", err)
	}

	// The proxy forwards to the healthy replica (port rewritten for the test backend).
	if got := d.Proxy().Backends(); len(got) != 1 || got[0] != net.JoinHostPort(host, apiPort) {
		t.Errorf("backends %v", got)
	}

	// SIGHUP swaps the stack and reconciles with it; a restart the old stack still owed
	// is carried over.
	st.mu.Lock()
	st.pending = []string{"api"}
	st.mu.Unlock()
	hup <- syscall.SIGHUP
	waitReconcile(t, reloaded)
	reloaded.mu.Lock()
	if !slices.Contains(reloaded.restarts, "api") {
		t.Errorf("restart not carried over the reload: %v", reloaded.restarts)
	}
	reloaded.mu.Unlock()

	if err := c.Stop(ctx); err != nil || !reloaded.stopped {
		t.Errorf("stop: %v", err)
	}
	rep, _ = c.Status(ctx)
	if !rep.Stopped {
		t.Error("status does not say stopped")
	}
	if err := d.reconcile(ctx, "test"); err != nil || reloaded.reconciles != 1 {
		t.Errorf("reconcile ran after stop (%d)", reloaded.reconciles)
	}
	// start undoes stop: it reconciles at once, and so does the loop again.
	if err := c.Start(ctx); err != nil || reloaded.reconciles != 2 {
		t.Errorf("start: %v (%d reconciles)", err, reloaded.reconciles)
	}
	if rep, _ = c.Status(ctx); rep.Stopped {
		t.Error("status still says stopped after start")
	}
	if err := d.reconcile(ctx, "test"); err != nil || reloaded.reconciles != 3 {
		t.Errorf("reconcile after start (%d)", reloaded.reconciles)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
	_, err = c.Status(context.Background())
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "corpintel supervisor") {
		t.Errorf("status without supervisor: %v", err)
	}
}

func TestDaemonReconcileErrorIsReported(t *testing.T) {
	st := newFakeStack()
	st.err = errors.New("engine unreachable")
	fd := &fakeDocker{}
	d, err := NewDaemon(Options{Project: "p", Listen: "127.0.0.1:0", Socket: "x", Docker: fd, Stack: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.reconcile(context.Background(), "test"); err == nil {
		t.Fatal("error swallowed")
	}
	rep, err := d.Status(context.Background())
	if err != nil || rep.LastError != "engine unreachable" {
		t.Errorf("status %+v %v", rep, err)
	}
	var b bytes.Buffer
	_ = rep.WriteTable(&b, time.Now())
	if !strings.Contains(b.String(), "Last reconcile failed") {
		t.Errorf("table lacks the error:\n%s", b.String())
	}
}

func TestNewValidates(t *testing.T) {
	cases := []Options{
		{},
		{Project: "p"},
		{Project: "p", Docker: &fakeDocker{}, Stack: newFakeStack()},
	}
	for _, o := range cases {
		if _, err := NewDaemon(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestRunFailsOnBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d, _ := NewDaemon(Options{Project: "p", Listen: ln.Addr().String(), Socket: filepath.Join(t.TempDir(), "s"), Docker: &fakeDocker{}, Stack: newFakeStack()})
	if err := d.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("err = %v", err)
	}
	d, _ = NewDaemon(Options{Project: "p", Listen: "127.0.0.1:0", Socket: "/proc/nope/s.sock", Docker: &fakeDocker{}, Stack: newFakeStack()})
	if err := d.Run(context.Background()); err == nil {
		t.Fatal("bad socket path accepted")
	}
}

func TestHealthyBackends(t *testing.T) {
	list := []container.Summary{
		summary("a", "api", container.StateRunning, "Up 3 seconds (healthy)", "10.0.0.3"),
		summary("b", "api", container.StateRunning, "Up 1 second (health: starting)", "10.0.0.4"),
		summary("c", "api", container.StateRunning, "Up 1 minute (unhealthy)", "10.0.0.5"),
		summary("d", "api", container.StateExited, "Exited (137)", ""),
		summary("e", "api", container.StateRunning, "Up 1 minute", "10.0.0.6"),
		{ID: "f", State: container.StateRunning},
	}
	got := healthyBackends(list, func(string) bool { return false })
	want := []string{"10.0.0.3:8080", "10.0.0.6:8080"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("got %v, want %v", got, want)
	}
	// A starting replica whose gate passed by its ready probe takes traffic; an
	// unhealthy one never does.
	got = healthyBackends(list, func(id string) bool { return id == "b" || id == "c" })
	want = []string{"10.0.0.3:8080", "10.0.0.4:8080", "10.0.0.6:8080"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("with b and c verified: got %v, want %v", got, want)
	}
}

func TestRestartTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var tr restartTracker
	cases := []struct {
		at        time.Duration
		wantDelay time.Duration
	}{
		{0, 0},
		{10 * time.Second, 0},
		{20 * time.Second, 5 * time.Second},
		{30 * time.Second, 10 * time.Second},
		{10 * time.Minute, 0}, // the window forgot the old ones
	}
	for _, c := range cases {
		now := t0.Add(c.at)
		tr.record("api", now)
		if got := tr.delay(now); got != c.wantDelay {
			t.Errorf("at %v: delay %v, want %v", c.at, got, c.wantDelay)
		}
	}
	tr.record("redis", t0)
	tr.record("redis", t0)
	tr.record("redis", t0)
	if s := tr.describe("redis", t0); !strings.Contains(s, "restart loop: 3") {
		t.Errorf("describe %q", s)
	}
	if s := tr.describe("minio", t0); s != "" {
		t.Errorf("describe of a calm service %q", s)
	}
}

func TestPrefixWriter(t *testing.T) {
	var b bytes.Buffer
	p := &prefixWriter{prefix: "api-1 | ", w: &b}
	_, _ = p.Write([]byte("one\ntw"))
	_, _ = p.Write([]byte("o\nthree"))
	p.flush()
	if want := "api-1 | one\napi-1 | two\napi-1 | three\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestLogsOfSeveralReplicasArePrefixed(t *testing.T) {
	fd := &fakeDocker{
		containers: []container.Summary{
			summary("api-1", "api", container.StateRunning, "Up", "10.0.0.3"),
			summary("api-2", "api", container.StateRunning, "Up", "10.0.0.4"),
		},
		logs: map[string]string{"api-1": "a\n", "api-2": "b\n"},
	}
	d, _ := NewDaemon(Options{Project: "p", Listen: "x", Socket: "x", Docker: fd, Stack: newFakeStack()})
	var b bytes.Buffer
	if err := d.Logs(context.Background(), "api", LogOptions{Tail: 5}, &b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "p-api-1 | a\n") || !strings.Contains(out, "p-api-2 | b\n") {
		t.Errorf("logs %q", out)
	}
}

func TestLocalAPIErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := ListenLocalAPI(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewLocalAPIHandler(failingOps{}, discardLog())}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	c := NewClient(sock)
	ctx := context.Background()
	if _, err := c.Status(ctx); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("status: %v", err)
	}
	if err := c.Stop(ctx); err == nil {
		t.Error("stop: no error")
	}
	if err := c.Start(ctx); err == nil {
		t.Error("start: no error")
	}
	var re *RequestError
	if err := c.Restart(ctx, "x"); !errors.As(err, &re) {
		t.Errorf("restart: %v", err)
	}
	if err := c.Logs(ctx, "x", LogOptions{Follow: true}, io.Discard); !errors.As(err, &re) {
		t.Errorf("logs: %v", err)
	}
	// Malformed requests are the caller's fault.
	for _, path := range []string{"/v1/scale", "/v1/restart"} {
		resp, err := c.hc.Post("http://corpintel"+path, "application/json", strings.NewReader("{"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
	resp, err := c.hc.Get("http://corpintel/v1/logs?tail=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("tail=x: %d", resp.StatusCode)
	}

	// Stale socket of a killed supervisor is replaced.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l2, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l2.(*net.UnixListener).SetUnlinkOnClose(false)
	l2.Close()
	l3, err := ListenLocalAPI(stale)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l3.Close()

	// Permission problems name the group.
	if err := NewClient(sock).explain(os.ErrPermission); !strings.Contains(err.Error(), "group corpintel") {
		t.Errorf("explain: %v", err)
	}
}

type failingOps struct{}

func (failingOps) Status(context.Context) (StatusReport, error) {
	return StatusReport{}, errors.New("boom")
}
func (failingOps) Scale(context.Context, string, int) error { return nil }
func (failingOps) Restart(context.Context, string) error {
	return requestErrorf("unknown service")
}
func (failingOps) Stop(context.Context) error  { return errors.New("engine gone") }
func (failingOps) Start(context.Context) error { return errors.New("engine gone") }
func (failingOps) Logs(context.Context, string, LogOptions, io.Writer) error {
	return requestErrorf("unknown service")
}

// A replica that Docker restarted on its own (no health gate ran) and has not checked
// yet joins the proxy as soon as it answers the supervisor's probe, and status counts it
// as healthy; one that does not answer is probed again until it does.
func TestStartingReplicaProbed(t *testing.T) {
	serving := atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !serving.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ip, port := hostPort(t, srv.Listener.Addr().String())
	fd := &fakeDocker{
		containers: []container.Summary{summary("a", "api", container.StateRunning, "Up 1 second (health: starting)", ip)},
		inspect: map[string]container.InspectResponse{"a": {ContainerJSONBase: &container.ContainerJSONBase{
			State: &container.State{Running: true, Health: &container.Health{Status: HealthStarting}}}}},
	}
	st := newFakeStack()
	st.services = []DesiredService{{Name: "api", Replicas: 1}}
	d, err := NewDaemon(Options{Project: "p", Listen: "127.0.0.1:0", Socket: filepath.Join(t.TempDir(), "s"), Docker: fd, Stack: st})
	if err != nil {
		t.Fatal(err)
	}
	d.apiProbe = &ReadyProbe{Kind: ProbeHTTP, Port: port, Path: "/health"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.refreshBackends(ctx)
	if b := d.proxy.Backends(); len(b) != 0 {
		t.Fatalf("a replica that does not answer yet got traffic: %v", b)
	}
	serving.Store(true) // the recheck finds it
	deadline := time.Now().Add(5 * time.Second)
	for len(d.proxy.Backends()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the replica never joined the proxy")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rep, err := d.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Services) != 1 || rep.Services[0].Healthy != 1 {
		t.Errorf("status: %+v", rep.Services)
	}
	// Once the container is gone its probe result is forgotten.
	fd.mu.Lock()
	fd.containers = nil
	fd.mu.Unlock()
	d.refreshBackends(ctx)
	if d.verified("a") {
		t.Error("a removed container stays verified")
	}
}
