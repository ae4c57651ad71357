package check

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/supervisor/localapi"
)

var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

func testConfig(t *testing.T, profile string) *config.Config {
	t.Helper()
	cfg := config.Default(profile)
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	cfg.Socket = filepath.Join(t.TempDir(), "s.sock")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

type fakeEngine struct {
	info docker.EngineInfo
	err  error
}

func (f fakeEngine) Info(context.Context) (docker.EngineInfo, error) { return f.info, f.err }

// goodHost is a machine that passes everything.
func goodHost(t *testing.T) Host {
	return Host{
		CPUs:      func() int { return 8 },
		Memory:    func() (uint64, error) { return 32 << 30, nil },
		DiskFree:  func(string) (uint64, uint64, error) { return 400 << 30, 500 << 30, nil },
		Clock:     func() (bool, time.Duration, error) { return true, 5 * time.Millisecond, nil },
		Listeners: func() ([]Listener, error) { return nil, nil },
		Lookup:    func(context.Context, string) ([]net.IP, error) { return []net.IP{net.ParseIP("203.0.113.7")}, nil },
		LocalIPs:  func() ([]net.IP, error) { return []net.IP{net.ParseIP("203.0.113.7"), net.ParseIP("127.0.0.1")}, nil },
		Fsync: func(string, int) ([]time.Duration, error) {
			return []time.Duration{300 * time.Microsecond, 400 * time.Microsecond, 2 * time.Millisecond}, nil
		},
	}
}

func status(r Report, check string) Status {
	res, ok := r.Find(check)
	if !ok {
		return "absent"
	}
	return res.Status
}

func TestPreAllGood(t *testing.T) {
	cfg := testConfig(t, "prod")
	cfg.TLS.Names = []string{"intel.example.com"}
	cfg.Edge.HTTPS, cfg.Edge.HTTP = "127.0.0.1:0", "127.0.0.1:0"
	eng := fakeEngine{info: docker.EngineInfo{Version: "20.10.24", APIVersion: "1.41", StorageDriver: "overlay2", RootDir: t.TempDir()}}
	r := Pre(context.Background(), PreOptions{Config: cfg, Engine: eng, Host: goodHost(t), BackupDir: filepath.Join(t.TempDir(), "b", "c"), Now: clock})
	if r.ExitCode() != 0 {
		var buf bytes.Buffer
		_ = r.WriteTable(&buf)
		t.Fatalf("exit %d:\n%s", r.ExitCode(), buf.String())
	}
	for _, c := range []string{"docker", "cpu", "memory", "disk", "clock", "state dir", "backup dir", "domain intel.example.com", "port 127.0.0.1:0"} {
		if status(r, c) != OK {
			t.Errorf("%s: %s", c, status(r, c))
		}
	}
	if r.Kind != "pre" {
		t.Errorf("kind %q", r.Kind)
	}
}

func TestPreThresholds(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(h *Host, o *PreOptions)
		check  string
		want   Status
		fix    string
	}{
		{"one core", func(h *Host, _ *PreOptions) { h.CPUs = func() int { return 1 } }, "cpu", Fail, "2 cores"},
		{"two cores", func(h *Host, _ *PreOptions) { h.CPUs = func() int { return 2 } }, "cpu", Warn, "add cores"},
		{"3 GB", func(h *Host, _ *PreOptions) { h.Memory = func() (uint64, error) { return 3 << 30, nil } }, "memory", Fail, "4 GB"},
		{"8 GB", func(h *Host, _ *PreOptions) { h.Memory = func() (uint64, error) { return 8 << 30, nil } }, "memory", Warn, "memory limits"},
		{"no meminfo", func(h *Host, _ *PreOptions) { h.Memory = func() (uint64, error) { return 0, errors.New("no /proc") } }, "memory", Warn, ""},
		{"10 GB free", func(h *Host, _ *PreOptions) {
			h.DiskFree = func(string) (uint64, uint64, error) { return 10 << 30, 500 << 30, nil }
		}, "disk", Fail, "data-root"},
		{"small disk", func(h *Host, _ *PreOptions) {
			h.DiskFree = func(string) (uint64, uint64, error) { return 60 << 30, 100 << 30, nil }
		}, "disk", Warn, "bigger disk"},
		{"unsynced clock", func(h *Host, _ *PreOptions) {
			h.Clock = func() (bool, time.Duration, error) { return false, 16 * time.Second, nil }
		}, "clock", Warn, "set-ntp"},
		{"slow disk", func(h *Host, _ *PreOptions) {
			h.Fsync = func(string, int) ([]time.Duration, error) {
				return []time.Duration{30 * time.Millisecond, 40 * time.Millisecond}, nil
			}
		}, "fsync backup dir", Warn, "SSD"}, // one measurement per file system: the first dir's name
		{"no docker", func(_ *Host, o *PreOptions) {
			o.Engine, o.EngineErr = nil, errors.New("dial unix /var/run/docker.sock: no such file")
		}, "docker", Fail, "apt-get install docker.io"},
		{"old docker", func(_ *Host, o *PreOptions) {
			o.Engine = fakeEngine{info: docker.EngineInfo{Version: "19.03.1", RootDir: "/"}}
		}, "docker", Fail, "20.10"},
		{"vfs", func(_ *Host, o *PreOptions) {
			o.Engine = fakeEngine{info: docker.EngineInfo{Version: "20.10.24", StorageDriver: "vfs", RootDir: "/"}}
		}, "docker", Warn, "overlay2"},
		{"docker info fails", func(_ *Host, o *PreOptions) { o.Engine = fakeEngine{err: errors.New("boom")} }, "docker", Fail, "docker info"},
		{"domain elsewhere", func(h *Host, _ *PreOptions) {
			h.Lookup = func(context.Context, string) ([]net.IP, error) { return []net.IP{net.ParseIP("198.51.100.1")}, nil }
		}, "domain intel.example.com", Warn, "NAT"},
		{"domain missing", func(h *Host, _ *PreOptions) {
			h.Lookup = func(context.Context, string) ([]net.IP, error) { return nil, errors.New("NXDOMAIN") }
		}, "domain intel.example.com", Fail, "A/AAAA record"},
		{"no backup section", func(_ *Host, o *PreOptions) { o.BackupDir = "" }, "backup dir", NotConfigured, ""},
		{"state dir on a file", func(_ *Host, o *PreOptions) {
			f := filepath.Join(t.TempDir(), "file")
			_ = os.WriteFile(f, nil, 0o600)
			o.Config.StateDir = filepath.Join(f, "state")
		}, "state dir", Fail, "writable"},
		{"port taken", func(h *Host, o *PreOptions) {
			o.Config.Edge.HTTPS = "127.0.0.1:4443"
			h.Listeners = func() ([]Listener, error) {
				return []Listener{{IP: net.IPv4zero, Port: 4443, PID: 77, Process: "nginx"}}, nil
			}
		}, "port 127.0.0.1:4443", Fail, "ss -ltnp"},
		{"port is ours", func(h *Host, o *PreOptions) {
			o.Config.Edge.HTTPS = "127.0.0.1:4443"
			h.Listeners = func() ([]Listener, error) {
				return []Listener{{IP: net.IPv4zero, Port: 4443, PID: 78, Process: "corpintel"}}, nil
			}
		}, "port 127.0.0.1:4443", OK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, "prod")
			cfg.TLS.Names = []string{"intel.example.com"}
			cfg.Edge.HTTPS, cfg.Edge.HTTP = "127.0.0.1:0", ""
			h := goodHost(t)
			o := PreOptions{Config: cfg, Engine: fakeEngine{info: docker.EngineInfo{Version: "20.10.24", StorageDriver: "overlay2", RootDir: t.TempDir()}},
				BackupDir: filepath.Join(t.TempDir(), "backups"), Now: clock}
			tt.mutate(&h, &o)
			o.Host = h
			r := Pre(context.Background(), o)
			res, ok := r.Find(tt.check)
			if !ok || res.Status != tt.want || !strings.Contains(res.Fix, tt.fix) {
				t.Fatalf("%s: %+v (found %v), want %s with a fix mentioning %q\nall: %+v", tt.check, res, ok, tt.want, tt.fix, r.Results)
			}
			wantExit := map[Status]int{OK: 0, NotConfigured: 0, Warn: 1, Fail: 2}[tt.want]
			if tt.want != OK && tt.want != NotConfigured && r.ExitCode() != wantExit {
				t.Errorf("exit %d, want %d", r.ExitCode(), wantExit)
			}
		})
	}
}

