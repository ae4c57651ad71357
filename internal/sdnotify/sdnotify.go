// Package sdnotify speaks systemd's notification protocol (sd_notify(3)): a service of
// Type=notify tells the service manager that it is ready (READY=1), what it is doing
// (STATUS=…), that it is stopping (STOPPING=1) and that it is alive (WATCHDOG=1), by
// sending newline-separated assignments as one datagram to the unix socket named by
// $NOTIFY_SOCKET. The watchdog period comes from $WATCHDOG_USEC (and $WATCHDOG_PID,
// which must name this process).
//
// It is written here rather than imported because the protocol is one datagram and
// the well-known library (coreos/go-systemd) pulls in D-Bus and journal code the
// supervisor does not need. Outside systemd (no $NOTIFY_SOCKET) every call is a no-op,
// so the daemon sends the same notifications whether or not it runs under a unit.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Message lines the supervisor sends.
const (
	Ready     = "READY=1"
	Stopping  = "STOPPING=1"
	Watchdog  = "WATCHDOG=1"
	Reloading = "RELOADING=1"
)

// Status returns a STATUS= line; newlines in s would start new assignments, so they
// become spaces.
func Status(s string) string {
	return "STATUS=" + strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

// Notifier sends notifications to one socket. The zero value (and a nil *Notifier)
// sends nothing: that is what a process outside systemd gets.
type Notifier struct {
	addr *net.UnixAddr
	// watchdog is the interval within which systemd expects WATCHDOG=1 (0: off).
	watchdog time.Duration
}

// Environment is the part of the process environment the protocol reads.
type Environment struct {
	NotifySocket string // $NOTIFY_SOCKET
	WatchdogUSec string // $WATCHDOG_USEC
	WatchdogPID  string // $WATCHDOG_PID
	PID          int    // this process
}

// FromEnv returns the notifier systemd set up for this process, or a no-op one when
// $NOTIFY_SOCKET is unset. With unsetEnv the variables are removed from the
// environment, so that child processes do not notify on the service's behalf.
func FromEnv(unsetEnv bool) (*Notifier, error) {
	env := Environment{NotifySocket: os.Getenv("NOTIFY_SOCKET"), WatchdogUSec: os.Getenv("WATCHDOG_USEC"),
		WatchdogPID: os.Getenv("WATCHDOG_PID"), PID: os.Getpid()}
	if unsetEnv {
		for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
			_ = os.Unsetenv(k)
		}
	}
	return New(env)
}

// New builds a notifier from the given environment.
func New(env Environment) (*Notifier, error) {
	n := &Notifier{}
	if env.NotifySocket != "" {
		name := env.NotifySocket
		switch {
		case strings.HasPrefix(name, "@"):
			// An abstract socket: the name starts with a NUL byte, which Go spells "@".
		case strings.HasPrefix(name, "/"):
		default:
			return nil, fmt.Errorf("sdnotify: NOTIFY_SOCKET=%q is neither a path nor an abstract socket (@name); vsock sockets are not supported", name)
		}
		n.addr = &net.UnixAddr{Name: name, Net: "unixgram"}
	}
	if env.WatchdogUSec != "" {
		if env.WatchdogPID != "" && env.WatchdogPID != strconv.Itoa(env.PID) {
			return n, nil // the watchdog is meant for another process (our parent)
		}
		us, err := strconv.ParseInt(env.WatchdogUSec, 10, 64)
		if err != nil || us <= 0 {
			return nil, fmt.Errorf("sdnotify: WATCHDOG_USEC=%q is not a positive number of microseconds", env.WatchdogUSec)
		}
		n.watchdog = time.Duration(us) * time.Microsecond
	}
	return n, nil
}

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// WatchdogInterval is the period within which systemd expects a WATCHDOG=1; 0 when
// the unit has no watchdog (or no socket to send to).
func (n *Notifier) WatchdogInterval() time.Duration {
	if !n.Enabled() {
		return 0
	}
	return n.watchdog
}

// ErrNotifyFailed wraps failures to deliver a notification.
var ErrNotifyFailed = errors.New("sdnotify: notification not delivered")

// Notify sends the lines as one datagram. Without a socket it does nothing and
// returns nil.
func (n *Notifier) Notify(lines ...string) error {
	if !n.Enabled() || len(lines) == 0 {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("%w: dial %s: %w", ErrNotifyFailed, n.addr.Name, err)
	}
	defer conn.Close()
	msg := strings.Join(lines, "\n")
	if _, err := conn.Write([]byte(msg)); err != nil {
		return fmt.Errorf("%w: write to %s: %w", ErrNotifyFailed, n.addr.Name, err)
	}
	return nil
}
