package alerts

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/corpintel/corpintel/supervisor/alerts/notify"
)

// Duration is a duration written as "30s", "5m", "25h" in TOML.
type Duration = notify.Duration

// ConfigError is one problem with the alerts configuration; Key is relative to the
// [alerts] table ("rules.high_error_rate.threshold").
type ConfigError = notify.ConfigError

// ChannelConfig is one notification channel ([[alerts.channels]]).
type ChannelConfig = notify.ChannelConfig

// Severities, lowest first.
var Severities = []string{"info", "warning", "critical"}

// Config is the [alerts] table of corpintel.toml. The zero value of every field means
// "the default"; [DefaultConfig] spells the defaults out and Validate reports problems
// naming the key.
type Config struct {
	// EvaluationInterval is how often the rules are evaluated (default 15s).
	EvaluationInterval Duration `toml:"evaluation_interval"`
	// GroupWait, GroupInterval and RepeatInterval are Alertmanager's timers: wait this
	// long before a new group's first notification (so alerts that start together
	// arrive together), this long between notifications about a group's changes, and
	// this long before repeating an unchanged firing group. Defaults 30s, 5m, 4h.
	GroupWait      Duration `toml:"group_wait"`
	GroupInterval  Duration `toml:"group_interval"`
	RepeatInterval Duration `toml:"repeat_interval"`
	// GroupBy are the labels that split a route's alerts into groups (default
	// ["alertname"]: one notification per rule, covering all its mounts, replicas, …).
	GroupBy []string `toml:"group_by"`

	// FlapWindow / FlapThreshold: an alert that started firing FlapThreshold times within
	// FlapWindow is flapping (default 3 times in 1h); a flapping alert resolves only after
	// its condition stayed false for FlapHold (default 15m).
	FlapWindow    Duration `toml:"flap_window"`
	FlapThreshold int      `toml:"flap_threshold"`
	FlapHold      Duration `toml:"flap_hold"`

	// History is how long resolved alerts and expired silences stay listed (default 24h).
	History Duration `toml:"history"`

	// ExternalURL is linked from notifications (the console's alerts page).
	ExternalURL string `toml:"external_url"`
	// CAFile is an extra CA bundle for HTTPS and SMTP TLS (corporate proxies, relays).
	CAFile string `toml:"ca_file"`

	Rules RulesConfig `toml:"rules"`

	// Routes send alerts to channels, first match wins unless continue is set. Empty:
	// critical → pagerduty + email, warning → email + slack, info → slack channels (by
	// type; webhook channels get every severity).
	Routes []RouteConfig `toml:"routes"`
	// Inhibit replaces the built-in inhibition rules when set (see DefaultInhibitRules).
	Inhibit []InhibitConfig `toml:"inhibit"`
	// MaintenanceOperations are the operation kinds whose lock puts the stack into
	// maintenance mode (default restore, upgrade); MaintenanceHeld are the rules whose
	// alerts that causes and which are held while it lasts (default: see
	// DefaultMaintenanceHeld). Critical held alerts are delivered once the operation
	// outlives its expected end.
	MaintenanceOperations []string `toml:"maintenance_operations"`
	MaintenanceHeld       []string `toml:"maintenance_held"`

	Channels []ChannelConfig `toml:"channels"`
}

// RouteConfig is one route ([[alerts.routes]]).
type RouteConfig struct {
	// Name identifies the route's groups (their notification log survives restarts by it).
	Name string `toml:"name"`
	// Matchers select alerts, Alertmanager style: `severity="critical"`,
	// `alertname=~"Disk.*"`, `mount!="/"`. All must match; none matches everything.
	Matchers []string `toml:"matchers"`
	Channels []string `toml:"channels"`
	// Continue lets later routes match the alert too.
	Continue bool `toml:"continue"`
	// GroupBy and the timers override the [alerts] defaults for this route.
	GroupBy        []string `toml:"group_by"`
	GroupWait      Duration `toml:"group_wait"`
	GroupInterval  Duration `toml:"group_interval"`
	RepeatInterval Duration `toml:"repeat_interval"`
}

// InhibitConfig mutes alerts matching TargetMatchers while an alert matching
// SourceMatchers fires with the same values of the Equal labels.
type InhibitConfig struct {
	SourceMatchers []string `toml:"source_matchers"`
	TargetMatchers []string `toml:"target_matchers"`
	Equal          []string `toml:"equal"`
}

