// Package testenv starts real PostgreSQL, Redis, MinIO and mailpit (SMTP) servers for
// integration tests and checks that a Docker Engine is reachable.
//
// One server of each kind is shared by all tests of a test binary (started lazily, on
// first use); every test gets its own database, Redis database number and key prefix, or
// bucket, so tests stay independent. Servers run from a per-process temp directory and
// are stopped when the binary finishes: call [Main] from TestMain for an orderly stop; in
// any case every server gets SIGKILL when the test process dies (Pdeathsig on Linux), and
// temp directories left behind by dead test processes are removed by the next run.
//
// A component that cannot be found or started makes the test skip locally and fail when
// CI=true (see [Require]): run `make deps` (scripts/install-deps.sh) to install them.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hints tells, per component, how to get it when it is missing.
var hints = map[string]string{
	"postgres": "PostgreSQL 15 server binaries (initdb, postgres) are looked up in $CORPINTEL_PG_BINDIR, /usr/lib/postgresql/*/bin and PATH",
	"redis":    "redis-server is looked up in $CORPINTEL_REDIS_BIN and PATH (apt-get install -y redis-server)",
	"minio":    "the MinIO server is looked up in $CORPINTEL_MINIO_BIN, PATH and " + defaultMinIOPath(),
	"docker":   "the Docker Engine must answer on $DOCKER_HOST or /var/run/docker.sock",
	"mailpit":  "the mailpit SMTP test server is looked up in $CORPINTEL_MAILPIT_BIN, PATH and " + defaultMailpitPath(),
}

// InCI reports whether the tests run under CI (CI=true), where a missing component is a
// failure rather than a reason to skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require stops the test when err != nil: it skips locally and fails when CI=true, with a
// message naming what is missing and how to get it.
func Require(t testing.TB, what string, err error) {
	t.Helper()
	fatal, msg := decide(what, err, InCI())
	if msg == "" {
		return
	}
	if fatal {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// decide is Require's pure core: whether to fail (else skip) and the message; an empty
// message means carry on.
func decide(what string, err error, ci bool) (fatal bool, msg string) {
	if err == nil {
		return false, ""
	}
	hint := hints[what]
	if hint != "" {
		hint = "; " + hint
	}
	msg = fmt.Sprintf("testenv: %s unavailable: %v%s; install the test dependencies with `make deps`", what, err, hint)
	if ci {
		return true, msg + " (CI=true: a missing component is a failure, not a skip)"
	}
	return false, msg + " (skipping; under CI=true this fails)"
}

// Main runs the tests and then stops every server this process started. Use it as
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}

// StopAll stops every server started by this process and removes its files. Servers
// started afterwards work as usual.
func StopAll() {
	registry.mu.Lock()
	servers := registry.servers
	registry.servers = nil
	registry.mu.Unlock()
	resetShared()
	for i := len(servers) - 1; i >= 0; i-- {
		servers[i].stop()
	}
	removeBaseDir()
}

// lazy starts a shared server once; the result (server or error) is kept until reset.
type lazy[T any] struct {
	mu   sync.Mutex
	done bool
	v    *T
	err  error
}

func (l *lazy[T]) get(start func() (*T, error)) (*T, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.v, l.err = start()
		l.done = true
	}
	return l.v, l.err
}

// reset forgets the shared value after closing it with closeFn (when it exists).
func (l *lazy[T]) reset(closeFn func(*T)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.v != nil && closeFn != nil {
		closeFn(l.v)
	}
	l.done, l.v, l.err = false, nil, nil
}

// resetShared closes the shared servers' clients and forgets them, so the next use
// starts new servers.
func resetShared() {
	sharedPG.reset(func(s *pgServer) { s.admin.Close() })
	sharedRedis.reset(nil)
	sharedMinIO.reset(nil)
	dockerCheck.reset(nil)
}

var registry struct {
	mu      sync.Mutex
	servers []*server
}

// server is one child process with its own directory.
type server struct {
	name     string
	cmd      *exec.Cmd
	dir      string
	logPath  string
	stopSig  syscall.Signal
	done     chan struct{} // closed when the process has exited
	stopOnce sync.Once
}

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// stop ends the process and removes its directory.
func (s *server) stop() {
	s.stopOnce.Do(func() {
		s.stopKeepDir()
		_ = os.RemoveAll(s.dir)
	})
}

