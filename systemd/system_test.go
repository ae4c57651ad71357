package systemd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/bundles"
	"github.com/corpintel/corpintel/internal/testenv"
)

// The system test installs the appliance the way an operator does, on a machine that
// behaves like a VM: a container running systemd as PID 1 with a Docker Engine of its
// own (vfs storage on a tmpfs), on an internal network with no route out. The host's
// Docker socket is not used inside: bind mounts would resolve on the host's file system.
// The container boots once for the whole sequence.

const (
	machineImage = "corpintel/systemd-test:bookworm"
	testVersion  = "0.0.0-systest"
)

var stackImages = []string{"corpintel/postgres:15", "corpintel/redis:7", "corpintel/minio:latest", "corpintel/api:latest"}

// phases records how long each step took (printed at the end; never asserted).
type phases struct {
	t     *testing.T
	names []string
	took  []time.Duration
	last  time.Time
}

func (p *phases) done(name string) time.Duration {
	d := time.Since(p.last)
	p.names, p.took = append(p.names, name), append(p.took, d)
	p.last = time.Now()
	return d
}

func (p *phases) table() string {
	var b strings.Builder
	var total time.Duration
	fmt.Fprintf(&b, "%-52s %8s\n", "phase", "seconds")
	for i, n := range p.names {
		fmt.Fprintf(&b, "%-52s %8.1f\n", n, p.took[i].Seconds())
		total += p.took[i]
	}
	fmt.Fprintf(&b, "%-52s %8.1f\n", "total", total.Seconds())
	return b.String()
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput() // #nosec G204 -- test helper
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// machine is the booted container.
type machine struct {
	t    *testing.T
	name string
}

// sh runs a shell command inside the machine and returns its output and exit code.
func (m *machine) sh(env []string, script string) (string, int) {
	m.t.Helper()
	args := []string{"exec"}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	args = append(args, m.name, "sh", "-c", script)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput() // #nosec G204 -- test helper
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	m.t.Fatalf("docker exec %s: %v\n%s", script, err, out)
	return "", 0
}

// must runs a command that has to succeed.
func (m *machine) must(script string) string {
	m.t.Helper()
	out, code := m.sh(nil, script)
	if code != 0 {
		m.t.Fatalf("in the machine: %s: exit %d\n%s\n%s", script, code, out, m.journal())
	}
	return strings.TrimSpace(out)
}

func (m *machine) journal() string {
	out, _ := m.sh(nil, "journalctl -u corpintel --no-pager -n 40 | cut -c1-400")
	return "journal (tail):\n" + out
}

// waitFor polls cond (once per interval) until it holds or the deadline passes.
func (m *machine) waitFor(what string, timeout time.Duration, cond func() (bool, string)) {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(time.Second) // polling interval, not a readiness guess
	}
	m.t.Fatalf("%s: not reached within %s (last: %s)\n%s", what, timeout, last, m.journal())
}

func (m *machine) unit(prop string) string {
	m.t.Helper()
	return m.must("systemctl show -p " + prop + " --value corpintel")
}

// containers lists the stack's running containers as "name id started-at".
func (m *machine) containers() []string {
	m.t.Helper()
	out := m.must(`docker ps -q --filter label=io.corpintel.project=corporate-intel | xargs -r docker inspect -f '{{.Name}} {{.Id}} {{.State.StartedAt}}' | sort`)
	return strings.Split(out, "\n")
}

func (m *machine) healthy() (bool, string) {
	out, code := m.sh(nil, "corpintel check --wait-healthy 1s 2>&1")
	return code == 0, strings.TrimSpace(out)
}

func (m *machine) rows() string {
	m.t.Helper()
	return m.must(`corpintel psql -- -tAc "select count(*) from systest_marker"`)
}

type checkReport struct {
	ExitCode int `json:"exit_code"`
	Results  []struct {
		Check, Status, Message string
	} `json:"results"`
}

func (m *machine) check() (checkReport, string) {
	m.t.Helper()
	out, _ := m.sh(nil, "corpintel check --json 2>/dev/null")
	var r checkReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		m.t.Fatalf("corpintel check --json: %v\n%s", err, out)
	}
	return r, out
}

