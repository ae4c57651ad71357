package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/supervisor/alerts"
	"github.com/corpintel/corpintel/supervisor/edge/certs"
	"github.com/corpintel/corpintel/supervisor/health"
	"github.com/corpintel/corpintel/supervisor/localapi"
	"github.com/corpintel/corpintel/supervisor/state"
)

// fakeOps stands in for a running supervisor behind the real local API.
type fakeOps struct {
	scaled   string
	restart  string
	stopped  bool
	started  bool
	lastLogs localapi.LogOptions
	admin    string
	silenced alerts.SilenceRequest
}

func (f *fakeOps) Status(context.Context) (health.StatusReport, error) {
	return health.StatusReport{Project: "p", Listen: "127.0.0.1:8000", Services: []health.ServiceStatus{
		{Service: "postgres", Desired: 1, Running: 1, Healthy: 1, State: "running", Health: "healthy", Image: "corpintel/postgres:15"},
	}}, nil
}

func (f *fakeOps) Scale(_ context.Context, svc string, n int) error {
	f.scaled = svc + "=" + string(rune('0'+n))
	return nil
}

func (f *fakeOps) Restart(_ context.Context, svc string) error {
	if svc == "minio" {
		return &localapi.RequestError{Msg: "minio is busy"}
	}
	f.restart = svc
	return nil
}

func (f *fakeOps) Stop(context.Context) error { f.stopped = true; return nil }

func (f *fakeOps) Start(context.Context) error { f.started = true; return nil }

func (f *fakeOps) TLSCheck(context.Context) ([]certs.Finding, error) {
	return []certs.Finding{{Name: "corp.example", Check: "dns", Severity: certs.SeverityError, Message: "does not resolve"}}, nil
}

func (f *fakeOps) CreateAdmin(_ context.Context, email string, pw []byte) error {
	f.admin = email + ":" + string(pw)
	return nil
}

func (f *fakeOps) Logs(_ context.Context, svc string, o localapi.LogOptions, w io.Writer) error {
	f.lastLogs = o
	_, err := io.WriteString(w, svc+" log line\n")
	return err
}

func startFakeSupervisor(t *testing.T) (*fakeOps, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := localapi.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ops := &fakeOps{}
	srv := &http.Server{Handler: localapi.NewHandler(ops, slog.New(slog.DiscardHandler))}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ops, sock
}

func TestClientVerbs(t *testing.T) {
	ops, sock := startFakeSupervisor(t)
	missing := filepath.Join(t.TempDir(), "none.sock")
	pwFile := filepath.Join(t.TempDir(), "pw")
	shortFile := filepath.Join(t.TempDir(), "short")
	_ = os.WriteFile(pwFile, []byte("correct horse battery\n"), 0o600)
	_ = os.WriteFile(shortFile, []byte("short\n"), 0o600)
	cases := []struct {
		args    []string
		code    int
		out     string
		errText string
	}{
		{[]string{"status", "--socket", sock}, 0, "postgres  1/1", ""},
		{[]string{"status", "--json", "--socket", sock}, 0, `"project": "p"`, ""},
		{[]string{"scale", "api=3", "--socket", sock}, 0, "api scaled to 3", ""},
		{[]string{"scale", "api=17", "--socket", sock}, 2, "", "between 0 and 16"},
		{[]string{"scale", "api=-1", "--socket", sock}, 2, "", "between 0 and 16"},
		{[]string{"scale", "api", "--socket", sock}, 2, "", "SERVICE=REPLICAS"},
		{[]string{"scale", "redis=2", "--socket", sock}, 2, "", "only api"},
		{[]string{"scale", "db=2", "--socket", sock}, 2, "", "valid: postgres, redis, minio, api"},
		{[]string{"restart", "redis", "--socket", sock}, 0, "redis restarted", ""},
		{[]string{"restart", "minio", "--socket", sock}, 2, "", "minio is busy"},
		{[]string{"restart", "web", "--socket", sock}, 2, "", "unknown service"},
		{[]string{"logs", "--tail", "5", "postgres", "--socket", sock}, 0, "postgres log line", ""},
		{[]string{"logs", "nope", "--socket", sock}, 2, "", "unknown service"},
		{[]string{"stop", "--socket", sock}, 0, "stack stopped", ""},
		{[]string{"start", "--socket", sock}, 0, "stack started", ""},
		{[]string{"create-admin", "--email", "a@b.c", "--password-file", pwFile, "--socket", sock}, 0, "admin a@b.c created", ""},
		{[]string{"check", "tls", "--socket", sock}, 1, "corp.example: does not resolve", ""},
		{[]string{"check", "tls", "--json", "--socket", sock}, 1, `"check": "dns"`, ""},
		{[]string{"check"}, 2, "", "subcommand"},
		{[]string{"tls"}, 2, "", "subcommand"},
		{[]string{"create-admin", "--email", "a@b.c", "--socket", sock}, 2, "", "exactly one of --password-stdin or --password-file"},
		{[]string{"create-admin", "--password-stdin", "--socket", sock}, 2, "", "--email is required"},
		{[]string{"create-admin", "--email", "a@b.c", "--password-file", shortFile, "--socket", sock}, 2, "", "at least 12 characters"},
		{[]string{"create-admin", "--email", "a@b.c", "--password-file", missing, "--socket", sock}, 1, "", "read the password"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if got := run(context.Background(), c.args, &out, &errb); got != c.code {
				t.Fatalf("exit %d, want %d (stderr %q)", got, c.code, errb.String())
			}
			if !strings.Contains(out.String(), c.out) || !strings.Contains(errb.String(), c.errText) {
				t.Errorf("stdout %q stderr %q; want %q / %q", out.String(), errb.String(), c.out, c.errText)
			}
		})
	}
	if ops.scaled != "api=3" || ops.restart != "redis" || !ops.stopped || !ops.started || ops.lastLogs.Tail != 5 || ops.admin != "a@b.c:correct horse battery" {
		t.Errorf("supervisor saw %+v", ops)
	}
}