// stopKeepDir signals the process, waits a little for it to exit and kills it otherwise.
func (s *server) stopKeepDir() {
	if s.exited() {
		return
	}
	_ = s.cmd.Process.Signal(s.stopSig)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// logTail returns the end of the server's log for error messages.
func (s *server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(bytes.TrimSpace(b))
}

// startServer starts cmd with its output going to dir/name.log and registers it for
// StopAll. The process is started from a thread that never exits, so Pdeathsig (which the
// kernel ties to the creating thread) fires only when the whole test process dies.
func startServer(name, dir string, cmd *exec.Cmd, stopSig syscall.Signal, cred *syscall.Credential) (*server, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644) // #nosec G302 -- test server log, read by developers
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer logFile.Close()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr(cred)
	if err := spawn(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd, dir: dir, logPath: logPath, stopSig: stopSig, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	registry.mu.Lock()
	registry.servers = append(registry.servers, s)
	registry.mu.Unlock()
	return s, nil
}

type spawnRequest struct {
	cmd    *exec.Cmd
	result chan error
}

var (
	spawnOnce sync.Once
	spawnCh   = make(chan spawnRequest)
)

func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		go func() {
			// Never unlocked: this thread lives as long as the process.
			runtime.LockOSThread()
			for r := range spawnCh {
				r.result <- r.cmd.Start()
			}
		}()
	})
	res := make(chan error, 1)
	spawnCh <- spawnRequest{cmd: cmd, result: res}
	return <-res
}

// waitReady polls check until it succeeds, the server exits, or the deadline passes.
func waitReady(s *server, timeout time.Duration, check func(ctx context.Context) error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if s.exited() {
			return fmt.Errorf("%s exited during start-up: %s", s.name, s.logTail())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last = check(ctx)
		cancel()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %w; log: %s", s.name, timeout, last, s.logTail())
		}
		select {
		case <-s.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// base is this process's directory for server files, created on first use (after
// removing directories left by test processes that no longer exist) and removed by StopAll.
var base struct {
	mu  sync.Mutex
	dir string
}

func baseDir() (string, error) {
	base.mu.Lock()
	defer base.mu.Unlock()
	if base.dir != "" {
		return base.dir, nil
	}
	sweepStale()
	dir, err := os.MkdirTemp("", "corpintel-testenv-")
	if err != nil {
		return "", fmt.Errorf("create testenv dir: %w", err)
	}
	// Traversable by the unprivileged user PostgreSQL runs as.
	if err := os.Chmod(dir, 0o711); err != nil { // #nosec G302 -- a directory the unprivileged test server must traverse
		return "", fmt.Errorf("chmod testenv dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil { // #nosec G306 -- a pid, not a secret
		return "", fmt.Errorf("write testenv owner: %w", err)
	}
	base.dir = dir
	return dir, nil
}

func removeBaseDir() {
	base.mu.Lock()
	defer base.mu.Unlock()
	if base.dir != "" {
		_ = os.RemoveAll(base.dir)
		base.dir = ""
	}
}

// sweepStale removes testenv directories whose owning process is gone (killed test
// binaries never run their cleanups).
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "corpintel-testenv-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

// serverDir creates a fresh directory for one server.
func serverDir(kind string) (string, error) {
	base, err := baseDir()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(base, kind+"-")
	if err != nil {
		return "", fmt.Errorf("create %s dir: %w", kind, err)
	}
	return dir, nil
}

// freePort asks the kernel for a free loopback port. Another process may take it before
// the server binds it; callers retry start-up on failure.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// lookBin finds a binary: the path in envVar, then PATH, then the candidates in order.
func lookBin(envVar, name string, candidates ...string) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("$%s=%s is not an executable file", envVar, p)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, c := range candidates {
		if isExecutable(c) {
			return c, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p) // #nosec G703 -- p is a path the harness itself built
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

var nameSeq struct {
	mu sync.Mutex
	n  int
}

func nextSeq() int {
	nameSeq.mu.Lock()
	defer nameSeq.mu.Unlock()
	nameSeq.n++
	return nameSeq.n
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)

// resourceName derives a readable, unique name (database, bucket) from the test name:
// prefix + sequence + sanitized test name, at most max characters, using sep between parts.
func resourceName(prefix string, seq int, testName, sep string, max int) string {
	clean := strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(testName), sep), sep)
	name := prefix + strconv.Itoa(seq)
	if clean != "" {
		name += sep + clean
	}
	if len(name) > max {
		name = strings.TrimRight(name[:max], sep)
	}
	return name
}

// errShared is returned when a test tries to stop a server other tests share.
var errShared = errors.New("shared servers cannot be stopped; start a private one (PostgresServer, RedisServer, MinIOServer)")
