package sdnotify

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a real unixgram socket (what systemd listens on) and returns a function
// that reads the next datagram.
func listen(t *testing.T, name string) func() string {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return func() string {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("read notification: %v", err)
		}
		return string(buf[:n])
	}
}

func TestNotifyPathAndAbstractSockets(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@corpintel-sdnotify-test-" + strconv.Itoa(os.Getpid())} {
		t.Run(name, func(t *testing.T) {
			read := listen(t, name)
			n, err := New(Environment{NotifySocket: name, PID: 1})
			if err != nil {
				t.Fatal(err)
			}
			if !n.Enabled() {
				t.Fatal("not enabled with a socket")
			}
			if err := n.Notify(Ready, Status("up\nand running")); err != nil {
				t.Fatal(err)
			}
			if got, want := read(), "READY=1\nSTATUS=up and running"; got != want {
				t.Errorf("datagram %q, want %q", got, want)
			}
			if err := n.Notify(Watchdog); err != nil {
				t.Fatal(err)
			}
			if got := read(); got != "WATCHDOG=1" {
				t.Errorf("datagram %q", got)
			}
			if err := n.Notify(); err != nil {
				t.Errorf("empty notify: %v", err)
			}
		})
	}
}

func TestNoSocketIsANoOp(t *testing.T) {
	for _, n := range []*Notifier{nil, {}} {
		if n.Enabled() || n.WatchdogInterval() != 0 {
			t.Errorf("%v: enabled without a socket", n)
		}
		if err := n.Notify(Ready); err != nil {
			t.Errorf("notify without a socket: %v", err)
		}
	}
	n, err := New(Environment{WatchdogUSec: "3000000", PID: 7})
	if err != nil {
		t.Fatal(err)
	}
	if n.WatchdogInterval() != 0 {
		t.Error("a watchdog without a socket to ping")
	}
}

func TestWatchdogInterval(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	tests := []struct {
		name    string
		env     Environment
		want    time.Duration
		wantErr string
	}{
		{"ours", Environment{NotifySocket: sock, WatchdogUSec: "30000000", WatchdogPID: "42", PID: 42}, 30 * time.Second, ""},
		{"no pid given", Environment{NotifySocket: sock, WatchdogUSec: "1500", PID: 42}, 1500 * time.Microsecond, ""},
		{"our parent's", Environment{NotifySocket: sock, WatchdogUSec: "30000000", WatchdogPID: "41", PID: 42}, 0, ""},
		{"none", Environment{NotifySocket: sock, PID: 42}, 0, ""},
		{"garbage", Environment{NotifySocket: sock, WatchdogUSec: "soon", PID: 42}, 0, "WATCHDOG_USEC"},
		{"zero", Environment{NotifySocket: sock, WatchdogUSec: "0", PID: 42}, 0, "positive"},
		{"relative socket", Environment{NotifySocket: "notify.sock", PID: 42}, 0, "neither a path"},
		{"vsock", Environment{NotifySocket: "vsock:2:1234", PID: 42}, 0, "vsock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := New(tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := n.WatchdogInterval(); got != tt.want {
				t.Errorf("interval %s, want %s", got, tt.want)
			}
		})
	}
}

func TestNotifyToAMissingSocketFails(t *testing.T) {
	n, err := New(Environment{NotifySocket: filepath.Join(t.TempDir(), "gone")})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(Ready); !errors.Is(err, ErrNotifyFailed) {
		t.Errorf("err %v, want ErrNotifyFailed", err)
	}
}

func TestFromEnvUnsetsTheVariables(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	read := listen(t, sock)
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "20000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n, err := FromEnv(true)
	if err != nil {
		t.Fatal(err)
	}
	if n.WatchdogInterval() != 20*time.Second {
		t.Errorf("interval %s", n.WatchdogInterval())
	}
	for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		if _, ok := os.LookupEnv(k); ok {
			t.Errorf("%s still set: children would notify for us", k)
		}
	}
	if err := n.Notify(Stopping); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != Stopping {
		t.Errorf("datagram %q", got)
	}
}