func TestPreDomainNotConfigured(t *testing.T) {
	cfg := testConfig(t, "dev") // self-signed
	cfg.Edge.HTTPS, cfg.Edge.HTTP = "", ""
	r := Pre(context.Background(), PreOptions{Config: cfg, Engine: fakeEngine{info: docker.EngineInfo{Version: "24.0.1"}}, Host: goodHost(t), Now: clock})
	if status(r, "domain") != NotConfigured {
		t.Errorf("domain: %s", status(r, "domain"))
	}
	cfg = testConfig(t, "prod") // acme without names
	cfg.Edge.HTTPS, cfg.Edge.HTTP = "", ""
	r = Pre(context.Background(), PreOptions{Config: cfg, Engine: fakeEngine{info: docker.EngineInfo{Version: "24.0.1"}}, Host: goodHost(t), Now: clock})
	if status(r, "domain") != Warn {
		t.Errorf("domain in acme mode without names: %s", status(r, "domain"))
	}
}

func TestPreRealHost(t *testing.T) {
	// The real probes work on this machine: fsync in a temp dir, the clock, statfs,
	// the memory size and the listener table.
	h := RealHost()
	lat, err := h.Fsync(t.TempDir(), 3)
	if err != nil || len(lat) != 3 {
		t.Fatalf("fsync: %v %v", lat, err)
	}
	if _, _, err := h.Clock(); err != nil {
		t.Errorf("clock: %v", err)
	}
	if free, total, err := h.DiskFree(t.TempDir()); err != nil || total == 0 || free > total {
		t.Errorf("statfs: %d %d %v", free, total, err)
	}
	if m, err := h.Memory(); err != nil || m < 1<<20 {
		t.Errorf("memory %d %v", m, err)
	}
	if h.CPUs() < 1 {
		t.Error("cpus")
	}
	if ips, err := h.LocalIPs(); err != nil || len(ips) == 0 {
		t.Errorf("local IPs %v %v", ips, err)
	}
	if _, err := h.Lookup(context.Background(), "localhost"); err != nil {
		t.Errorf("lookup localhost: %v", err)
	}
}