// RuleConfig is what every rule has.
type RuleConfig struct {
	// Disabled switches the rule off.
	Disabled bool `toml:"disabled"`
	// Severity is info, warning or critical.
	Severity string `toml:"severity"`
	// For is how long the condition must hold before the alert fires. Zero means the
	// rule's default; write "1s" for "at once" on a rule whose default waits.
	For Duration `toml:"for"`
	// KeepFiringFor is how long a firing alert stays firing after its condition cleared.
	KeepFiringFor Duration `toml:"keep_firing_for"`
}

// RulesConfig configures the built-in rules ([alerts.rules.<name>]).
type RulesConfig struct {
	APIDown                   APIDownRule     `toml:"api_down"`
	HighErrorRate             ErrorRateRule   `toml:"high_error_rate"`
	DiskSpaceLow              ThresholdRule   `toml:"disk_space_low"`
	DiskFull                  ThresholdRule   `toml:"disk_full"`
	DiskFullForecast          ForecastRule    `toml:"disk_full_forecast"`
	DatabaseSlow              ThresholdRule   `toml:"database_slow"`
	MemoryHigh                ThresholdRule   `toml:"memory_high"`
	PostgreSQLDown            RuleConfig      `toml:"postgresql_down"`
	RedisDown                 RuleConfig      `toml:"redis_down"`
	MinIODown                 RuleConfig      `toml:"minio_down"`
	DockerUnreachable         RuleConfig      `toml:"docker_unreachable"`
	BackupFailed              MaxAgeRule      `toml:"backup_failed"`
	BackupVerificationFailed  RuleConfig      `toml:"backup_verification_failed"`
	OffsiteCopyFailing        RuleConfig      `toml:"offsite_copy_failing"`
	RestoreDrillMissing       MaxAgeRule      `toml:"restore_drill_missing"`
	WALArchiveLagging         MaxAgeRule      `toml:"wal_archive_lagging"`
	CertificateExpiring       CertExpiryRule  `toml:"certificate_expiring"`
	CertificateRenewalFailing RuleConfig      `toml:"certificate_renewal_failing"`
	ContainerRestartLoop      RestartLoopRule `toml:"container_restart_loop"`
}

// APIDownRule fires after Failures consecutive failed health checks.
type APIDownRule struct {
	RuleConfig
	Failures int `toml:"failures"`
}

// ThresholdRule fires while a gauge is above Threshold.
type ThresholdRule struct {
	RuleConfig
	Threshold float64 `toml:"threshold"`
}

// ErrorRateRule fires while the 5xx share of requests over Window exceeds Threshold,
// given at least MinRequests requests in the window (a quiet night's one error out of
// ten requests is not an outage).
type ErrorRateRule struct {
	RuleConfig
	Threshold   float64  `toml:"threshold"`
	Window      Duration `toml:"window"`
	MinRequests float64  `toml:"min_requests"`
}

// MaxAgeRule fires when something last happened longer ago than MaxAge (or never did).
type MaxAgeRule struct {
	RuleConfig
	MaxAge Duration `toml:"max_age"`
}

// ForecastRule fires when a linear fit over Window predicts the disk full within Horizon.
type ForecastRule struct {
	RuleConfig
	Horizon   Duration `toml:"horizon"`
	Window    Duration `toml:"window"`
	MinPoints int      `toml:"min_points"`
}

// CertExpiryRule fires in stages: StagesDays (descending, e.g. 21, 14, 7, 2) with one
// severity each; each stage re-notifies, a later stage mutes the earlier ones.
type CertExpiryRule struct {
	RuleConfig
	StagesDays      []int    `toml:"stages_days"`
	StageSeverities []string `toml:"stage_severities"`
}

// RestartLoopRule fires when a container restarted at least Restarts times in Window.
type RestartLoopRule struct {
	RuleConfig
	Restarts int      `toml:"restarts"`
	Window   Duration `toml:"window"`
}

func d(v time.Duration) Duration { return Duration(v) }

func rc(sev string, forDur time.Duration) RuleConfig {
	return RuleConfig{Severity: sev, For: d(forDur)}
}

