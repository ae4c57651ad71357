package notify

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestChannelConfigValidate(t *testing.T) {
	good := []ChannelConfig{
		{Name: "pd", Type: TypePagerDuty, RoutingKeyFile: "/k", URL: "https://events.eu.pagerduty.com/v2/enqueue"},
		{Name: "chat", Type: TypeSlack, URLFile: "/u"},
		{Name: "hook", Type: TypeWebhook, URL: "http://am.internal:9093/api/v2/alerts"},
		{Name: "hook-2", Type: TypeWebhook, URLFile: "/u", MaxAlerts: 5},
		{Name: "mail", Type: TypeEmail, SMTPHost: "smtp", From: "a@b.c", To: []string{"x@y.z"}, Username: "u", PasswordFile: "/p", TLS: TLSImplicit},
	}
	for _, c := range good {
		if err := c.Validate("channels[0]"); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
	bad := []struct {
		c   ChannelConfig
		key string
	}{
		{ChannelConfig{Name: "", Type: TypeSlack, URLFile: "/u"}, "c.name"},
		{ChannelConfig{Name: "x", Type: TypeSlack, URLFile: "/u", Timeout: -1}, "c.timeout"},
		{ChannelConfig{Name: "x", Type: TypePagerDuty, RoutingKeyFile: "/k", URL: "ftp://x"}, "c.url"},
		{ChannelConfig{Name: "x", Type: TypeSlack}, "c.url_file"},
		{ChannelConfig{Name: "x", Type: TypeWebhook}, "c.url"},
		{ChannelConfig{Name: "x", Type: TypeWebhook, URL: "https://a", URLFile: "/u"}, "c.url"},
		{ChannelConfig{Name: "x", Type: TypeWebhook, URL: "https://a", MaxAlerts: -1}, "c.max_alerts"},
		{ChannelConfig{Name: "x", Type: TypeEmail, From: "a@b.c", To: []string{"x@y.z"}}, "c.smtp_host"},
		{ChannelConfig{Name: "x", Type: TypeEmail, SMTPHost: "h", SMTPPort: 70000, From: "a@b.c", To: []string{"x@y.z"}}, "c.smtp_port"},
		{ChannelConfig{Name: "x", Type: TypeEmail, SMTPHost: "h", TLS: "ssl", From: "a@b.c", To: []string{"x@y.z"}}, "c.tls"},
		{ChannelConfig{Name: "x", Type: TypeEmail, SMTPHost: "h", Username: "u", From: "a@b.c", To: []string{"x@y.z"}}, "c.password_file"},
		{ChannelConfig{Name: "x", Type: TypeEmail, SMTPHost: "h", From: "a@b.c"}, "c.to"},
		{ChannelConfig{Name: "x", Type: TypeEmail, SMTPHost: "h", From: "a@b.c", To: []string{"nope"}}, "c.to[0]"},
	}
	for _, tt := range bad {
		err := tt.c.Validate("c")
		var ce *ConfigError
		if err == nil || !errors.As(err, &ce) || !strings.Contains(err.Error(), `"`+tt.key+`"`) {
			t.Errorf("%+v: %v, want key %s", tt.c, err, tt.key)
		}
	}
}

func TestChannelConfigDefaultsAndBuild(t *testing.T) {
	off := false
	c := ChannelConfig{Name: "m", Type: TypeEmail, SMTPHost: "h", From: "a@b.c", To: []string{"x@y.z"}, SendResolved: &off}
	if c.Resolved() || c.AttemptTimeout() != 30*time.Second || c.SMTPPortOrDefault() != 587 {
		t.Errorf("defaults: resolved %v timeout %s port %d", c.Resolved(), c.AttemptTimeout(), c.SMTPPortOrDefault())
	}
	c.TLS, c.Timeout = TLSImplicit, Duration(5*time.Second)
	if c.SMTPPortOrDefault() != 465 || c.AttemptTimeout() != 5*time.Second {
		t.Error("implicit TLS port or timeout")
	}
	c.TLS = TLSNone
	if c.SMTPPortOrDefault() != 25 {
		t.Error("plain port")
	}
	c.SMTPPort = 2525
	if c.SMTPPortOrDefault() != 2525 {
		t.Error("explicit port")
	}
	for _, cc := range []ChannelConfig{c, {Name: "p", Type: TypePagerDuty}, {Name: "s", Type: TypeSlack}, {Name: "w", Type: TypeWebhook}} {
		n, err := Build(cc, HTTPOptions{})
		if err != nil || n == nil {
			t.Errorf("Build %s: %v", cc.Type, err)
		}
	}
	if _, err := Build(ChannelConfig{Name: "x", Type: "sms"}, HTTPOptions{}); err == nil {
		t.Error("unknown type built")
	}
	for _, typ := range []string{TypeEmail, TypeSlack} {
		if _, err := Build(ChannelConfig{Name: "x", Type: typ}, HTTPOptions{CAFile: "/missing.pem"}); err == nil {
			t.Errorf("%s with a missing CA bundle built", typ)
		}
	}
}
