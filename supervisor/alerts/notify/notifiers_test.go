package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a local HTTP endpoint that records what it receives and answers with the
// status codes it is given in turn (then 2xx).
type recorder struct {
	mu       sync.Mutex
	bodies   [][]byte
	headers  []http.Header
	codes    []int
	okStatus int
	srv      *httptest.Server
}

func newRecorder(t *testing.T, okStatus int, codes ...int) *recorder {
	r := &recorder{codes: codes, okStatus: okStatus}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.headers = append(r.headers, req.Header.Clone())
		code := r.okStatus
		if len(r.codes) > 0 {
			code, r.codes = r.codes[0], r.codes[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(code)
		if code == http.StatusBadRequest {
			_, _ = w.Write([]byte(`{"status":"invalid event","message":"Event object is invalid","errors":["'payload.summary' is missing"]}`))
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) received() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...)
}

func httpClient(t *testing.T) *http.Client {
	c, err := NewHTTPClient(HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkPagerDutyEvent checks an Events API v2 body against the documented schema.
func checkPagerDutyEvent(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("pagerduty body is not JSON: %v", err)
	}
	if k, _ := ev["routing_key"].(string); len(k) != 32 {
		t.Errorf("routing_key %q: want the 32-character integration key", k)
	}
	action, _ := ev["event_action"].(string)
	if action != "trigger" && action != "resolve" && action != "acknowledge" {
		t.Errorf("event_action %q", action)
	}
	if k, _ := ev["dedup_key"].(string); k == "" || len(k) > 255 {
		t.Errorf("dedup_key %q", k)
	}
	if action != "trigger" {
		return ev
	}
	p, ok := ev["payload"].(map[string]any)
	if !ok {
		t.Fatal("trigger without payload")
	}
	if s, _ := p["summary"].(string); s == "" || len([]rune(s)) > 1024 {
		t.Errorf("payload.summary %q", s)
	}
	if s, _ := p["source"].(string); s == "" {
		t.Error("payload.source missing")
	}
	switch p["severity"] {
	case "critical", "error", "warning", "info":
	default:
		t.Errorf("payload.severity %v", p["severity"])
	}
	if ts, _ := p["timestamp"].(string); ts != "" {
		if _, err := time.Parse(time.RFC3339, ts); err != nil {
			t.Errorf("payload.timestamp %q: %v", ts, err)
		}
	}
	return ev
}

func TestPagerDutyTriggerThenResolve(t *testing.T) {
	rec := newRecorder(t, http.StatusAccepted)
	key := "0123456789abcdef0123456789abcdef"
	pd := &PagerDuty{URL: rec.srv.URL + "/v2/enqueue", RoutingKeyFile: secretFile(t, key+"\n"), Client: httpClient(t)}
	ctx := context.Background()
	for _, status := range []string{StatusFiring, StatusResolved} {
		if retry, err := pd.Notify(ctx, testMessage("pd", status)); err != nil {
			t.Fatalf("%s: %v (retry %v)", status, err, retry)
		}
	}
	got := rec.received()
	if len(got) != 2 {
		t.Fatalf("received %d events, want 2", len(got))
	}
	trig, res := checkPagerDutyEvent(t, got[0]), checkPagerDutyEvent(t, got[1])
	if trig["event_action"] != "trigger" || res["event_action"] != "resolve" {
		t.Errorf("actions %v then %v", trig["event_action"], res["event_action"])
	}
	if trig["dedup_key"] != res["dedup_key"] || trig["dedup_key"] != "0123456789abcdef0123456789abcdef" {
		t.Errorf("dedup keys %v / %v", trig["dedup_key"], res["dedup_key"])
	}
	if p := trig["payload"].(map[string]any); p["severity"] != "critical" || !strings.Contains(p["summary"].(string), "APIDown") {
		t.Errorf("payload %v", p)
	}
	if _, ok := res["payload"]; ok {
		t.Error("resolve carries a payload")
	}
}

func TestPagerDutyErrors(t *testing.T) {
	ctx := context.Background()
	key := secretFile(t, "0123456789abcdef0123456789abcdef")
	tests := []struct {
		code      int
		wantRetry bool
		wantText  string
	}{
		{http.StatusBadRequest, false, "payload.summary"},
		{http.StatusTooManyRequests, true, "429"},
		{http.StatusInternalServerError, true, "500"},
		{http.StatusForbidden, false, "403"},
	}
	for _, tt := range tests {
		rec := newRecorder(t, tt.code)
		pd := &PagerDuty{URL: rec.srv.URL, RoutingKeyFile: key, Client: httpClient(t)}
		retry, err := pd.Notify(ctx, testMessage("pd", StatusFiring))
		if err == nil || retry != tt.wantRetry || !strings.Contains(err.Error(), tt.wantText) {
			t.Errorf("%d: retry %v err %v; want retry %v and %q", tt.code, retry, err, tt.wantRetry, tt.wantText)
		}
	}
	pd := &PagerDuty{URL: "http://127.0.0.1:1", RoutingKeyFile: "/nonexistent/key", Client: httpClient(t)}
	if retry, err := pd.Notify(ctx, testMessage("pd", StatusFiring)); err == nil || retry || !strings.Contains(err.Error(), "/nonexistent/key") {
		t.Errorf("missing key file: retry %v err %v", retry, err)
	}
	pd.RoutingKeyFile = key
	if retry, err := pd.Notify(ctx, testMessage("pd", StatusFiring)); err == nil || !retry {
		t.Errorf("refused connection: retry %v err %v", retry, err)
	}
}

func TestSlackPayload(t *testing.T) {
	rec := newRecorder(t, http.StatusOK)
	secretPath := rec.srv.URL + "/services/T000/B000/XXXXSECRETXXXX"
	s := &Slack{URLFile: secretFile(t, secretPath), Client: httpClient(t)}
	m := NewMessage("chat", "warning/{}", "k", nil, []Alert{
		testAlert("DiskSpaceLow", StatusFiring, map[string]string{"mount": "/var/<lib>"}),
		testAlert("MemoryHigh", StatusResolved, nil),
	})
	if _, err := s.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	var got SlackMessage
	if err := json.Unmarshal(rec.received()[0], &got); err != nil {
		t.Fatal(err)
	}
	if got.Text == "" || len(got.Blocks) != 2 || got.Blocks[0].Type != "header" || got.Blocks[0].Text.Type != "plain_text" ||
		len([]rune(got.Blocks[0].Text.Text)) > 150 || got.Blocks[1].Text.Type != "mrkdwn" {
		t.Fatalf("not an incoming-webhook message with a header and a section: %+v", got)
	}
	body := got.Blocks[1].Text.Text
	for _, want := range []string{":red_circle: *DiskSpaceLow*", ":large_green_circle: *MemoryHigh*", "mount=/var/&lt;lib&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("section lacks %q:\n%s", want, body)
		}
	}
	// A rejected webhook: the error names the host, never the secret path.
	bad := newRecorder(t, http.StatusNotFound)
	s.URLFile = secretFile(t, bad.srv.URL+"/services/T000/B000/XXXXSECRETXXXX")
	_, err := s.Notify(context.Background(), m)
	if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("error %v", err)
	}
	s.URLFile = secretFile(t, "http://127.0.0.1:1/services/T000/B000/XXXXSECRETXXXX")
	if _, err := s.Notify(context.Background(), m); err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("transport error %v", err)
	}
}

