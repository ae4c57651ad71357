package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Channel is one configured destination with its notifier.
type Channel struct {
	Name     string
	Type     string
	Notifier Notifier
	// Timeout bounds one attempt (default 30s).
	Timeout time.Duration
}

// Backoff is the retry schedule of one message: Initial, doubling up to Max, at most
// Attempts tries in all.
type Backoff struct {
	Initial  time.Duration
	Max      time.Duration
	Attempts int
}

// DefaultBackoff waits 1s, 2s, 4s, 8s, 16s between six attempts: about half a minute
// of retrying, well inside the 5-minute group interval after which the group is
// evaluated (and, if still undelivered, sent) again.
var DefaultBackoff = Backoff{Initial: time.Second, Max: 30 * time.Second, Attempts: 6}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = DefaultBackoff.Initial
	}
	if b.Max < b.Initial {
		b.Max = max(DefaultBackoff.Max, b.Initial)
	}
	if b.Attempts <= 0 {
		b.Attempts = DefaultBackoff.Attempts
	}
	return b
}

// delay is the wait after the n-th failed attempt (n from 1).
func (b Backoff) delay(n int) time.Duration {
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Result is the outcome of delivering one message to one channel.
type Result struct {
	Channel  string    `json:"channel"`
	GroupKey string    `json:"group_key"`
	DedupKey string    `json:"dedup_key"`
	Status   string    `json:"status"`
	Alerts   int       `json:"alerts"`
	Test     bool      `json:"test,omitempty"`
	Attempts int       `json:"attempts"`
	OK       bool      `json:"ok"`
	Error    string    `json:"error,omitempty"`
	At       time.Time `json:"at"`
	// Message is what was (or was to be) delivered.
	Message *Message `json:"-"`
}

// ChannelStatus is what `corpintel alerts` shows per channel.
type ChannelStatus struct {
	Name                string    `json:"name"`
	Type                string    `json:"type"`
	Queued              int       `json:"queued"`
	Sending             bool      `json:"sending"`
	LastAttempt         time.Time `json:"last_attempt,omitzero"`
	LastSuccess         time.Time `json:"last_success,omitzero"`
	LastError           string    `json:"last_error,omitempty"`
	LastErrorAt         time.Time `json:"last_error_at,omitzero"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	Sent                int       `json:"sent"`
	Failed              int       `json:"failed"`
}

// Healthy reports whether the channel's last delivery succeeded (or none was tried).
func (s ChannelStatus) Healthy() bool { return s.ConsecutiveFailures == 0 }

// DispatcherOptions are the dispatcher's dependencies; all optional.
type DispatcherOptions struct {
	Backoff    Backoff
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
	// Before is asked just before a queued message is sent; false drops it (an earlier
	// delivery already covered it). Not asked for [Dispatcher.Send].
	Before func(m *Message) bool
	// After receives the final result of every queued message (not of Send's).
	After func(Result)
	// QueueLimit bounds the groups waiting per channel (default 1000); the oldest is
	// dropped, and counted as failed, beyond it.
	QueueLimit int
}

// Dispatcher delivers messages, each channel from its own queue and goroutine, so a
// slow or hanging channel delays only itself. A newer message for a group replaces one
// still queued for it: the group's latest state is what gets sent.
type Dispatcher struct {
	opts     DispatcherOptions
	log      *slog.Logger
	channels map[string]*worker
	names    []string
	metrics  dispatchMetrics
}

type dispatchMetrics struct {
	sent, failed, attemptsFailed *prometheus.CounterVec
	lastSuccess, queued          *prometheus.GaugeVec
}

type worker struct {
	ch   Channel
	wake chan struct{}

	mu      sync.Mutex
	order   []string
	pending map[string]*Message
	status  ChannelStatus
}

// NewDispatcher builds a dispatcher for the channels and registers its metrics.
func NewDispatcher(chs []Channel, o DispatcherOptions) (*Dispatcher, error) {
	o.Backoff = o.Backoff.withDefaults()
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.QueueLimit <= 0 {
		o.QueueLimit = 1000
	}
	d := &Dispatcher{opts: o, log: o.Logger, channels: map[string]*worker{}}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.metrics = dispatchMetrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corpintel_alerts_notifications_total", Help: "Notifications delivered, per channel.",
		}, []string{"channel"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corpintel_alerts_notifications_failed_total", Help: "Notifications given up on after all retries (or dropped), per channel.",
		}, []string{"channel"}),
		attemptsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corpintel_alerts_notification_requests_failed_total", Help: "Failed delivery attempts (each retry counts), per channel.",
		}, []string{"channel"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "corpintel_alerts_channel_last_success_timestamp_seconds", Help: "When the channel last delivered a notification (Unix time).",
		}, []string{"channel"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "corpintel_alerts_notification_queue_length", Help: "Groups waiting to be delivered, per channel.",
		}, []string{"channel"}),
	}
	for _, c := range chs {
		if c.Name == "" || c.Notifier == nil {
			return nil, fmt.Errorf("dispatcher: channel %q has no name or notifier", c.Name)
		}
		if _, dup := d.channels[c.Name]; dup {
			return nil, fmt.Errorf("dispatcher: channel %q defined twice", c.Name)
		}
		if c.Timeout <= 0 {
			c.Timeout = 30 * time.Second
		}
		d.channels[c.Name] = &worker{ch: c, wake: make(chan struct{}, 1), pending: map[string]*Message{},
			status: ChannelStatus{Name: c.Name, Type: c.Type}}
		d.names = append(d.names, c.Name)
		// Series exist from the start, so a channel that never succeeded is visible.
		d.metrics.sent.WithLabelValues(c.Name)
		d.metrics.failed.WithLabelValues(c.Name)
		d.metrics.attemptsFailed.WithLabelValues(c.Name)
		d.metrics.queued.WithLabelValues(c.Name)
	}
	sort.Strings(d.names)
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{d.metrics.sent, d.metrics.failed, d.metrics.attemptsFailed, d.metrics.lastSuccess, d.metrics.queued} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("dispatcher: register metrics: %w", err)
			}
		}
	}
	return d, nil
}

// Channels lists the channel names, sorted.
func (d *Dispatcher) Channels() []string { return slices.Clone(d.names) }

// ErrUnknownChannel is returned for a channel name that is not configured.
var ErrUnknownChannel = errors.New("unknown channel")

// Enqueue queues m for its channel; it never blocks.
func (d *Dispatcher) Enqueue(m *Message) error {
	w, ok := d.channels[m.Channel]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownChannel, m.Channel)
	}
	var dropped *Message
	w.mu.Lock()
	if _, queued := w.pending[m.GroupKey]; !queued {
		w.order = append(w.order, m.GroupKey)
		if len(w.order) > d.opts.QueueLimit {
			oldest := w.order[0]
			w.order = w.order[1:]
			dropped = w.pending[oldest]
			delete(w.pending, oldest)
		}
	}
	w.pending[m.GroupKey] = m
	queued := len(w.order)
	w.status.Queued = queued
	w.mu.Unlock()
	d.metrics.queued.WithLabelValues(w.ch.Name).Set(float64(queued))
	if dropped != nil {
		d.finish(w, Result{Channel: w.ch.Name, GroupKey: dropped.GroupKey, DedupKey: dropped.DedupKey, Status: dropped.Status,
			Alerts: len(dropped.Alerts), Error: "dropped: queue full", At: d.opts.Now(), Message: dropped}, true)
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

// Run delivers queued messages until ctx ends; one goroutine per channel.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range d.channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.loop(ctx, w)
		}()
	}
	wg.Wait()
}

func (d *Dispatcher) loop(ctx context.Context, w *worker) {
	for {
		m := w.pop()
		if m == nil {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
				continue
			}
		}
		d.metrics.queued.WithLabelValues(w.ch.Name).Set(float64(w.queued()))
		if d.opts.Before != nil && !d.opts.Before(m) {
			w.setSending(false)
			continue
		}
		res := d.deliver(ctx, w, m)
		if ctx.Err() != nil && !res.OK {
			// Shutting down: the group is still undelivered in the notification log and
			// will be sent by the next process.
			w.setSending(false)
			return
		}
		d.finish(w, res, true)
	}
}

func (w *worker) pop() *Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.order) == 0 {
		return nil
	}
	key := w.order[0]
	w.order = w.order[1:]
	m := w.pending[key]
	delete(w.pending, key)
	w.status.Queued = len(w.order)
	w.status.Sending = true
	return m
}

func (w *worker) queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.order)
}

func (w *worker) setSending(v bool) {
	w.mu.Lock()
	w.status.Sending = v
	w.mu.Unlock()
}

// Send delivers m now, with retries, bypassing the queue (test notifications).
func (d *Dispatcher) Send(ctx context.Context, m *Message) (Result, error) {
	w, ok := d.channels[m.Channel]
	if !ok {
		return Result{}, fmt.Errorf("%w %q (configured: %v)", ErrUnknownChannel, m.Channel, d.names)
	}
	res := d.deliver(ctx, w, m)
	d.finish(w, res, false)
	if !res.OK {
		return res, fmt.Errorf("channel %s: %s", m.Channel, res.Error)
	}
	return res, nil
}

// deliver tries m until it succeeds, fails for good, or the attempts are used up.
func (d *Dispatcher) deliver(ctx context.Context, w *worker, m *Message) Result {
	res := Result{Channel: w.ch.Name, GroupKey: m.GroupKey, DedupKey: m.DedupKey, Status: m.Status,
		Alerts: len(m.Alerts), Test: m.Test, Message: m}
	for attempt := 1; ; attempt++ {
		res.Attempts = attempt
		actx, cancel := context.WithTimeout(ctx, w.ch.Timeout)
		retry, err := w.ch.Notifier.Notify(actx, m)
		if err == nil && actx.Err() != nil {
			err = actx.Err()
		}
		cancel()
		now := d.opts.Now()
		w.mu.Lock()
		w.status.LastAttempt = now
		w.mu.Unlock()
		if err == nil {
			res.OK, res.Error, res.At = true, "", now
			return res
		}
		if errors.Is(err, context.DeadlineExceeded) {
			retry = true
			err = fmt.Errorf("no answer within %s: %w", w.ch.Timeout, err)
		}
		d.metrics.attemptsFailed.WithLabelValues(w.ch.Name).Inc()
		res.Error, res.At = err.Error(), now
		d.log.Warn("alert notification attempt failed", "channel", w.ch.Name, "group", m.DedupKey,
			"attempt", attempt, "retry", retry, "err", err.Error())
		if !retry || attempt >= d.opts.Backoff.Attempts || ctx.Err() != nil {
			return res
		}
		t := time.NewTimer(d.opts.Backoff.delay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return res
		case <-t.C:
		}
	}
}

func (d *Dispatcher) finish(w *worker, res Result, queued bool) {
	w.mu.Lock()
	w.status.Sending = false
	if res.OK {
		w.status.LastSuccess = res.At
		w.status.ConsecutiveFailures = 0
		w.status.Sent++
	} else {
		w.status.LastError = res.Error
		w.status.LastErrorAt = res.At
		w.status.ConsecutiveFailures++
		w.status.Failed++
	}
	w.mu.Unlock()
	if res.OK {
		d.metrics.sent.WithLabelValues(w.ch.Name).Inc()
		d.metrics.lastSuccess.WithLabelValues(w.ch.Name).Set(float64(res.At.UnixNano()) / 1e9)
	} else {
		d.metrics.failed.WithLabelValues(w.ch.Name).Inc()
		d.log.Error("alert notification failed", "channel", w.ch.Name, "group", res.DedupKey,
			"attempts", res.Attempts, "err", res.Error)
	}
	if queued && d.opts.After != nil {
		d.opts.After(res)
	}
}

// Status returns every channel's state, sorted by name.
func (d *Dispatcher) Status() []ChannelStatus {
	out := make([]ChannelStatus, 0, len(d.names))
	for _, n := range d.names {
		w := d.channels[n]
		w.mu.Lock()
		out = append(out, w.status)
		w.mu.Unlock()
	}
	return out
}

// Restore seeds a channel's status from the store after a restart.
func (d *Dispatcher) Restore(s ChannelStatus) {
	w, ok := d.channels[s.Name]
	if !ok {
		return
	}
	w.mu.Lock()
	s.Type, s.Queued, s.Sending = w.ch.Type, 0, false
	w.status = s
	w.mu.Unlock()
}