// DefaultConfig is the configuration with every default filled in: the seed's six rules
// (API Down, High Error Rate, Disk Space Low, Database Slow, Memory High, Backup Failed)
// with their thresholds and durations, and the added ones.
func DefaultConfig() Config {
	return Config{
		EvaluationInterval: d(15 * time.Second),
		GroupWait:          d(30 * time.Second),
		GroupInterval:      d(5 * time.Minute),
		RepeatInterval:     d(4 * time.Hour),
		GroupBy:            []string{"alertname"},
		FlapWindow:         d(time.Hour),
		FlapThreshold:      3,
		FlapHold:           d(15 * time.Minute),
		History:            d(24 * time.Hour),
		Rules: RulesConfig{
			APIDown:                  APIDownRule{RuleConfig: rc("critical", 0), Failures: 3},
			HighErrorRate:            ErrorRateRule{RuleConfig: rc("critical", 5*time.Minute), Threshold: 0.01, Window: d(5 * time.Minute), MinRequests: 20},
			DiskSpaceLow:             ThresholdRule{RuleConfig: rc("warning", 0), Threshold: 0.85},
			DiskFull:                 ThresholdRule{RuleConfig: rc("critical", 0), Threshold: 0.95},
			DiskFullForecast:         ForecastRule{RuleConfig: rc("warning", 30*time.Minute), Horizon: d(72 * time.Hour), Window: d(6 * time.Hour), MinPoints: 10},
			DatabaseSlow:             ThresholdRule{RuleConfig: rc("warning", 10*time.Minute), Threshold: 1},
			MemoryHigh:               ThresholdRule{RuleConfig: rc("warning", 5*time.Minute), Threshold: 0.90},
			PostgreSQLDown:           rc("critical", time.Minute),
			RedisDown:                rc("critical", time.Minute),
			MinIODown:                rc("critical", time.Minute),
			DockerUnreachable:        rc("critical", time.Minute),
			BackupFailed:             MaxAgeRule{RuleConfig: rc("critical", 0), MaxAge: d(25 * time.Hour)},
			BackupVerificationFailed: rc("critical", 0),
			OffsiteCopyFailing:       rc("warning", 0),
			RestoreDrillMissing:      MaxAgeRule{RuleConfig: rc("warning", 0), MaxAge: d(8 * 24 * time.Hour)},
			WALArchiveLagging:        MaxAgeRule{RuleConfig: rc("warning", 5*time.Minute), MaxAge: d(15 * time.Minute)},
			CertificateExpiring: CertExpiryRule{RuleConfig: rc("", 0), StagesDays: []int{21, 14, 7, 2},
				StageSeverities: []string{"info", "warning", "warning", "critical"}},
			CertificateRenewalFailing: rc("warning", time.Hour),
			ContainerRestartLoop:      RestartLoopRule{RuleConfig: rc("warning", 0), Restarts: 3, Window: d(15 * time.Minute)},
		},
		MaintenanceOperations: []string{"restore", "upgrade"},
		MaintenanceHeld:       DefaultMaintenanceHeld(),
	}
}

// DefaultMaintenanceHeld are the rules a restore or upgrade sets off by stopping services.
func DefaultMaintenanceHeld() []string {
	return []string{"APIDown", "HighErrorRate", "DatabaseSlow", "PostgreSQLDown", "RedisDown", "MinIODown",
		"ContainerRestartLoop", "WALArchiveLagging"}
}

