package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/corpintel/corpintel/supervisor/alerts/notify"
)

// SampleSource supplies the snapshot each evaluation reads (supervisor/health implements
// it from its collectors and recent-metrics buffer).
type SampleSource interface {
	Samples(ctx context.Context) (Samples, error)
}

// SampleSourceFunc adapts a function to [SampleSource].
type SampleSourceFunc func(ctx context.Context) (Samples, error)

// Samples calls f.
func (f SampleSourceFunc) Samples(ctx context.Context) (Samples, error) { return f(ctx) }

// OperationSource tells which operation holds the operation lock (nil: none). The
// supervisor implements it over its state store's lock and journal.
type OperationSource interface {
	CurrentOperation(ctx context.Context) (*Operation, error)
}

// Options are the engine's dependencies. Config, Source and Store are required.
type Options struct {
	Config     Config
	Source     SampleSource
	Operations OperationSource
	Store      Store
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Ticks drives Run's evaluations (default: a ticker at Config.EvaluationInterval).
	Ticks <-chan time.Time
	// Backoff is the per-message retry schedule (default notify.DefaultBackoff).
	Backoff notify.Backoff
	// Proxy overrides the HTTP proxy selection (default: the environment).
	Proxy notify.HTTPOptions
	// Notifiers replaces the notifier built for a channel name (tests).
	Notifiers map[string]notify.Notifier
}

// Engine evaluates the rules on a clock, keeps the alert state in its store and hands
// notifications to the per-channel dispatcher. Its methods serve the CLI and console.
type Engine struct {
	opts      Options
	ev        *Evaluator
	dispatch  *notify.Dispatcher
	log       *slog.Logger
	now       func() time.Time
	chanTypes map[string]string

	mu        sync.Mutex
	st        State
	lastEval  time.Time
	lastErr   string
	operation *Operation

	evals, evalFailures prometheus.Counter
	evalSeconds         prometheus.Gauge
	active              *prometheus.GaugeVec
}

// New builds the engine and loads the saved state. Deliveries that were under way when
// the previous process stopped are planned again at the first evaluation.
func New(ctx context.Context, o Options) (*Engine, error) {
	if o.Source == nil || o.Store == nil {
		return nil, errors.New("alerts: engine needs a sample source and a store")
	}
	ev, err := NewEvaluator(o.Config)
	if err != nil {
		return nil, fmt.Errorf("alerts config: %w", err)
	}
	e := &Engine{opts: o, ev: ev, log: o.Logger, now: o.Now, chanTypes: map[string]string{}}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	cfg := ev.Config()
	httpOpts := o.Proxy
	httpOpts.CAFile = cfg.CAFile
	var chans []notify.Channel
	for _, c := range cfg.Channels {
		n := o.Notifiers[c.Name]
		if n == nil {
			if n, err = notify.Build(c, httpOpts); err != nil {
				return nil, fmt.Errorf("alerts: channel %s: %w", c.Name, err)
			}
		}
		chans = append(chans, notify.Channel{Name: c.Name, Type: c.Type, Notifier: n, Timeout: c.AttemptTimeout()})
		e.chanTypes[c.Name] = c.Type
	}
	e.dispatch, err = notify.NewDispatcher(chans, notify.DispatcherOptions{
		Backoff: o.Backoff, Registerer: o.Registerer, Logger: e.log, Now: e.now, After: e.delivered,
	})
	if err != nil {
		return nil, err
	}
	e.evals = prometheus.NewCounter(prometheus.CounterOpts{Name: "corpintel_alerts_evaluations_total", Help: "Alert rule evaluations."})
	e.evalFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "corpintel_alerts_evaluation_failures_total",
		Help: "Evaluations skipped because the samples, the operation lock or the store could not be read or written."})
	e.evalSeconds = prometheus.NewGauge(prometheus.GaugeOpts{Name: "corpintel_alerts_evaluation_duration_seconds", Help: "Duration of the last evaluation."})
	e.active = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "corpintel_alerts", Help: "Alerts by state and severity (muted ones included)."},
		[]string{"state", "severity"})
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{e.evals, e.evalFailures, e.evalSeconds, e.active} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("alerts: register metrics: %w", err)
			}
		}
	}
	st, err := o.Store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("alerts: load state: %w", err)
	}
	st.RecoverInFlight(e.now())
	e.st = st
	if recent, err := o.Store.Deliveries(ctx, 500); err == nil {
		e.restoreChannelStatus(recent)
	}
	return e, nil
}

