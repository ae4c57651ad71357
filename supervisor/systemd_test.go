package supervisor

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/sdnotify"
	"github.com/corpintel/corpintel/supervisor/reconcile"
)

// notifySocket is a real unixgram socket standing in for systemd's: it records every
// datagram.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
	at   []time.Time
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	ns := &notifySocket{path: filepath.Join(t.TempDir(), "notify")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			ns.mu.Lock()
			ns.msgs = append(ns.msgs, string(buf[:n]))
			ns.at = append(ns.at, time.Now())
			ns.mu.Unlock()
		}
	}()
	return ns
}

func (ns *notifySocket) notifier(t *testing.T, watchdog time.Duration) *sdnotify.Notifier {
	t.Helper()
	env := sdnotify.Environment{NotifySocket: ns.path}
	if watchdog > 0 {
		env.WatchdogUSec = strconv.FormatInt(int64(watchdog/time.Microsecond), 10)
	}
	n, err := sdnotify.New(env)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// since returns the messages received after index from (and the new length).
func (ns *notifySocket) since(from int) ([]string, int) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return append([]string(nil), ns.msgs[from:]...), len(ns.msgs)
}

// waitMsg waits for a datagram (after index from) containing want; it returns the
// index after it.
func (ns *notifySocket) waitMsg(t *testing.T, from int, want string) (string, int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		msgs, _ := ns.since(from)
		for i, m := range msgs {
			if strings.Contains(m, want) {
				return m, from + i + 1
			}
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	msgs, _ := ns.since(0)
	t.Fatalf("no notification with %q; got %q", want, msgs)
	return "", 0
}

func countPings(msgs []string) int {
	n := 0
	for _, m := range msgs {
		if m == sdnotify.Watchdog {
			n++
		}
	}
	return n
}

func TestSystemdReadyStatusAndWatchdog(t *testing.T) {
	ns := newNotifySocket(t)
	const watchdog = 300 * time.Millisecond // pings every 100 ms, loop stale after 150 ms
	td := newTestDaemon(t, nil, t.TempDir(), func(o *Options) { o.Notify = ns.notifier(t, watchdog) })
	inject := make(chan func())
	td.d.inject = inject
	td.run(t)

	ready, i := ns.waitMsg(t, 0, sdnotify.Ready)
	if !strings.Contains(ready, "STATUS=supervisor up") {
		t.Errorf("READY without a status line: %q", ready)
	}
	_, i = ns.waitMsg(t, i, sdnotify.Watchdog)
	// The fake engine has no running containers: the stack is being created or
	// degraded, and the line names the services.
	status, i := ns.waitMsg(t, i, "STATUS=stack ")
	if !strings.Contains(status, "postgres ") || !strings.Contains(status, "api ") {
		t.Errorf("status line %q does not name the services", status)
	}

	// A blocked event loop: the pings stop and the status says why.
	release := make(chan struct{})
	entered := make(chan struct{})
	inject <- func() { close(entered); <-release }
	<-entered
	_, i = ns.waitMsg(t, i, "STATUS=self-check failing: the reconcile loop has not turned")
	// From the first failure on, nothing but failing status lines: three watchdog
	// periods without a single ping.
	time.Sleep(3 * watchdog)
	msgs, j := ns.since(i)
	if n := countPings(msgs); n != 0 {
		t.Errorf("%d watchdog pings while the loop was blocked: %q", n, msgs)
	}
	close(release)
	_, j = ns.waitMsg(t, j, sdnotify.Watchdog)

	// An unwritable state store stops the pings too.
	if err := td.store.Close(); err != nil {
		t.Fatal(err)
	}
	ns.waitMsg(t, j, "STATUS=self-check failing: the state store does not take writes")

	td.stop()
	ns.waitMsg(t, 0, sdnotify.Stopping)
}

func TestSystemdNothingWithoutASocket(t *testing.T) {
	td := newTestDaemon(t, nil, t.TempDir(), nil)
	td.run(t)
	// Nothing to assert on the wire; the daemon runs and the loop beats at 1 s.
	if got := td.d.loopHeartbeat(); got != time.Second {
		t.Errorf("heartbeat %s without a watchdog", got)
	}
	if td.d.loopInject(context.Background()) != nil {
		t.Error("a production build injects into the loop")
	}
}

func TestTimingFor(t *testing.T) {
	tests := []struct {
		interval time.Duration
		want     watchdogTiming
	}{
		{0, watchdogTiming{heartbeat: time.Second}},
		{30 * time.Second, watchdogTiming{ping: 10 * time.Second, heartbeat: time.Second, stale: 15 * time.Second}},
		{3 * time.Second, watchdogTiming{ping: time.Second, heartbeat: 300 * time.Millisecond, stale: 1500 * time.Millisecond}},
		{30 * time.Millisecond, watchdogTiming{ping: 10 * time.Millisecond, heartbeat: 10 * time.Millisecond, stale: 15 * time.Millisecond}},
	}
	for _, tt := range tests {
		if got := timingFor(tt.interval); got != tt.want {
			t.Errorf("timingFor(%s) = %+v, want %+v", tt.interval, got, tt.want)
		}
	}
}

func TestSelfCheckPassAllowance(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	td := newTestDaemon(t, nil, t.TempDir(), func(o *Options) { o.Now = func() time.Time { return now } })
	timing := timingFor(30 * time.Second)
	if err := td.d.selfCheck(context.Background(), timing); err == nil || !strings.Contains(err.Error(), "not started") {
		t.Errorf("before the loop runs: %v", err)
	}
	// Drive the loop's heartbeat by hand through a real loop run with a stopped clock:
	// it records `now` as its last turn.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = td.d.rec.Run(ctx, reconcile.LoopOptions{Resync: time.Hour})
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for td.d.rec.Heartbeat().Last.IsZero() || !td.d.rec.Heartbeat().PassSince.IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("loop did not turn")
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	cancel()
	<-done
	if err := td.d.selfCheck(context.Background(), timing); err != nil {
		t.Errorf("fresh heartbeat: %v", err)
	}
	now = now.Add(16 * time.Second)
	if err := td.d.selfCheck(context.Background(), timing); err == nil || !strings.Contains(err.Error(), "has not turned for 16s") {
		t.Errorf("stale heartbeat: %v", err)
	}
}

func TestStackLine(t *testing.T) {
	td := newTestDaemon(t, nil, t.TempDir(), nil)
	ctx := context.Background()
	if got := td.d.stackLine(ctx); got != "observing the stack" {
		t.Errorf("before the first observation: %q", got)
	}
	if _, err := td.d.rec.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if got := td.d.stackLine(ctx); !strings.HasPrefix(got, "stack ") || !strings.Contains(got, "redis ") {
		t.Errorf("after a pass: %q", got)
	}
	// An operation in progress is named.
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- td.d.RunOperation(ctx, OpRequest{Kind: "backup"}, func(context.Context, *Op) error {
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	if got := td.d.stackLine(ctx); !strings.HasPrefix(got, "backup #") || !strings.Contains(got, "running; stack ") {
		t.Errorf("during an operation: %q", got)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := td.store.SetStopped(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got := td.d.stackLine(ctx); !strings.Contains(got, "stopped by the operator") {
		t.Errorf("stopped: %q", got)
	}
	// The engine stops answering: reported, the containers keep running.
	td.eng.Fail["list"] = errors.New("cannot reach the Docker Engine: connection refused")
	_, _ = td.d.rec.Refresh(ctx)
	if got := td.d.stackLine(ctx); !strings.HasPrefix(got, "Docker Engine unreachable") {
		t.Errorf("engine down: %q", got)
	}
	// … and that is no reason for the watchdog: with the loop turning (its passes
	// failing), the self-check passes.
	lctx, cancel := context.WithCancel(ctx)
	loopDone := make(chan struct{})
	go func() {
		_ = td.d.rec.Run(lctx, reconcile.LoopOptions{Resync: time.Hour, Heartbeat: 10 * time.Millisecond})
		close(loopDone)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for hb := td.d.rec.Heartbeat(); hb.Last.IsZero() || !hb.PassSince.IsZero(); hb = td.d.rec.Heartbeat() {
		if time.Now().After(deadline) {
			t.Fatal("loop did not turn")
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	if err := td.d.selfCheck(ctx, timingFor(30*time.Second)); err != nil {
		t.Errorf("self-check with Docker unreachable: %v (must pass: a restart does not repair dockerd)", err)
	}
	cancel()
	<-loopDone
}