func TestClientFindsSocketInConfig(t *testing.T) {
	_, sock := startFakeSupervisor(t)
	cfgPath := filepath.Join(t.TempDir(), "corpintel.toml")
	if err := os.WriteFile(cfgPath, []byte("socket = \""+sock+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"status", "--config", cfgPath}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if code := run(context.Background(), []string{"status", "--config", filepath.Join(t.TempDir(), "missing.toml")}, &out, &errb); code != 2 {
		t.Fatalf("missing config: exit %d, want 2", code)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	_ = os.WriteFile(good, []byte("profile = \"prod\"\n[api]\nreplicas = 3\n"), 0o600)
	_ = os.WriteFile(bad, []byte("[api]\nreplicaz = 3\n"), 0o600)
	cases := []struct {
		args []string
		code int
		out  string
		err  string
	}{
		{[]string{"config", "check", "--config", good}, 0, "replicas = 3", ""},
		{[]string{"config", "check", "--config", good, "--project", "acme"}, 0, `project = "acme"`, ""},
		{[]string{"config", "check", "--config", bad}, 2, "", "api.replicaz"},
		{[]string{"config"}, 2, "", "subcommand"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		if got := run(context.Background(), c.args, &out, &errb); got != c.code {
			t.Errorf("%v: exit %d, want %d (%s)", c.args, got, c.code, errb.String())
		}
		if !strings.Contains(out.String(), c.out) || !strings.Contains(errb.String(), c.err) {
			t.Errorf("%v: stdout %q stderr %q", c.args, out.String(), errb.String())
		}
	}
	var out bytes.Buffer
	run(context.Background(), []string{"config", "check", "--config", good, "--project", "acme"}, &out, io.Discard)
	if !strings.Contains(out.String(), `socket = "/run/corpintel/acme.sock"`) {
		t.Errorf("derived names do not follow --project:\n%s", out.String())
	}
}

func TestPsqlArgs(t *testing.T) {
	cases := []struct {
		tty   bool
		extra []string
		want  string
	}{
		{true, nil, "exec -i -t corporate-intel-postgres psql -U intel_user -d corporate_intel"},
		{false, []string{"-c", "select 1"}, "exec -i corporate-intel-postgres psql -U intel_user -d corporate_intel -c select 1"},
	}
	for _, c := range cases {
		if got := strings.Join(psqlArgs("corporate-intel-postgres", "intel_user", "corporate_intel", c.tty, c.extra), " "); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
	if e := exitCode(3); e.ExitCode() != 3 || !errors.As(error(e), new(exitCode)) || e.Error() != "exit status 3" {
		t.Error("exitCode")
	}
}

func TestSupervisorVerbErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"supervisor", "--profile", "nope"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "profile") {
		t.Errorf("bad profile: exit %d, %s", code, errb.String())
	}
	if code := run(context.Background(), []string{"supervisor", "extra"}, &out, &errb); code != 2 {
		t.Errorf("extra argument: exit %d", code)
	}
}

func TestSupervisorEngineUnreachable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"supervisor", "--project", "unreachable"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "cannot reach the Docker Engine") || !strings.Contains(errb.String(), "systemctl start docker") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}

