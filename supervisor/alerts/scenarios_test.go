package alerts

import (
	"strings"
	"testing"
	"time"
)

const (
	sec = time.Second
	min = time.Minute
)

// API Down fires on the third failed check, is notified once after group_wait to the
// critical channels, is not repeated within repeat_interval, resolves and is notified
// resolved once; then the group is retired.
func TestScenarioAPIDown(t *testing.T) {
	s := newScenario(t, Config{})
	s.every(0, 45*sec, 15*sec, func(s *scenario, d time.Duration) {
		s.set(MetricAPIHealthFailures, nil, float64(d/(15*sec)+1))
	})
	s.every(60*sec, 10*min, 15*sec, func(s *scenario, d time.Duration) {
		s.set(MetricAPIHealthFailures, nil, float64(d/(15*sec)+1))
	})
	s.at(10*min+15*sec).set(MetricAPIHealthFailures, nil, 0).eval("the API answers again")
	s.every(10*min+30*sec, 16*min, 30*sec, func(s *scenario, _ time.Duration) { s.set(MetricAPIHealthFailures, nil, 0) })
	s.at(24*time.Hour + 17*min).eval("a day later the resolved alert is forgotten")
	if len(s.st.Groups) != 0 || len(s.st.Log) != 0 || len(s.st.Alerts) != 0 {
		t.Errorf("state not cleaned up: %s", js(s.st))
	}
	s.golden("api_down")
}

// A `for` duration: a dip during pending starts it over; only an unbroken 5 minutes
// fire Memory High.
func TestScenarioForDuration(t *testing.T) {
	s := newScenario(t, Config{})
	s.every(0, 3*min, min, func(s *scenario, _ time.Duration) { s.set(MetricMemoryUsedRatio, nil, 0.95) })
	s.at(4*min).set(MetricMemoryUsedRatio, nil, 0.5).eval("dip")
	s.every(5*min, 10*min+30*sec, 30*sec, func(s *scenario, _ time.Duration) { s.set(MetricMemoryUsedRatio, nil, 0.93) })
	s.golden("for_duration")
}

// An alert that keeps starting and stopping is marked flapping after three firings in an
// hour and then stays firing until its condition has been false for flap_hold: one
// notification, not one per flap.
func TestScenarioFlapping(t *testing.T) {
	s := newScenario(t, Config{})
	mount := Labels{"mount": "/var/lib/docker"}
	s.every(0, 40*min, 2*min, func(s *scenario, d time.Duration) {
		v := 0.80
		if (d/(2*min))%2 == 0 && d < 20*min {
			v = 0.86
		}
		s.set(MetricDiskUsedRatio, mount, v)
	})
	s.golden("flapping")
	mail := 0
	for _, line := range strings.Split(s.out.String(), "\n") {
		if strings.HasPrefix(line, "notify mail") {
			mail++
		}
	}
	if mail > 4 {
		t.Errorf("flapping disk sent %d mails", mail)
	}
}

// Grouping: three full filesystems and two restarting replicas that start together are
// one notification per rule and channel; a fourth filesystem joining later waits for
// group_interval; an unchanged group is repeated after repeat_interval only.
func TestScenarioGrouping(t *testing.T) {
	s := newScenario(t, Config{})
	mounts := []string{"/", "/var/lib/docker", "/var/backups/corpintel"}
	restarts := 0.0
	s.every(0, 4*time.Hour+10*min, min, func(s *scenario, d time.Duration) {
		for _, m := range mounts {
			s.set(MetricDiskUsedRatio, Labels{"mount": m}, 0.9)
		}
		if d >= 2*min {
			s.set(MetricDiskUsedRatio, Labels{"mount": "/var/lib/corpintel"}, 0.88)
		}
		if d < 10*min {
			restarts++
		}
		s.set(MetricContainerRestarts, Labels{"service": "api", "replica": "1"}, restarts)
		s.set(MetricContainerRestarts, Labels{"service": "api", "replica": "2"}, restarts)
	})
	s.golden("grouping")
}