// fakeSupervisor answers local API GETs from fixtures.
type fakeSupervisor struct {
	routes map[string]string
	err    error
}

func (f fakeSupervisor) GetJSON(_ context.Context, path string) ([]byte, error) {
	if f.err != nil {
		return nil, f.err
	}
	body, ok := f.routes[path]
	if !ok {
		return nil, fmt.Errorf("GET %s: %w", path, localapi.ErrNoRoute)
	}
	return []byte(body), nil
}

const healthyServices = `"services":[{"service":"postgres","desired":1,"running":1,"healthy":1,"state":"running"},
{"service":"api","desired":2,"running":2,"healthy":2,"state":"running"}]`

func postOpts(t *testing.T, routes map[string]string) PostOptions {
	cfg := testConfig(t, "staging")
	cfg.Edge.HTTPS, cfg.Edge.HTTP = "", ""
	return PostOptions{Config: cfg, Supervisor: fakeSupervisor{routes: routes}, Host: Host{Listeners: func() ([]Listener, error) { return nil, nil }},
		AccountFile: filepath.Join(t.TempDir(), "none.json"), Now: clock}
}

func TestPostNotConfiguredNeverOK(t *testing.T) {
	o := postOpts(t, map[string]string{"/v1/status": `{"supervisor":true,` + healthyServices + `}`})
	r := Post(context.Background(), o)
	for _, c := range []string{"backups", "restore drill", "alerts", "api smoke test"} {
		if status(r, c) != NotConfigured {
			t.Errorf("%s: %s, want not configured", c, status(r, c))
		}
	}
	if status(r, "supervisor") != OK || status(r, "service api") != OK {
		t.Errorf("results %+v", r.Results)
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil || !strings.Contains(buf.String(), "NOT CONFIGURED") {
		t.Errorf("table:\n%s", buf.String())
	}
}

func TestPostCatchesAStoppedSupervisorAndStoppedStack(t *testing.T) {
	o := postOpts(t, nil)
	o.Supervisor = fakeSupervisor{err: fmt.Errorf("no supervisor is listening on /run/corpintel/x.sock: %w", localapi.ErrNotRunning)}
	r := Post(context.Background(), o)
	res, _ := r.Find("supervisor")
	if res.Status != Fail || !strings.Contains(res.Fix, "systemctl start corpintel") || r.ExitCode() != 2 {
		t.Errorf("supervisor down: %+v exit %d", res, r.ExitCode())
	}
	o.Supervisor = fakeSupervisor{err: errors.New("permission denied")}
	if res, _ := Post(context.Background(), o).Find("supervisor"); !strings.Contains(res.Fix, "permissions") {
		t.Errorf("permission problem: %+v", res)
	}
	o = postOpts(t, map[string]string{"/v1/status": `{"supervisor":true,"stopped":true,"services":[{"service":"api","desired":2,"running":0,"healthy":0,"state":"stopped"}]}`})
	r = Post(context.Background(), o)
	if res, _ := r.Find("supervisor"); res.Status != Fail || res.Fix != "corpintel start" {
		t.Errorf("stopped stack: %+v", res)
	}
	if status(r, "service api") != Fail {
		t.Errorf("service api: %s", status(r, "service api"))
	}
	o = postOpts(t, map[string]string{"/v1/status": `{"supervisor":true,"operation":{"id":4,"kind":"backup"},` + healthyServices + `}`})
	if res, _ := Post(context.Background(), o).Find("supervisor"); res.Status != Warn || !strings.Contains(res.Message, "backup #4") {
		t.Errorf("operation: %+v", res)
	}
	o = postOpts(t, map[string]string{"/v1/status": `{"supervisor":true,"last_error":"docker down",` + healthyServices + `}`})
	if res, _ := Post(context.Background(), o).Find("supervisor"); res.Status != Warn {
		t.Errorf("last error: %+v", res)
	}
	o = postOpts(t, map[string]string{"/v1/status": `{not json`})
	if res, _ := Post(context.Background(), o).Find("supervisor"); res.Status != Fail {
		t.Errorf("garbage status: %+v", res)
	}
	o = postOpts(t, map[string]string{"/v1/status": `{"supervisor":true,"services":[]}`})
	if status(Post(context.Background(), o), "services") != Fail {
		t.Error("no services")
	}
	o = postOpts(t, map[string]string{"/v1/status": `{"supervisor":true,"services":[{"service":"api","desired":0}]}`})
	if status(Post(context.Background(), o), "service api") != Warn {
		t.Error("scaled to 0")
	}
	o = postOpts(t, map[string]string{"/v1/status": `{"supervisor":true,"services":[{"service":"redis","desired":1,"running":1,"healthy":0,"state":"backoff","backoff":"exited 1"}]}`})
	if res, _ := Post(context.Background(), o).Find("service redis"); res.Status != Fail || !strings.Contains(res.Message, "exited 1") || !strings.Contains(res.Fix, "corpintel logs") {
		t.Errorf("unhealthy redis: %+v", res)
	}
}

func TestPostBackups(t *testing.T) {
	ts := func(d time.Duration) string { return now.Add(-d).Format(time.RFC3339) }
	tests := []struct {
		name, backups string
		check         string
		want          Status
		msg           string
	}{
		{"fresh", `[{"tier":"daily","last_good":"` + ts(3*time.Hour) + `","last_good_name":"daily/20260310_090000"}]`, "backup daily", OK, "3 h old"},
		{"stale daily", `[{"tier":"daily","last_good":"` + ts(50*time.Hour) + `","last_good_name":"daily/20260308_100000"}]`, "backup daily", Fail, "stale"},
		{"weekly fine at 8 days", `[{"tier":"weekly","last_good":"` + ts(8*24*time.Hour) + `"}]`, "backup weekly", OK, ""},
		{"stale monthly", `[{"tier":"monthly","last_good":"` + ts(60*24*time.Hour) + `"}]`, "backup monthly", Fail, "stale"},
		{"none yet", `[{"tier":"daily","next":"` + now.Add(time.Hour).Format(time.RFC3339) + `"}]`, "backup daily", Warn, "next at"},
		{"only failures", `[{"tier":"daily","last_failure":"` + ts(time.Hour) + `","last_error":"disk full"}]`, "backup daily", Fail, "disk full"},
		{"latest failed", `[{"tier":"daily","last_good":"` + ts(20*time.Hour) + `","last_failure":"` + ts(time.Hour) + `","last_error":"minio down"}]`, "backup daily", Warn, "minio down"},
		{"no tiers", `[]`, "backups", Warn, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := postOpts(t, map[string]string{"/v1/status": `{"supervisor":true,` + healthyServices + `,"backups":` + tt.backups + `}`})
			res, ok := Post(context.Background(), o).Find(tt.check)
			if !ok || res.Status != tt.want || !strings.Contains(res.Message, tt.msg) {
				t.Errorf("%+v, want %s with %q", res, tt.want, tt.msg)
			}
			if res.Status != OK && res.Fix == "" {
				t.Error("no fix")
			}
		})
	}
}