func TestWebhookAlertmanagerV4(t *testing.T) {
	rec := newRecorder(t, http.StatusOK)
	w := &Webhook{URL: rec.srv.URL + "/hook", BearerTokenFile: secretFile(t, "tok3n"), MaxAlerts: 1, Client: httpClient(t)}
	m := NewMessage("hook", `warning/{alertname="DiskSpaceLow"}`, "k", map[string]string{"alertname": "DiskSpaceLow"}, []Alert{
		testAlert("DiskSpaceLow", StatusFiring, map[string]string{"mount": "/"}),
		testAlert("DiskSpaceLow", StatusResolved, map[string]string{"mount": "/srv"}),
	})
	if _, err := w.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(rec.received()[0], &p); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "alerts"} {
		if _, ok := p[k]; !ok {
			t.Errorf("payload lacks %s", k)
		}
	}
	if p["version"] != "4" || p["status"] != "firing" || p["receiver"] != "hook" || p["truncatedAlerts"] != 1.0 {
		t.Errorf("payload %v", p)
	}
	alerts := p["alerts"].([]any)
	a := alerts[0].(map[string]any)
	for _, k := range []string{"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"} {
		if _, ok := a[k]; !ok {
			t.Errorf("alert lacks %s", k)
		}
	}
	if cl := p["commonLabels"].(map[string]any); cl["alertname"] != "DiskSpaceLow" || cl["mount"] != nil {
		t.Errorf("commonLabels %v", cl)
	}
	if h := rec.headers[0].Get("Authorization"); h != "Bearer tok3n" {
		t.Errorf("Authorization %q", h)
	}
	w2 := &Webhook{URLFile: secretFile(t, rec.srv.URL), Client: httpClient(t)}
	if _, err := w2.Notify(context.Background(), NewMessage("hook", "g", "k", nil, nil)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rec.received()[1]), `"alerts":[]`) {
		t.Errorf("empty alerts not []: %s", rec.received()[1])
	}
	for _, bad := range []*Webhook{{URLFile: "/missing", Client: httpClient(t)}, {URL: rec.srv.URL, BearerTokenFile: "/missing", Client: httpClient(t)}} {
		if retry, err := bad.Notify(context.Background(), m); err == nil || retry {
			t.Errorf("missing secret: retry %v err %v", retry, err)
		}
	}
}

