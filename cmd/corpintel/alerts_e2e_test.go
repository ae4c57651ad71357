package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/stack"
	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/corpintel/corpintel/supervisor/alerts"
	"github.com/corpintel/corpintel/supervisor/alerts/notify"
	"github.com/corpintel/corpintel/supervisor/health"
	"github.com/corpintel/corpintel/supervisor/state"
)

// The alerts end to end, on the real stack with short durations: API Down (a broken API
// image and a killed replica) reaches mail and PagerDuty once and resolves once;
// PostgreSQL stopped under an operation that owns it fires PostgreSQL Down and inhibits
// API Down; a small filesystem at the backup root filled past 85 % fires Disk Space Low.
// One stack, the scenarios in a row; the assertions are about what was delivered and in
// which order, the delays are only logged (and written to $CORPINTEL_E2E_RESULTS).

// pdEvent is one PagerDuty Events v2 request as the local endpoint received it.
type pdEvent struct {
	notify.PagerDutyEvent
	At time.Time
}

// pagerDutySink is a local PagerDuty Events API v2 endpoint.
type pagerDutySink struct {
	mu     sync.Mutex
	events []pdEvent
	bad    []string
}

func (p *pagerDutySink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev notify.PagerDutyEvent
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(&ev)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case r.URL.Path != "/v2/enqueue" || r.Method != http.MethodPost:
		p.bad = append(p.bad, r.Method+" "+r.URL.Path)
	case err != nil:
		p.bad = append(p.bad, "undecodable event: "+err.Error())
	case ev.RoutingKey != "e2e-routing-key" || ev.DedupKey == "" || (ev.EventAction == "trigger" && (ev.Payload == nil || ev.Payload.Summary == "")):
		p.bad = append(p.bad, "event against the Events v2 schema: "+string(body))
	default:
		p.events = append(p.events, pdEvent{ev, time.Now()})
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"status":"success","message":"Event processed"}`)
		return
	}
	http.Error(w, "bad request", http.StatusBadRequest)
}

// alertname of a trigger event (resolves carry no payload: their dedup key names them).
func (e pdEvent) alertname() string {
	if e.Payload == nil {
		return ""
	}
	return e.Payload.CustomDetails["group_alertname"]
}

func (p *pagerDutySink) snapshot() []pdEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// forAlert returns the events of one alert's group, by the dedup key of its triggers.
func (p *pagerDutySink) forAlert(name string) []pdEvent {
	evs := p.snapshot()
	keys := map[string]bool{}
	for _, e := range evs {
		if e.alertname() == name {
			keys[e.DedupKey] = true
		}
	}
	var out []pdEvent
	for _, e := range evs {
		if keys[e.DedupKey] {
			out = append(out, e)
		}
	}
	return out
}

func actions(evs []pdEvent) string {
	var a []string
	for _, e := range evs {
		a = append(a, e.EventAction)
	}
	return strings.Join(a, ",")
}

// mailSubjects returns the subjects mailpit received, oldest first.
func mailSubjects(t *testing.T, m *testenv.Mailpit) []string {
	msgs := m.Messages(t)
	out := make([]string, 0, len(msgs))
	for i := len(msgs) - 1; i >= 0; i-- {
		out = append(out, msgs[i].Subject)
	}
	return out
}

// about keeps the subjects that name the alert.
func about(subjects []string, alert string) []string {
	var out []string
	for _, s := range subjects {
		if strings.Contains(s, "] "+alert+" (") {
			out = append(out, s)
		}
	}
	return out
}

// eventually polls cond until it holds or fails the test at the deadline.
func (s *e2eStack) eventually(what string, timeout time.Duration, cond func() (bool, string)) time.Time {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return time.Now()
		}
		time.Sleep(200 * time.Millisecond) // polling interval, not a readiness guess
	}
	logs, _ := os.ReadFile(s.logPath)
	snap, _ := s.corpintel("alerts")
	s.t.Fatalf("%s: not reached within %s (last: %s)\nalerts:\n%s\nsupervisor log (tail):\n%s", what, timeout, last, snap, tail(string(logs), 40))
	return time.Time{}
}

func (s *e2eStack) alerts() alerts.Snapshot {
	s.t.Helper()
	out, err := s.corpintel("alerts", "--json")
	if err != nil {
		s.t.Fatal(err)
	}
	var snap alerts.Snapshot
	if err := json.Unmarshal([]byte(out), &snap); err != nil {
		s.t.Fatalf("alerts --json: %v: %s", err, out)
	}
	return snap
}

func (s *e2eStack) alertState(rule string) (state, mutedBy string) {
	for _, a := range s.alerts().Active {
		if a.Rule == rule {
			return a.State, a.MutedBy
		}
	}
	return "inactive", ""
}

// metricsText fetches the supervisor's /metrics and says how long it took.
func (s *e2eStack) metricsText() (string, time.Duration) {
	s.t.Helper()
	start := time.Now()
	resp, err := http.Get("http://127.0.0.1:" + s.port + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("/metrics: %s %v", resp.Status, err)
	}
	return string(b), time.Since(start)
}

// metricValue reads one sample line "name{labels} value" of an exposition.
func metricValue(text, series string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.Fields(v)[0], 64)
			return f, err == nil
		}
	}
	return 0, false
}

func rssBytes(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.Fields(v)[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// conditionalFamilies are filled only when there is something to measure.
var conditionalFamilies = map[string]string{
	"corpintel_postgres_replication_lag_seconds": "only with streaming replicas",
	"corpintel_redis_hit_ratio":                  "only after the first key lookup",
}

func TestAlertsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped with -short")
	}
	testenv.Docker(t)
	requireImages(t)
	if os.Geteuid() != 0 {
		testenv.Require(t, "root", errors.New("the disk scenario mounts a tmpfs at the backup root: run as root"))
	}
	if _, err := exec.LookPath("promtool"); err != nil {
		testenv.Require(t, "promtool", fmt.Errorf("promtool (Debian's prometheus package, scripts/install-deps.sh) checks the exposition: %w", err))
	}
	began := time.Now()
	mail := testenv.MailpitServer(t, testenv.MailpitOptions{})
	pd := &pagerDutySink{}
	pdSrv := httptest.NewServer(pd)
	t.Cleanup(pdSrv.Close)

	s := newE2EStack(t)
	keyFile := filepath.Join(t.TempDir(), "pagerduty.key")
	if err := os.WriteFile(keyFile, []byte("e2e-routing-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Short durations: 1 s collection and evaluation; PostgreSQL Down at once; a group
	// waits 10 s before its first notification (long enough that an alert unmuted for a
	// moment while the stack recovers is not sent), then 3 s between updates.
	alertsCfg := fmt.Sprintf(`
