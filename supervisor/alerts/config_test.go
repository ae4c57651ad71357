package alerts

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/corpintel/corpintel/supervisor/alerts/notify"
)

func TestDefaultsValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	c := Config{}.WithDefaults()
	r := c.Rules
	// The seed's table.
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"api_down failures", r.APIDown.Failures, 3},
		{"api_down severity", r.APIDown.Severity, "critical"},
		{"high_error_rate", r.HighErrorRate.Threshold, 0.01},
		{"high_error_rate for", r.HighErrorRate.For.D(), 5 * time.Minute},
		{"disk_space_low", r.DiskSpaceLow.Threshold, 0.85},
		{"disk_space_low severity", r.DiskSpaceLow.Severity, "warning"},
		{"database_slow", r.DatabaseSlow.Threshold, 1.0},
		{"database_slow for", r.DatabaseSlow.For.D(), 10 * time.Minute},
		{"memory_high", r.MemoryHigh.Threshold, 0.90},
		{"memory_high for", r.MemoryHigh.For.D(), 5 * time.Minute},
		{"backup_failed", r.BackupFailed.MaxAge.D(), 25 * time.Hour},
		{"backup_failed severity", r.BackupFailed.Severity, "critical"},
		{"drill", r.RestoreDrillMissing.MaxAge.D(), 8 * 24 * time.Hour},
		{"forecast", r.DiskFullForecast.Horizon.D(), 72 * time.Hour},
		{"group_wait", c.GroupWait.D(), 30 * time.Second},
		{"group_interval", c.GroupInterval.D(), 5 * time.Minute},
		{"repeat_interval", c.RepeatInterval.D(), 4 * time.Hour},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