func TestPostDrillAndAlerts(t *testing.T) {
	ts := func(d time.Duration) string { return now.Add(-d).Format(time.RFC3339) }
	drills := []struct {
		json string
		want Status
	}{
		{`{"last":"` + ts(24*time.Hour) + `","ok":true,"backup":"daily/x"}`, OK},
		{`{"last":"` + ts(24*time.Hour) + `","ok":false,"error":"counts differ"}`, Fail},
		{`{"last":"` + ts(40*24*time.Hour) + `","ok":true}`, Warn},
		{`{}`, Warn},
	}
	for _, d := range drills {
		o := postOpts(t, map[string]string{"/v1/status": `{"supervisor":true,` + healthyServices + `,"restore_drill":` + d.json + `}`})
		if got := status(Post(context.Background(), o), "restore drill"); got != d.want {
			t.Errorf("drill %s: %s, want %s", d.json, got, d.want)
		}
	}
	alerts := []struct {
		json  string
		check string
		want  Status
	}{
		{`{"channels":[]}`, "alert channels", Warn},
		{`{"channels":[{"name":"ops","type":"email","last_success":"` + ts(time.Hour) + `"}]}`, "alert channel ops", OK},
		{`{"channels":[{"name":"ops","type":"slack"}]}`, "alert channel ops", Warn},
		{`{"channels":[{"name":"pd","type":"pagerduty","consecutive_failures":3,"last_error":"401"}]}`, "alert channel pd", Fail},
		{`{"last_error":"rule x","channels":[{"name":"ops","type":"email","last_success":"` + ts(time.Hour) + `"}]}`, "alerts", Warn},
		{`{"active":[{"rule":"APIDown","state":"firing"}],"channels":[{"name":"ops","type":"email","last_success":"` + ts(time.Hour) + `"}]}`, "alerts firing", Warn},
		{`not json`, "alerts", Warn},
	}
	for _, a := range alerts {
		o := postOpts(t, map[string]string{"/v1/status": `{"supervisor":true,` + healthyServices + `}`, "/v1/alerts": a.json})
		if got := status(Post(context.Background(), o), a.check); got != a.want {
			t.Errorf("alerts %s: %s = %s, want %s", a.json, a.check, got, a.want)
		}
	}
}