// WithDefaults returns c with every zero field replaced by its default (rule by rule,
// field by field), as Validate and the engine see it.
func (c Config) WithDefaults() Config {
	def := DefaultConfig()
	fillDur(&c.EvaluationInterval, def.EvaluationInterval)
	fillDur(&c.GroupWait, def.GroupWait)
	fillDur(&c.GroupInterval, def.GroupInterval)
	fillDur(&c.RepeatInterval, def.RepeatInterval)
	fillDur(&c.FlapWindow, def.FlapWindow)
	fillDur(&c.FlapHold, def.FlapHold)
	fillDur(&c.History, def.History)
	if c.GroupBy == nil {
		c.GroupBy = def.GroupBy
	}
	if c.FlapThreshold == 0 {
		c.FlapThreshold = def.FlapThreshold
	}
	if c.MaintenanceOperations == nil {
		c.MaintenanceOperations = def.MaintenanceOperations
	}
	if c.MaintenanceHeld == nil {
		c.MaintenanceHeld = def.MaintenanceHeld
	}
	r, dr := &c.Rules, def.Rules
	fillRule(&r.APIDown.RuleConfig, dr.APIDown.RuleConfig)
	fillInt(&r.APIDown.Failures, dr.APIDown.Failures)
	fillRule(&r.HighErrorRate.RuleConfig, dr.HighErrorRate.RuleConfig)
	fillFloat(&r.HighErrorRate.Threshold, dr.HighErrorRate.Threshold)
	fillDur(&r.HighErrorRate.Window, dr.HighErrorRate.Window)
	fillFloat(&r.HighErrorRate.MinRequests, dr.HighErrorRate.MinRequests)
	for _, p := range []struct{ t, d *ThresholdRule }{
		{&r.DiskSpaceLow, &dr.DiskSpaceLow}, {&r.DiskFull, &dr.DiskFull}, {&r.DatabaseSlow, &dr.DatabaseSlow}, {&r.MemoryHigh, &dr.MemoryHigh},
	} {
		fillRule(&p.t.RuleConfig, p.d.RuleConfig)
		fillFloat(&p.t.Threshold, p.d.Threshold)
	}
	fillRule(&r.DiskFullForecast.RuleConfig, dr.DiskFullForecast.RuleConfig)
	fillDur(&r.DiskFullForecast.Horizon, dr.DiskFullForecast.Horizon)
	fillDur(&r.DiskFullForecast.Window, dr.DiskFullForecast.Window)
	fillInt(&r.DiskFullForecast.MinPoints, dr.DiskFullForecast.MinPoints)
	for _, p := range []struct{ t, d *RuleConfig }{
		{&r.PostgreSQLDown, &dr.PostgreSQLDown}, {&r.RedisDown, &dr.RedisDown}, {&r.MinIODown, &dr.MinIODown},
		{&r.DockerUnreachable, &dr.DockerUnreachable}, {&r.BackupVerificationFailed, &dr.BackupVerificationFailed},
		{&r.OffsiteCopyFailing, &dr.OffsiteCopyFailing}, {&r.CertificateRenewalFailing, &dr.CertificateRenewalFailing},
	} {
		fillRule(p.t, *p.d)
	}
	for _, p := range []struct{ t, d *MaxAgeRule }{
		{&r.BackupFailed, &dr.BackupFailed}, {&r.RestoreDrillMissing, &dr.RestoreDrillMissing}, {&r.WALArchiveLagging, &dr.WALArchiveLagging},
	} {
		fillRule(&p.t.RuleConfig, p.d.RuleConfig)
		fillDur(&p.t.MaxAge, p.d.MaxAge)
	}
	fillRule(&r.CertificateExpiring.RuleConfig, dr.CertificateExpiring.RuleConfig)
	if r.CertificateExpiring.StagesDays == nil {
		r.CertificateExpiring.StagesDays = dr.CertificateExpiring.StagesDays
		if r.CertificateExpiring.StageSeverities == nil {
			r.CertificateExpiring.StageSeverities = dr.CertificateExpiring.StageSeverities
		}
	}
	fillRule(&r.ContainerRestartLoop.RuleConfig, dr.ContainerRestartLoop.RuleConfig)
	fillInt(&r.ContainerRestartLoop.Restarts, dr.ContainerRestartLoop.Restarts)
	fillDur(&r.ContainerRestartLoop.Window, dr.ContainerRestartLoop.Window)
	return c
}

// fillRule fills severity and for; a zero "for" is a legitimate setting only when the
// default is zero too, so "for = 0s" cannot switch off a default duration: use a small
// value like "1s" instead.
func fillRule(r *RuleConfig, def RuleConfig) {
	if r.Severity == "" {
		r.Severity = def.Severity
	}
	fillDur(&r.For, def.For)
	fillDur(&r.KeepFiringFor, def.KeepFiringFor)
}

func fillDur(v *Duration, def Duration) {
	if *v == 0 {
		*v = def
	}
}

func fillInt(v *int, def int) {
	if *v == 0 {
		*v = def
	}
}

func fillFloat(v *float64, def float64) {
	if *v == 0 {
		*v = def
	}
}

