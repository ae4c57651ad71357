package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/stack"
	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/corpintel/corpintel/supervisor/health"
)

// The end-to-end test drives the real binary against the real Docker Engine with the
// real images (`make images`), under a unique project name, port and state dir, so it
// never touches a running stack. Locally it skips without Docker or images; under
// CI=true it fails instead.

// stackImages are the images the default config runs.
var stackImages = []string{"corpintel/postgres:15", "corpintel/redis:7", "corpintel/minio:latest", "corpintel/api:latest"}

func requireImages(t *testing.T) {
	t.Helper()
	for _, img := range stackImages {
		if err := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", img).Run(); err != nil { // #nosec G204 -- fixed names
			testenv.Require(t, "images", fmt.Errorf("image %s is missing — build the stack images with `make images`: %w", img, err))
		}
	}
}

// buildBinary builds corpintel; with CORPINTEL_COVERDIR set it is instrumented so that
// the end-to-end run counts towards coverage (scripts/cover.sh).
func buildBinary(t *testing.T) (bin string, env []string) {
	t.Helper()
	bin = filepath.Join(t.TempDir(), "corpintel")
	args := []string{"build", "-o", bin}
	env = os.Environ()
	if dir := os.Getenv("CORPINTEL_COVERDIR"); dir != "" {
		args = append(args, "-cover", "-coverpkg=github.com/corpintel/corpintel/...")
		env = append(env, "GOCOVERDIR="+dir)
	}
	args = append(args, ".")
	// Same build settings as the test binary, so the build cache is shared.
	cmd := exec.Command("go", args...) // #nosec G204 -- fixed arguments
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin, env
}

// e2eStack is one project under test.
type e2eStack struct {
	t       *testing.T
	bin     string
	env     []string
	project string
	config  string
	port    string
	// httpsPort and httpPort are the public listeners (on 127.0.0.1).
	httpsPort, httpPort string
	// base is written into every config of the stack (writeConfig adds to it), and
	// edgeExtra into its [edge] table.
	base, edgeExtra string
	logPath         string
	sup             *exec.Cmd
}

func newE2EStack(t *testing.T) *e2eStack { return newE2EStackWith(t, "") }

