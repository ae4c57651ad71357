package backup

import (
	"context"
	"errors"
	"io"
	"time"
)

// Exec runs a command inside one of the stack's containers with its stdout streamed
// back (no temporary copy inside the container). The supervisor implements it with the
// Docker exec API; jobs/hostexec runs the same commands as host processes for tests and
// benchmarks.
type Exec interface {
	Exec(ctx context.Context, req ExecRequest) (Process, error)
}

// ExecRequest says what to run where.
type ExecRequest struct {
	Container string // container name, e.g. "corporate-intel-postgres"
	User      string // user inside the container ("postgres"); "" = the image's default
	// Env is added to the process's environment. It may carry secrets (PGPASSWORD,
	// REDISCLI_AUTH) because argv is visible to every process on the host: the
	// implementation must pass it only to the exec'd process and never log it.
	Env []string
	Cmd []string
}

// Process is a command started by Exec. Read its stdout through Read until io.EOF, then
// call Wait. Close aborts it (the command must stop: killed, or failing on its next
// write) and may be called at any time, also after Wait.
type Process interface {
	io.Reader
	// Wait waits for the command to exit and reports how. The error is for the
	// transport only (the container vanished, the connection broke); a command that ran
	// and failed is a nil error with a non-zero Exit.Code.
	Wait() (Exit, error)
	Close() error
}

// Exit is how a command ended.
type Exit struct {
	Code   int
	Stderr string // the last few KiB of its stderr
}

// Tools runs a tool of one of the stack's images in a one-shot container (the
// supervisor: a container of the postgres image on no network, with Mount bind-mounted
// read-only). The backup uses it for `pg_restore --list`, the restore for pg_restore.
type Tools interface {
	RunTool(ctx context.Context, req ToolRequest) (ToolResult, error)
}

// ToolMountPoint is where ToolRequest.Mount appears inside the tool's container.
const ToolMountPoint = "/backup"

// ToolRequest says what tool to run.
type ToolRequest struct {
	Image string   // the stack service whose image holds the tool: "postgres"
	Mount string   // host directory mounted read-only at ToolMountPoint; "" = none
	Cmd   []string // may name files under ToolMountPoint
	// Stdin, when set, is copied to the tool's stdin. The tool may exit before reading
	// all of it (pg_restore --list reads only the table of contents): that is not an error.
	Stdin io.Reader
}

// ToolResult is how a tool ended. Stdout is kept whole (the tools used print little);
// the implementation may cap it at a few MiB.
type ToolResult struct {
	Code   int
	Stdout []byte
	Stderr string // the last few KiB
}

// Locker is the supervisor's operation lock and journal: one operation (backup,
// restore, drill, upgrade, rotation) at a time, each recorded with its steps. While an
// operation owns services, the reconciler holds off recreating them.
type Locker interface {
	// Begin starts an operation. When another one runs it either waits (until ctx ends)
	// or fails at once with an error that says which operation holds the lock and since
	// when (wrapping ErrBusy) — the implementation's policy.
	Begin(ctx context.Context, kind string, services []string) (Op, error)
}

// Op is a running operation in the journal.
type Op interface {
	Step(name, detail string) // a step started; shown in status and the journal
	End(err error)            // the operation finished (err == nil: succeeded)
}

// ErrBusy is what a Locker's refusal wraps when another operation holds the lock.
var ErrBusy = errors.New("another operation is running")

// Clock returns the current time; tests inject their own.
type Clock func() time.Time

// Progress is one progress report of a running backup.
type Progress struct {
	Tier  string
	Phase string        // "postgres", "redis", "objects", "kit", "verify"
	Bytes int64         // bytes read from the sources so far
	Total int64         // estimate (from the previous backup); 0 = unknown
	Rate  float64       // bytes per second since the start
	ETA   time.Duration // 0 = unknown
}