func TestPostListeners(t *testing.T) {
	o := postOpts(t, map[string]string{"/v1/status": `{"supervisor":true,` + healthyServices + `}`})
	o.Config.Edge.HTTPS, o.Config.Edge.HTTP = ":443", ":80"
	o.Config.Edge.HTTPS = ""
	o.Config.Edge.HTTP = ":80"
	o.Host.Listeners = func() ([]Listener, error) {
		return []Listener{
			{IP: net.IPv4zero, Port: 80, PID: 10, Process: "corpintel"},
			{IP: net.ParseIP("127.0.0.1"), Port: 8000, PID: 10, Process: "corpintel"},
			{IP: net.IPv6zero, Port: 22, PID: 5, Process: "sshd"},
			{IP: net.IPv4zero, Port: 15432, PID: 99, Process: "docker-proxy"},
			{IP: net.IPv4zero, Port: 9100, PID: 0},
			{IP: net.ParseIP("10.0.0.5"), Port: 8001, PID: 10, Process: "corpintel"},
		}, nil
	}
	r := Post(context.Background(), o)
	for check, want := range map[string]Status{
		"listening 0.0.0.0:80": OK, "listening [::]:22": OK, "listening 0.0.0.0:15432": Fail,
		"listening 0.0.0.0:9100": Warn, "listening 10.0.0.5:8001": Fail,
	} {
		if got := status(r, check); got != want {
			t.Errorf("%s: %s, want %s", check, got, want)
		}
	}
	if _, ok := r.Find("listening 127.0.0.1:8000"); ok {
		t.Error("a loopback listener was judged")
	}
	if res, _ := r.Find("listening 0.0.0.0:15432"); !strings.Contains(res.Fix, "docker ps --filter publish=15432") {
		t.Errorf("fix %q", res.Fix)
	}
	o.Host.Listeners = func() ([]Listener, error) { return nil, nil }
	if status(Post(context.Background(), o), "listeners") != Warn {
		t.Error("no public listener at all")
	}
	o.Host.Listeners = func() ([]Listener, error) { return nil, errors.New("no /proc") }
	if status(Post(context.Background(), o), "listeners") != Warn {
		t.Error("unreadable listeners")
	}
}

func TestReadListenersFindsARealSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	ls, err := ReadListeners()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Port == port && l.IP.IsUnspecified() { // Go listens dual-stack on [::]
			if l.PID != os.Getpid() {
				t.Errorf("pid %d, want %d (the test process)", l.PID, os.Getpid())
			}
			st, msg, _ := listenerPolicy(l, []int{443})
			if st != Warn || !strings.Contains(msg, fmt.Sprintf(":%d: check.test", port)) {
				t.Errorf("policy %s %s", st, msg)
			}
			return
		}
	}
	t.Fatalf("listener on 0.0.0.0:%d not found in %+v", port, ls)
}

func TestParseProcNetTCP(t *testing.T) {
	in := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
   1: 00000000:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5678 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F40 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 9999 1
`
	ls, err := parseProcNetTCP(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].Port != 8000 || !ls[0].IP.Equal(net.ParseIP("127.0.0.1")) || ls[1].Port != 443 || ls[1].Inode != 5678 {
		t.Errorf("%+v", ls)
	}
	v6, err := parseHexIP("00000000000000000000000001000000")
	if err != nil || !v6.Equal(net.IPv6loopback) {
		t.Errorf("::1 parsed as %v %v", v6, err)
	}
	if _, err := parseHexIP("zz"); err == nil {
		t.Error("garbage address")
	}
}

func TestPostTLS(t *testing.T) {
	hsts := "max-age=63072000; includeSubDomains"
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hsts != "" {
			w.Header().Set("Strict-Transport-Security", hsts)
		}
		fmt.Fprintln(w, "ok")
	}))
	srv.StartTLS()
	defer srv.Close()
	o := postOpts(t, map[string]string{"/v1/status": `{"supervisor":true,` + healthyServices + `}`})
	o.Config.Edge.HTTPS = "127.0.0.1:1"
	o.Config.TLS.Mode = "file"
	o.Config.TLS.Names = []string{"example.com"}
	o.TLSAddr = srv.Listener.Addr().String()
	// httptest's certificate is not in the system roots: the chain does not verify.
	if res, _ := Post(context.Background(), o).Find("tls example.com"); res.Status != Fail || !strings.Contains(res.Message, "certificate") {
		t.Errorf("untrusted chain: %+v", res)
	}
	// Trusted through a self-signed CA file in the state dir (the edge's layout).
	caDir := filepath.Join(o.Config.StateDir, "tls", "self-signed")
	if err := os.MkdirAll(caDir, 0o700); err != nil {
		t.Fatal(err)
	}
	var pemBuf bytes.Buffer
	_ = pemEncode(&pemBuf, srv.Certificate().Raw)
	if err := os.WriteFile(filepath.Join(caDir, "ca.pem"), pemBuf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	o.Config.TLS.Mode = "self-signed"
	o.Now = time.Now
	res, _ := Post(context.Background(), o).Find("tls example.com")
	if res.Status != OK || !strings.Contains(res.Message, "HSTS max-age=63072000") {
		t.Errorf("good chain: %+v", res)
	}
	hsts = "max-age=300"
	if res, _ := Post(context.Background(), o).Find("tls example.com"); res.Status != Fail {
		t.Errorf("short HSTS: %+v", res)
	}
	// Close to expiry (httptest's certificate runs until 2084: move the clock).
	hsts = "max-age=63072000"
	o.Now = func() time.Time { return srv.Certificate().NotAfter.Add(-time.Hour) }
	if res, _ := Post(context.Background(), o).Find("tls example.com"); res.Status != Fail {
		t.Errorf("expiring: %+v", res)
	}
	o.Now = func() time.Time { return srv.Certificate().NotAfter.Add(-20 * 24 * time.Hour) }
	if res, _ := Post(context.Background(), o).Find("tls example.com"); res.Status != Warn {
		t.Errorf("renewal overdue: %+v", res)
	}
	o.Config.Edge.HTTPS = ""
	if status(Post(context.Background(), o), "tls") != Warn {
		t.Error("HTTPS off")
	}
	if hstsMaxAge(`max-age="31536000"; preload`) != 31536000 || hstsMaxAge("") != 0 {
		t.Error("hstsMaxAge")
	}
}

func TestReportRendering(t *testing.T) {
	r := Report{Kind: "post", Results: []Result{{Check: "a", Status: OK, Message: "fine"}, {Check: "b", Status: Warn, Message: "hm", Fix: "do x"}}}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "b: do x") || !strings.Contains(out, "post check: warnings (1 ok, 1 warnings") {
		t.Errorf("table:\n%s", out)
	}
	buf.Reset()
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back struct {
		ExitCode int      `json:"exit_code"`
		Results  []Result `json:"results"`
	}
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back.ExitCode != 1 || len(back.Results) != 2 {
		t.Errorf("json %s: %v", buf.String(), err)
	}
	for d, want := range map[time.Duration]string{-time.Minute: "-1m0s", 90 * time.Second: "1m30s", 3 * time.Minute: "3 min", 3 * time.Hour: "3 h", 72 * time.Hour: "3 days"} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[uint64]string{2 << 30: "2.0 GB", 5 << 20: "5 MB", 4096: "4 kB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q", n, got)
		}
	}
}

func pemEncode(w *bytes.Buffer, der []byte) error {
	return pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: der})
}