// freePort returns a port nothing listens on at the moment.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// newE2EStackWith is a stack whose every config also carries base (TOML tables other
// than [edge], which holds the public ports).
func newE2EStackWith(t *testing.T, base string) *e2eStack {
	bin, env := buildBinary(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	s := &e2eStack{t: t, bin: bin, env: env, project: "e2e-" + hex.EncodeToString(b[:]), base: base}
	s.port, s.httpsPort, s.httpPort = freePort(t), freePort(t), freePort(t)
	dir := t.TempDir()
	s.config = filepath.Join(dir, "corpintel.toml")
	s.logPath = filepath.Join(dir, "supervisor.log")
	s.writeConfig("")
	// Registered before anything is created: every labelled object goes, also on failure.
	t.Cleanup(s.removeEverything)
	return s
}

func (s *e2eStack) writeConfig(extra string) {
	dir := filepath.Dir(s.config)
	cfg := fmt.Sprintf(`profile = "dev"
project = %q
listen = "127.0.0.1:%s"
socket = %q
state_dir = %q
log_level = "info"
sample_data = false
%s
[edge]
https = "127.0.0.1:%s"
http = "127.0.0.1:%s"
%s
%s`, s.project, s.port, filepath.Join(dir, "run", "corpintel.sock"), filepath.Join(dir, "state"), s.base, s.httpsPort, s.httpPort, s.edgeExtra, extra)
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// corpintel runs a CLI verb against the stack's config.
func (s *e2eStack) corpintel(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// --config right after the verb, before a "--" that hands the rest to psql.
	full := append([]string{args[0], "--config", s.config}, args[1:]...)
	cmd := exec.CommandContext(ctx, s.bin, full...) // #nosec G204 -- the binary under test
	cmd.Env = s.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("corpintel %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (s *e2eStack) startSupervisor() {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	s.sup = exec.Command(s.bin, "supervisor", "--config", s.config) // #nosec G204 -- the binary under test
	s.sup.Env = s.env
	s.sup.Stdout, s.sup.Stderr = logf, logf
	if err := s.sup.Start(); err != nil {
		s.t.Fatal(err)
	}
	_ = logf.Close()
	sup := s.sup
	s.t.Cleanup(func() {
		if sup.ProcessState == nil {
			_ = sup.Process.Signal(syscall.SIGTERM)
			_ = sup.Wait()
		}
	})
}

// signalSupervisor sends sig and, for terminating signals, waits for the exit.
func (s *e2eStack) signalSupervisor(sig syscall.Signal) {
	s.t.Helper()
	if err := s.sup.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
	if sig == syscall.SIGHUP {
		return
	}
	_ = s.sup.Wait()
}

func (s *e2eStack) status() (health.StatusReport, error) {
	out, err := s.corpintel("status", "--json")
	if err != nil {
		return health.StatusReport{}, err
	}
	var rep health.StatusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		return rep, fmt.Errorf("status --json: %w: %s", err, out)
	}
	return rep, nil
}

// waitFor polls status until cond holds (or fails the test at the deadline, with the
// last status and the supervisor's log).
func (s *e2eStack) waitFor(what string, timeout time.Duration, cond func(health.StatusReport) bool) health.StatusReport {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var last health.StatusReport
	var lastErr error
	for time.Now().Before(deadline) {
		last, lastErr = s.status()
		if lastErr == nil && cond(last) {
			return last
		}
		time.Sleep(300 * time.Millisecond) // polling interval, not a readiness guess
	}
	js, _ := json.MarshalIndent(last, "", "  ")
	logs, _ := os.ReadFile(s.logPath)
	s.t.Fatalf("%s: not reached within %s (last error %v)\nstatus: %s\nsupervisor log (tail):\n%s", what, timeout, lastErr, js, tail(string(logs), 60))
	return last
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// healthyWith returns a condition: everything healthy and api at n replicas.
func healthyWith(apiReplicas int) func(health.StatusReport) bool {
	return func(r health.StatusReport) bool {
		if !r.Healthy() {
			return false
		}
		for _, svc := range r.Services {
			if svc.Service == stack.ServiceAPI && (svc.Desired != apiReplicas || len(svc.Containers) != apiReplicas) {
				return false
			}
		}
		return true
	}
}

// containers maps container name → "id startedAt" for the project's running services.
func containers(r health.StatusReport) map[string]string {
	m := map[string]string{}
	for _, svc := range r.Services {
		for _, c := range svc.Containers {
			m[c.Name] = c.ID + " " + c.StartedAt.Format(time.RFC3339Nano)
		}
	}
	return m
}

func (s *e2eStack) docker(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput() // #nosec G204 -- test helper
	if err != nil {
		s.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// labelled lists the project's objects of one kind (container, volume, network).
func labelled(project, kind string) []string {
	args := []string{kind, "ls", "-q", "--filter", "label=" + stack.LabelProject + "=" + project}
	if kind == "container" {
		args = []string{"ps", "-aq", "--filter", "label=" + stack.LabelProject + "=" + project}
	}
	out, _ := exec.Command("docker", args...).Output() // #nosec G204 -- test helper
	return strings.Fields(string(out))
}

// removeEverything deletes every object of the project and checks none is left.
func (s *e2eStack) removeEverything() {
	if s.sup != nil && s.sup.ProcessState == nil {
		_ = s.sup.Process.Signal(syscall.SIGTERM)
		_ = s.sup.Wait()
	}
	for _, kind := range []string{"container", "volume", "network"} {
		ids := labelled(s.project, kind)
		if len(ids) == 0 {
			continue
		}
		args := append([]string{kind, "rm"}, ids...)
		if kind == "container" {
			args = append([]string{"rm", "-f", "-v"}, ids...)
		}
		if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil { // #nosec G204 -- test helper
			s.t.Errorf("cleanup: docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, kind := range []string{"container", "volume", "network"} {
		if left := labelled(s.project, kind); len(left) > 0 {
			s.t.Errorf("cleanup: %d %ss of project %s left: %v", len(left), kind, s.project, left)
		}
	}
}

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped with -short")
	}
	testenv.Docker(t)
	requireImages(t)
	s := newE2EStack(t)

	// Cold start: everything healthy, the API answers through the loopback proxy.
	s.startSupervisor()
	rep := s.waitFor("cold start", 6*time.Minute, healthyWith(1))
	resp, err := http.Get("http://127.0.0.1:" + s.port + "/health")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Request-ID") == "" {
		t.Fatalf("GET /health through the proxy: %s", resp.Status)
	}

	// docker kill of the API and Redis: both replaced and healthy again.
	before := containers(rep)
	api1 := stack.ContainerName(s.project, stack.ServiceAPI, 1)
	redis := stack.ContainerName(s.project, stack.ServiceRedis, 0)
	s.docker("kill", api1, redis)
	s.waitFor("recovery after docker kill", 3*time.Minute, func(r health.StatusReport) bool {
		now := containers(r)
		return healthyWith(1)(r) && now[api1] != before[api1] && now[redis] != before[redis]
	})

	// Scale out and back in.
	if _, err := s.corpintel("scale", "api=3"); err != nil {
		t.Fatal(err)
	}
	s.waitFor("scale api=3", 3*time.Minute, healthyWith(3))
	if _, err := s.corpintel("scale", "api=1"); err != nil {
		t.Fatal(err)
	}
	rep = s.waitFor("scale api=1", 3*time.Minute, healthyWith(1))

	// restart recreates the API; logs and psql reach the containers.
	before = containers(rep)
	if _, err := s.corpintel("restart", "api"); err != nil {
		t.Fatal(err)
	}
	rep = s.waitFor("restart api", 3*time.Minute, func(r health.StatusReport) bool {
		return healthyWith(1)(r) && containers(r)[api1] != before[api1]
	})
	if out, err := s.corpintel("logs", "--tail", "20", "postgres"); err != nil || !strings.Contains(out, "ready to accept connections") {
		t.Errorf("logs postgres: %v\n%s", err, out)
	}
	if out, err := s.corpintel("psql", "--", "-c", "select 41+1 as answer"); err != nil || !strings.Contains(out, "42") {
		t.Errorf("psql: %v\n%s", err, out)
	}
	if _, err := s.corpintel("scale", "api=17"); err == nil {
		t.Error("scale api=17 accepted")
	}

	// A change that needs a recreate (Redis memory limit) recreates Redis only.
	before = containers(rep)
	s.writeConfig("[redis]\nmemory = \"1GiB\"\n")
	s.signalSupervisor(syscall.SIGHUP)
	rep = s.waitFor("redis recreated after reload", 3*time.Minute, func(r health.StatusReport) bool {
		return healthyWith(1)(r) && containers(r)[redis] != before[redis]
	})
	for name, id := range containers(rep) {
		if name != redis && before[name] != id {
			t.Errorf("%s was recreated by a Redis-only change (%s → %s)", name, before[name], id)
		}
	}

	// SIGKILL the supervisor and start it again: it adopts everything without restarts.
	before = containers(rep)
	s.signalSupervisor(syscall.SIGKILL)
	// Without a supervisor, status still answers — from the engine, and says so.
	if off, err := s.status(); err != nil || off.Supervisor || !off.Healthy() {
		t.Fatalf("status with the supervisor killed: %+v %v", off, err)
	}
	s.startSupervisor()
	rep = s.waitFor("adopted after restart", 2*time.Minute, func(r health.StatusReport) bool {
		return healthyWith(1)(r) && !r.LastReconcile.IsZero()
	})
	if after := containers(rep); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("restarting the supervisor changed containers:\nbefore %v\nafter  %v", before, after)
	}

	// stop keeps the data and leaves nothing running; the supervisor leaves it so.
	if _, err := s.corpintel("stop"); err != nil {
		t.Fatal(err)
	}
	s.waitFor("stopped", time.Minute, func(r health.StatusReport) bool {
		for _, svc := range r.Services {
			if svc.Running > 0 {
				return false
			}
		}
		return r.Stopped
	})
	if vols := labelled(s.project, "volume"); len(vols) < 3 {
		t.Errorf("stop removed data volumes: %v", vols)
	}
	// start brings it back on the same data, without restarting the supervisor.
	if _, err := s.corpintel("start"); err != nil {
		t.Fatal(err)
	}
	s.waitFor("started again", 2*time.Minute, func(r health.StatusReport) bool { return !r.Stopped && healthyWith(1)(r) })

	// The first admin comes from the CLI (a one-shot job), and can log in.
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("e2e admin password 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := s.corpintel("create-admin", "--email", "admin@e2e.example", "--password-file", pwFile); err != nil || !strings.Contains(out, "created") {
		t.Fatalf("create-admin: %v %s", err, out)
	}
	login, _ := json.Marshal(map[string]string{"email": "admin@e2e.example", "password": "e2e admin password 1"})
	resp, err = http.Post("http://127.0.0.1:"+s.port+"/api/v1/auth/login", "application/json", bytes.NewReader(login))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("login as the created admin: %s", resp.Status)
	}

	// Ctrl-C of the supervisor (as after `make run`): the stack keeps running, `stop`
	// works without it, and the stop holds when the supervisor comes back.
	s.signalSupervisor(syscall.SIGINT)
	if out, err := s.corpintel("stop"); err != nil || !strings.Contains(out, "stack stopped") {
		t.Fatalf("stop without a supervisor: %v %s", err, out)
	}
	if running := s.docker("ps", "-q", "--filter", "label="+stack.LabelProject+"="+s.project); running != "" {
		t.Errorf("containers running after an offline stop: %s", running)
	}
	s.startSupervisor()
	rep = s.waitFor("supervisor back, stack still stopped", time.Minute, func(r health.StatusReport) bool { return r.Supervisor && r.Stopped })
	for _, svc := range rep.Services {
		if svc.Running > 0 {
			t.Errorf("%s started although the stack was stopped", svc.Service)
		}
	}
	if _, err := s.corpintel("start"); err != nil {
		t.Fatal(err)
	}
	s.waitFor("started after the offline stop", 2*time.Minute, func(r health.StatusReport) bool { return !r.Stopped && healthyWith(1)(r) })
	s.signalSupervisor(syscall.SIGTERM)
	if code := s.sup.ProcessState.ExitCode(); code != 0 {
		t.Errorf("supervisor exit status %d after SIGTERM", code)
	}
}
