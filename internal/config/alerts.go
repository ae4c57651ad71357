package config

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"
)

// Alerts is the [alerts] table of corpintel.toml: rules, routes, inhibitions, channels
// (the keys are documented on supervisor/alerts.Config). The alert engine owns that
// schema and internal/ may not import it, so the table is kept here as written and the
// supervisor decodes it with Config.DecodeAlerts; unknown keys and type mismatches then
// come back as *Error naming "alerts.<key>", like every other key. Its keys have no
// environment overrides: per-rule tables and arrays of channels do not map onto
// variables, and channel secrets live in files anyway. `corpintel config check` prints
// it as written.
type Alerts map[string]any

// UnmarshalTOML keeps the table (toml.Unmarshaler): without it a value that is not a
// table ("alerts = false") would be dropped silently.
func (a *Alerts) UnmarshalTOML(v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("alerts must be a table ([alerts]), got %T", v)
	}
	*a = m
	return nil
}

// IsSet reports whether the file had an [alerts] table.
func (a Alerts) IsSet() bool { return len(a) > 0 }

// AlertsFromTOML builds the [alerts] table from the text of its body (tests and
// configs built in code); keys are relative to the table.
func AlertsFromTOML(body string) (Alerts, error) {
	var doc map[string]any
	if _, err := toml.Decode(body, &doc); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return Alerts(doc), nil
}

// DecodeAlerts decodes the [alerts] table into v (a pointer to the engine's config
// struct), strictly: an unknown key or a value of the wrong type is an *Error naming
// "alerts.<key>". Without an [alerts] table v is left as it is (the defaults).
func (c *Config) DecodeAlerts(v any) error {
	if !c.Alerts.IsSet() {
		return nil
	}
	// The table goes back through the TOML encoder so that the decoder applies the
	// engine's own types (durations, matchers) with its usual errors.
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(map[string]any(c.Alerts)); err != nil {
		return &Error{File: sourceName(c.File), Key: "alerts", Problem: err.Error()}
	}
	md, err := toml.NewDecoder(&buf).Decode(v)
	if err != nil {
		return c.alertsError(err)
	}
	var errs []error
	for _, k := range md.Undecoded() {
		errs = append(errs, &Error{File: sourceName(c.File), Key: "alerts." + k.String(), Problem: "unknown key"})
	}
	return errors.Join(errs...)
}

// alertsError names the key of a decode error; line numbers would point into the
// re-encoded table, not the operator's file, so they are left out.
func (c *Config) alertsError(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) && pe.LastKey != "" {
		return &Error{File: sourceName(c.File), Key: "alerts." + pe.LastKey, Problem: pe.Message}
	}
	msg := strings.TrimPrefix(err.Error(), "toml: ")
	if m := lastKeyRE.FindStringSubmatch(msg); m != nil {
		return &Error{File: sourceName(c.File), Key: "alerts." + m[2], Problem: m[3]}
	}
	return &Error{File: sourceName(c.File), Key: "alerts", Problem: msg}
}
