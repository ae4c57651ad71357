package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corpintel/corpintel/supervisor/alerts"
)

// The metrics collectors.
//
// Every Source adds what it measures to a Batch once per cycle (Metrics.Interval). The
// last batch is what /metrics exposes (client_golang const metrics, so a scrape never
// waits for a database or a replica) and what the alert engine's Samples read, together
// with the recent history of each series (history.go). Collecting on a clock instead of
// at scrape time also gives every series one timestamp per cycle, which is what the
// history and the rates over it need.

// Family is one metric family of the supervisor's exposition. Define families once, as
// package variables (NewGauge, NewCounter), before the supervisor runs.
type Family struct {
	name   string
	help   string
	typ    prometheus.ValueType
	labels []string
	desc   *prometheus.Desc
}

var families []*Family

func newFamily(typ prometheus.ValueType, name, help string, labels ...string) *Family {
	f := &Family{name: name, help: help, typ: typ, labels: labels, desc: prometheus.NewDesc(name, help, labels, nil)}
	families = append(families, f)
	return f
}

// NewGauge defines a gauge family of the supervisor's exposition.
func NewGauge(name, help string, labels ...string) *Family { return gauge(name, help, labels...) }

// NewCounter defines a counter family (the name ends in _total).
func NewCounter(name, help string, labels ...string) *Family { return counter(name, help, labels...) }

func gauge(name, help string, labels ...string) *Family {
	return newFamily(prometheus.GaugeValue, name, help, labels...)
}

func counter(name, help string, labels ...string) *Family {
	return newFamily(prometheus.CounterValue, name, help, labels...)
}

// FamilyNames lists every metric family the collectors can fill, sorted.
func FamilyNames() []string {
	out := make([]string, 0, len(families))
	for _, f := range families {
		out = append(out, f.name)
	}
	slices.Sort(out)
	return out
}

// The collectors' view of themselves.
var (
	famCollectorUp = gauge("corpintel_collector_success",
		"1 when the collector's last cycle succeeded, 0 when it failed (the metrics it could read are still exposed).", "collector")
	famCollectorSeconds = gauge("corpintel_collector_duration_seconds", "Duration of the collector's last cycle.", "collector")
	famHistorySeries    = gauge("corpintel_metrics_history_series", "Series kept in the supervisor's recent-metrics buffer.")
	famHistoryPoints    = gauge("corpintel_metrics_history_points", "Points kept in the supervisor's recent-metrics buffer.")
)

// value is one series' value in a batch.
type value struct {
	fam    *Family
	labels []string
	v      float64
}

func (v value) key() string { return seriesKey(v.fam.name, v.labels) }

func seriesKey(name string, labels []string) string {
	return name + "\xff" + strings.Join(labels, "\xff")
}

// Batch collects the values of one cycle. Sources add to it concurrently.
type Batch struct {
	mu     sync.Mutex
	values []value
}

// Add records a value of f with its label values (in the family's label order).
func (b *Batch) Add(f *Family, v float64, labels ...string) { b.add(f, v, labels...) }

func (b *Batch) add(f *Family, v float64, labels ...string) {
	if len(labels) != len(f.labels) {
		panic(fmt.Sprintf("health: %s takes labels %v, got %d values", f.name, f.labels, len(labels)))
	}
	b.mu.Lock()
	b.values = append(b.values, value{fam: f, labels: labels, v: v})
	b.mu.Unlock()
}

// Source is one collector.
type Source interface {
	// Name labels the collector's own metrics ("host", "postgres", …).
	Name() string
	// Collect adds the current values to b. An error says that some could not be read;
	// what was added is still used.
	Collect(ctx context.Context, b *Batch) error
}

// MetricsOptions configure Metrics.
type MetricsOptions struct {
	Sources []Source
	// Interval is the collection period (default 15s).
	Interval time.Duration
	// Timeout bounds one cycle (default: the interval, at least 2s and at most 10s).
	Timeout time.Duration
	// Needs says how much history the alert rules read per metric name (the error-rate
	// window, the restart-loop window, the disk forecast window); a metric without an
	// entry is handed to the rules with its current value only.
	Needs map[string]time.Duration
	// Resolution and Retention shape the recent-metrics buffer for charts (default 1m
	// and 24h).
	Resolution, Retention time.Duration
	Now                   func() time.Time
	Log                   *slog.Logger
	// Ticks drives Run (default: a ticker at Interval).
	Ticks <-chan time.Time
}

// Metrics runs the collectors, exposes their last values (prometheus.Collector) and
// keeps their recent history for the alert engine (alerts.SampleSource) and the charts.
type Metrics struct {
	opts MetricsOptions
	log  *slog.Logger
	now  func() time.Time

	mu      sync.RWMutex
	last    []value
	lastAt  time.Time
	hist    *history
	lastErr map[string]string
}

var (
	_ prometheus.Collector = (*Metrics)(nil)
	_ alerts.SampleSource  = (*Metrics)(nil)
)

