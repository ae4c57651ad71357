package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/corpintel/corpintel/supervisor/alerts/notify"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// endpoint is a local HTTP server standing in for PagerDuty, Slack or a webhook.
type endpoint struct {
	mu     sync.Mutex
	bodies []map[string]any
	status int
	srv    *httptest.Server
}

func newEndpoint(t *testing.T, status int) *endpoint {
	e := &endpoint{status: status}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var v map[string]any
		_ = json.Unmarshal(b, &v)
		e.mu.Lock()
		e.bodies = append(e.bodies, v)
		code := e.status
		e.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) got() []map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]map[string]any(nil), e.bodies...)
}

func (e *endpoint) setStatus(code int) {
	e.mu.Lock()
	e.status = code
	e.mu.Unlock()
}

// rig is an engine over real channels (local PagerDuty/Slack/webhook endpoints, mailpit)
// and a real SQLite file; the test drives its clock and samples.
type rig struct {
	t         *testing.T
	clock     *clock
	dbPath    string
	pd, slack *endpoint
	hook      *endpoint
	mail      *testenv.Mailpit
	cfg       Config
	mu        sync.Mutex
	samples   Samples
	srcErr    error
	eng       *Engine
	reg       *prometheus.Registry
	stop      func()
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, clock: &clock{t: t0}, dbPath: filepath.Join(t.TempDir(), "state.db"),
		pd: newEndpoint(t, http.StatusAccepted), slack: newEndpoint(t, http.StatusOK), hook: newEndpoint(t, http.StatusOK)}
	r.mail = testenv.MailpitServer(t, testenv.MailpitOptions{})
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := writeFile(p, v); err != nil {
			t.Fatal(err)
		}
		return p
	}
	r.cfg = Config{
		ExternalURL: "https://corp.example.com/admin/alerts",
		Channels: []ChannelConfig{
			{Name: "pagerduty", Type: notify.TypePagerDuty, URL: r.pd.srv.URL + "/v2/enqueue", RoutingKeyFile: write("pd-key", "0123456789abcdef0123456789abcdef\n")},
			{Name: "slack", Type: notify.TypeSlack, URLFile: write("slack-url", r.slack.srv.URL+"/services/T0/B0/SECRET")},
			{Name: "email", Type: notify.TypeEmail, SMTPHost: r.mail.SMTPHost, SMTPPort: r.mail.SMTPPort, TLS: notify.TLSNone,
				From: "corpintel@corp.example.com", To: []string{"ops@corp.example.com"}},
			{Name: "hook", Type: notify.TypeWebhook, URL: r.hook.srv.URL},
		},
	}
	r.setHealthy()
	return r
}

func (r *rig) setHealthy() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now()
	r.samples = Samples{At: now}
	r.samples.Set(MetricAPIHealthFailures, nil, 0)
	r.samples.Set(MetricBackupLastSuccess, nil, float64(now.Unix()))
	r.samples.Set(MetricDrillLastSuccess, nil, float64(now.Unix()))
}

func (r *rig) set(name string, l Labels, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples.At = r.clock.Now()
	for i := range r.samples.Series {
		if r.samples.Series[i].Name == name && r.samples.Series[i].Labels.String() == l.String() {
			r.samples.Series[i].Points = []Point{{T: r.clock.Now(), V: v}}
			return
		}
	}
	r.samples.Set(name, l, v)
}

func (r *rig) Samples(context.Context) (Samples, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srcErr != nil {
		return Samples{}, r.srcErr
	}
	out := Samples{At: r.samples.At}
	for _, sr := range r.samples.Series {
		sr.Points = slices.Clone(sr.Points)
		out.Series = append(out.Series, sr)
	}
	return out, nil
}

// start builds an engine on the rig's database file and runs it.
func (r *rig) start() *Engine {
	r.t.Helper()
	db := openDB(r.t, r.dbPath)
	r.reg = prometheus.NewRegistry()
	eng, err := New(context.Background(), Options{Config: r.cfg, Source: r, Store: NewSQLStore(db), Registerer: r.reg,
		Now: r.clock.Now, Ticks: make(chan time.Time), Backoff: notify.Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond, Attempts: 3}})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = eng.Run(ctx)
		close(done)
	}()
	r.eng = eng
	r.stop = func() {
		cancel()
		<-done
		db.Close()
	}
	r.t.Cleanup(r.stop)
	return eng
}

