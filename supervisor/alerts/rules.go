package alerts

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Rule is one alert rule: a condition over [Samples] that yields zero or more
// candidates (one per mount, service, certificate, …), each of which becomes an alert
// after the rule's For.
type Rule struct {
	// Name is the alertname label ("APIDown").
	Name string
	// Key is the rule's table under [alerts.rules] ("api_down").
	Key           string
	Severity      string
	For           time.Duration
	KeepFiringFor time.Duration
	// Help says in one line what the rule watches.
	Help string

	eval func(s *Samples, now time.Time) []Candidate
	prom []PromRule
}

// Candidate is one instance of a rule's condition holding right now.
type Candidate struct {
	// Labels are the rule-specific labels (mount, service, name, stage, …).
	Labels Labels
	// Severity overrides the rule's severity (the certificate stages).
	Severity string
	Value    float64
	Summary  string
	// For overrides the rule's For when ForSet (BackupFailed waits MaxAge when no backup
	// ever ran, instead of firing at once on a fresh install).
	For    time.Duration
	ForSet bool
}

// PromRule is the Prometheus alerting rule equivalent to (part of) a rule.
type PromRule struct {
	Expr    string
	For     time.Duration
	Labels  map[string]string
	Summary string
}

// Eval evaluates the rule.
func (r Rule) Eval(s *Samples, now time.Time) []Candidate { return r.eval(s, now) }

// RuleNames lists the built-in rules' names in evaluation order.
func RuleNames() []string {
	rules := BuildRules(DefaultConfig().Rules)
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.Name
	}
	return out
}

func pct(v float64) string { return strconv.FormatFloat(v*100, 'f', 1, 64) + " %" }

func humanDur(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%.1f days", d.Hours()/24)
	case d >= time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	case d >= time.Minute:
		return fmt.Sprintf("%.0f min", d.Minutes())
	}
	return fmt.Sprintf("%.0f s", d.Seconds())
}

func secs(d time.Duration) string { return strconv.FormatInt(int64(d.Seconds()), 10) }

