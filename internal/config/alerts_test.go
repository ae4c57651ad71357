package config

import (
	"strings"
	"testing"
	"time"
)

// alertsShape stands in for the engine's config struct (internal/ cannot import it):
// nested tables, arrays of tables and a text-unmarshalled duration.
type alertsShape struct {
	EvaluationInterval Duration `toml:"evaluation_interval"`
	GroupBy            []string `toml:"group_by"`
	Rules              struct {
		APIDown struct {
			Failures int      `toml:"failures"`
			For      Duration `toml:"for"`
		} `toml:"api_down"`
	} `toml:"rules"`
	Channels []struct {
		Name string   `toml:"name"`
		Type string   `toml:"type"`
		To   []string `toml:"to"`
	} `toml:"channels"`
}

func TestDecodeAlerts(t *testing.T) {
	path := writeFile(t, `profile = "dev"
[alerts]
evaluation_interval = "2s"
group_by = ["alertname", "service"]
[alerts.rules.api_down]
failures = 5
for = "1m"
[[alerts.channels]]
name = "ops-mail"
type = "email"
to = ["ops@example.com"]
[[alerts.channels]]
name = "pd"
type = "pagerduty"
`)
	cfg, warn, err := Load(Options{Path: path})
	if err != nil || len(warn) > 0 {
		t.Fatalf("Load: %v %v", err, warn)
	}
	if !cfg.Alerts.IsSet() {
		t.Fatal("the [alerts] table was not kept")
	}
	var a alertsShape
	if err := cfg.DecodeAlerts(&a); err != nil {
		t.Fatal(err)
	}
	if a.EvaluationInterval != Duration(2*time.Second) || a.Rules.APIDown.Failures != 5 || a.Rules.APIDown.For != Duration(time.Minute) ||
		len(a.GroupBy) != 2 || len(a.Channels) != 2 || a.Channels[0].To[0] != "ops@example.com" || a.Channels[1].Type != "pagerduty" {
		t.Errorf("decoded %+v", a)
	}
	for _, k := range Keys() {
		if strings.HasPrefix(k, "alerts") {
			t.Errorf("alerts key %q got an environment override", k)
		}
	}
}

func TestDecodeAlertsWithoutTable(t *testing.T) {
	cfg := Default("dev")
	a := alertsShape{GroupBy: []string{"kept"}}
	if err := cfg.DecodeAlerts(&a); err != nil || a.GroupBy[0] != "kept" || cfg.Alerts.IsSet() {
		t.Fatalf("no table: %v %+v", err, a)
	}
}

func TestDecodeAlertsErrors(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"unknown key", "[alerts]\nevaluation_intervall = \"2s\"\n", `key "alerts.evaluation_intervall": unknown key`},
		{"unknown nested key", "[alerts.rules.api_down]\nfailure = 3\n", `key "alerts.rules.api_down.failure": unknown key`},
		{"wrong type", "[alerts.rules.api_down]\nfailures = \"three\"\n", `key "alerts.rules.api_down.failures"`},
		{"bad duration", "[alerts]\nevaluation_interval = \"soon\"\n", `must be a duration like 90s`},
		{"unknown channel key", "[[alerts.channels]]\nname = \"x\"\nsecret = \"s\"\n", `unknown key`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, _, err := Load(Options{Path: writeFile(t, c.body)})
			if err != nil {
				t.Fatalf("Load refused what only the engine can judge: %v", err)
			}
			var a alertsShape
			err = cfg.DecodeAlerts(&a)
			if err == nil || !IsConfigError(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("DecodeAlerts = %v, want a config error with %q", err, c.want)
			}
			if !strings.Contains(err.Error(), cfg.File) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestAlertsFromTOML(t *testing.T) {
	al, err := AlertsFromTOML("group_wait = \"1s\"\n[rules.api_down]\nfailures = 2\n")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Default("dev")
	cfg.Alerts = al
	var a alertsShape
	if err := cfg.DecodeAlerts(&a); err == nil || !strings.Contains(err.Error(), `"alerts.group_wait": unknown key`) {
		t.Fatalf("DecodeAlerts = %v", err)
	}
	if a.Rules.APIDown.Failures != 2 {
		t.Errorf("failures = %d", a.Rules.APIDown.Failures)
	}
	if _, err := AlertsFromTOML("x = "); err == nil {
		t.Error("bad TOML accepted")
	}
	if _, _, err := Load(Options{Path: writeFile(t, "alerts = 3\n")}); err == nil {
		t.Error("a non-table accepted")
	}
	if err := (&Config{Alerts: Alerts{"c": make(chan int)}}).DecodeAlerts(&a); err == nil {
		t.Error("an unencodable table decoded")
	}
}

func TestMetricsConfig(t *testing.T) {
	cfg, _, err := Load(Options{Path: writeFile(t, "[metrics]\ninterval = \"2s\"\ndisk_paths = [\"/srv/data\"]\n")})
	if err != nil || cfg.Metrics.Interval != Duration(2*time.Second) || cfg.Metrics.DiskPaths[0] != "/srv/data" {
		t.Fatalf("Load: %v %+v", err, cfg.Metrics)
	}
	if d := Default("prod").Metrics; d.Interval != Duration(15*time.Second) || d.StartGrace != Duration(5*time.Minute) {
		t.Errorf("default interval %s", d)
	}
	cfg, _, err = Load(Options{Path: writeFile(t, ""), Environ: []string{"CORPINTEL_METRICS_INTERVAL=5s", "CORPINTEL_METRICS_DISK_PATHS=/a,/b"}})
	if err != nil || cfg.Metrics.Interval != Duration(5*time.Second) || len(cfg.Metrics.DiskPaths) != 2 {
		t.Fatalf("env: %v %+v", err, cfg.Metrics)
	}
	for body, want := range map[string]string{
		"[metrics]\ninterval = \"100ms\"\n":        `key "metrics.interval": must be between 1s and 5m, got 100ms`,
		"[metrics]\ninterval = \"1h\"\n":           `key "metrics.interval"`,
		"[metrics]\ndisk_paths = [\"relative\"]\n": `key "metrics.disk_paths": entry 0 must be an absolute path`,
	} {
		if _, _, err := Load(Options{Path: writeFile(t, body)}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
}