// NewMetrics checks the options; nothing is collected before Run or CollectOnce.
func NewMetrics(o MetricsOptions) (*Metrics, error) {
	if len(o.Sources) == 0 {
		return nil, errors.New("health: metrics need at least one source")
	}
	names := map[string]bool{}
	for _, s := range o.Sources {
		if names[s.Name()] {
			return nil, fmt.Errorf("health: two sources named %s", s.Name())
		}
		names[s.Name()] = true
	}
	if o.Interval <= 0 {
		o.Interval = 15 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = min(max(o.Interval, 2*time.Second), 10*time.Second)
	}
	if o.Resolution <= 0 {
		o.Resolution = time.Minute
	}
	if o.Retention <= 0 {
		o.Retention = 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	fine := 2 * o.Interval
	for _, d := range o.Needs {
		if d <= time.Hour { // longer windows read the per-minute history
			fine = max(fine, d+2*o.Interval)
		}
	}
	return &Metrics{opts: o, log: o.Log, now: o.Now, lastErr: map[string]string{},
		hist: newHistory(o.Resolution, o.Retention, fine, o.Interval)}, nil
}

// Interval is the collection period.
func (m *Metrics) Interval() time.Duration { return m.opts.Interval }

// Run collects at every tick until ctx ends (the first cycle at once).
func (m *Metrics) Run(ctx context.Context) error {
	ticks := m.opts.Ticks
	if ticks == nil {
		t := time.NewTicker(m.opts.Interval)
		defer t.Stop()
		ticks = t.C
	}
	for {
		m.CollectOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		}
	}
}

// CollectOnce runs every source once, concurrently, and publishes the batch.
func (m *Metrics) CollectOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	at := m.now()
	b := &Batch{}
	var wg sync.WaitGroup
	errs := make([]error, len(m.opts.Sources))
	took := make([]time.Duration, len(m.opts.Sources))
	for i, s := range m.opts.Sources {
		wg.Go(func() {
			start := time.Now()
			errs[i] = collectProtected(ctx, s, b)
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i, s := range m.opts.Sources {
		ok := 1.0
		if errs[i] != nil {
			ok = 0
		}
		b.add(famCollectorUp, ok, s.Name())
		b.add(famCollectorSeconds, took[i].Seconds(), s.Name())
		m.noteError(s.Name(), errs[i])
	}
	values := dedupe(b.values)

	m.mu.Lock()
	defer m.mu.Unlock()
	m.hist.record(at, values)
	series, points := m.hist.size()
	values = append(values, value{fam: famHistorySeries, v: float64(series)}, value{fam: famHistoryPoints, v: float64(points)})
	m.last, m.lastAt = values, at
}

func collectProtected(ctx context.Context, s Source, b *Batch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("collector %s panicked: %v", s.Name(), r)
		}
	}()
	return s.Collect(ctx, b)
}

// noteError logs a collector's failure when it starts or changes, and its recovery,
// instead of once per cycle.
func (m *Metrics) noteError(name string, err error) {
	m.mu.Lock()
	prev := m.lastErr[name]
	m.mu.Unlock()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg == prev {
		return
	}
	m.mu.Lock()
	m.lastErr[name] = msg
	m.mu.Unlock()
	if msg == "" {
		m.log.Info("metrics collector recovered", "collector", name)
		return
	}
	m.log.Warn("metrics collector failed; its metrics are incomplete", "collector", name, "err", msg)
}

// dedupe keeps the last value of each series (a source must not expose one twice, or
// the whole scrape fails) in a stable order.
func dedupe(vs []value) []value {
	idx := make(map[string]int, len(vs))
	out := make([]value, 0, len(vs))
	for _, v := range vs {
		k := v.key()
		if i, ok := idx[k]; ok {
			out[i] = v
			continue
		}
		idx[k] = len(out)
		out = append(out, v)
	}
	slices.SortStableFunc(out, func(a, b value) int { return strings.Compare(a.key(), b.key()) })
	return out
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range families {
		ch <- f.desc
	}
}

// Collect implements prometheus.Collector: the values of the last cycle.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, v := range m.last {
		ch <- prometheus.MustNewConstMetric(v.fam.desc, v.fam.typ, v.v, v.labels...)
	}
}

// LastCollection is when the last cycle ran (zero before the first).
func (m *Metrics) LastCollection() time.Time {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.lastAt
}

// ErrStale is returned by Samples when no recent cycle ran: the alert engine then keeps
// its state rather than resolving everything on missing data.
var ErrStale = errors.New("metrics are stale")

// Samples implements alerts.SampleSource: the series of the last cycle, each with the
// history its rule needs (Needs), plus counters that left within their window (a
// replaced replica's requests still count towards the error rate).
func (m *Metrics) Samples(context.Context) (alerts.Samples, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.lastAt.IsZero() {
		return alerts.Samples{}, fmt.Errorf("%w: nothing collected yet", ErrStale)
	}
	if age := m.now().Sub(m.lastAt); age > 3*m.opts.Interval+m.opts.Timeout {
		return alerts.Samples{}, fmt.Errorf("%w: the last collection ran %s ago", ErrStale, age.Round(time.Second))
	}
	return m.hist.samples(m.lastAt, m.opts.Needs), nil
}

// History returns the per-minute history (at the buffer's resolution) of the series
// named name whose labels include match, since the given time, for the console's charts.
func (m *Metrics) History(name string, match alerts.Labels, since time.Time) []alerts.Series {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.hist.coarseSeries(name, match, since)
}