// A TOML file overrides single keys; everything else keeps its default.
func TestConfigFromTOML(t *testing.T) {
	const file = `
group_wait = "10s"
[rules.disk_space_low]
threshold = 0.9
severity = "critical"
[rules.memory_high]
disabled = true
[rules.certificate_expiring]
stages_days = [30, 7]
stage_severities = ["warning", "critical"]
[[channels]]
name = "ops-mail"
type = "email"
smtp_host = "smtp.example.com"
from = "corpintel@example.com"
to = ["ops@example.com"]
[[routes]]
name = "all"
channels = ["ops-mail"]
`
	var c Config
	if _, err := toml.Decode(file, &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c = c.WithDefaults()
	if c.GroupWait.D() != 10*time.Second || c.GroupInterval.D() != 5*time.Minute {
		t.Errorf("timers = %s/%s", c.GroupWait.D(), c.GroupInterval.D())
	}
	if c.Rules.DiskSpaceLow.Threshold != 0.9 || c.Rules.DiskSpaceLow.Severity != "critical" || c.Rules.DiskSpaceLow.For != 0 {
		t.Errorf("disk_space_low = %+v", c.Rules.DiskSpaceLow)
	}
	for _, r := range BuildRules(c.Rules) {
		if r.Name == "MemoryHigh" {
			t.Error("disabled rule built")
		}
	}
	var bad Duration
	if err := bad.UnmarshalText([]byte("5 minutes")); err == nil {
		t.Error("bad duration accepted")
	}
	if b, _ := Duration(90 * time.Second).MarshalText(); string(b) != "1m30s" {
		t.Errorf("MarshalText = %s", b)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*Config)
		key  string
		want string
	}{
		{"threshold over 1", func(c *Config) { c.Rules.DiskSpaceLow.Threshold = 85 }, "rules.disk_space_low.threshold", "0.85 is 85 %"},
		{"severity", func(c *Config) { c.Rules.APIDown.Severity = "page" }, "rules.api_down.severity", "info, warning or critical"},
		{"negative for", func(c *Config) { c.Rules.MemoryHigh.For = -1 }, "rules.memory_high.for", "negative"},
		{"negative keep", func(c *Config) { c.Rules.MemoryHigh.KeepFiringFor = -1 }, "rules.memory_high.keep_firing_for", "negative"},
		{"failures", func(c *Config) { c.Rules.APIDown.Failures = -2 }, "rules.api_down.failures", "at least 1"},
		{"error window", func(c *Config) { c.Rules.HighErrorRate.Window = -1 }, "rules.high_error_rate.window", "positive"},
		{"min requests", func(c *Config) { c.Rules.HighErrorRate.MinRequests = -1 }, "rules.high_error_rate.min_requests", "negative"},
		{"db seconds", func(c *Config) { c.Rules.DatabaseSlow.Threshold = -1 }, "rules.database_slow.threshold", "seconds"},
		{"forecast points", func(c *Config) { c.Rules.DiskFullForecast.MinPoints = 1 }, "rules.disk_full_forecast.min_points", "at least 2"},
		{"max age", func(c *Config) { c.Rules.BackupFailed.MaxAge = -1 }, "rules.backup_failed.max_age", "positive"},
		{"stages order", func(c *Config) { c.Rules.CertificateExpiring.StagesDays = []int{7, 14} }, "rules.certificate_expiring.stages_days[1]", "descending"},
		{"stages count", func(c *Config) {
			c.Rules.CertificateExpiring.StagesDays = []int{21, 7}
			c.Rules.CertificateExpiring.StageSeverities = []string{"info"}
		}, "rules.certificate_expiring.stage_severities", "one severity per stage"},
		{"stage severity", func(c *Config) {
			c.Rules.CertificateExpiring.StagesDays = []int{21}
			c.Rules.CertificateExpiring.StageSeverities = []string{"loud"}
		}, "rules.certificate_expiring.stage_severities[0]", "info, warning"},
		{"stage days", func(c *Config) {
			c.Rules.CertificateExpiring.StagesDays = []int{0}
			c.Rules.CertificateExpiring.StageSeverities = []string{"info"}
		}, "rules.certificate_expiring.stages_days[0]", "at least 1 day"},
		{"restarts", func(c *Config) { c.Rules.ContainerRestartLoop.Restarts = -1 }, "rules.container_restart_loop.restarts", "at least 1"},
		{"interval", func(c *Config) { c.EvaluationInterval = Duration(100 * time.Millisecond) }, "evaluation_interval", "at least 1s"},
		{"negative wait", func(c *Config) { c.GroupWait = -1 }, "group_wait", "positive"},
		{"repeat shorter", func(c *Config) { c.RepeatInterval = Duration(time.Minute) }, "repeat_interval", "group_interval"},
		{"flap threshold", func(c *Config) { c.FlapThreshold = 1 }, "flap_threshold", "at least 2"},
		{"group_by", func(c *Config) { c.GroupBy = []string{"bad-label"} }, "group_by[0]", "not a label name"},
		{"route channel", func(c *Config) { c.Routes = []RouteConfig{{Name: "r", Channels: []string{"nope"}}} }, "routes[0].channels[0]", `no channel named "nope"`},
		{"route name", func(c *Config) { c.Routes = []RouteConfig{{Name: "Bad Name"}} }, "routes[0].name", "lower-case"},
		{"route twice", func(c *Config) { c.Routes = []RouteConfig{{Name: "a"}, {Name: "a"}} }, "routes[1].name", "defined twice"},
		{"route matcher", func(c *Config) { c.Routes = []RouteConfig{{Name: "a", Matchers: []string{"severity=~\"(\""}}} }, "routes[0].matchers", "regular expression"},
		{"route timer", func(c *Config) { c.Routes = []RouteConfig{{Name: "a", GroupWait: -1}} }, "routes[0].group_wait", "negative"},
		{"inhibit empty", func(c *Config) { c.Inhibit = []InhibitConfig{{TargetMatchers: []string{"a=b"}}} }, "inhibit[0].source_matchers", "at least one"},
		{"inhibit target", func(c *Config) {
			c.Inhibit = []InhibitConfig{{SourceMatchers: []string{"a=b"}, TargetMatchers: []string{"oops"}}}
		}, "inhibit[0].target_matchers", "want name="},
		{"inhibit target empty", func(c *Config) { c.Inhibit = []InhibitConfig{{SourceMatchers: []string{"a=b"}}} }, "inhibit[0].target_matchers", "at least one"},
		{"inhibit source", func(c *Config) {
			c.Inhibit = []InhibitConfig{{SourceMatchers: []string{"1a=b"}, TargetMatchers: []string{"a=b"}}}
		}, "inhibit[0].source_matchers", "want name="},
		{"held rule", func(c *Config) { c.MaintenanceHeld = []string{"APIDwn"} }, "maintenance_held[0]", `no rule named "APIDwn"`},
		{"channel twice", func(c *Config) {
			c.Channels = []ChannelConfig{{Name: "x", Type: "slack", URLFile: "/f"}, {Name: "x", Type: "slack", URLFile: "/f"}}
		}, "channels[1].name", "defined twice"},
		{"channel type", func(c *Config) { c.Channels = []ChannelConfig{{Name: "x", Type: "sms"}} }, "channels[0].type", "pagerduty, slack"},
		{"pd key", func(c *Config) { c.Channels = []ChannelConfig{{Name: "x", Type: "pagerduty"}} }, "channels[0].routing_key_file", "required"},
		{"slack url in config", func(c *Config) {
			c.Channels = []ChannelConfig{{Name: "x", Type: "slack", URLFile: "/f", URL: "https://hooks.slack.com/services/T/B/SECRET"}}
		}, "channels[0].url", "secret"},
		{"email from", func(c *Config) {
			c.Channels = []ChannelConfig{{Name: "x", Type: "email", SMTPHost: "h", From: "nobody", To: []string{"a@b.c"}}}
		}, "channels[0].from", "e-mail address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			tt.cfg(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			var found bool
			for _, e := range flatten(err) {
				var ce *ConfigError
				if errors.As(e, &ce) && ce.Key == tt.key && strings.Contains(ce.Problem, tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("want key %q with %q, got: %v", tt.key, tt.want, err)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("the error shows the secret URL: %v", err)
			}
		})
	}
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func TestDefaultRoutesByType(t *testing.T) {
	chans := append(testChannels(), ChannelConfig{Name: "hook", Type: notify.TypeWebhook, URL: "https://example.com/h"})
	routes := DefaultRoutes(chans)
	want := map[string]string{"critical": "pd,mail,hook", "warning": "mail,chat,hook", "info": "chat,hook"}
	for _, r := range routes {
		if got := strings.Join(r.Channels, ","); got != want[r.Name] {
			t.Errorf("route %s → %s, want %s", r.Name, got, want[r.Name])
		}
	}
}