func TestMessageText(t *testing.T) {
	m := NewMessage("mail", "g", "k", nil, []Alert{
		testAlert("MemoryHigh", StatusResolved, map[string]string{"severity": "warning"}),
		testAlert("APIDown", StatusFiring, nil),
	})
	m.ExternalURL = "https://x/admin"
	if m.Status != StatusFiring || m.Alerts[0].Name() != "APIDown" {
		t.Fatalf("status %s, first %s", m.Status, m.Alerts[0].Name())
	}
	if got := m.Title(); got != "[FIRING:1] APIDown, MemoryHigh (critical)" {
		t.Errorf("Title = %q", got)
	}
	text := m.Text()
	for _, want := range []string{"Firing (1):\n- APIDown: APIDown summary", "Resolved (1):\n- MemoryHigh", "resolved 2026-03-02T10:10:00Z", "Console: https://x/admin"} {
		if !strings.Contains(text, want) {
			t.Errorf("Text lacks %q:\n%s", want, text)
		}
	}
	m.Test = true
	if !strings.HasPrefix(m.Title(), "[TEST] ") {
		t.Errorf("test title %q", m.Title())
	}
	r := NewMessage("mail", "g", "k", nil, []Alert{testAlert("X", StatusResolved, map[string]string{"severity": "info"})})
	if r.Title() != "[RESOLVED] X (info)" || r.Severity() != "info" {
		t.Errorf("resolved title %q", r.Title())
	}
	empty := NewMessage("mail", "g", "k", nil, nil)
	if empty.Title() != "[RESOLVED] alerts" {
		t.Errorf("empty title %q", empty.Title())
	}
	if got := truncate(strings.Repeat("x", 10), 5); got != "xxxx…" {
		t.Errorf("truncate = %q", got)
	}
	if pagerDutySeverity("weird") != "error" {
		t.Error("unknown severity not mapped to error")
	}
}

func TestSecretFiles(t *testing.T) {
	if s, err := ReadSecretFile(secretFile(t, "  s3cret \n")); err != nil || s != "s3cret" {
		t.Errorf("ReadSecretFile = %q, %v", s, err)
	}
	for name, content := range map[string]string{"empty": " \n", "two lines": "a\nb\n"} {
		_, err := ReadSecretFile(secretFile(t, content))
		if err == nil || strings.Contains(err.Error(), content) && content != " \n" {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ReadSecretFile(""); err == nil {
		t.Error("empty path accepted")
	}
	redact := map[string]string{
		"https://hooks.slack.com/services/T/B/SECRET": "https://hooks.slack.com/[redacted]",
		"https://example.com":                         "https://example.com",
		"https://example.com/?token=x":                "https://example.com/[redacted]",
		"https://user:pw@example.com":                 "https://example.com/[redacted]",
		"::not a url":                                 "[redacted URL]",
	}
	for in, want := range redact {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%s) = %s, want %s", in, got, want)
		}
	}
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestBuildPagerDutyEventShape(t *testing.T) {
	ev := BuildPagerDutyEvent(testMessage("pd", StatusFiring), strings.Repeat("a", 32), "")
	if ev.Payload.Source != "corpintel" || ev.Client != "corpintel" || !hex32.MatchString(ev.DedupKey) {
		t.Errorf("event %+v", ev)
	}
	long := testMessage("pd", StatusFiring)
	long.Alerts[0].Annotations["summary"] = strings.Repeat("s", 3000)
	if n := len([]rune(BuildPagerDutyEvent(long, "k", "x").Payload.Summary)); n > 1024 {
		t.Errorf("summary %d characters", n)
	}
}
