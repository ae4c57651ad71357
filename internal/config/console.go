package config

import "time"

// Console configures the admin console (/admin on the HTTPS and the loopback listener).
type Console struct {
	// Enabled serves the console (default true).
	Enabled bool `toml:"enabled"`
	// SessionIdle ends a session after this long without a request; SessionMax after
	// this long whatever happens.
	SessionIdle Duration `toml:"session_idle"`
	SessionMax  Duration `toml:"session_max"`
	// InviteTTL is how long an invite link stays usable.
	InviteTTL Duration `toml:"invite_ttl"`
}

func defaultConsole() Console {
	return Console{Enabled: true, SessionIdle: Duration(30 * time.Minute), SessionMax: Duration(12 * time.Hour), InviteTTL: Duration(24 * time.Hour)}
}

func (c *Config) validateConsole(bad func(key, format string, args ...any)) {
	k := c.Console
	if k.SessionIdle < Duration(time.Minute) || k.SessionIdle > Duration(24*time.Hour) {
		bad("console.session_idle", "must be between 1m and 24h, got %s", k.SessionIdle)
	}
	if k.SessionMax < k.SessionIdle || k.SessionMax > Duration(30*24*time.Hour) {
		bad("console.session_max", "must be at least console.session_idle and at most 720h, got %s", k.SessionMax)
	}
	if k.InviteTTL < Duration(10*time.Minute) || k.InviteTTL > Duration(7*24*time.Hour) {
		bad("console.invite_ttl", "must be between 10m and 168h (invites are short-lived), got %s", k.InviteTTL)
	}
}