func TestNewLogger(t *testing.T) {
	var b bytes.Buffer
	newLogger(&b, "warn").Info("hidden")
	newLogger(&b, "debug").Debug("shown", "k", 1)
	if strings.Contains(b.String(), "hidden") || !strings.Contains(b.String(), `"msg":"shown"`) {
		t.Errorf("log %q", b.String())
	}
	if isTerminal(os.NewFile(^uintptr(0), "bad")) {
		t.Error("invalid file judged a terminal")
	}
}

// Without a supervisor, status and stop run the supervisor's own code against the
// engine; when that is unreachable too, both reasons are given.
func TestStatusWithoutSupervisorOrEngine(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	missing := filepath.Join(t.TempDir(), "none.sock")
	for _, verb := range []string{"status", "stop"} {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{verb, "--socket", missing, "--project", "cit-offline"}, &out, &errb)
		if code != 1 || !strings.Contains(errb.String(), "start it with `corpintel supervisor`") || !strings.Contains(errb.String(), "cannot reach the Docker Engine") {
			t.Errorf("%s: exit %d, stderr %q", verb, code, errb.String())
		}
	}
}

func TestStatusTable(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	r := health.StatusReport{Project: "p", Listen: "127.0.0.1:8000", Stopped: true, Services: []health.ServiceStatus{
		{Service: "api", Desired: 2, Running: 1, Healthy: 1, State: "backoff", StartedAt: now.Add(-3 * time.Hour), Restarts: 4,
			Backoff: "exited (exit code 1)", NextAttempt: now.Add(20 * time.Second)},
		{Service: "postgres", Desired: 1, Running: 1, Healthy: 1, State: "held", Held: "owned by backup #3"},
	}, Operation: &state.Operation{ID: 3, Kind: "backup", StartedAt: now.Add(-time.Minute), Services: []string{"postgres"}, Steps: []state.OpStep{{Name: "dump"}}},
		Interrupted: []state.Operation{{ID: 2, Kind: "restore", Error: "interrupted: the supervisor stopped during step copy"}},
		Maintenance: "restore #5",
		TLS: &certs.Status{Mode: certs.ModeACME, Certificates: []certs.CertStatus{{Name: "corp.example", NotAfter: now.Add(48 * time.Hour),
			LastAttempt: now, LastError: "CA unreachable"}}},
		TLSServed: []certs.ProbeResult{{Name: "corp.example", NotAfter: now.Add(24 * time.Hour)}}}
	var b bytes.Buffer
	if err := writeStatusTable(&b, r, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3h00m", "next attempt at 2026-12-06T10:00:20Z (in 20s)", "postgres: held: owned by backup #3",
		"Operation: backup #3 running since", "step dump", "Interrupted: restore #2", "No supervisor is running", "Maintenance: the API answers 503 while restore #5 runs",
		"corp.example expires 2026-12-08T10:00:00Z (served: 2026-12-07T10:00:00Z); last renewal attempt 2026-12-06T10:00:00Z failed: CA unreachable", "corpintel start", "API: http://127.0.0.1:8000"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := writeStatusJSON(&b, r); err != nil || !strings.Contains(b.String(), `"service": "api"`) {
		t.Errorf("json %s %v", b.String(), err)
	}
	durations := map[time.Duration]string{5 * time.Second: "5s", 90 * time.Second: "1m30s", 25 * time.Hour: "25h00m", 73 * time.Hour: "3d01h"}
	for d, want := range durations {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
	sizes := map[uint64]string{512: "512 B", 1536: "1.5 KiB", 300 << 20: "300.0 MiB", 3 << 30: "3.0 GiB"}
	for n, want := range sizes {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