// cycle advances the clock to t0+d, evaluates, and waits until every delivery it
// started has reported back.
func (r *rig) cycle(d time.Duration) {
	r.t.Helper()
	r.clock.Set(t0.Add(d))
	if err := r.eng.Cycle(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		busy := false
		for _, l := range r.eng.State().Log {
			if l.Pending != nil {
				busy = true
			}
		}
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("deliveries still under way after 20s: %s", js(r.eng.State().Log))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// API Down on every channel of its route, exactly once; a restart on the same database
// neither loses the alert nor sends it again; the resolve carries the same dedup key.
func TestEngineDeliversOnceAcrossRestart(t *testing.T) {
	r := newRig(t)
	eng := r.start()
	r.set(MetricAPIHealthFailures, nil, 3)
	r.cycle(0)
	r.cycle(15 * time.Second)
	if n := len(r.pd.got()); n != 0 {
		t.Fatalf("sent before group_wait: %d", n)
	}
	r.cycle(30 * time.Second)
	if n := len(r.pd.got()); n != 1 {
		t.Fatalf("pagerduty got %d events, want 1", n)
	}
	mails := r.mail.WaitMessages(t, 1, 10*time.Second)
	if mails[0].Subject != "[FIRING:1] APIDown (critical)" {
		t.Errorf("mail subject %q", mails[0].Subject)
	}
	if n := len(r.hook.got()); n != 1 {
		t.Errorf("webhook got %d, want 1", n)
	}
	if n := len(r.slack.got()); n != 0 {
		t.Errorf("slack got %d critical notifications, want none (critical → pagerduty + email)", n)
	}
	snap := eng.Active()
	if len(snap.Active) != 1 || snap.Active[0].Rule != "APIDown" || snap.Active[0].State != StateFiring {
		t.Fatalf("Active = %+v", snap.Active)
	}
	if _, err := json.Marshal(snap); err != nil {
		t.Fatal(err)
	}

	r.stop()
	eng = r.start()
	if a := eng.Active().Active; len(a) != 1 || a[0].Rule != "APIDown" {
		t.Fatalf("after restart Active = %+v", a)
	}
	if st := eng.ChannelStatus(); !hasChannel(st, "pagerduty", func(s notify.ChannelStatus) bool { return s.Sent == 1 && !s.LastSuccess.IsZero() }) {
		t.Errorf("channel status not restored: %+v", st)
	}
	for _, d := range []time.Duration{time.Minute, 6 * time.Minute, 11 * time.Minute} {
		r.cycle(d)
	}
	if n := len(r.pd.got()); n != 1 {
		t.Fatalf("after restart pagerduty got %d events, want still 1", n)
	}
	if n := len(r.mail.Messages(t)); n != 1 {
		t.Fatalf("after restart mailpit holds %d mails, want still 1", n)
	}

	r.set(MetricAPIHealthFailures, nil, 0)
	r.cycle(12 * time.Minute)
	r.cycle(16*time.Minute + 30*time.Second)
	ev := r.pd.got()
	if len(ev) != 2 || ev[0]["event_action"] != "trigger" || ev[1]["event_action"] != "resolve" || ev[0]["dedup_key"] != ev[1]["dedup_key"] {
		t.Fatalf("pagerduty events %v", ev)
	}
	// Mailpit orders by arrival time, which for two mails milliseconds apart may tie:
	// look the resolve up by subject.
	mails = r.mail.WaitMessages(t, 2, 10*time.Second)
	if !slices.ContainsFunc(mails, func(m testenv.MailMessage) bool { return m.Subject == "[RESOLVED] APIDown (critical)" }) {
		t.Errorf("no resolve mail among %+v", mails)
	}
	hooks := r.hook.got()
	if len(hooks) != 2 || hooks[1]["status"] != "resolved" || hooks[1]["version"] != "4" {
		t.Errorf("webhook payloads %v", hooks)
	}
	// Each channel records its delivery after sending, on its own goroutine: wait for
	// the last one (a loaded machine may take a moment).
	var deliveries []notify.Result
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if deliveries, err = eng.Deliveries(context.Background(), 10); err != nil || len(deliveries) >= 6 {
			break
		}
	}
	if err != nil || len(deliveries) != 6 {
		t.Errorf("delivery history %d entries (%v), want 6", len(deliveries), err)
	}
	if got := testutil.ToFloat64(eng.evals); got < 4 {
		t.Errorf("evaluations counter %v", got)
	}
}

func hasChannel(st []notify.ChannelStatus, name string, ok func(notify.ChannelStatus) bool) bool {
	for _, s := range st {
		if s.Name == name {
			return ok(s)
		}
	}
	return false
}

// A channel that keeps failing is visible and does not hold up the others; once it
// recovers, the next flush delivers what it missed.
func TestEngineFailingChannel(t *testing.T) {
	r := newRig(t)
	r.hook.setStatus(http.StatusInternalServerError)
	eng := r.start()
	r.set(MetricServiceUp, Labels{"service": "redis"}, 0)
	r.cycle(0)
	r.cycle(time.Minute)
	r.cycle(time.Minute + 30*time.Second)
	if len(r.pd.got()) != 1 {
		t.Fatalf("pagerduty got %d", len(r.pd.got()))
	}
	if !hasChannel(eng.ChannelStatus(), "hook", func(s notify.ChannelStatus) bool {
		return !s.Healthy() && strings.Contains(s.LastError, "500")
	}) {
		t.Errorf("failing channel not visible: %+v", eng.ChannelStatus())
	}
	if n, err := testutil.GatherAndCount(r.reg, "corpintel_alerts_notifications_failed_total"); err != nil || n != 4 {
		t.Errorf("failed counter series %d (%v)", n, err)
	}
	r.hook.setStatus(http.StatusOK)
	r.cycle(6*time.Minute + 30*time.Second)
	if got := r.hook.got(); len(got) != 3+1 || got[3]["status"] != "firing" {
		t.Errorf("webhook got %d payloads (3 failed attempts + 1), last %v", len(got), got[len(got)-1])
	}
	if len(r.pd.got()) != 1 {
		t.Errorf("pagerduty re-sent: %d", len(r.pd.got()))
	}
}

// Silences through the engine: validated, persisted across a restart, lifted early.
func TestEngineSilences(t *testing.T) {
	r := newRig(t)
	eng := r.start()
	ctx := context.Background()
	bad := []SilenceRequest{
		{Rule: "APIDwn", For: time.Hour, Comment: "c", Author: "a"},
		{For: time.Hour, Comment: "c", Author: "a"},
		{Rule: "APIDown", For: 0, Comment: "c", Author: "a"},
		{Rule: "APIDown", For: time.Hour, Author: "a"},
		{Rule: "APIDown", For: time.Hour, Comment: "c"},
		{Matchers: []string{"mount=~\"(\""}, For: time.Hour, Comment: "c", Author: "a"},
	}
	for _, req := range bad {
		if _, err := eng.Silence(ctx, req); err == nil || !strings.Contains(err.Error(), "silence refused") {
			t.Errorf("%+v: %v", req, err)
		}
	}
	sl, err := eng.Silence(ctx, SilenceRequest{Rule: "APIDown", For: 2 * time.Hour, Comment: "upgrading the API", Author: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if sl.Matchers.String() != `{alertname="APIDown"}` || !sl.EndsAt.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("silence %+v", sl)
	}
	r.set(MetricAPIHealthFailures, nil, 5)
	r.cycle(0)
	r.cycle(time.Minute)
	if len(r.pd.got()) != 0 {
		t.Fatal("silenced alert sent")
	}
	r.stop()
	eng = r.start()
	snap := eng.Active()
	if len(snap.Silences) != 1 || snap.Silences[0].Status != SilenceActive || snap.Silences[0].CreatedBy != "alice" {
		t.Fatalf("silences after restart %+v", snap.Silences)
	}
	if !strings.HasPrefix(snap.Active[0].MutedBy, "silenced by ") {
		t.Errorf("alert not shown as silenced: %+v", snap.Active[0])
	}
	if _, err := eng.Unsilence(ctx, "nope"); !errors.Is(err, ErrNoSilence) {
		t.Errorf("Unsilence unknown: %v", err)
	}
	if got, err := eng.Unsilence(ctx, sl.ID); err != nil || got.Status(r.clock.Now()) != SilenceExpired {
		t.Fatalf("Unsilence: %+v %v", got, err)
	}
	if _, err := eng.Unsilence(ctx, sl.ID); err != nil {
		t.Errorf("second Unsilence: %v", err)
	}
	r.cycle(2 * time.Minute)
	r.cycle(2*time.Minute + 30*time.Second)
	if len(r.pd.got()) != 1 {
		t.Errorf("after unsilence pagerduty got %d, want 1", len(r.pd.got()))
	}
}

// `corpintel alerts test --channel NAME`: every channel kind, PagerDuty's test incident
// resolved right after.
func TestEngineTestChannel(t *testing.T) {
	r := newRig(t)
	eng := r.start()
	ctx := context.Background()
	for _, ch := range eng.Channels() {
		if res, err := eng.TestChannel(ctx, ch); err != nil || !res.OK {
			t.Errorf("test %s: %+v %v", ch, res, err)
		}
	}
	ev := r.pd.got()
	if len(ev) != 2 || ev[0]["event_action"] != "trigger" || ev[1]["event_action"] != "resolve" || ev[0]["dedup_key"] != ev[1]["dedup_key"] {
		t.Errorf("pagerduty test events %v", ev)
	}
	if s := r.slack.got(); len(s) != 1 || !strings.HasPrefix(s[0]["text"].(string), "[TEST]") {
		t.Errorf("slack test %v", s)
	}
	if m := r.mail.WaitMessages(t, 1, 10*time.Second); !strings.HasPrefix(m[0].Subject, "[TEST] [FIRING:1] CorpintelTest") {
		t.Errorf("mail subject %q", m[0].Subject)
	}
	if _, err := eng.TestChannel(ctx, "sms"); !errors.Is(err, notify.ErrUnknownChannel) {
		t.Errorf("unknown channel: %v", err)
	}
	r.slack.setStatus(http.StatusNotFound)
	if _, err := eng.TestChannel(ctx, "slack"); err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("failing test: %v", err)
	}
}

// A failing sample source changes nothing (a broken collector must not resolve alerts)
// and is counted and shown.
func TestEngineSourceFailure(t *testing.T) {
	r := newRig(t)
	eng := r.start()
	r.set(MetricAPIHealthFailures, nil, 3)
	r.cycle(0)
	r.mu.Lock()
	r.srcErr = errors.New("collector broke")
	r.mu.Unlock()
	r.clock.Set(t0.Add(time.Minute))
	if err := eng.Cycle(context.Background()); err == nil {
		t.Fatal("cycle with a broken source succeeded")
	}
	snap := eng.Active()
	if len(snap.Active) != 1 || !strings.Contains(snap.LastError, "collector broke") {
		t.Errorf("snapshot %+v", snap)
	}
	if got := testutil.ToFloat64(eng.evalFailures); got != 1 {
		t.Errorf("failures counter %v", got)
	}
}

type fixedOp struct{ op *Operation }

func (f fixedOp) CurrentOperation(context.Context) (*Operation, error) { return f.op, nil }

func TestEngineOptions(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, "")
	src := SampleSourceFunc(func(context.Context) (Samples, error) { return Samples{}, nil })
	if _, err := New(ctx, Options{Config: Config{}, Store: NewSQLStore(db)}); err == nil {
		t.Error("engine without a source built")
	}
	if _, err := New(ctx, Options{Config: Config{GroupWait: -1}, Source: src, Store: NewSQLStore(db)}); err == nil || !strings.Contains(err.Error(), "group_wait") {
		t.Errorf("bad config: %v", err)
	}
	if _, err := New(ctx, Options{Config: Config{CAFile: "/missing.pem", Channels: []ChannelConfig{{Name: "h", Type: "webhook", URL: "https://x"}}},
		Source: src, Store: NewSQLStore(db)}); err == nil {
		t.Error("missing CA bundle accepted")
	}
	reg := prometheus.NewRegistry()
	e, err := New(ctx, Options{Config: Config{}, Source: src, Store: NewSQLStore(db), Registerer: reg,
		Operations: fixedOp{&Operation{Kind: "restore", ExpectedEnd: time.Now().Add(time.Hour)}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, Options{Config: Config{}, Source: src, Store: NewSQLStore(db), Registerer: reg}); err == nil {
		t.Error("registering the metrics twice succeeded")
	}
	if err := e.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	if op := e.Active().Operation; op == nil || op.Kind != "restore" {
		t.Errorf("operation %+v", op)
	}
	out, err := e.ExportPrometheusRules()
	if err != nil || !strings.Contains(string(out), "alert: APIDown") {
		t.Errorf("export: %v", err)
	}
	db.Close()
	if err := e.Cycle(ctx); err == nil {
		t.Error("cycle with a closed store succeeded")
	}
	// Run with the real ticker stops with its context.
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if err := e.Run(ctx2); err != nil {
		t.Error(err)
	}
}