// restoreChannelStatus seeds each channel's last results from the delivery history, so
// `corpintel alerts` shows a failing channel right after a restart.
func (e *Engine) restoreChannelStatus(recent []notify.Result) {
	byChan := map[string]*notify.ChannelStatus{}
	for _, r := range recent { // newest first
		s := byChan[r.Channel]
		if s == nil {
			s = &notify.ChannelStatus{Name: r.Channel}
			byChan[r.Channel] = s
		}
		if s.LastAttempt.IsZero() {
			s.LastAttempt = r.At
		}
		if r.OK {
			if s.LastSuccess.IsZero() {
				s.LastSuccess = r.At
			}
			s.Sent++
		} else {
			if s.LastErrorAt.IsZero() {
				s.LastError, s.LastErrorAt = r.Error, r.At
			}
			if s.LastSuccess.IsZero() {
				s.ConsecutiveFailures++
			}
			s.Failed++
		}
	}
	for _, s := range byChan {
		e.dispatch.Restore(*s)
	}
}

// Run evaluates at every tick (and once at start) and delivers notifications until ctx
// ends.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.dispatch.Run(ctx)
	}()
	defer wg.Wait()
	ticks := e.opts.Ticks
	if ticks == nil {
		t := time.NewTicker(e.ev.Config().EvaluationInterval.D())
		defer t.Stop()
		ticks = t.C
	}
	e.cycleLogged(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
			e.cycleLogged(ctx)
		}
	}
}

func (e *Engine) cycleLogged(ctx context.Context) {
	if err := e.Cycle(ctx); err != nil && ctx.Err() == nil {
		e.log.Error("alert evaluation failed", "err", err)
	}
}

// Cycle runs one evaluation and enqueues its notifications. When the samples cannot be
// read nothing changes: a broken collector must not resolve every alert.
func (e *Engine) Cycle(ctx context.Context) error {
	start := time.Now()
	e.evals.Inc()
	samples, err := e.opts.Source.Samples(ctx)
	if err != nil {
		return e.failed(fmt.Errorf("read samples: %w", err))
	}
	var op *Operation
	if e.opts.Operations != nil {
		if op, err = e.opts.Operations.CurrentOperation(ctx); err != nil {
			return e.failed(fmt.Errorf("read operation lock: %w", err))
		}
	}
	e.mu.Lock()
	now := e.now()
	next, plan := e.ev.Evaluate(e.st, Input{Samples: samples, Operation: op, Now: now})
	if err := e.opts.Store.Save(ctx, next); err != nil {
		e.mu.Unlock()
		return e.failed(fmt.Errorf("save state: %w", err))
	}
	e.st, e.lastEval, e.lastErr, e.operation = next, now, "", op
	e.updateGauges()
	e.mu.Unlock()
	for _, t := range plan.Transitions {
		e.log.Info("alert "+t.To, "alert", t.Alert, "from", t.From, "value", t.Value)
	}
	for _, n := range plan.Notifications {
		if err := e.dispatch.Enqueue(n.Message); err != nil {
			e.log.Error("alert notification not queued", "err", err)
		}
	}
	e.evalSeconds.Set(time.Since(start).Seconds())
	return nil
}

func (e *Engine) failed(err error) error {
	e.evalFailures.Inc()
	e.mu.Lock()
	e.lastErr = err.Error()
	e.mu.Unlock()
	return err
}

func (e *Engine) updateGauges() {
	e.active.Reset()
	for _, s := range []string{StatePending, StateFiring} {
		for _, sev := range Severities {
			e.active.WithLabelValues(s, sev)
		}
	}
	for _, a := range e.st.Alerts {
		if a.State != StateResolved {
			e.active.WithLabelValues(a.State, a.Labels["severity"]).Inc()
		}
	}
}

// delivered records a delivery's outcome in the notification log: on success the group's
// channel now knows what the message said; on failure the next flush tries again.
func (e *Engine) delivered(r notify.Result) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.mu.Lock()
	next := e.st.Clone()
	if next.MarkDelivered(r.GroupKey, r.Channel, r.OK, r.At) {
		if err := e.opts.Store.Save(ctx, next); err != nil {
			e.log.Error("alert notification log not saved: the notification may be sent again after a restart", "err", err)
		}
		e.st = next
	}
	e.mu.Unlock()
	if err := e.opts.Store.RecordDelivery(ctx, r); err != nil {
		e.log.Error("alert delivery history not saved", "err", err)
	}
}