func promDur(d time.Duration) string {
	if d%(24*time.Hour) == 0 && d > 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	if d%time.Hour == 0 && d > 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	if d%time.Minute == 0 && d > 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", int64(d.Seconds()))
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func unix(v float64) time.Time {
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

// BuildRules turns the rules configuration (defaults filled in) into rules, leaving out
// the disabled ones.
func BuildRules(c RulesConfig) []Rule {
	var rules []Rule
	add := func(cfg RuleConfig, r Rule) {
		if cfg.Disabled {
			return
		}
		r.Severity, r.For, r.KeepFiringFor = cfg.Severity, cfg.For.D(), cfg.KeepFiringFor.D()
		for i := range r.prom {
			if r.prom[i].For == 0 {
				r.prom[i].For = r.For
			}
		}
		rules = append(rules, r)
	}

	ad := c.APIDown
	add(ad.RuleConfig, Rule{Name: "APIDown", Key: "api_down", Help: "the API failed its health check several times in a row",
		eval: func(s *Samples, _ time.Time) []Candidate {
			v, ok := s.Latest(MetricAPIHealthFailures, nil)
			if !ok || v < float64(ad.Failures) {
				return nil
			}
			return []Candidate{{Value: v, Summary: fmt.Sprintf("the API failed %.0f health checks in a row", v)}}
		},
		prom: []PromRule{{Expr: fmt.Sprintf("%s >= %d", MetricAPIHealthFailures, ad.Failures),
			Summary: "the API failed {{ $value }} health checks in a row"}},
	})

	er := c.HighErrorRate
	w := promDur(er.Window.D())
	add(er.RuleConfig, Rule{Name: "HighErrorRate", Key: "high_error_rate", Help: "the share of API requests answered with 5xx is too high",
		eval: func(s *Samples, now time.Time) []Candidate {
			var total, errs float64
			for _, sr := range s.Find(MetricAPIRequests, nil) {
				inc, _ := Increase(sr.Points, er.Window.D(), now)
				total += inc
				if sr.Labels["code_class"] == "5xx" {
					errs += inc
				}
			}
			if total <= 0 || total < er.MinRequests || errs/total <= er.Threshold {
				return nil
			}
			ratio := errs / total
			return []Candidate{{Value: ratio, Summary: fmt.Sprintf("%s of API requests failed with 5xx over the last %s (%.0f of %.0f)",
				pct(ratio), humanDur(er.Window.D()), errs, total)}}
		},
		prom: []PromRule{{
			Expr: fmt.Sprintf(`(sum(increase(%[1]s{code_class="5xx"}[%[2]s])) / sum(increase(%[1]s[%[2]s])) > %[3]s) and sum(increase(%[1]s[%[2]s])) >= %[4]s`,
				MetricAPIRequests, w, num(er.Threshold), num(er.MinRequests)),
			Summary: "{{ $value | humanizePercentage }} of API requests failed with 5xx"}},
	})

	gaugeOver := func(name, key, help string, t ThresholdRule, metric, label string, summary func(Labels, float64) string, promSummary string) {
		add(t.RuleConfig, Rule{Name: name, Key: key, Help: help,
			eval: func(s *Samples, _ time.Time) []Candidate {
				var out []Candidate
				for _, sr := range s.Find(metric, nil) {
					p, _ := sr.Last()
					if p.V > t.Threshold {
						l := Labels{}
						if label != "" {
							l[label] = sr.Labels[label]
						}
						out = append(out, Candidate{Labels: l, Value: p.V, Summary: summary(sr.Labels, p.V)})
					}
				}
				return out
			},
			prom: []PromRule{{Expr: fmt.Sprintf("%s > %s", metric, num(t.Threshold)), Summary: promSummary}},
		})
	}
	gaugeOver("DiskSpaceLow", "disk_space_low", "a filesystem is fuller than the threshold", c.DiskSpaceLow, MetricDiskUsedRatio, "mount",
		func(l Labels, v float64) string { return fmt.Sprintf("filesystem %s is %s full", l["mount"], pct(v)) },
		"filesystem {{ $labels.mount }} is {{ $value | humanizePercentage }} full")
	gaugeOver("DiskFull", "disk_full", "a filesystem is (almost) full: writes fail, services crash", c.DiskFull, MetricDiskUsedRatio, "mount",
		func(l Labels, v float64) string { return fmt.Sprintf("filesystem %s is %s full", l["mount"], pct(v)) },
		"filesystem {{ $labels.mount }} is {{ $value | humanizePercentage }} full")

	fc := c.DiskFullForecast
	add(fc.RuleConfig, Rule{Name: "DiskFullForecast", Key: "disk_full_forecast", Help: "at the current growth rate a filesystem fills up soon",
		eval: func(s *Samples, now time.Time) []Candidate {
			var out []Candidate
			for _, sr := range s.Find(MetricDiskUsedRatio, nil) {
				// A fit over a few minutes extrapolates noise: the points must cover at
				// least a quarter of the window.
				slope, at, ok := LinearFit(sr.Points, fc.Window.D(), now, fc.MinPoints)
				if ok && now.Sub(firstIn(sr.Points, now.Add(-fc.Window.D()))) < fc.Window.D()/4 {
					ok = false
				}
				if !ok || at+slope*fc.Horizon.D().Seconds() < 1 || slope <= 0 {
					continue
				}
				left := time.Duration((1 - at) / slope * float64(time.Second))
				out = append(out, Candidate{Labels: Labels{"mount": sr.Labels["mount"]}, Value: left.Hours(),
					Summary: fmt.Sprintf("filesystem %s (%s full) fills up in about %s at the growth rate of the last %s",
						sr.Labels["mount"], pct(at), humanDur(left), humanDur(fc.Window.D()))})
			}
			return out
		},
		prom: []PromRule{{
			Expr: fmt.Sprintf("predict_linear(%[1]s[%[2]s], %[3]s) >= 1 and count_over_time(%[1]s[%[2]s]) >= %[4]d",
				MetricDiskUsedRatio, promDur(fc.Window.D()), secs(fc.Horizon.D()), fc.MinPoints),
			Summary: "filesystem {{ $labels.mount }} fills up within " + humanDur(fc.Horizon.D()) + " at the current growth rate"}},
	})

	gaugeOver("DatabaseSlow", "database_slow", "p95 of the API's database queries is too slow", c.DatabaseSlow, MetricDBQueryP95, "",
		func(_ Labels, v float64) string { return fmt.Sprintf("p95 of database queries is %.2f s", v) },
		"p95 of database queries is {{ $value | humanizeDuration }}")
	gaugeOver("MemoryHigh", "memory_high", "the host's memory is nearly used up", c.MemoryHigh, MetricMemoryUsedRatio, "",
		func(_ Labels, v float64) string { return fmt.Sprintf("%s of the host's memory is in use", pct(v)) },
		"{{ $value | humanizePercentage }} of the host's memory is in use")

	down := func(name, key, service, human string, cfg RuleConfig) {
		add(cfg, Rule{Name: name, Key: key, Help: human + " does not answer the supervisor's probe",
			eval: func(s *Samples, _ time.Time) []Candidate {
				v, ok := s.Latest(MetricServiceUp, Labels{"service": service})
				if !ok || v != 0 {
					return nil
				}
				return []Candidate{{Labels: Labels{"service": service}, Summary: human + " does not answer"}}
			},
			prom: []PromRule{{Expr: fmt.Sprintf(`%s{service="%s"} == 0`, MetricServiceUp, service), Summary: human + " does not answer"}},
		})
	}
	down("PostgreSQLDown", "postgresql_down", "postgres", "PostgreSQL", c.PostgreSQLDown)
	down("RedisDown", "redis_down", "redis", "Redis", c.RedisDown)
	down("MinIODown", "minio_down", "minio", "MinIO", c.MinIODown)

	add(c.DockerUnreachable, Rule{Name: "DockerUnreachable", Key: "docker_unreachable", Help: "the Docker Engine does not answer",
		eval: func(s *Samples, _ time.Time) []Candidate {
			v, ok := s.Latest(MetricDockerUp, nil)
			if !ok || v != 0 {
				return nil
			}
			return []Candidate{{Summary: "the Docker Engine does not answer: the supervisor can neither see nor repair the stack"}}
		},
		prom: []PromRule{{Expr: MetricDockerUp + " == 0", Summary: "the Docker Engine does not answer"}},
	})

	maxAge := func(name, key, help, metric, what string, m MaxAgeRule) {
		add(m.RuleConfig, Rule{Name: name, Key: key, Help: help,
			eval: func(s *Samples, now time.Time) []Candidate {
				ts, ok := s.Latest(metric, nil)
				if !ok || ts <= 0 {
					return []Candidate{{Summary: "no " + what + " has succeeded yet", For: m.MaxAge.D(), ForSet: true}}
				}
				age := now.Sub(unix(ts))
				if age <= m.MaxAge.D() {
					return nil
				}
				return []Candidate{{Value: age.Hours(), Summary: fmt.Sprintf("the last %s succeeded %s ago (%s)", what, humanDur(age), unix(ts).Format(time.RFC3339))}}
			},
			prom: []PromRule{
				{Expr: fmt.Sprintf("time() - %s > %s", metric, secs(m.MaxAge.D())), Summary: "the last " + what + " succeeded {{ $value | humanizeDuration }} ago"},
				// The label keeps promtool's duplicate-rule lint apart from the rule above.
				{Expr: fmt.Sprintf("absent(%s)", metric), For: m.MaxAge.D(), Labels: map[string]string{"reason": "never_succeeded"},
					Summary: "no " + what + " has succeeded yet"},
			},
		})
	}
	maxAge("BackupFailed", "backup_failed", "no successful, verified backup within the maximum age (also when none ever ran)",
		MetricBackupLastSuccess, "verified backup", c.BackupFailed)

	newerFailure := func(name, key, help, failMetric, okMetric, summary string, cfg RuleConfig) {
		add(cfg, Rule{Name: name, Key: key, Help: help,
			eval: func(s *Samples, _ time.Time) []Candidate {
				fail, ok := s.Latest(failMetric, nil)
				if !ok || fail <= 0 {
					return nil
				}
				if succ, _ := s.Latest(okMetric, nil); succ >= fail {
					return nil
				}
				return []Candidate{{Value: fail, Summary: fmt.Sprintf("%s (at %s)", summary, unix(fail).Format(time.RFC3339))}}
			},
			prom: []PromRule{{Expr: fmt.Sprintf("max(%s) > (max(%s) or vector(0))", failMetric, okMetric), Summary: summary}},
		})
	}
	newerFailure("BackupVerificationFailed", "backup_verification_failed", "the latest backup failed its verification",
		MetricBackupVerifyLastFailure, MetricBackupVerifyLastSuccess, "the latest backup failed its verification", c.BackupVerificationFailed)
	newerFailure("OffsiteCopyFailing", "offsite_copy_failing", "copying backups offsite fails",
		MetricOffsiteLastFailure, MetricOffsiteLastSuccess, "the latest offsite copy of the backups failed", c.OffsiteCopyFailing)
	maxAge("RestoreDrillMissing", "restore_drill_missing", "no verified restore drill within the maximum age",
		MetricDrillLastSuccess, "verified restore drill", c.RestoreDrillMissing)

	wal := c.WALArchiveLagging
	add(wal.RuleConfig, Rule{Name: "WALArchiveLagging", Key: "wal_archive_lagging", Help: "PostgreSQL's WAL archiving falls behind (point-in-time recovery at risk)",
		eval: func(s *Samples, _ time.Time) []Candidate {
			v, ok := s.Latest(MetricWALArchiveLag, nil)
			if !ok || v <= wal.MaxAge.D().Seconds() {
				return nil
			}
			return []Candidate{{Value: v, Summary: fmt.Sprintf("WAL archiving is %s behind", humanDur(time.Duration(v*float64(time.Second))))}}
		},
		prom: []PromRule{{Expr: fmt.Sprintf("%s > %s", MetricWALArchiveLag, secs(wal.MaxAge.D())), Summary: "WAL archiving is {{ $value | humanizeDuration }} behind"}},
	})

	ce := c.CertificateExpiring
	certRule := Rule{Name: "CertificateExpiring", Key: "certificate_expiring", Help: "the served TLS certificate expires soon (staged)",
		eval: func(s *Samples, now time.Time) []Candidate {
			var out []Candidate
			for _, sr := range s.Find(MetricCertExpiry, nil) {
				p, _ := sr.Last()
				left := unix(p.V).Sub(now)
				for i, days := range ce.StagesDays {
					if left >= time.Duration(days)*24*time.Hour {
						continue
					}
					sum := fmt.Sprintf("the certificate for %s expires in %s (%s)", sr.Labels["name"], humanDur(left), unix(p.V).Format(time.RFC3339))
					if left <= 0 {
						sum = fmt.Sprintf("the certificate for %s EXPIRED at %s", sr.Labels["name"], unix(p.V).Format(time.RFC3339))
					}
					out = append(out, Candidate{Labels: Labels{"name": sr.Labels["name"], "stage": stageLabel(days)},
						Severity: stageSeverity(ce, i), Value: left.Hours() / 24, Summary: sum})
				}
			}
			return out
		},
	}
	for i, days := range ce.StagesDays {
		certRule.prom = append(certRule.prom, PromRule{
			Expr:    fmt.Sprintf("%s - time() < %s", MetricCertExpiry, secs(time.Duration(days)*24*time.Hour)),
			Labels:  map[string]string{"stage": stageLabel(days), "severity": stageSeverity(ce, i)},
			Summary: "the certificate for {{ $labels.name }} expires in {{ $value | humanizeDuration }}"})
	}
	add(ce.RuleConfig, certRule)

	add(c.CertificateRenewalFailing, Rule{Name: "CertificateRenewalFailing", Key: "certificate_renewal_failing", Help: "renewing the served certificate fails",
		eval: func(s *Samples, _ time.Time) []Candidate {
			var out []Candidate
			for _, sr := range s.Find(MetricCertRenewalLastFailure, nil) {
				fail, _ := sr.Last()
				name := sr.Labels["name"]
				if succ, _ := s.Latest(MetricCertRenewalLastSuccess, Labels{"name": name}); succ >= fail.V || fail.V <= 0 {
					continue
				}
				out = append(out, Candidate{Labels: Labels{"name": name}, Value: fail.V,
					Summary: fmt.Sprintf("renewing the certificate for %s failed (last attempt %s)", name, unix(fail.V).Format(time.RFC3339))})
			}
			return out
		},
		prom: []PromRule{{Expr: fmt.Sprintf("%[1]s > on(name) %[2]s or (%[1]s unless on(name) %[2]s)", MetricCertRenewalLastFailure, MetricCertRenewalLastSuccess),
			Summary: "renewing the certificate for {{ $labels.name }} fails"}},
	})

	rl := c.ContainerRestartLoop
	add(rl.RuleConfig, Rule{Name: "ContainerRestartLoop", Key: "container_restart_loop", Help: "a stack container keeps restarting",
		eval: func(s *Samples, now time.Time) []Candidate {
			var out []Candidate
			for _, sr := range s.Find(MetricContainerRestarts, nil) {
				inc, _ := Increase(sr.Points, rl.Window.D(), now)
				if inc < float64(rl.Restarts) {
					continue
				}
				l := Labels{"service": sr.Labels["service"]}
				name := sr.Labels["service"]
				if r := sr.Labels["replica"]; r != "" {
					l["replica"] = r
					name += "-" + r
				}
				out = append(out, Candidate{Labels: l, Value: inc,
					Summary: fmt.Sprintf("container %s restarted %.0f times in %s", name, inc, humanDur(rl.Window.D()))})
			}
			return out
		},
		prom: []PromRule{{Expr: fmt.Sprintf("increase(%s[%s]) >= %d", MetricContainerRestarts, promDur(rl.Window.D()), rl.Restarts),
			Summary: "container {{ $labels.service }} {{ $labels.replica }} restarted {{ $value }} times"}},
	})
	return rules
}

func stageLabel(days int) string { return strconv.Itoa(days) + "d" }

func stageSeverity(c CertExpiryRule, i int) string {
	if i < len(c.StageSeverities) && c.StageSeverities[i] != "" {
		return c.StageSeverities[i]
	}
	if c.Severity != "" {
		return c.Severity
	}
	return "warning"
}

// firstIn is the time of the first point after start (now when there is none).
func firstIn(points []Point, start time.Time) time.Time {
	for _, p := range points {
		if p.T.After(start) {
			return p.T
		}
	}
	return time.Time{}
}
