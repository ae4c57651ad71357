package alerts

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// benchSamples is a busy appliance's snapshot: every metric the rules read, 5 mounts with
// 6 h of 1-minute history (the forecast window), 4 replicas × 4 status classes and 6
// containers with 1 h of 15-second history, 3 certificates.
func benchSamples(now time.Time) Samples {
	s := Samples{At: now}
	for m := range 5 {
		l := Labels{"mount": fmt.Sprintf("/mnt/%d", m)}
		for i := 360; i >= 0; i-- {
			s.Add(MetricDiskUsedRatio, l, now.Add(-time.Duration(i)*time.Minute), 0.5+0.4*float64(360-i)/360*float64(m%2))
		}
	}
	for r := range 4 {
		for _, c := range []string{"2xx", "3xx", "4xx", "5xx"} {
			l := Labels{"replica": fmt.Sprint(r + 1), "code_class": c}
			for i := 240; i >= 0; i-- {
				s.Add(MetricAPIRequests, l, now.Add(-time.Duration(i)*15*time.Second), float64((240-i)*100))
			}
		}
	}
	for _, svc := range []string{"postgres", "redis", "minio", "api-1", "api-2", "api-3"} {
		for i := 240; i >= 0; i-- {
			s.Add(MetricContainerRestarts, Labels{"service": svc}, now.Add(-time.Duration(i)*15*time.Second), float64((240-i)/20))
		}
	}
	for _, svc := range []string{"postgres", "redis", "minio"} {
		s.Set(MetricServiceUp, Labels{"service": svc}, 1)
	}
	for c := range 3 {
		s.Set(MetricCertExpiry, Labels{"name": fmt.Sprintf("host%d.example.com", c)}, float64(now.Add(time.Duration(c*8)*24*time.Hour).Unix()))
	}
	s.Set(MetricAPIHealthFailures, nil, 4)
	s.Set(MetricDBQueryP95, nil, 1.5)
	s.Set(MetricMemoryUsedRatio, nil, 0.95)
	s.Set(MetricDockerUp, nil, 1)
	s.Set(MetricBackupLastSuccess, nil, float64(now.Add(-2*time.Hour).Unix()))
	s.Set(MetricBackupVerifyLastSuccess, nil, float64(now.Add(-2*time.Hour).Unix()))
	s.Set(MetricDrillLastSuccess, nil, float64(now.Add(-48*time.Hour).Unix()))
	s.Set(MetricWALArchiveLag, nil, 30)
	return s
}

func benchState(b *testing.B, ev *Evaluator, now time.Time) State {
	st := NewState()
	st.Silences["s"] = Silence{ID: "s", Matchers: mustMatchers(`mount="/mnt/3"`), StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour)}
	// Warm up: alerts firing, groups formed, notifications delivered.
	for i := 10; i >= 0; i-- {
		at := now.Add(-time.Duration(i) * time.Minute)
		var plan Plan
		st, plan = ev.Evaluate(st, Input{Samples: benchSamples(at), Now: at})
		for _, n := range plan.Notifications {
			st.MarkDelivered(n.Message.GroupKey, n.Message.Channel, true, at)
		}
	}
	if len(st.Alerts) < 10 {
		b.Fatalf("warm-up produced only %d alerts", len(st.Alerts))
	}
	return st
}

// BenchmarkEvaluate is the pure evaluation of one cycle on a busy appliance.
func BenchmarkEvaluate(b *testing.B) {
	ev, err := NewEvaluator(Config{Channels: testChannels()})
	if err != nil {
		b.Fatal(err)
	}
	now := t0.Add(24 * time.Hour)
	st := benchState(b, ev, now)
	samples := benchSamples(now)
	in := Input{Samples: samples, Now: now.Add(15 * time.Second)}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_, _ = ev.Evaluate(st, in)
	}
	b.ReportMetric(float64(len(st.Alerts)), "alerts")
	b.ReportMetric(float64(len(samples.Series)), "series")
}

// BenchmarkCycle is one engine cycle: evaluation plus saving the state to SQLite.
func BenchmarkCycle(b *testing.B) {
	now := t0.Add(24 * time.Hour)
	clk := &clock{t: now}
	samples := benchSamples(now)
	eng, err := New(context.Background(), Options{Config: Config{}, Store: NewSQLStore(openDB(b, "")), Now: clk.Now,
		Source: SampleSourceFunc(func(context.Context) (Samples, error) { return samples, nil })})
	if err != nil {
		b.Fatal(err)
	}
	ev, _ := NewEvaluator(Config{})
	eng.st = benchState(b, ev, now)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		clk.Set(now.Add(time.Duration(i) * 15 * time.Second))
		if err := eng.Cycle(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
