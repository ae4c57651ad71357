// Package hostexec runs the backup's container commands (pg_dump, redis-cli, cat,
// pg_restore) as processes on this host instead of inside containers. It implements
// backup.Exec and backup.Tools for the integration tests and the benchmark, which point
// it at the real PostgreSQL, Redis and MinIO servers that internal/testenv starts; the
// supervisor uses its Docker adapter instead. Container names and users are ignored:
// every command runs as the calling user.
package hostexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/corpintel/corpintel/jobs/backup"
)

// stderrTail is how much of a command's stderr is kept.
const stderrTail = 4 << 10

// maxToolStdout caps what RunTool keeps of a tool's output.
const maxToolStdout = 16 << 20

// Exec runs commands as host processes.
type Exec struct {
	// PGBinDir is where PostgreSQL's client programs are looked up first (default: the
	// PostgreSQL 15 directory when present, so the dump matches production's version).
	PGBinDir string
	// Down lists container names whose commands fail as if the container were stopped
	// (for fault tests).
	Down map[string]bool

	mu      sync.Mutex
	started []string // commands run, for tests
}

var (
	_ backup.Exec  = (*Exec)(nil)
	_ backup.Tools = (*Exec)(nil)
)

// PGBinDir returns PostgreSQL 15's client directory when installed, else "".
func PGBinDir() string {
	for _, d := range []string{os.Getenv("CORPINTEL_PG_BINDIR"), "/usr/lib/postgresql/15/bin"} {
		if d != "" {
			if _, err := os.Stat(filepath.Join(d, "pg_dump")); err == nil { // #nosec G703 -- a directory the developer points the tests at
				return d
			}
		}
	}
	return ""
}

func (e *Exec) lookPath(name string) (string, error) {
	if strings.ContainsRune(name, '/') {
		return name, nil
	}
	dir := e.PGBinDir
	if dir == "" {
		dir = PGBinDir()
	}
	if dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("hostexec: %s: %w", name, err)
	}
	return p, nil
}

// Started returns the command names run so far.
func (e *Exec) Started() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.started...)
}

func (e *Exec) command(ctx context.Context, container string, env, argv []string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, errors.New("hostexec: empty command")
	}
	if e.Down[container] {
		return nil, fmt.Errorf("hostexec: container %s is not running", container)
	}
	bin, err := e.lookPath(argv[0])
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.started = append(e.started, argv[0])
	e.mu.Unlock()
	cmd := exec.CommandContext(ctx, bin, argv[1:]...)
	// A clean environment: no PG*/REDIS* variables of the caller leak into the command.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "HOME=" + os.TempDir()}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd, nil
}

// Exec starts req.Cmd with its stdout streamed.
func (e *Exec) Exec(ctx context.Context, req backup.ExecRequest) (backup.Process, error) {
	cmd, err := e.command(ctx, req.Container, req.Env, req.Cmd)
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("hostexec: %w", err)
	}
	growPipe(stdout)
	tail := &tailBuffer{max: stderrTail}
	cmd.Stderr = tail
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("hostexec: start %s: %w", req.Cmd[0], err)
	}
	return &process{cmd: cmd, stdout: stdout, stderr: tail}, nil
}

type process struct {
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stderr *tailBuffer

	once sync.Once
	exit backup.Exit
	err  error
}

func (p *process) Read(b []byte) (int, error) { return p.stdout.Read(b) }

func (p *process) Wait() (backup.Exit, error) {
	p.once.Do(func() {
		err := p.cmd.Wait()
		p.exit = backup.Exit{Code: p.cmd.ProcessState.ExitCode(), Stderr: p.stderr.String()}
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			p.err = err
		}
		if p.exit.Code < 0 { // killed by a signal
			p.exit.Code = 128 + int(p.cmd.ProcessState.Sys().(syscall.WaitStatus).Signal())
		}
	})
	return p.exit, p.err
}

func (p *process) Close() error {
	if p.cmd.ProcessState == nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	_, _ = p.Wait()
	return nil
}

// RunTool runs req.Cmd with ToolMountPoint in its arguments replaced by req.Mount.
func (e *Exec) RunTool(ctx context.Context, req backup.ToolRequest) (backup.ToolResult, error) {
	argv := append([]string(nil), req.Cmd...)
	for i, a := range argv {
		if req.Mount != "" && strings.Contains(a, backup.ToolMountPoint) {
			argv[i] = strings.ReplaceAll(a, backup.ToolMountPoint, req.Mount)
		}
	}
	cmd, err := e.command(ctx, "tool:"+req.Image, nil, argv)
	if err != nil {
		return backup.ToolResult{}, err
	}
	var stdout limitedBuffer
	stdout.max = maxToolStdout
	tail := &tailBuffer{max: stderrTail}
	cmd.Stdout, cmd.Stderr = &stdout, tail
	var stdinErr error
	var wg sync.WaitGroup
	if req.Stdin != nil {
		in, err := cmd.StdinPipe()
		if err != nil {
			return backup.ToolResult{}, fmt.Errorf("hostexec: %w", err)
		}
		if err := cmd.Start(); err != nil {
			return backup.ToolResult{}, fmt.Errorf("hostexec: start %s: %w", argv[0], err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := io.Copy(in, req.Stdin)
			in.Close()
			// The tool may stop reading early (pg_restore --list): a broken pipe is fine.
			if err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, os.ErrClosed) {
				stdinErr = err
			}
		}()
	} else if err := cmd.Start(); err != nil {
		return backup.ToolResult{}, fmt.Errorf("hostexec: start %s: %w", argv[0], err)
	}
	werr := cmd.Wait()
	wg.Wait()
	res := backup.ToolResult{Code: cmd.ProcessState.ExitCode(), Stdout: stdout.Bytes(), Stderr: tail.String()}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return res, fmt.Errorf("hostexec: %s: %w", argv[0], werr)
	}
	if stdinErr != nil && res.Code == 0 {
		return res, fmt.Errorf("hostexec: feed %s: %w", argv[0], stdinErr)
	}
	return res, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// limitedBuffer keeps the first max bytes and drops the rest.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.Len(); room > 0 {
		l.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// growPipe asks for a 1 MiB pipe (Linux F_SETPIPE_SZ; best effort): a dump then takes
// a sixteenth of the read calls of the default 64 KiB pipe. SyscallConn, not Fd, so
// the pipe stays non-blocking under Go's poller.
func growPipe(r io.Reader) {
	f, ok := r.(*os.File)
	if !ok {
		return
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, fd, 1031 /* F_SETPIPE_SZ */, 1<<20)
	})
}