// Snapshot is what `corpintel alerts` and the console show.
type Snapshot struct {
	At             time.Time              `json:"at"`
	LastEvaluation time.Time              `json:"last_evaluation,omitzero"`
	LastError      string                 `json:"last_error,omitempty"`
	Operation      *Operation             `json:"operation,omitempty"`
	Active         []Alert                `json:"active"`
	Recent         []Alert                `json:"recent"`
	Silences       []SilenceView          `json:"silences"`
	Channels       []notify.ChannelStatus `json:"channels"`
}

// SilenceView is a silence with its status.
type SilenceView struct {
	Silence
	Status string `json:"status"`
}

// Active returns active (pending and firing) and recently resolved alerts, most severe
// first, with silences and channel states.
func (e *Engine) Active() Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	s := Snapshot{At: now, LastEvaluation: e.lastEval, LastError: e.lastErr, Operation: e.operation,
		Active: []Alert{}, Recent: []Alert{}, Silences: []SilenceView{}, Channels: e.dispatch.Status()}
	for _, a := range e.st.Alerts {
		if a.State == StateResolved {
			s.Recent = append(s.Recent, a.clone())
		} else {
			s.Active = append(s.Active, a.clone())
		}
	}
	sortAlerts(s.Active)
	sort.Slice(s.Recent, func(i, j int) bool { return s.Recent[i].ResolvedAt.After(s.Recent[j].ResolvedAt) })
	for _, sl := range e.st.Silences {
		s.Silences = append(s.Silences, SilenceView{Silence: sl, Status: sl.Status(now)})
	}
	sort.Slice(s.Silences, func(i, j int) bool { return s.Silences[i].EndsAt.After(s.Silences[j].EndsAt) })
	return s
}

func sortAlerts(as []Alert) {
	rank := func(a Alert) int { return slices.Index(Severities, a.Labels["severity"]) }
	sort.Slice(as, func(i, j int) bool {
		if as[i].State != as[j].State {
			return as[i].State == StateFiring
		}
		if rank(as[i]) != rank(as[j]) {
			return rank(as[i]) > rank(as[j])
		}
		return alertID(as[i].Labels) < alertID(as[j].Labels)
	})
}

// SilenceRequest asks for a silence: a rule name and/or matchers, a duration, who and why.
type SilenceRequest struct {
	// Rule silences one rule (alertname); may be combined with Matchers.
	Rule     string   `json:"rule,omitempty"`
	Matchers []string `json:"matchers,omitempty"`
	// For is the silence's duration (JSON: nanoseconds, as time.Duration encodes).
	For     time.Duration `json:"for"`
	Comment string        `json:"comment"`
	Author  string        `json:"author"`
}

// MaxSilence bounds a silence's duration: a forgotten silence must end some day.
const MaxSilence = 90 * 24 * time.Hour

// Silence creates a silence starting now.
func (e *Engine) Silence(ctx context.Context, req SilenceRequest) (Silence, error) {
	var problems []string
	ms, err := ParseMatchers(req.Matchers)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if req.Rule != "" {
		if names := RuleNames(); !slices.Contains(names, req.Rule) {
			problems = append(problems, fmt.Sprintf("no rule named %q (rules: %s)", req.Rule, strings.Join(names, ", ")))
		} else {
			m, _ := NewMatcher("alertname", MatchEqual, req.Rule)
			ms = append(Matchers{m}, ms...)
		}
	}
	if req.Rule == "" && len(req.Matchers) == 0 {
		problems = append(problems, "name a rule or give matchers (e.g. mount=\"/\")")
	}
	if req.For <= 0 || req.For > MaxSilence {
		problems = append(problems, fmt.Sprintf("the duration must be between 1s and %s (e.g. --for 2h), got %s", MaxSilence, req.For))
	}
	if strings.TrimSpace(req.Comment) == "" {
		problems = append(problems, "a comment is required (say why, e.g. --comment \"disk being replaced\")")
	}
	if strings.TrimSpace(req.Author) == "" {
		problems = append(problems, "an author is required")
	}
	if len(problems) > 0 {
		return Silence{}, fmt.Errorf("silence refused: %s", strings.Join(problems, "; "))
	}
	now := e.now()
	sl := Silence{ID: uuid.NewString(), Matchers: ms, StartsAt: now, EndsAt: now.Add(req.For),
		CreatedBy: strings.TrimSpace(req.Author), Comment: strings.TrimSpace(req.Comment), CreatedAt: now, UpdatedAt: now}
	e.mu.Lock()
	defer e.mu.Unlock()
	next := e.st.Clone()
	next.Silences[sl.ID] = sl
	if err := e.opts.Store.Save(ctx, next); err != nil {
		return Silence{}, fmt.Errorf("save silence: %w", err)
	}
	e.st = next
	return sl, nil
}