// Validate reports every problem of the configuration (after defaults), each a
// *ConfigError naming its key, joined with errors.Join.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(key, problem string, args ...any) {
		errs = append(errs, &ConfigError{Key: key, Problem: fmt.Sprintf(problem, args...)})
	}
	positive := func(key string, v Duration) {
		if v <= 0 {
			bad(key, "must be a positive duration, got %s", v.D())
		}
	}
	positive("evaluation_interval", c.EvaluationInterval)
	positive("group_wait", c.GroupWait)
	positive("group_interval", c.GroupInterval)
	positive("repeat_interval", c.RepeatInterval)
	positive("flap_window", c.FlapWindow)
	positive("flap_hold", c.FlapHold)
	positive("history", c.History)
	if c.EvaluationInterval > 0 && c.EvaluationInterval.D() < time.Second {
		bad("evaluation_interval", "must be at least 1s, got %s", c.EvaluationInterval.D())
	}
	if c.RepeatInterval > 0 && c.RepeatInterval < c.GroupInterval {
		bad("repeat_interval", "must not be shorter than group_interval (%s), got %s", c.GroupInterval.D(), c.RepeatInterval.D())
	}
	if c.FlapThreshold < 2 {
		bad("flap_threshold", "must be at least 2, got %d", c.FlapThreshold)
	}
	checkLabelNames("group_by", c.GroupBy, bad)

	names := map[string]bool{}
	for i, ch := range c.Channels {
		key := fmt.Sprintf("channels[%d]", i)
		if err := ch.Validate(key); err != nil {
			errs = append(errs, err)
		}
		if names[ch.Name] {
			bad(key+".name", "channel %q is defined twice", ch.Name)
		}
		names[ch.Name] = true
	}
	routeNames := map[string]bool{}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if !channelNameRE.MatchString(r.Name) {
			bad(key+".name", "must be 1-63 lower-case letters, digits, '-' or '_', got %q", r.Name)
		} else if routeNames[r.Name] {
			bad(key+".name", "route %q is defined twice", r.Name)
		}
		routeNames[r.Name] = true
		if _, err := ParseMatchers(r.Matchers); err != nil {
			bad(key+".matchers", "%v", err)
		}
		for j, ch := range r.Channels {
			if !names[ch] {
				bad(fmt.Sprintf("%s.channels[%d]", key, j), "no channel named %q (define it under [[alerts.channels]]; have %v)", ch, sortedKeys(names))
			}
		}
		checkLabelNames(key+".group_by", r.GroupBy, bad)
		for _, t := range []struct {
			k string
			v Duration
		}{{"group_wait", r.GroupWait}, {"group_interval", r.GroupInterval}, {"repeat_interval", r.RepeatInterval}} {
			if t.v < 0 {
				bad(key+"."+t.k, "must not be negative, got %s", t.v.D())
			}
		}
	}
	for i, in := range c.Inhibit {
		key := fmt.Sprintf("inhibit[%d]", i)
		if len(in.SourceMatchers) == 0 {
			bad(key+".source_matchers", "needs at least one matcher")
		} else if _, err := ParseMatchers(in.SourceMatchers); err != nil {
			bad(key+".source_matchers", "%v", err)
		}
		if len(in.TargetMatchers) == 0 {
			bad(key+".target_matchers", "needs at least one matcher")
		} else if _, err := ParseMatchers(in.TargetMatchers); err != nil {
			bad(key+".target_matchers", "%v", err)
		}
		checkLabelNames(key+".equal", in.Equal, bad)
	}
	ruleNames := RuleNames()
	for i, n := range c.MaintenanceHeld {
		if !slices.Contains(ruleNames, n) {
			bad(fmt.Sprintf("maintenance_held[%d]", i), "no rule named %q (rules: %v)", n, ruleNames)
		}
	}
	errs = append(errs, c.Rules.validate()...)
	return errors.Join(errs...)
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func checkLabelNames(key string, names []string, bad func(string, string, ...any)) {
	for i, n := range names {
		if !labelNameRE.MatchString(n) {
			bad(fmt.Sprintf("%s[%d]", key, i), "%q is not a label name (letters, digits, '_'; not starting with a digit)", n)
		}
	}
}

