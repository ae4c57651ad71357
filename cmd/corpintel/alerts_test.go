package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/db"
	"github.com/corpintel/corpintel/supervisor/alerts"
	"github.com/corpintel/corpintel/supervisor/alerts/notify"
	"github.com/corpintel/corpintel/supervisor/health"
	"github.com/corpintel/corpintel/supervisor/localapi"
)

var fakeNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func (f *fakeOps) Alerts(context.Context) (alerts.Snapshot, error) {
	return alerts.Snapshot{At: fakeNow,
		Active: []alerts.Alert{
			{Rule: "APIDown", State: alerts.StateFiring, FiredAt: fakeNow.Add(-3 * time.Minute), Labels: alerts.Labels{"alertname": "APIDown", "severity": "critical"},
				Annotations: alerts.Labels{"summary": "the API failed 3 health checks in a row"}},
			{Rule: "DiskSpaceLow", State: alerts.StateFiring, FiredAt: fakeNow.Add(-time.Minute), MutedBy: "silenced by s1",
				Labels: alerts.Labels{"alertname": "DiskSpaceLow", "severity": "warning", "mount": "/var/backups"}},
		},
		Recent:   []alerts.Alert{{Rule: "RedisDown", State: alerts.StateResolved, ResolvedAt: fakeNow.Add(-time.Hour), Labels: alerts.Labels{"severity": "critical", "service": "redis"}}},
		Silences: []alerts.SilenceView{{Silence: alerts.Silence{ID: "s1", EndsAt: fakeNow.Add(time.Hour), CreatedBy: "root", Comment: "disk on order"}, Status: "active"}},
		Channels: []notify.ChannelStatus{{Name: "mail", Type: "email", Sent: 3}, {Name: "pd", Type: "pagerduty", ConsecutiveFailures: 2, Failed: 2, LastError: "503"}},
	}, nil
}

func (f *fakeOps) Silence(_ context.Context, req alerts.SilenceRequest) (alerts.Silence, error) {
	if req.Rule == "Nope" {
		return alerts.Silence{}, &localapi.RequestError{Msg: `silence refused: no rule named "Nope"`}
	}
	f.silenced = req
	return alerts.Silence{ID: "s2", EndsAt: fakeNow.Add(req.For), CreatedBy: req.Author}, nil
}

func (f *fakeOps) Unsilence(_ context.Context, id string) (alerts.Silence, error) {
	if id != "s1" {
		return alerts.Silence{}, &localapi.RequestError{Msg: "no such silence"}
	}
	return alerts.Silence{ID: id}, nil
}

func (f *fakeOps) TestChannel(_ context.Context, ch string) (notify.Result, error) {
	switch ch {
	case "mail":
		return notify.Result{Channel: ch, OK: true, Attempts: 1}, nil
	case "pd":
		return notify.Result{Channel: ch, OK: false, Attempts: 3, Error: "503 Service Unavailable"}, nil
	}
	return notify.Result{}, &localapi.RequestError{Msg: "unknown channel"}
}

func (f *fakeOps) PrometheusRules(context.Context) ([]byte, error) {
	return []byte("groups: []\n"), nil
}

func TestAlertVerbs(t *testing.T) {
	ops, sock := startFakeSupervisor(t)
	cases := []struct {
		args    []string
		code    int
		out     string
		errText string
	}{
		{[]string{"alerts", "--socket", sock}, 0, "firing (muted)", ""},
		{[]string{"alerts", "--json", "--socket", sock}, 0, `"rule": "APIDown"`, ""},
		{[]string{"alerts", "silence", "APIDown", "--for", "2h", "--comment", "deploying", "--socket", sock}, 0, "silence s2:", ""},
		{[]string{"alerts", "silence", "--match", `mount="/"`, "--for", "3d", "--comment", "x", "--socket", sock}, 0, "silence s2", ""},
		{[]string{"alerts", "silence", "APIDown", "--comment", "x", "--socket", sock}, 2, "", "--for is required"},
		{[]string{"alerts", "silence", "APIDown", "--for", "soon", "--comment", "x", "--socket", sock}, 2, "", "like 30m, 2h or 3d"},
		{[]string{"alerts", "silence", "APIDown", "--for", "1h", "--socket", sock}, 2, "", "--comment is required"},
		{[]string{"alerts", "silence", "--for", "1h", "--comment", "x", "--socket", sock}, 2, "", "name a rule"},
		{[]string{"alerts", "silence", "Nope", "--for", "1h", "--comment", "x", "--socket", sock}, 2, "", `no rule named "Nope"`},
		{[]string{"alerts", "unsilence", "s1", "--socket", sock}, 0, "silence s1 ended", ""},
		{[]string{"alerts", "unsilence", "zz", "--socket", sock}, 2, "", "no such silence"},
		{[]string{"alerts", "test", "--channel", "mail", "--socket", sock}, 0, "delivered through mail (1 attempt(s))", ""},
		{[]string{"alerts", "test", "--channel", "pd", "--socket", sock}, 1, "", "failed after 3 attempt(s): 503"},
		{[]string{"alerts", "test", "--channel", "zz", "--socket", sock}, 2, "", "unknown channel"},
		{[]string{"alerts", "test", "--socket", sock}, 2, "", "--channel is required"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), c.args, &out, &errb)
			if code != c.code || !strings.Contains(out.String(), c.out) || !strings.Contains(errb.String(), c.errText) {
				t.Errorf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, c.code, out.String(), errb.String())
			}
		})
	}
	if ops.silenced.For != 3*24*time.Hour || ops.silenced.Matchers[0] != `mount="/"` {
		t.Errorf("silence request %+v", ops.silenced)
	}
}

