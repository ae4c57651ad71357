package console

import (
	"context"
	"io"
	"time"
)

// Operations are what the console asks of the supervisor: the same operations the
// CLI's local API calls (status, scale, restart, logs), plus a change feed for live
// pages. cmd/corpintel wires the supervisor's Daemon in.
type Operations interface {
	Status(ctx context.Context) (Status, error)
	// Scale sets a service's replicas and returns once the reconciler acted on it.
	Scale(ctx context.Context, service string, replicas int) error
	// Restart recreates a service's containers.
	Restart(ctx context.Context, service string) error
	// Logs writes a service's logs (tail < 0: all; follow streams until ctx ends).
	Logs(ctx context.Context, service string, tail int, follow bool, w io.Writer) error
	// WatchStatus returns a channel that receives when the observed state of the stack
	// changes, and a function that stops the watch.
	WatchStatus() (<-chan struct{}, func())
}

// Status is the stack as the console shows it (the supervisor's status report).
type Status struct {
	Project    string
	Profile    string
	Supervisor bool
	Stopped    bool
	// LastReconcile is the last pass; LastError its error.
	LastReconcile time.Time
	LastError     string
	// Maintenance names the operation the edge answers 503 for ("" when serving).
	Maintenance string
	Operation   *Operation
	Services    []Service
	// Certificates are the HTTPS listener's certificates (none without one).
	Certificates []Certificate
}

// Operation is a long operation under the supervisor's lock (backup, restore, ...).
type Operation struct {
	Name      string
	StartedAt time.Time
	LastStep  string
}

// Service is one service of the stack.
type Service struct {
	Name    string
	Desired int
	Running int
	Healthy int
	// State: running, degraded, starting, stopped, missing, restarting, backoff or held.
	State       string
	Health      string
	StartedAt   time.Time
	Image       string
	CPUPercent  float64
	MemoryBytes uint64
	Restarts    int
	Backoff     string
	NextAttempt time.Time
	Held        string
	Containers  []Container
}

// Container is one container of a service.
type Container struct {
	Name        string
	ID          string
	State       string
	Health      string
	StartedAt   time.Time
	Restarts    int
	Image       string
	CPUPercent  float64
	MemoryBytes uint64
}

// Certificate is a certificate the HTTPS listener serves.
type Certificate struct {
	Name      string
	Issuer    string
	NotAfter  time.Time
	LastError string
}