[metrics]
interval = "1s"
[alerts]
evaluation_interval = "1s"
group_wait = "10s"
group_interval = "3s"
repeat_interval = "1h"
[alerts.rules.postgresql_down]
for = "1s"
[[alerts.channels]]
name = "pagerduty"
type = "pagerduty"
url = "%s/v2/enqueue"
routing_key_file = %q
[[alerts.channels]]
name = "mail"
type = "email"
smtp_host = "127.0.0.1"
smtp_port = %d
tls = "none"
from = "corpintel@e2e.example"
to = ["ops@e2e.example"]
`, pdSrv.URL, keyFile, mail.SMTPPort)
	s.writeConfig(alertsCfg)
	s.startSupervisor()
	s.waitFor("cold start", 6*time.Minute, healthyWith(1))
	coldStart := time.Since(began)
	results := map[string]any{"cold_start_s": coldStart.Seconds()}

	// Test notifications reach both channels (PagerDuty: trigger and resolve).
	for _, ch := range []string{"mail", "pagerduty"} {
		if out, err := s.corpintel("alerts", "test", "--channel", ch); err != nil || !strings.Contains(out, "delivered") {
			t.Fatalf("alerts test --channel %s: %v %s", ch, err, out)
		}
	}
	if got := actions(pd.snapshot()); got != "trigger,resolve" {
		t.Fatalf("PagerDuty test events: %s", got)
	}
	if subj := mailSubjects(t, mail); len(subj) != 1 || !strings.HasPrefix(subj[0], "[TEST] ") {
		t.Fatalf("test mail: %q", subj)
	}

	// Some traffic, so that every family has something to say (requests, latency,
	// database queries, Redis lookups).
	for range 5 {
		body := strings.NewReader(`{"email":"nobody@e2e.example","password":"wrong password 123"}`)
		resp, err := http.Post("http://127.0.0.1:"+s.port+"/api/v1/auth/login", "application/json", body)
		if err == nil {
			_ = resp.Body.Close()
		}
	}

	// The exposition with the full stack: promtool-clean, every collector succeeding,
	// every family present.
	var text string
	s.eventually("every collector succeeds and every family has a series", time.Minute, func() (bool, string) {
		text, _ = s.metricsText()
		for _, c := range []string{"host", "containers", "postgres", "redis", "minio", "api", "docker"} {
			if v, ok := metricValue(text, `corpintel_collector_success{collector="`+c+`"}`); !ok || v != 1 {
				return false, "collector " + c
			}
		}
		for _, fam := range health.FamilyNames() {
			if _, cond := conditionalFamilies[fam]; !cond && !strings.Contains(text, "\n"+fam+"{") && !strings.Contains(text, "\n"+fam+" ") {
				return false, "family " + fam
			}
		}
		return true, ""
	})
	for _, fam := range []string{"corpintel_edge_requests_total", "corpintel_edge_request_duration_seconds_bucket", "corpintel_alerts_evaluations_total",
		"process_resident_memory_bytes"} {
		if !strings.Contains(text, "\n"+fam) {
			t.Errorf("/metrics lacks %s", fam)
		}
	}
	check := exec.Command("promtool", "check", "metrics") // #nosec G204 -- fixed arguments
	check.Stdin = strings.NewReader(text)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	var scrapes []time.Duration
	for range 20 {
		_, d := s.metricsText()
		scrapes = append(scrapes, d)
	}
	sort.Slice(scrapes, func(i, j int) bool { return scrapes[i] < scrapes[j] })
	results["metrics_bytes"] = len(text)
	results["metrics_series"] = strings.Count(text, "\n") - strings.Count(text, "\n#")
	results["scrape_median_ms"] = float64(scrapes[len(scrapes)/2].Microseconds()) / 1000

	// 1. API Down: the API image is replaced by one that cannot serve and the replica is
	// killed. One notification per channel, then one resolve.
	api1 := stack.ContainerName(s.project, stack.ServiceAPI, 1)
	s.writeConfig(alertsCfg + "\n[api]\nimage = \"corpintel/redis:7\"\n")
	s.signalSupervisor(syscall.SIGHUP)
	outage := time.Now()
	s.docker("kill", api1)
	pdAt := s.eventually("API Down reaches PagerDuty", 2*time.Minute, func() (bool, string) {
		evs := pd.forAlert("APIDown")
		return len(evs) > 0, actions(evs)
	})
	mailAt := s.eventually("API Down reaches mail", time.Minute, func() (bool, string) {
		got := about(mailSubjects(t, mail), "APIDown")
		return len(got) > 0, strings.Join(got, "|")
	})
	results["api_down_to_pagerduty_s"] = pdAt.Sub(outage).Seconds()
	results["api_down_to_mail_s"] = mailAt.Sub(outage).Seconds()
	// Still down for several group intervals: nothing more arrives.
	time.Sleep(4 * 3 * time.Second) // the window in which a duplicate would show; not a readiness wait
	if got := actions(pd.forAlert("APIDown")); got != "trigger" {
		t.Errorf("PagerDuty while the API stays down: %s", got)
	}
	s.writeConfig(alertsCfg)
	s.signalSupervisor(syscall.SIGHUP)
	back := time.Now()
	s.waitFor("API back", 3*time.Minute, healthyWith(1))
	resolvedAt := s.eventually("API Down resolves on PagerDuty", time.Minute, func() (bool, string) {
		got := actions(pd.forAlert("APIDown"))
		return got == "trigger,resolve", got
	})
	results["api_back_to_resolve_s"] = resolvedAt.Sub(back).Seconds()
	s.eventually("API Down resolves by mail", time.Minute, func() (bool, string) {
		got := about(mailSubjects(t, mail), "APIDown")
		return len(got) == 2, strings.Join(got, "|")
	})
	if got := about(mailSubjects(t, mail), "APIDown"); got[0] != "[FIRING:1] APIDown (critical)" || got[1] != "[RESOLVED] APIDown (critical)" {
		t.Errorf("API Down mails: %q", got)
	}
	if evs := pd.forAlert("APIDown"); evs[0].DedupKey != evs[1].DedupKey {
		t.Errorf("trigger and resolve with different dedup keys: %s %s", evs[0].DedupKey, evs[1].DedupKey)
	}

	// 2. PostgreSQL stopped while an operation owns it (the reconciler holds off), then
	// the API replica killed: PostgreSQL Down fires, API Down fires inhibited, silent.
	ctx := context.Background()
	store, err := state.Open(ctx, filepath.Join(filepath.Dir(s.config), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	op, err := store.BeginOperation(ctx, state.OpRequest{Kind: "e2e-hold", Services: []string{stack.ServicePostgres}, Owner: "alerts e2e test"})
	if err != nil {
		t.Fatal(err)
	}
	pgName := stack.ContainerName(s.project, stack.ServicePostgres, 0)
	s.docker("stop", pgName)
	pgDown := time.Now()
	s.eventually("PostgreSQL Down firing", time.Minute, func() (bool, string) {
		st, _ := s.alertState("PostgreSQLDown")
		return st == alerts.StateFiring, st
	})
	apiNotified := len(about(mailSubjects(t, mail), "APIDown"))
	apiPaged := len(pd.forAlert("APIDown"))
	s.docker("kill", api1)
	s.eventually("API Down firing, inhibited", time.Minute, func() (bool, string) {
		st, muted := s.alertState("APIDown")
		return st == alerts.StateFiring && strings.HasPrefix(muted, "inhibited by PostgreSQLDown"), st + " " + muted
	})
	pgPaged := s.eventually("PostgreSQL Down reaches PagerDuty", time.Minute, func() (bool, string) {
		got := actions(pd.forAlert("PostgreSQLDown"))
		return got == "trigger", got
	})
	results["postgres_down_to_pagerduty_s"] = pgPaged.Sub(pgDown).Seconds()
	time.Sleep(10*time.Second + 2*3*time.Second) // group_wait and two intervals: an API Down notification would have come
	if st, muted := s.alertState("APIDown"); st != alerts.StateFiring || !strings.HasPrefix(muted, "inhibited by") {
		t.Errorf("API Down while PostgreSQL is down: %s %s", st, muted)
	}
	if n, p := len(about(mailSubjects(t, mail), "APIDown")), len(pd.forAlert("APIDown")); n != apiNotified || p != apiPaged {
		t.Errorf("an inhibited API Down was notified: %d mails, %d PagerDuty events (before: %d, %d)", n, p, apiNotified, apiPaged)
	}
	s.docker("start", pgName)
	if err := store.EndOperation(ctx, op.ID, state.OpSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	s.waitFor("stack back after PostgreSQL", 4*time.Minute, healthyWith(1))
	s.eventually("PostgreSQL Down resolves", time.Minute, func() (bool, string) {
		got := actions(pd.forAlert("PostgreSQLDown"))
		return got == "trigger,resolve", got
	})
	s.eventually("API Down resolves", time.Minute, func() (bool, string) {
		st, _ := s.alertState("APIDown")
		return st == "inactive", st
	})
	if got := about(mailSubjects(t, mail), "PostgreSQLDown"); len(got) < 1 || got[0] != "[FIRING:1] PostgreSQLDown (critical)" {
		t.Errorf("PostgreSQL Down mails: %q", got)
	}

	// 3. The backup root on a 16 MiB filesystem, filled past 85 %: Disk Space Low by
	// mail (a warning: not paged), then resolved when the space is freed.
	root := "/var/backups/" + s.project
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", root).CombinedOutput(); err != nil { // #nosec G204 -- test fixture
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("umount", root).Run() // #nosec G204 -- test fixture
		_ = os.Remove(root)
	})
	fill := filepath.Join(root, "fill")
	if err := os.WriteFile(fill, make([]byte, 14<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	filled := time.Now()
	diskAt := s.eventually("Disk Space Low by mail", time.Minute, func() (bool, string) {
		got := about(mailSubjects(t, mail), "DiskSpaceLow")
		return len(got) == 1, strings.Join(got, "|")
	})
	results["disk_full_to_mail_s"] = diskAt.Sub(filled).Seconds()
	for _, m := range mail.Messages(t) {
		if strings.Contains(m.Subject, "DiskSpaceLow") && !strings.Contains(m.Text, root) {
			t.Errorf("the Disk Space Low mail does not name %s:\n%s", root, m.Text)
		}
	}
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	s.eventually("Disk Space Low resolved by mail", time.Minute, func() (bool, string) {
		got := about(mailSubjects(t, mail), "DiskSpaceLow")
		return len(got) == 2 && strings.HasPrefix(got[1], "[RESOLVED] "), strings.Join(got, "|")
	})

	// What was paged, in order: the test, API Down, PostgreSQL Down — nothing else.
	var paged []string
	byKey := map[string]string{}
	for _, e := range pd.snapshot() {
		if n := e.alertname(); n != "" {
			byKey[e.DedupKey] = n
		}
		name := byKey[e.DedupKey]
		if name == "" {
			name = "test"
		}
		paged = append(paged, name+":"+e.EventAction)
	}
	want := "test:trigger test:resolve APIDown:trigger APIDown:resolve PostgreSQLDown:trigger PostgreSQLDown:resolve"
	if got := strings.Join(paged, " "); got != want {
		t.Errorf("PagerDuty events:\n got  %s\n want %s", got, want)
	}
	pd.mu.Lock()
	if len(pd.bad) > 0 {
		t.Errorf("malformed PagerDuty requests: %q", pd.bad)
	}
	pd.mu.Unlock()
	t.Logf("mails, oldest first: %q", mailSubjects(t, mail))

	// The supervisor's footprint with metrics, history and alerts active.
	text, _ = s.metricsText()
	if rss, err := rssBytes(s.sup.Process.Pid); err == nil {
		results["supervisor_rss_mib"] = float64(rss) / (1 << 20)
	}
	if v, ok := metricValue(text, "corpintel_alerts_evaluation_duration_seconds"); ok {
		results["last_evaluation_ms"] = v * 1000
	}
	if v, ok := metricValue(text, "corpintel_metrics_history_series"); ok {
		results["history_series"] = v
	}
	results["test_s"] = time.Since(began).Seconds()
	js, _ := json.MarshalIndent(results, "", "  ")
	t.Logf("measurements:\n%s", js)
	if path := os.Getenv("CORPINTEL_E2E_RESULTS"); path != "" {
		if err := os.WriteFile(path, append(js, '\n'), 0o600); err != nil {
			t.Error(err)
		}
	}
}
