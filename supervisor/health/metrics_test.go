package health

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/corpintel/corpintel/supervisor/alerts"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// funcSource is a Source made of a function (unit tests of the machinery only).
type funcSource struct {
	name string
	fn   func(b *Batch) error
}

func (f funcSource) Name() string                              { return f.name }
func (f funcSource) Collect(_ context.Context, b *Batch) error { return f.fn(b) }

var (
	famTestGauge   = gauge("corpintel_test_level", "A test level.", "k")
	famTestCounter = counter("corpintel_test_things_total", "A test counter.", "k")
)

func TestMetricsCollectExposeAndSample(t *testing.T) {
	clk := newClock()
	var n float64
	var failNext bool
	var logs bytes.Buffer
	src := funcSource{"test", func(b *Batch) error {
		n++
		b.add(famTestGauge, n, "a")
		b.add(famTestGauge, 100, "a") // the same series twice: the last one wins
		b.add(famTestCounter, n*10, "a")
		if failNext {
			return errors.New("half of it failed")
		}
		return nil
	}}
	panicky := funcSource{"panicky", func(*Batch) error { panic("boom") }}
	m, err := NewMetrics(MetricsOptions{Sources: []Source{src, panicky}, Interval: 15 * time.Second, Now: clk.Now,
		Needs: map[string]time.Duration{"corpintel_test_things_total": time.Minute}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Samples(context.Background()); !errors.Is(err, ErrStale) {
		t.Fatalf("samples before the first cycle: %v", err)
	}
	for range 6 {
		m.CollectOnce(context.Background())
		clk.Add(15 * time.Second)
	}
	failNext = true
	m.CollectOnce(context.Background())
	m.CollectOnce(context.Background()) // same failure: logged once

	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP corpintel_test_level A test level.
# TYPE corpintel_test_level gauge
corpintel_test_level{k="a"} 100
# HELP corpintel_collector_success 1 when the collector's last cycle succeeded, 0 when it failed (the metrics it could read are still exposed).
# TYPE corpintel_collector_success gauge
corpintel_collector_success{collector="panicky"} 0
corpintel_collector_success{collector="test"} 0
`), "corpintel_test_level", "corpintel_collector_success"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	if c := strings.Count(logs.String(), "half of it failed"); c != 1 {
		t.Errorf("the failure was logged %d times:\n%s", c, logs.String())
	}
	if !strings.Contains(logs.String(), "panicked: boom") {
		t.Errorf("a panicking collector went unreported:\n%s", logs.String())
	}

	s, err := m.Samples(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !s.At.Equal(m.LastCollection()) {
		t.Errorf("At %s, last collection %s", s.At, m.LastCollection())
	}
	if v, ok := s.Latest("corpintel_test_level", alerts.Labels{"k": "a"}); !ok || v != 100 {
		t.Errorf("gauge %v %v", v, ok)
	}
	if g := s.Find("corpintel_test_level", nil); len(g[0].Points) != 1 {
		t.Errorf("a gauge without a need got %d points", len(g[0].Points))
	}
	c := s.Find("corpintel_test_things_total", nil)
	if len(c) != 1 {
		t.Fatalf("counter series: %d", len(c))
	}
	// The last minute: the baseline at or before -60s and the points after it; the two
	// cycles at one instant left one point.
	if inc, secs := alerts.Increase(c[0].Points, time.Minute, s.At); inc != 50 || secs != 60 || len(c[0].Points) != 5 {
		t.Errorf("increase over a minute %v over %vs; points %v", inc, secs, c[0].Points)
	}

	clk.Add(time.Hour)
	if _, err := m.Samples(context.Background()); !errors.Is(err, ErrStale) {
		t.Errorf("samples an hour after the last cycle: %v", err)
	}
}

func TestMetricsSamplesDropGoneSeries(t *testing.T) {
	clk := newClock()
	present := map[string]bool{"a": true, "b": true}
	src := funcSource{"test", func(b *Batch) error {
		for k := range present {
			b.add(famTestGauge, 1, k)
			b.add(famTestCounter, 5, k)
		}
		return nil
	}}
	m, err := NewMetrics(MetricsOptions{Sources: []Source{src}, Interval: 10 * time.Second, Now: clk.Now,
		Needs: map[string]time.Duration{"corpintel_test_things_total": time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	m.CollectOnce(context.Background())
	delete(present, "b")
	clk.Add(10 * time.Second)
	m.CollectOnce(context.Background())
	s, _ := m.Samples(context.Background())
	if g := s.Find("corpintel_test_level", nil); len(g) != 1 || g[0].Labels["k"] != "a" {
		t.Errorf("a gauge that is gone still counts: %v", g)
	}
	if c := s.Find("corpintel_test_things_total", nil); len(c) != 2 {
		t.Errorf("a counter that left inside its window must still count: %d series", len(c))
	}
	clk.Add(2 * time.Minute)
	m.CollectOnce(context.Background())
	s, _ = m.Samples(context.Background())
	if c := s.Find("corpintel_test_things_total", nil); len(c) != 1 {
		t.Errorf("a counter gone for longer than its window: %d series", len(c))
	}
}

func TestMetricsRunAndOptions(t *testing.T) {
	if _, err := NewMetrics(MetricsOptions{}); err == nil {
		t.Error("no sources accepted")
	}
	dup := funcSource{"x", func(*Batch) error { return nil }}
	if _, err := NewMetrics(MetricsOptions{Sources: []Source{dup, dup}}); err == nil {
		t.Error("two sources with one name accepted")
	}
	var mu sync.Mutex
	cycles := 0
	src := funcSource{"x", func(b *Batch) error {
		mu.Lock()
		cycles++
		mu.Unlock()
		return nil
	}}
	ticks := make(chan time.Time)
	m, err := NewMetrics(MetricsOptions{Sources: []Source{src}, Ticks: ticks})
	if err != nil {
		t.Fatal(err)
	}
	if m.Interval() != 15*time.Second || m.opts.Timeout != 10*time.Second || m.opts.Resolution != time.Minute || m.opts.Retention != 24*time.Hour {
		t.Errorf("defaults: %+v", m.opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	ticks <- time.Now()
	ticks <- time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if cycles < 2 {
		t.Errorf("%d cycles after start and two ticks", cycles)
	}
}

func TestBatchLabelMismatchPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("a wrong number of label values was accepted")
		}
	}()
	(&Batch{}).add(famTestGauge, 1)
}

func TestFamiliesLintClean(t *testing.T) {
	// One value in every family the collectors define, linted as promtool would.
	src := funcSource{"all", func(b *Batch) error {
		for _, f := range families {
			if f == famHistorySeries || f == famHistoryPoints {
				continue // the machinery's own
			}
			labels := make([]string, len(f.labels))
			for i := range labels {
				labels[i] = "x"
			}
			b.add(f, 1, labels...)
		}
		return nil
	}}
	m, err := NewMetrics(MetricsOptions{Sources: []Source{src}})
	if err != nil {
		t.Fatal(err)
	}
	m.CollectOnce(context.Background())
	problems, err := testutil.CollectAndLint(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	names := FamilyNames()
	for _, want := range alerts.MetricNames() {
		switch want {
		case alerts.MetricBackupLastSuccess, alerts.MetricBackupVerifyLastFailure, alerts.MetricBackupVerifyLastSuccess,
			alerts.MetricCertExpiry, alerts.MetricCertRenewalLastFailure, alerts.MetricCertRenewalLastSuccess,
			alerts.MetricOffsiteLastFailure, alerts.MetricOffsiteLastSuccess, alerts.MetricWALArchiveLag, alerts.MetricDrillLastSuccess:
			continue // exported by the backup and certificate parts
		}
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("no collector fills %s, which a rule reads", want)
		}
	}
}

func TestMetricsHistory(t *testing.T) {
	clk := newClock()
	v := 0.0
	src := funcSource{"test", func(b *Batch) error {
		v++
		b.add(famTestGauge, v, "a")
		b.add(famTestGauge, -v, "b")
		return nil
	}}
	m, err := NewMetrics(MetricsOptions{Sources: []Source{src}, Interval: 15 * time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	start := clk.Now()
	for range 4 * 10 { // 10 minutes at 15 s
		m.CollectOnce(context.Background())
		clk.Add(15 * time.Second)
	}
	got := m.History("corpintel_test_level", alerts.Labels{"k": "a"}, start.Add(5*time.Minute))
	if len(got) != 1 {
		t.Fatalf("series %d", len(got))
	}
	// One point per minute (its newest value), from minute 5 on.
	if len(got[0].Points) != 5 || got[0].Points[0].V != 24 || got[0].Points[4].V != 40 {
		t.Errorf("per-minute points %v", got[0].Points)
	}
	if all := m.History("corpintel_test_level", nil, start); len(all) != 2 {
		t.Errorf("all series: %d", len(all))
	}
}