// Inhibition: PostgreSQL down mutes API Down, Database Slow and High Error Rate; API Down
// mutes High Error Rate; a full disk mutes restart loops and its own Disk Space Low; a
// later certificate stage mutes the earlier one. Sources muted by nothing are notified;
// once the source resolves, the targets still firing are notified.
func TestScenarioInhibition(t *testing.T) {
	s := newScenario(t, Config{})
	reqs := 0.0
	s.every(0, 20*min, 30*sec, func(s *scenario, d time.Duration) {
		pgUp := 0.0
		if d >= 12*min {
			pgUp = 1
		}
		s.set(MetricServiceUp, Labels{"service": "postgres"}, pgUp)
		s.set(MetricDBQueryP95, nil, 2.5)
		reqs += 100
		s.set(MetricAPIRequests, Labels{"replica": "1", "code_class": "2xx"}, reqs)
		s.set(MetricAPIRequests, Labels{"replica": "1", "code_class": "5xx"}, reqs/10)
		s.set(MetricDiskUsedRatio, Labels{"mount": "/var/lib/docker"}, 0.97)
		s.set(MetricContainerRestarts, Labels{"service": "redis"}, float64(d/min))
		s.set(MetricCertExpiry, Labels{"name": "corp.example.com"}, float64(t0.Add(10*24*time.Hour).Unix()))
	})
	s.golden("inhibition")
}

// High Error Rate alone (API fine) fires after its 5 minutes; API Down then mutes it and
// lifts the mute when it resolves.
func TestScenarioAPIDownInhibitsErrorRate(t *testing.T) {
	s := newScenario(t, Config{})
	reqs := 0.0
	s.every(0, 25*min, 30*sec, func(s *scenario, d time.Duration) {
		reqs += 100
		s.set(MetricAPIRequests, Labels{"replica": "1", "code_class": "2xx"}, reqs)
		s.set(MetricAPIRequests, Labels{"replica": "1", "code_class": "5xx"}, reqs/20)
		fails := 0.0
		if d >= 8*min && d < 15*min {
			fails = float64((d-8*min)/(30*sec)) + 1
		}
		s.set(MetricAPIHealthFailures, nil, fails)
	})
	s.golden("api_down_inhibits_error_rate")
}

// Maintenance: during a restore the alerts it causes are held; an unrelated one is sent;
// past the operation's expected end the critical held ones are sent, warnings stay held
// until the lock is released.
func TestScenarioMaintenance(t *testing.T) {
	s := newScenario(t, Config{})
	s.op = &Operation{Kind: "restore", Started: t0, ExpectedEnd: t0.Add(20 * min)}
	s.every(0, 40*min, min, func(s *scenario, d time.Duration) {
		if d == 35*min {
			s.op = nil
		}
		s.set(MetricServiceUp, Labels{"service": "postgres"}, 0)
		s.set(MetricServiceUp, Labels{"service": "redis"}, 0)
		s.set(MetricMemoryUsedRatio, nil, 0.95)
		if d < 10*min {
			s.set(MetricServiceUp, Labels{"service": "minio"}, 0)
		} else {
			s.set(MetricServiceUp, Labels{"service": "minio"}, 1)
		}
		s.set(MetricContainerRestarts, Labels{"service": "postgres"}, float64(d/min))
	})
	s.golden("maintenance")
}

// A backup operation holds nothing: only the configured maintenance operations do.
func TestScenarioNonMaintenanceOperation(t *testing.T) {
	s := newScenario(t, Config{})
	s.op = &Operation{Kind: "backup", Started: t0}
	s.every(0, 3*min, min, func(s *scenario, _ time.Duration) { s.set(MetricServiceUp, Labels{"service": "redis"}, 0) })
	s.golden("backup_operation")
}

// An operation that switched maintenance mode on holds what it causes, whatever its
// kind (the state store records the flag per operation).
func TestScenarioMaintenanceFlag(t *testing.T) {
	s := newScenario(t, Config{})
	s.op = &Operation{Kind: "drill", Started: t0, Maintenance: true}
	s.every(0, 3*min, min, func(s *scenario, _ time.Duration) { s.set(MetricServiceUp, Labels{"service": "redis"}, 0) })
	if strings.Contains(s.out.String(), "notify ") {
		t.Errorf("an alert of a maintenance operation was sent:\n%s", s.out.String())
	}
	firing := 0
	for _, a := range s.st.Alerts {
		if a.State == StateFiring {
			firing++
			if a.MutedBy != "held during drill" {
				t.Errorf("%s muted by %q", a.Rule, a.MutedBy)
			}
		}
	}
	if firing != 1 {
		t.Errorf("%d firing alerts", firing)
	}
}