func TestWriteAlerts(t *testing.T) {
	ops := &fakeOps{}
	snap, _ := ops.Alerts(context.Background())
	snap.LastError = "read samples: metrics are stale"
	snap.Operation = &alerts.Operation{Kind: "restore", Started: fakeNow.Add(-time.Minute), ExpectedEnd: fakeNow.Add(time.Hour)}
	var b bytes.Buffer
	if err := writeAlerts(&b, snap, fakeNow); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"The last evaluation failed: read samples", "Operation restore running since", "expected to end",
		"firing          critical  APIDown", "3m00s ago", "  silenced by s1", "the API failed 3 health checks", "mount=/var/backups", "silenced by s1",
		"resolved  critical  RedisDown", "service=redis", "s1       active", "disk on order", "FAILING (2 in a row)", "mail     email"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := writeAlerts(&b, alerts.Snapshot{}, fakeNow); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "No active alerts.") || !strings.Contains(b.String(), "No notification channels are configured") {
		t.Errorf("empty: %s", b.String())
	}
}

func TestAlertExport(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(cfgPath, []byte("project = \"x\"\nstate_dir = \""+dir+"/state\"\n[alerts.rules.disk_space_low]\nthreshold = 0.8\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"alerts", "export", "--prometheus", "--config", cfgPath}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "corpintel_disk_used_ratio > 0.8") || !strings.Contains(out.String(), "alert: APIDown") {
		t.Errorf("rules:\n%s", out.String())
	}
	file := filepath.Join(dir, "rules.yml")
	out.Reset()
	if code := run(context.Background(), []string{"alerts", "export", "--prometheus", "--config", cfgPath, "-o", file}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if b, err := os.ReadFile(file); err != nil || !strings.Contains(string(b), "groups:") {
		t.Errorf("rule file: %v %s", err, b)
	}
	if code := run(context.Background(), []string{"alerts", "export", "--config", cfgPath}, &out, &errb); code != 2 {
		t.Errorf("no format: exit %d", code)
	}
	// A bad [alerts] table is a config error for every verb (exit 2), naming the key.
	if err := os.WriteFile(cfgPath, []byte("[alerts.rules.disk_space_low]\nthreshold = 85\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := run(context.Background(), []string{"alerts", "export", "--prometheus", "--config", cfgPath}, &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), `key "alerts.rules.disk_space_low.threshold"`) {
		t.Errorf("bad config: exit %d: %s", code, errb.String())
	}
	if code := run(context.Background(), []string{"alerts", "export", "--prometheus", "--config", cfgPath, "-o", filepath.Join(dir, "no", "dir", "f")}, &out, &errb); code == 0 {
		t.Error("wrote into a missing directory")
	}
}

// The supervisor reads the API's metrics by name without importing the API.
func TestAPIMetricNamesAgree(t *testing.T) {
	if health.APIQueryDurationName != db.QueryDurationName {
		t.Errorf("health reads %s, the API exports %s", health.APIQueryDurationName, db.QueryDurationName)
	}
}

func TestParseSilenceDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90m": 90 * time.Minute, "2d": 48 * time.Hour, "1h30m": 90 * time.Minute} {
		if got, err := parseSilenceDuration(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"0s", "-1h", "xd", "0d", ""} {
		if _, err := parseSilenceDuration(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