func (r checkReport) status(check string) string {
	for _, res := range r.Results {
		if res.Check == check {
			return res.Status
		}
	}
	return "absent"
}

func TestSystemInstallOnSystemdWithDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("system test skipped with -short")
	}
	testenv.Docker(t)
	for _, img := range append([]string{machineImage}, stackImages...) {
		if err := exec.Command("docker", "image", "inspect", img).Run(); err != nil { // #nosec G204 -- fixed names
			testenv.Require(t, "images", fmt.Errorf("image %s is missing — `make images-test` builds the stack images and the test machine: %w", img, err))
		}
	}
	p := &phases{t: t, last: time.Now()}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// The supervisor under test carries the test hook that blocks its event loop
	// (-tags corpintel_testhooks); nothing else differs from a release build.
	bin := filepath.Join(dir, "corpintel")
	cmd := exec.Command("go", "build", "-tags", "corpintel_testhooks", "-trimpath", "-o", bin, // #nosec G204 -- fixed arguments
		"-ldflags", "-s -w -X github.com/corpintel/corpintel/internal/version.Version="+testVersion, "github.com/corpintel/corpintel/cmd/corpintel")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	p.done("build the test binary")
	keyFile, _, err := bundles.Keygen(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	t.Log(run(t, bin, "bundle", "build", "--key", keyFile, "--out", out, "--version", testVersion, "--binary", bin))
	bundleName := bundles.FileName(testVersion, "amd64")
	st, err := os.Stat(filepath.Join(out, bundleName))
	if err != nil {
		t.Fatal(err)
	}
	p.done(fmt.Sprintf("bundle build (%.0f MB)", float64(st.Size())/1e6))
	t0 := time.Now()
	t.Log(run(t, bin, "bundle", "verify", "--key", filepath.Join(dir, "keys", "signing.pub"), filepath.Join(out, bundleName)))
	t.Logf("bundle verify (Go): %s", time.Since(t0).Round(time.Millisecond))
	// A copy with one byte flipped inside images.tar.gz (the last and biggest file).
	good, err := os.ReadFile(filepath.Join(out, bundleName))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good)
	bad[len(bad)-200000] ^= 0x40
	if err := os.WriteFile(filepath.Join(out, "tampered.tar"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	good, bad = nil, nil

	// The machine.
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "corpintel-systest-" + hex.EncodeToString(b[:])
	run(t, "docker", "network", "create", "--internal", name)
	t.Cleanup(func() { _ = exec.Command("docker", "network", "rm", name).Run() }) // #nosec G204
	// A VM's root has every capability; a container gets Docker's default set, which
	// lacks two the appliance uses: DAC_READ_SEARCH (the supervisor reads the secret
	// copies owned by the containers' uids) and SYS_PTRACE (`corpintel check` names the
	// processes behind listening sockets).
	run(t, "docker", "run", "-d", "--name", name, "--hostname", "systest", "--network", name,
		"--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "DAC_READ_SEARCH", "--cap-add", "SYS_PTRACE",
		"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "--cgroupns=host",
		"-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/var/lib/docker:exec,size=24g",
		"-v", out+":/bundle:ro", machineImage)
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := exec.Command("docker", "exec", name, "journalctl", "--no-pager", "-n", "80").CombinedOutput(); err == nil { // #nosec G204
				t.Logf("machine journal (tail):\n%s", b)
			}
		}
		_ = exec.Command("docker", "rm", "-f", "-v", name).Run() // #nosec G204
	})
	m := &machine{t: t, name: name}
	m.waitFor("systemd booted", 3*time.Minute, func() (bool, string) {
		s, _ := m.sh(nil, "systemctl is-system-running")
		s = strings.TrimSpace(s)
		return s == "running" || s == "degraded", s
	})
	mountHostCgroups(t)
	m.waitFor("the machine's Docker Engine", 2*time.Minute, func() (bool, string) {
		s, code := m.sh(nil, "docker info --format '{{.Driver}}'")
		return code == 0, s
	})
	if s, code := m.sh(nil, "timeout 5 bash -c 'echo > /dev/tcp/1.1.1.1/80' 2>/dev/null && echo routed"); strings.Contains(s, "routed") || code < 0 {
		t.Fatalf("the machine has a route out: %s", s)
	}
	p.done("boot the machine (systemd, dockerd)")

	// A tampered bundle is refused by the real install path, and nothing is installed.
	s, code := m.sh(nil, "sh /bundle/install.sh --bundle /bundle/tampered.tar")
	if code == 0 || !strings.Contains(s, "bundle refused: images.tar.gz does not match its checksum") {
		t.Fatalf("tampered bundle: exit %d\n%s", code, s)
	}
	if _, code := m.sh(nil, "test -e /usr/local/bin/corpintel || test -e /etc/corpintel || test -e /etc/systemd/system/corpintel.service"); code == 0 {
		t.Fatal("the refused bundle left something installed")
	}
	p.done("install.sh refuses the tampered bundle")

	// Install from the bundle: offline, to a healthy stack.
	s, code = m.sh([]string{"INSTALL_CORPINTEL_PROFILE=staging"}, "sh /bundle/install.sh --bundle /bundle/"+bundleName)
	if code != 0 || !strings.Contains(s, "installed and healthy") {
		t.Fatalf("install: exit %d\n%s\n%s", code, s, m.journal())
	}
	installTook := p.done("install from the bundle to a healthy stack")
	t.Logf("install output:\n%s", s)
	if got := m.must("systemctl is-active corpintel"); got != "active" {
		t.Fatalf("is-active: %s", got)
	}
	m.waitFor("STATUS= says the stack is healthy", time.Minute, func() (bool, string) {
		st := m.unit("StatusText")
		return strings.HasPrefix(st, "stack healthy"), st
	})
	m.must(`corpintel psql -- -c "create table systest_marker(x int); insert into systest_marker values (1), (2), (3)"`)
	before := m.containers()
	if len(before) != 5 {
		t.Fatalf("containers: %v", before)
	}

	// systemctl restart: data kept, the stack's containers not restarted.
	m.must("systemctl restart corpintel")
	m.waitFor("healthy after restart", 2*time.Minute, m.healthy)
	if after := m.containers(); !slices.Equal(after, before) {
		t.Errorf("restarting the unit restarted containers:\nbefore %v\nafter  %v", before, after)
	}
	if got := m.rows(); got != "3" {
		t.Errorf("rows after restart: %s", got)
	}
	p.done("systemctl restart (containers kept)")

	// SIGKILL of the supervisor: systemd restarts it and it adopts the stack.
	pid, restarts := m.unit("MainPID"), m.unit("NRestarts")
	m.must("kill -9 " + pid)
	m.waitFor("restarted after SIGKILL", 2*time.Minute, func() (bool, string) {
		now := m.unit("MainPID")
		return now != pid && now != "0" && m.unit("ActiveState") == "active", "MainPID " + now
	})
	if got := m.unit("NRestarts"); got == restarts {
		t.Errorf("NRestarts still %s after the kill", got)
	}
	m.waitFor("healthy after SIGKILL", 2*time.Minute, m.healthy)
	if after := m.containers(); !slices.Equal(after, before) {
		t.Errorf("the restarted supervisor did not adopt the stack:\nbefore %v\nafter  %v", before, after)
	}
	p.done("kill -9 → restarted by systemd, stack adopted")

	// A blocked event loop (the test hook): the watchdog restarts the supervisor.
	pid, restarts = m.unit("MainPID"), m.unit("NRestarts")
	m.must("kill -USR2 " + pid)
	m.waitFor("watchdog restart", 3*time.Minute, func() (bool, string) {
		now := m.unit("MainPID")
		return now != pid && now != "0" && m.unit("ActiveState") == "active", "MainPID " + now
	})
	if j := m.must("journalctl -u corpintel --no-pager"); !strings.Contains(j, "Watchdog timeout") || !strings.Contains(j, "self-check failed") {
		t.Errorf("no watchdog timeout in the journal:\n%s", m.journal())
	}
	if got, _ := strconv.Atoi(m.unit("NRestarts")); strconv.Itoa(got) == restarts {
		t.Errorf("NRestarts still %s after the watchdog", restarts)
	}
	m.waitFor("healthy after the watchdog restart", 2*time.Minute, m.healthy)
	if after := m.containers(); !slices.Equal(after, before) {
		t.Errorf("the watchdog restart touched containers:\nbefore %v\nafter  %v", before, after)
	}
	p.done("blocked event loop → watchdog restart")

	// corpintel check on the running appliance.
	r, raw := m.check()
	for c, want := range map[string]string{"supervisor": "ok", "service api": "ok", "api smoke test": "ok", "tls localhost": "ok",
		"listening [::]:443": "ok"} {
		if got := r.status(c); got != want {
			t.Errorf("check %s: %s, want %s\n%s", c, got, want, raw)
		}
	}
	if st := r.status("backups"); st != "not configured" && !strings.HasPrefix(r.status("backup daily"), "warn") {
		t.Errorf("backups on a fresh install: %s (want not configured, or a warning that none ran yet)\n%s", st, raw)
	}
	if r.ExitCode > 1 {
		t.Errorf("check exit %d\n%s", r.ExitCode, raw)
	}
	// … catches a port bound on 0.0.0.0 (a container publishing one) …
	m.must("docker run -d --name exposed -p 0.0.0.0:16379:6379 -e REDIS_ALLOW_EMPTY_PASSWORD=yes corpintel/redis:7")
	r, raw = m.check()
	if r.ExitCode != 2 || (r.status("listening 0.0.0.0:16379") != "fail" && r.status("listening [::]:16379") != "fail") {
		t.Errorf("a published port passed the check (exit %d)\n%s", r.ExitCode, raw)
	}
	m.must("docker rm -f exposed")
	// … and a stopped service; stopping the unit leaves the stack running.
	m.must("systemctl stop corpintel")
	r, raw = m.check()
	if r.ExitCode != 2 || r.status("supervisor") != "fail" {
		t.Errorf("a stopped supervisor passed the check (exit %d)\n%s", r.ExitCode, raw)
	}
	if after := m.containers(); !slices.Equal(after, before) {
		t.Errorf("systemctl stop stopped containers:\nbefore %v\nafter  %v", before, after)
	}
	m.must("systemctl start corpintel")
	m.waitFor("healthy after start", 2*time.Minute, m.healthy)
	p.done("corpintel check: healthy, published port, stopped service")

	// Re-running the installer with the same bundle reinstalls in place.
	s, code = m.sh(nil, "sh /bundle/install.sh --bundle /bundle/"+bundleName)
	if code != 0 || !strings.Contains(s, "reinstalling in place") || !strings.Contains(s, "keeping the existing config") {
		t.Fatalf("re-run: exit %d\n%s", code, s)
	}
	if after := m.containers(); !slices.Equal(after, before) {
		t.Errorf("the re-run restarted containers:\nbefore %v\nafter  %v", before, after)
	}
	if got := m.rows(); got != "3" {
		t.Errorf("rows after the re-run: %s", got)
	}
	p.done("install.sh again (same version: in place)")

	// The uninstaller it wrote is POSIX sh too.
	script := m.must("cat /usr/local/bin/corpintel-uninstall.sh")
	if _, err := exec.LookPath("shellcheck"); err == nil {
		f := filepath.Join(dir, "corpintel-uninstall.sh")
		if err := os.WriteFile(f, []byte(script+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command("shellcheck", "-s", "sh", f).CombinedOutput(); err != nil { // #nosec G204
			t.Errorf("shellcheck the generated uninstaller: %v\n%s", err, b)
		}
	}
	// Uninstall keeps the data …
	s = m.must("corpintel-uninstall.sh")
	for _, gone := range []string{"/usr/local/bin/corpintel", "/etc/systemd/system/corpintel.service"} {
		if _, code := m.sh(nil, "test -e "+gone); code == 0 {
			t.Errorf("%s survived the uninstall", gone)
		}
	}
	if got := m.must("docker ps -aq --filter label=io.corpintel.project=corporate-intel | wc -l"); got != "0" {
		t.Errorf("%s containers left after the uninstall", got)
	}
	if got := m.must("docker volume ls -q --filter label=io.corpintel.project=corporate-intel | wc -l"); got != "3" {
		t.Errorf("data volumes after the uninstall: %s, want 3\n%s", got, s)
	}
	m.must("test -s /var/lib/corpintel/corporate-intel/state.db && test -d /var/backups/corporate-intel && test -s /etc/corpintel/corpintel.toml")
	// … and --purge removes it, but not without being sure.
	if s, code := m.sh(nil, "corpintel-uninstall.sh --purge </dev/null"); code == 0 || !strings.Contains(s, "--yes") {
		t.Errorf("--purge without --yes and no terminal: exit %d\n%s", code, s)
	}
	m.must("corpintel-uninstall.sh --purge --yes")
	if got := m.must("docker volume ls -q --filter label=io.corpintel.project=corporate-intel | wc -l"); got != "0" {
		t.Errorf("volumes after --purge: %s", got)
	}
	for _, gone := range []string{"/var/lib/corpintel", "/var/backups/corporate-intel", "/etc/corpintel", "/usr/local/bin/corpintel-uninstall.sh"} {
		if _, code := m.sh(nil, "test -e "+gone); code == 0 {
			t.Errorf("%s survived --purge", gone)
		}
	}
	if _, code := m.sh(nil, "id corpintel"); code == 0 {
		t.Error("the corpintel user survived --purge")
	}
	p.done("uninstall (data kept), then --purge")

	t.Logf("fresh install from the bundle to a healthy stack, offline: %.1f s", installTook.Seconds())
	t.Logf("system test phases:\n%s", p.table())
}

// mountHostCgroups repairs what systemd inside the machine leaves on a cgroup v1 host:
// it mounts the controllers the host had not mounted (hugetlb, perf_event, net_cls,…)
// as hierarchies of their own, which outlive the machine; every process is then in them,
// and containerd, finding no host mount for them, can no longer read any container's
// cgroups — `docker stats` and the supervisor's resource counters read zeros for every
// container created afterwards. Mounting those hierarchies on the host too (as a
// standard v1 host has them) keeps the engine whole for the tests that follow.
func mountHostCgroups(t *testing.T) {
	t.Helper()
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil || os.Geteuid() != 0 {
		return
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	var missing []string
	for _, line := range strings.Split(strings.TrimSpace(string(self)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || f[1] == "" || strings.HasPrefix(f[1], "name=") {
			continue
		}
		if !strings.Contains(string(mounts), " cgroup rw,"+f[1]) && !strings.Contains(string(mounts), ","+f[1]+"\n") &&
			!strings.Contains(string(mounts), " cgroup cgroup rw,"+f[1]) {
			missing = append(missing, f[1])
		}
	}
	if len(missing) == 0 {
		return
	}
	if err := exec.Command("mount", "-o", "remount,rw", "/sys/fs/cgroup").Run(); err != nil { // #nosec G204
		t.Logf("cgroup hierarchies %v have no host mount and /sys/fs/cgroup cannot be remounted: %v", missing, err)
		return
	}
	defer func() { _ = exec.Command("mount", "-o", "remount,ro", "/sys/fs/cgroup").Run() }() // #nosec G204
	for _, c := range missing {
		dir := "/sys/fs/cgroup/" + c
		_ = os.MkdirAll(dir, 0o755)
		if out, err := exec.Command("mount", "-t", "cgroup", "-o", c, "cgroup", dir).CombinedOutput(); err != nil { // #nosec G204
			t.Logf("mount cgroup %s on the host: %v %s", c, err, out)
		}
	}
	t.Logf("mounted the cgroup hierarchies %v on the host (systemd in the machine created them)", missing)
}