func (r RulesConfig) validate() []error {
	var errs []error
	bad := func(key, problem string, args ...any) {
		errs = append(errs, &ConfigError{Key: "rules." + key, Problem: fmt.Sprintf(problem, args...)})
	}
	common := func(key string, c RuleConfig, needSeverity bool) {
		if needSeverity && !slices.Contains(Severities, c.Severity) {
			bad(key+".severity", "must be info, warning or critical, got %q", c.Severity)
		}
		if c.For < 0 {
			bad(key+".for", "must not be negative, got %s", c.For.D())
		}
		if c.KeepFiringFor < 0 {
			bad(key+".keep_firing_for", "must not be negative, got %s", c.KeepFiringFor.D())
		}
	}
	ratio := func(key string, v float64) {
		if v <= 0 || v >= 1 {
			bad(key, "must be a fraction between 0 and 1 (0.85 is 85 %%), got %v", v)
		}
	}
	posDur := func(key string, v Duration) {
		if v <= 0 {
			bad(key, "must be a positive duration, got %s", v.D())
		}
	}
	common("api_down", r.APIDown.RuleConfig, true)
	if r.APIDown.Failures < 1 {
		bad("api_down.failures", "must be at least 1, got %d", r.APIDown.Failures)
	}
	common("high_error_rate", r.HighErrorRate.RuleConfig, true)
	ratio("high_error_rate.threshold", r.HighErrorRate.Threshold)
	posDur("high_error_rate.window", r.HighErrorRate.Window)
	if r.HighErrorRate.MinRequests < 0 {
		bad("high_error_rate.min_requests", "must not be negative, got %v", r.HighErrorRate.MinRequests)
	}
	common("disk_space_low", r.DiskSpaceLow.RuleConfig, true)
	ratio("disk_space_low.threshold", r.DiskSpaceLow.Threshold)
	common("disk_full", r.DiskFull.RuleConfig, true)
	ratio("disk_full.threshold", r.DiskFull.Threshold)
	common("disk_full_forecast", r.DiskFullForecast.RuleConfig, true)
	posDur("disk_full_forecast.horizon", r.DiskFullForecast.Horizon)
	posDur("disk_full_forecast.window", r.DiskFullForecast.Window)
	if r.DiskFullForecast.MinPoints < 2 {
		bad("disk_full_forecast.min_points", "must be at least 2, got %d", r.DiskFullForecast.MinPoints)
	}
	common("database_slow", r.DatabaseSlow.RuleConfig, true)
	if r.DatabaseSlow.Threshold <= 0 {
		bad("database_slow.threshold", "must be a positive number of seconds, got %v", r.DatabaseSlow.Threshold)
	}
	common("memory_high", r.MemoryHigh.RuleConfig, true)
	ratio("memory_high.threshold", r.MemoryHigh.Threshold)
	for _, p := range []struct {
		k string
		c RuleConfig
	}{{"postgresql_down", r.PostgreSQLDown}, {"redis_down", r.RedisDown}, {"minio_down", r.MinIODown},
		{"docker_unreachable", r.DockerUnreachable}, {"backup_verification_failed", r.BackupVerificationFailed},
		{"offsite_copy_failing", r.OffsiteCopyFailing}, {"certificate_renewal_failing", r.CertificateRenewalFailing}} {
		common(p.k, p.c, true)
	}
	for _, p := range []struct {
		k string
		c MaxAgeRule
	}{{"backup_failed", r.BackupFailed}, {"restore_drill_missing", r.RestoreDrillMissing}, {"wal_archive_lagging", r.WALArchiveLagging}} {
		common(p.k, p.c.RuleConfig, true)
		posDur(p.k+".max_age", p.c.MaxAge)
	}
	ce := r.CertificateExpiring
	common("certificate_expiring", ce.RuleConfig, false)
	if len(ce.StagesDays) == 0 {
		bad("certificate_expiring.stages_days", "needs at least one stage, e.g. [21, 14, 7, 2]")
	}
	for i, days := range ce.StagesDays {
		if days < 1 {
			bad(fmt.Sprintf("certificate_expiring.stages_days[%d]", i), "must be at least 1 day, got %d", days)
		}
		if i > 0 && days >= ce.StagesDays[i-1] {
			bad(fmt.Sprintf("certificate_expiring.stages_days[%d]", i), "stages must be in descending order (%d after %d)", days, ce.StagesDays[i-1])
		}
	}
	if len(ce.StageSeverities) != len(ce.StagesDays) {
		bad("certificate_expiring.stage_severities", "needs one severity per stage (%d stages, %d severities)", len(ce.StagesDays), len(ce.StageSeverities))
	}
	for i, s := range ce.StageSeverities {
		if !slices.Contains(Severities, s) {
			bad(fmt.Sprintf("certificate_expiring.stage_severities[%d]", i), "must be info, warning or critical, got %q", s)
		}
	}
	common("container_restart_loop", r.ContainerRestartLoop.RuleConfig, true)
	if r.ContainerRestartLoop.Restarts < 1 {
		bad("container_restart_loop.restarts", "must be at least 1, got %d", r.ContainerRestartLoop.Restarts)
	}
	posDur("container_restart_loop.window", r.ContainerRestartLoop.Window)
	return errs
}
