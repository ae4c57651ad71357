// Package localapi is the unix-socket API the corpintel CLI talks to: one route table
// (routes.go) over the Operations the supervisor implements, the socket listener, the
// client the CLI uses, and the wire types they exchange. The socket is root-only
// (or group corpintel); the CLI's verbs and the console call the same operations.
package localapi

import (
	"context"
	"fmt"
	"io"

	"github.com/corpintel/corpintel/supervisor/edge/certs"
	"github.com/corpintel/corpintel/supervisor/health"
)

// Operations are what the local API offers; the supervisor's Daemon implements them
// (and so does Client, over the socket).
type Operations interface {
	Status(ctx context.Context) (health.StatusReport, error)
	Scale(ctx context.Context, service string, replicas int) error
	Restart(ctx context.Context, service string) error
	Stop(ctx context.Context) error
	// Start undoes Stop: the stack is reconciled (brought up) again.
	Start(ctx context.Context) error
	Logs(ctx context.Context, service string, opts LogOptions, w io.Writer) error
	// CreateAdmin creates an API admin user by a one-shot job; the password travels
	// in the request body and into the job as a file, never in argv or environment.
	CreateAdmin(ctx context.Context, email string, password []byte) error
	// TLSCheck runs the certificate preflight (DNS, ports 80/443 reaching this edge,
	// CAA) for the configured names.
	TLSCheck(ctx context.Context) ([]certs.Finding, error)
	AlertOperations
}

// LogOptions select what `corpintel logs` shows.
type LogOptions struct {
	Follow bool
	// Tail is the number of lines from the end; negative means all.
	Tail int
}

// RequestError is a problem with what the caller asked for (unknown service, scale out
// of bounds, an operation in the way). The CLI exits with status 2 on it.
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

// RequestErrorf builds a RequestError.
func RequestErrorf(format string, args ...any) error {
	return &RequestError{Msg: fmt.Sprintf(format, args...)}
}

type scaleRequest struct {
	Service  string `json:"service"`
	Replicas int    `json:"replicas"`
}

type serviceRequest struct {
	Service string `json:"service"`
}

type createAdminRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type errorBody struct {
	Error string `json:"error"`
}