// ErrNoSilence is returned by Unsilence for an unknown id.
var ErrNoSilence = errors.New("no such silence")

// Unsilence expires a silence now (it stays listed until the history period passes).
func (e *Engine) Unsilence(ctx context.Context, id string) (Silence, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	sl, ok := e.st.Silences[id]
	if !ok {
		return Silence{}, fmt.Errorf("%w %q (list them with `corpintel alerts`)", ErrNoSilence, id)
	}
	now := e.now()
	if sl.Status(now) == SilenceExpired {
		return sl, nil
	}
	next := e.st.Clone()
	if sl.StartsAt.After(now) {
		sl.StartsAt = now
	}
	sl.EndsAt, sl.UpdatedAt = now, now
	next.Silences[id] = sl
	if err := e.opts.Store.Save(ctx, next); err != nil {
		return Silence{}, fmt.Errorf("save silence: %w", err)
	}
	e.st = next
	return sl, nil
}

// TestChannel sends a test notification through one channel now (with retries) and says
// how it went; for PagerDuty the test incident is resolved right after.
func (e *Engine) TestChannel(ctx context.Context, name string) (notify.Result, error) {
	typ, ok := e.chanTypes[name]
	if !ok {
		return notify.Result{}, fmt.Errorf("%w %q (configured: %s)", notify.ErrUnknownChannel, name, strings.Join(e.dispatch.Channels(), ", "))
	}
	now := e.now()
	labels := map[string]string{"alertname": "CorpintelTest", "severity": "info"}
	gk := "test/" + Labels{"channel": name}.String()
	alert := notify.Alert{Status: notify.StatusFiring, Labels: labels, StartsAt: now, Fingerprint: Fingerprint(labels),
		Annotations: map[string]string{"summary": "test notification from corpintel", "description": "sent by `corpintel alerts test --channel " + name + "`; nothing is wrong"}}
	m := notify.NewMessage(name, gk, DedupKey(gk+now.String()), map[string]string{"channel": name}, []notify.Alert{alert})
	m.Test, m.ExternalURL = true, e.ev.Config().ExternalURL
	res, err := e.dispatch.Send(ctx, m)
	e.record(ctx, res)
	if err != nil || typ != notify.TypePagerDuty {
		return res, err
	}
	alert.Status, alert.EndsAt = notify.StatusResolved, e.now()
	rm := notify.NewMessage(name, gk, m.DedupKey, m.GroupLabels, []notify.Alert{alert})
	rm.Test = true
	res, err = e.dispatch.Send(ctx, rm)
	e.record(ctx, res)
	return res, err
}

func (e *Engine) record(ctx context.Context, r notify.Result) {
	if r.Channel == "" {
		return
	}
	if err := e.opts.Store.RecordDelivery(ctx, r); err != nil {
		e.log.Error("alert delivery history not saved", "err", err)
	}
}

// ChannelStatus returns every channel's delivery state.
func (e *Engine) ChannelStatus() []notify.ChannelStatus { return e.dispatch.Status() }

// Deliveries returns the newest delivery outcomes from the store.
func (e *Engine) Deliveries(ctx context.Context, limit int) ([]notify.Result, error) {
	return e.opts.Store.Deliveries(ctx, limit)
}

// State returns a copy of the current state (for tests and diagnostics).
func (e *Engine) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.Clone()
}

// ExportPrometheusRules renders the engine's rules as a Prometheus rule file.
func (e *Engine) ExportPrometheusRules() ([]byte, error) { return ExportPrometheusRules(e.ev.Config()) }

// Channels lists the configured channel names.
func (e *Engine) Channels() []string { return slices.Sorted(maps.Keys(e.chanTypes)) }