// Silences: a silence on a rule mutes its alert (nothing is sent); when it expires the
// alert is sent; a matcher silence on one mount leaves the other mounts alone.
func TestScenarioSilences(t *testing.T) {
	s := newScenario(t, Config{})
	s.st.Silences["s1"] = Silence{ID: "s1", Matchers: mustMatchers(`alertname="APIDown"`), StartsAt: t0, EndsAt: t0.Add(10 * min),
		CreatedBy: "ops", Comment: "deploying"}
	s.st.Silences["s2"] = Silence{ID: "s2", Matchers: mustMatchers(`mount=~"/var/backups.*"`), StartsAt: t0, EndsAt: t0.Add(48 * time.Hour),
		CreatedBy: "ops", Comment: "new backup disk on order"}
	s.every(0, 15*min, min, func(s *scenario, _ time.Duration) {
		s.set(MetricAPIHealthFailures, nil, 5)
		s.set(MetricDiskUsedRatio, Labels{"mount": "/var/backups/corpintel"}, 0.9)
		s.set(MetricDiskUsedRatio, Labels{"mount": "/"}, 0.9)
	})
	s.at(72 * time.Hour).eval("expired silences are forgotten after the history period")
	if _, ok := s.st.Silences["s1"]; ok {
		t.Error("silence s1 still kept 3 days after it ended")
	}
	s.golden("silences")
}

// Backup Failed fires even when no backup ever ran, 25h after the first evaluation (not
// at once on a fresh install); a stale backup fires at once; a failed verification fires
// at once and resolves with the next successful one.
func TestScenarioBackups(t *testing.T) {
	s := newScenario(t, Config{})
	s.staleBackups = true
	s.set(MetricDrillLastSuccess, nil, float64(t0.Unix()))
	s.every(0, 26*time.Hour, time.Hour, nil)
	s.at(26*time.Hour+min).set(MetricBackupLastSuccess, nil, float64(t0.Add(26*time.Hour).Unix())).eval("first verified backup")
	s.every(27*time.Hour, 51*time.Hour, 6*time.Hour, nil)
	s.at(52 * time.Hour).eval("25h later without another backup")
	s.at(52*time.Hour + min).eval("")
	s.at(52*time.Hour+10*min).set(MetricBackupLastSuccess, nil, float64(t0.Add(52*time.Hour).Unix())).
		set(MetricBackupVerifyLastSuccess, nil, float64(t0.Add(26*time.Hour).Unix())).
		set(MetricBackupVerifyLastFailure, nil, float64(t0.Add(52*time.Hour+5*min).Unix())).eval("a verification fails")
	s.every(52*time.Hour+11*min, 52*time.Hour+20*min, min, nil)
	s.at(53*time.Hour).set(MetricBackupVerifyLastSuccess, nil, float64(t0.Add(53*time.Hour).Unix())).eval("verification passes")
	s.at(53*time.Hour + 5*min).eval("")
	s.golden("backups")
}

// The disk-full forecast fires for a filesystem filling at a steady rate (72h horizon,
// 6h window, after its 30 minutes), not for a flat one above nothing, and resolves when
// the growth stops.
func TestScenarioDiskForecast(t *testing.T) {
	s := newScenario(t, Config{})
	s.every(0, 9*time.Hour, 5*min, func(s *scenario, d time.Duration) {
		grow := 0.30 + 0.01*d.Hours() // 1 %/h: full in 70h from 30 %
		if d > 7*time.Hour {
			grow = 0.30 + 0.07 // stopped growing
		}
		s.set(MetricDiskUsedRatio, Labels{"mount": "/var/lib/docker"}, grow)
		s.set(MetricDiskUsedRatio, Labels{"mount": "/"}, 0.5)
	})
	s.golden("disk_forecast")
}

// Certificates: stages 21/14/7/2 days, each stage notified with its severity, earlier
// stages muted by later ones; renewal failing after its hour.
func TestScenarioCertificates(t *testing.T) {
	s := newScenario(t, Config{})
	expiry := float64(t0.Add(22 * 24 * time.Hour).Unix())
	s.every(0, 22*24*time.Hour, 12*time.Hour, func(s *scenario, d time.Duration) {
		s.set(MetricCertExpiry, Labels{"name": "corp.example.com"}, expiry)
		if d >= 13*24*time.Hour {
			s.set(MetricCertRenewalLastFailure, Labels{"name": "corp.example.com"}, float64(t0.Add(13*24*time.Hour).Unix()))
		}
	})
	s.golden("certificates")
}

