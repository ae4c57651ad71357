package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/docker/dockertest"
	"github.com/corpintel/corpintel/supervisor/alerts"
	"github.com/corpintel/corpintel/supervisor/alerts/notify"
	"github.com/corpintel/corpintel/supervisor/edge"
	"github.com/corpintel/corpintel/supervisor/health"
	"github.com/corpintel/corpintel/supervisor/localapi"
	"github.com/corpintel/corpintel/supervisor/reconcile"
	"github.com/corpintel/corpintel/supervisor/state"
)

func alertsTable(t *testing.T, body string) config.Alerts {
	t.Helper()
	a, err := config.AlertsFromTOML(body)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAlertsConfig(t *testing.T) {
	cfg := config.Default("prod")
	cfg.StateDir = "/var/lib/corpintel/x"
	cfg.Alerts = alertsTable(t, `
group_wait = "5s"
[rules.api_down]
failures = 2
[[channels]]
name = "pd"
type = "pagerduty"
routing_key_file = "pagerduty.key"
[[channels]]
name = "hook"
type = "webhook"
url_file = "/etc/corpintel/hook.url"
`)
	ac, err := AlertsConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ac.GroupWait.D() != 5*time.Second || ac.Rules.APIDown.Failures != 2 || ac.GroupInterval.D() != 5*time.Minute {
		t.Errorf("decoded with defaults: %+v", ac)
	}
	if ac.Channels[0].RoutingKeyFile != "/var/lib/corpintel/x/secrets/alerts/pagerduty.key" || ac.Channels[1].URLFile != "/etc/corpintel/hook.url" {
		t.Errorf("secret paths: %q %q", ac.Channels[0].RoutingKeyFile, ac.Channels[1].URLFile)
	}

	cfg.File = "/etc/corpintel/corpintel.toml"
	cfg.Alerts = alertsTable(t, `
group_wait = "-1s"
[rules.disk_space_low]
threshold = 85.0
[[channels]]
name = "Slack!"
type = "slack"
`)
	_, err = AlertsConfig(cfg)
	if !config.IsConfigError(err) {
		t.Fatalf("not a config error: %v", err)
	}
	for _, want := range []string{`/etc/corpintel/corpintel.toml: key "alerts.group_wait"`, `key "alerts.rules.disk_space_low.threshold": must be a fraction`,
		`key "alerts.channels[0].name"`, `key "alerts.channels[0].url_file"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\nlacks %q", err, want)
		}
	}
	cfg.Alerts = alertsTable(t, "[rules.api_down]\nfailure = 3\n")
	if _, err := AlertsConfig(cfg); err == nil || !strings.Contains(err.Error(), `key "alerts.rules.api_down.failure": unknown key`) {
		t.Errorf("unknown key: %v", err)
	}
	// New refuses a bad [alerts] table like any config problem.
	if _, err := New(Options{Config: cfg, Engine: nil}); err == nil {
		t.Error("New accepted no engine")
	}
}

func TestAlertsMigrationIsTheEngineSchema(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("state", "migrations", "0010_alerts.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), alerts.Schema) {
		t.Error("migrations/0010_alerts.sql differs from alerts.Schema: copy the schema over")
	}
	// And the store works on a migrated state store.
	st, err := state.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	store := alerts.NewSQLStore(st.DB())
	s := alerts.NewState()
	s.Silences["x"] = alerts.Silence{ID: "x", StartsAt: time.Now(), EndsAt: time.Now().Add(time.Hour), CreatedBy: "a", Comment: "c"}
	if err := store.Save(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if got, err := store.Load(context.Background()); err != nil || len(got.Silences) != 1 {
		t.Fatalf("load %v %v", got, err)
	}
}

func TestOperationSource(t *testing.T) {
	ctx := context.Background()
	st, err := state.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src := operationSource{st}
	if op, err := src.CurrentOperation(ctx); op != nil || err != nil {
		t.Fatalf("no operation: %+v %v", op, err)
	}
	began, err := st.BeginOperation(ctx, state.OpRequest{Kind: "restore", Owner: "t", Maintenance: true, Expected: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	op, err := src.CurrentOperation(ctx)
	if err != nil || op.Kind != "restore" || !op.Maintenance || !op.Started.Equal(began.StartedAt) || !op.ExpectedEnd.Equal(began.ExpectedEnd) {
		t.Errorf("operation %+v %v", op, err)
	}
}

func TestBackupRoot(t *testing.T) {
	cfg := config.Default("dev")
	cfg.Project = "acme"
	if got := backupRoot(cfg); got != "/var/backups/acme" {
		t.Errorf("backup root %q", got)
	}
	// The shape the backup wiring's config has: [backup] root.
	type backup struct{ Root string }
	withBackup := &struct {
		Project string
		Backup  backup
	}{"acme", backup{Root: "/srv/backups"}}
	if got := backupRootOf(withBackup, "acme"); got != "/srv/backups" {
		t.Errorf("configured root %q", got)
	}
	withBackup.Backup.Root = ""
	if got := backupRootOf(*withBackup, "acme"); got != "/var/backups/acme" {
		t.Errorf("empty root %q", got)
	}
}

// rootDirEngine is the in-memory engine with a data root, as the real one reports.
type rootDirEngine struct {
	*dockertest.Engine
	err error
}

func (e rootDirEngine) RootDir(context.Context) (string, error) { return "/srv/docker", e.err }

func TestObservabilityHelpers(t *testing.T) {
	var logs bytes.Buffer
	stateDir := t.TempDir()
	td := newTestDaemon(t, nil, stateDir, func(o *Options) {
		o.Log = slog.New(slog.NewTextHandler(&logs, nil))
		o.Config.Alerts = alertsTable(t, "[[channels]]\nname = \"pd\"\ntype = \"pagerduty\"\nrouting_key_file = \"missing.key\"\n")
	})
	ctx := context.Background()
	if got := td.d.engineRootDir(ctx); got != "/var/lib/docker" {
		t.Errorf("engine without RootDir: %q", got)
	}
	td.d.opts.Engine = rootDirEngine{Engine: td.eng}
	if got := td.d.engineRootDir(ctx); got != "/srv/docker" {
		t.Errorf("engine root %q", got)
	}
	td.d.opts.Engine = rootDirEngine{Engine: td.eng, err: errors.New("no info")}
	if got := td.d.engineRootDir(ctx); got != "/var/lib/docker" {
		t.Errorf("engine root on error %q", got)
	}
	// A channel whose secret file is missing is named at start, its content never.
	td.d.warnMissingSecrets()
	if !strings.Contains(logs.String(), filepath.Join(stateDir, "secrets", "alerts", "missing.key")) || !strings.Contains(logs.String(), "alerts test --channel pd") {
		t.Errorf("no warning for the missing secret:\n%s", logs.String())
	}
	if _, err := td.d.secret("redis_password")(); err == nil {
		t.Error("a secret read before the first start")
	}
	if _, err := reconcile.EnsureSecrets(stateDir); err != nil {
		t.Fatal(err)
	}
	if v, err := td.d.secret("redis_password")(); err != nil || v == "" {
		t.Errorf("secret %q %v", v, err)
	}

	// While the engine does not answer, the collectors keep the last good addresses.
	if _, err := td.d.rec.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if s := td.d.snapshot(); s.Err != "" || s.At.IsZero() {
		t.Fatalf("good snapshot %+v", s)
	}
	good := td.d.snapshot().At
	td.eng.Do(func(e *dockertest.Engine) { e.Fail["list"] = errors.New("engine gone") })
	if _, err := td.d.rec.Refresh(ctx); err == nil {
		t.Fatal("refresh with the engine gone")
	}
	if s := td.d.snapshot(); s.Err != "" || !s.At.Equal(good) {
		t.Errorf("the failed observation replaced the good one: %+v", s)
	}
	fresh := newTestDaemon(t, nil, t.TempDir(), nil)
	fresh.eng.Do(func(e *dockertest.Engine) { e.Fail["list"] = errors.New("engine gone") })
	_, _ = fresh.d.rec.Refresh(ctx)
	if s := fresh.d.snapshot(); s.Err == "" {
		t.Error("no good observation yet: the failed one is all there is")
	}
}

// extraSource is another part's collector (the backups', the certificates').
type extraSource struct{}

var famTestBackup = health.NewGauge(alerts.MetricBackupLastSuccess, "When the newest verified backup finished.")

func (extraSource) Name() string { return "backups" }
func (extraSource) Collect(_ context.Context, b *health.Batch) error {
	b.Add(famTestBackup, 1.7e9)
	return nil
}

func TestAddMetricSourceAndReload(t *testing.T) {
	var logs bytes.Buffer
	td := newTestDaemon(t, nil, t.TempDir(), func(o *Options) { o.Log = slog.New(slog.NewTextHandler(&logs, nil)) })
	td.d.AddMetricSource(extraSource{})
	srcs, done := td.d.sources(context.Background(), "")
	defer done()
	if srcs[len(srcs)-1].Name() != "backups" {
		t.Errorf("sources %v", srcs)
	}
	b := &health.Batch{}
	if err := srcs[len(srcs)-1].Collect(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	same := *td.cfg
	td.d.alertsReloaded(&same)
	if strings.Contains(logs.String(), "[alerts] configuration changed") {
		t.Error("warned about an unchanged [alerts]")
	}
	changed := *td.cfg
	changed.Alerts = alertsTable(t, "group_wait = \"1m\"\n")
	td.d.alertsReloaded(&changed)
	if !strings.Contains(logs.String(), "[alerts] configuration changed") {
		t.Errorf("no warning about a changed [alerts]:\n%s", logs.String())
	}
}

func TestNewObservabilityRegistry(t *testing.T) {
	// Process and Go metrics already on the caller's registry are fine; the edge's are
	// not (two owners of one family).
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	newTestDaemon(t, nil, t.TempDir(), func(o *Options) { o.Metrics = reg })
	taken := prometheus.NewRegistry()
	if _, err := edge.NewAnswers(taken); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default("dev")
	cfg.StateDir = t.TempDir()
	st, err := state.Open(context.Background(), cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng := dockertest.New(t)
	if _, err := New(Options{Config: cfg, Engine: eng, Store: st, Metrics: taken}); err == nil || !strings.Contains(err.Error(), "edge metrics") {
		t.Errorf("edge metrics registered twice: %v", err)
	}
	cfg.Alerts = alertsTable(t, "group_wait = \"-1s\"\n")
	if _, err := New(Options{Config: cfg, Engine: eng, Store: st}); !config.IsConfigError(err) {
		t.Errorf("bad [alerts]: %v", err)
	}
}

// webhookSink records Alertmanager webhook payloads.
type webhookSink struct {
	mu       sync.Mutex
	payloads []notify.WebhookPayload
}

func (w *webhookSink) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	var p notify.WebhookPayload
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &p); err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	w.payloads = append(w.payloads, p)
	w.mu.Unlock()
}

func (w *webhookSink) firing(alertname string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, p := range w.payloads {
		if p.Status == "firing" && p.GroupLabels["alertname"] == alertname {
			n++
		}
	}
	return n
}

// The daemon runs the collectors and the engine: its replicas are fakes that do not
// answer (the in-memory engine's addresses), so the health check through the edge
// fails, API Down fires and reaches the webhook; the CLI's operations work over the
// socket; /metrics carries the collectors' families.
func TestDaemonAlerts(t *testing.T) {
	sink := &webhookSink{}
	hook := httptest.NewServer(sink)
	t.Cleanup(hook.Close)
	td := newTestDaemon(t, nil, t.TempDir(), func(o *Options) {
		o.Config.Metrics.Interval = config.Duration(time.Second)
		o.Config.Metrics.StartGrace = 0
		o.Config.Alerts = alertsTable(t, `
evaluation_interval = "1s"
group_wait = "1s"
group_interval = "2s"
[[channels]]
name = "hook"
type = "webhook"
url = "`+hook.URL+`"
`)
	})
	c := td.run(t)
	ctx := context.Background()

	deadline := time.Now().Add(30 * time.Second)
	for sink.firing("APIDown") == 0 {
		if time.Now().After(deadline) {
			snap, _ := c.Alerts(ctx)
			t.Fatalf("API Down never reached the webhook; alerts %+v", snap)
		}
		time.Sleep(100 * time.Millisecond)
	}
	snap, err := c.Alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range snap.Active {
		found = found || (a.Rule == "APIDown" && a.State == alerts.StateFiring)
	}
	if !found || len(snap.Channels) != 1 || snap.Channels[0].Sent == 0 {
		t.Errorf("snapshot %+v", snap)
	}

	// Silence it: the author is this process's user; unknown rules are refused.
	sl, err := c.Silence(ctx, alerts.SilenceRequest{Rule: "APIDown", For: time.Hour, Comment: "known: fake replicas"})
	if err != nil || sl.CreatedBy == "" || sl.CreatedBy == "unknown" {
		t.Fatalf("silence %+v %v", sl, err)
	}
	var re *localapi.RequestError
	if _, err := c.Silence(ctx, alerts.SilenceRequest{Rule: "APIDwn", For: time.Hour, Comment: "x"}); !errors.As(err, &re) {
		t.Errorf("unknown rule: %v", err)
	}
	if _, err := c.Unsilence(ctx, sl.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unsilence(ctx, "no-such-id"); !errors.As(err, &re) {
		t.Errorf("unknown silence: %v", err)
	}
	if res, err := c.TestChannel(ctx, "hook"); err != nil || !res.OK || !res.Test {
		t.Errorf("test channel: %+v %v", res, err)
	}
	if _, err := c.TestChannel(ctx, "nope"); !errors.As(err, &re) {
		t.Errorf("unknown channel: %v", err)
	}

	// The exposition: the collectors' families and the engine's, lint-clean.
	resp, err := http.Get("http://" + td.cfg.Listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, fam := range []string{"corpintel_api_health_consecutive_failures", "corpintel_container_up{replica=\"1\",service=\"api\"}",
		"corpintel_disk_used_ratio{mount=\"/\"}", "corpintel_host_cpus", "corpintel_service_up{service=\"postgres\"} 0",
		"corpintel_alerts_evaluations_total", "corpintel_edge_requests_total", "corpintel_edge_answered_total", "corpintel_api_requests_total{code_class=\"5xx\",replica=\"edge\"}"} {
		if !strings.Contains(string(body), fam) {
			t.Errorf("/metrics lacks %s", fam)
		}
	}
	if problems, err := testutil.GatherAndLint(td.d.Metrics()); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	if rules, err := c.PrometheusRules(ctx); err != nil || !strings.Contains(string(rules), "alert: APIDown") {
		t.Errorf("rules over the socket: %v %.200s", err, rules)
	}
	if h := td.d.MetricsHistory("corpintel_host_cpus", nil, time.Now().Add(-time.Hour)); len(h) != 1 || len(h[0].Points) == 0 {
		t.Errorf("history %+v", h)
	}
}

func TestAlertOperationsWithoutRun(t *testing.T) {
	td := newTestDaemon(t, nil, t.TempDir(), nil)
	ctx := context.Background()
	var re *localapi.RequestError
	_, e1 := td.d.Alerts(ctx)
	_, e2 := td.d.Silence(ctx, alerts.SilenceRequest{})
	_, e3 := td.d.Unsilence(ctx, "x")
	_, e4 := td.d.TestChannel(ctx, "x")
	for _, err := range []error{e1, e2, e3, e4} {
		if !errors.As(err, &re) || !strings.Contains(err.Error(), "running supervisor") {
			t.Errorf("without Run: %v", err)
		}
	}
	if td.d.MetricsHistory("x", nil, time.Time{}) != nil {
		t.Error("history without Run")
	}
}

// Services stopped or scaled to 0 on purpose are not "down".
func TestDesired(t *testing.T) {
	ctx := context.Background()
	td := newTestDaemon(t, nil, t.TempDir(), nil)
	if !td.d.desired("postgres") || !td.d.desired("api") {
		t.Fatal("a fresh stack is wanted")
	}
	if err := td.d.rec.SetScale(ctx, "api", 0); err != nil {
		t.Fatal(err)
	}
	if td.d.desired("api") || !td.d.desired("postgres") {
		t.Error("scale api=0")
	}
	if err := td.store.SetStopped(ctx, true); err != nil {
		t.Fatal(err)
	}
	if td.d.desired("postgres") {
		t.Error("after stop")
	}
}
