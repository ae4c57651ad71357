package notify

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Duration is a time.Duration written as a Go duration string in TOML ("5m", "25h").
type Duration time.Duration

// UnmarshalText parses "90s", "5m", "25h"; a bare "0" is zero.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("must be a duration like 30s, 5m or 25h, got %q", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the Go form ("5m0s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ConfigError is one configuration problem: the key (relative to the alerts table, e.g.
// "channels[2].routing_key_file") and what is wrong with it.
type ConfigError struct {
	Key     string
	Problem string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("key %q: %s", e.Key, e.Problem) }

// Channel types.
const (
	TypePagerDuty = "pagerduty"
	TypeSlack     = "slack"
	TypeEmail     = "email"
	TypeWebhook   = "webhook"
)

// ChannelConfig is one notification channel ([[alerts.channels]] in corpintel.toml).
// Secrets live in files named here, never in the config itself.
type ChannelConfig struct {
	// Name is how routes and `corpintel alerts test --channel` refer to it.
	Name string `toml:"name"`
	// Type is pagerduty, slack, email or webhook.
	Type string `toml:"type"`
	// SendResolved sends a notification when a group's alerts resolve (default true).
	SendResolved *bool `toml:"send_resolved"`
	// Timeout bounds one delivery attempt (default 30s).
	Timeout Duration `toml:"timeout"`

	// RoutingKeyFile (pagerduty) holds the Events API v2 integration key.
	RoutingKeyFile string `toml:"routing_key_file"`
	// URL is the PagerDuty events endpoint (default PagerDutyEventsURL) or a webhook's
	// endpoint when it is no secret.
	URL string `toml:"url"`
	// URLFile (slack, webhook) holds the webhook URL.
	URLFile string `toml:"url_file"`
	// BearerTokenFile (webhook) holds a token sent as Authorization: Bearer.
	BearerTokenFile string `toml:"bearer_token_file"`
	// MaxAlerts (webhook) caps the alerts per payload (0: all).
	MaxAlerts int `toml:"max_alerts"`

	// SMTPHost and SMTPPort (email) name the relay; port defaults by TLS mode (587/465/25).
	SMTPHost string `toml:"smtp_host"`
	SMTPPort int    `toml:"smtp_port"`
	// TLS (email) is starttls (default), tls (implicit, port 465) or none.
	TLS string `toml:"tls"`
	// Username and PasswordFile (email) enable SMTP AUTH.
	Username     string   `toml:"username"`
	PasswordFile string   `toml:"password_file"`
	From         string   `toml:"from"`
	To           []string `toml:"to"`
}

// Resolved reports whether resolved notifications are wanted.
func (c ChannelConfig) Resolved() bool { return c.SendResolved == nil || *c.SendResolved }

// AttemptTimeout is Timeout or its default.
func (c ChannelConfig) AttemptTimeout() time.Duration {
	if c.Timeout <= 0 {
		return 30 * time.Second
	}
	return c.Timeout.D()
}

var channelName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate checks one channel; key is its position ("channels[0]"). Secret files are not
// read here (they may be created after the config); a missing one is reported at send
// time and by `corpintel alerts test`.
func (c ChannelConfig) Validate(key string) error {
	var errs []error
	bad := func(field, problem string, args ...any) {
		k := key
		if field != "" {
			k += "." + field
		}
		errs = append(errs, &ConfigError{Key: k, Problem: fmt.Sprintf(problem, args...)})
	}
	if !channelName.MatchString(c.Name) {
		bad("name", "must be 1-63 lower-case letters, digits, '-' or '_', got %q", c.Name)
	}
	if c.Timeout < 0 {
		bad("timeout", "must not be negative")
	}
	switch c.Type {
	case TypePagerDuty:
		if c.RoutingKeyFile == "" {
			bad("routing_key_file", "is required for a pagerduty channel (a file holding the Events API v2 integration key)")
		}
		if c.URL != "" {
			checkURL(c.URL, "url", bad)
		}
	case TypeSlack:
		if c.URLFile == "" {
			bad("url_file", "is required for a slack channel (a file holding the incoming-webhook URL)")
		}
		if c.URL != "" {
			bad("url", "must not be set for slack: the webhook URL is a secret, put it in the file named by url_file")
		}
	case TypeWebhook:
		switch {
		case c.URL == "" && c.URLFile == "":
			bad("url", "a webhook channel needs url or url_file")
		case c.URL != "" && c.URLFile != "":
			bad("url", "set url or url_file, not both")
		case c.URL != "":
			checkURL(c.URL, "url", bad)
		}
		if c.MaxAlerts < 0 {
			bad("max_alerts", "must not be negative")
		}
	case TypeEmail:
		if c.SMTPHost == "" {
			bad("smtp_host", "is required for an email channel")
		}
		if c.SMTPPort < 0 || c.SMTPPort > 65535 {
			bad("smtp_port", "must be a port number, got %d", c.SMTPPort)
		}
		switch c.TLS {
		case "", TLSStartTLS, TLSImplicit, TLSNone:
		default:
			bad("tls", "must be starttls, tls or none, got %q", c.TLS)
		}
		if c.Username != "" && c.PasswordFile == "" {
			bad("password_file", "is required when username is set")
		}
		if _, err := mail.ParseAddress(c.From); err != nil {
			bad("from", "must be an e-mail address, got %q", c.From)
		}
		if len(c.To) == 0 {
			bad("to", "needs at least one recipient")
		}
		for i, to := range c.To {
			if _, err := mail.ParseAddress(to); err != nil {
				bad(fmt.Sprintf("to[%d]", i), "must be an e-mail address, got %q", to)
			}
		}
	default:
		bad("type", "must be pagerduty, slack, email or webhook, got %q", c.Type)
	}
	return errors.Join(errs...)
}

func checkURL(raw, field string, bad func(string, string, ...any)) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad(field, "must be an http(s) URL, got %s", RedactURL(raw))
	}
}

// SMTPPortOrDefault is the configured port or the usual one for the TLS mode.
func (c ChannelConfig) SMTPPortOrDefault() int {
	if c.SMTPPort != 0 {
		return c.SMTPPort
	}
	switch c.TLS {
	case TLSImplicit:
		return 465
	case TLSNone:
		return 25
	}
	return 587
}

// Build creates the notifier for a validated channel.
func Build(c ChannelConfig, o HTTPOptions) (Notifier, error) {
	switch c.Type {
	case TypeEmail:
		tlsConf, err := TLSConfig(o.CAFile)
		if err != nil {
			return nil, err
		}
		return &Email{
			Host: c.SMTPHost, Port: c.SMTPPortOrDefault(), TLS: c.TLS, TLSConfig: tlsConf,
			Username: c.Username, PasswordFile: c.PasswordFile, From: c.From, To: c.To,
		}, nil
	case TypePagerDuty, TypeSlack, TypeWebhook:
		client, err := NewHTTPClient(o)
		if err != nil {
			return nil, err
		}
		switch c.Type {
		case TypePagerDuty:
			return &PagerDuty{URL: c.URL, RoutingKeyFile: c.RoutingKeyFile, Client: client}, nil
		case TypeSlack:
			return &Slack{URLFile: c.URLFile, Client: client}, nil
		default:
			return &Webhook{URL: c.URL, URLFile: c.URLFile, BearerTokenFile: c.BearerTokenFile, MaxAlerts: c.MaxAlerts, Client: client}, nil
		}
	}
	return nil, fmt.Errorf("channel %s: unknown type %q", c.Name, c.Type)
}