// A channel that fails gets the group again at the next flush (group_interval later),
// while the others are not re-sent; a delivery still under way is not planned twice; a
// restart forgets deliveries under way and sends them again at once.
func TestScenarioDeliveryFailures(t *testing.T) {
	s := newScenario(t, Config{})
	pdUp := false
	s.deliver = func(ch string) bool { return ch != "pd" || pdUp }
	s.every(0, 6*min, min, func(s *scenario, d time.Duration) {
		if d == 5*min {
			pdUp = true
		}
		s.set(MetricDockerUp, nil, 0)
	})
	// A second group fires; its deliveries stay under way (no outcome reported).
	s.deliver = nil
	s.at(7*min).set(MetricDockerUp, nil, 0).set(MetricServiceUp, Labels{"service": "redis"}, 0).eval("Redis goes down")
	s.at(8*min).set(MetricDockerUp, nil, 0).set(MetricServiceUp, Labels{"service": "redis"}, 0).eval("")
	s.at(8*min+30*sec).set(MetricDockerUp, nil, 0).set(MetricServiceUp, Labels{"service": "redis"}, 0)
	next, plan := s.ev.Evaluate(s.st, Input{Samples: s.w.samples(s.now), Now: s.now})
	s.st = next
	if len(plan.Notifications) != 2 {
		t.Fatalf("want the Redis group planned for pd and mail, got:\n%s", plan)
	}
	s.at(13*min + 30*sec)
	next, plan = s.ev.Evaluate(s.st, Input{Samples: s.w.samples(s.now), Now: s.now})
	s.st = next
	if len(plan.Notifications) != 0 {
		t.Fatalf("deliveries under way were planned again:\n%s", plan)
	}
	s.st.RecoverInFlight(s.now)
	s.at(13*min+45*sec).set(MetricDockerUp, nil, 0).set(MetricServiceUp, Labels{"service": "redis"}, 0).eval("after a restart")
	s.golden("delivery_failures")
}

// A channel with send_resolved = false hears about firing alerts only; when the alert
// fires again later it is news again.
func TestScenarioNoResolved(t *testing.T) {
	off := false
	chans := testChannels()
	chans[2].SendResolved = &off // chat
	s := newScenario(t, Config{Channels: chans})
	s.every(0, 12*min, min, func(s *scenario, d time.Duration) {
		v := 0.9
		if d >= 3*min && d < 9*min {
			v = 0.5
		}
		s.set(MetricDiskUsedRatio, Labels{"mount": "/"}, v)
	})
	s.golden("no_resolved")
}

// Custom routes: matchers on any label, continue, per-route group_by and timers; an
// alert no route matches is kept but sent nowhere.
func TestScenarioCustomRoutes(t *testing.T) {
	cfg := Config{Routes: []RouteConfig{
		{Name: "disks", Matchers: []string{`alertname=~"Disk.*"`}, Channels: []string{"chat"}, Continue: true,
			GroupBy: []string{"alertname", "mount"}, GroupWait: Duration(time.Minute)},
		{Name: "pager", Matchers: []string{`severity="critical"`}, Channels: []string{"pd"}, GroupBy: []string{}},
	}}
	s := newScenario(t, cfg)
	s.every(0, 6*min, min, func(s *scenario, _ time.Duration) {
		s.set(MetricDiskUsedRatio, Labels{"mount": "/"}, 0.97)
		s.set(MetricDiskUsedRatio, Labels{"mount": "/srv"}, 0.90)
		s.set(MetricDockerUp, nil, 0)
		s.set(MetricMemoryUsedRatio, nil, 0.99)
	})
	s.golden("custom_routes")
	for _, a := range s.st.Alerts {
		if a.Rule == "MemoryHigh" && a.State != StateFiring {
			t.Errorf("MemoryHigh is %s, want firing (kept although no route takes it)", a.State)
		}
	}
}

// A replica replaced mid-window restarts its counters from zero: no negative rate, no
// spike, no alert; a real 5xx burst on the new replica does fire.
func TestScenarioCounterReset(t *testing.T) {
	s := newScenario(t, Config{})
	ok1, ok2, bad2 := 0.0, 0.0, 0.0
	s.every(0, 20*min, 30*sec, func(s *scenario, d time.Duration) {
		ok1 += 100
		ok2 += 100
		if d == 6*min {
			ok2, bad2 = 50, 0 // replica 2 replaced: its counters start over
		}
		if d >= 12*min {
			bad2 += 10
		}
		s.set(MetricAPIRequests, Labels{"replica": "1", "code_class": "2xx"}, ok1)
		s.set(MetricAPIRequests, Labels{"replica": "2", "code_class": "2xx"}, ok2)
		s.set(MetricAPIRequests, Labels{"replica": "2", "code_class": "5xx"}, bad2)
	})
	s.golden("counter_reset")
}
