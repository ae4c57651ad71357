package notify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var fastBackoff = Backoff{Initial: time.Millisecond, Max: 4 * time.Millisecond, Attempts: 4}

type results struct {
	mu  sync.Mutex
	got []Result
	ch  chan Result
}

func newResults() *results { return &results{ch: make(chan Result, 100)} }

func (r *results) add(res Result) {
	r.mu.Lock()
	r.got = append(r.got, res)
	r.mu.Unlock()
	r.ch <- res
}

func (r *results) wait(t *testing.T) Result {
	t.Helper()
	select {
	case res := <-r.ch:
		return res
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery result within 10s")
		return Result{}
	}
}

func startDispatcher(t *testing.T, chs []Channel, o DispatcherOptions) *Dispatcher {
	t.Helper()
	d, err := NewDispatcher(chs, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		d.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return d
}

// A webhook answering 500 then 200 is retried and delivered on the second attempt.
func TestDispatcherRetries500Then200(t *testing.T) {
	rec := newRecorder(t, http.StatusOK, http.StatusInternalServerError)
	res := newResults()
	reg := prometheus.NewRegistry()
	d := startDispatcher(t, []Channel{{Name: "hook", Type: TypeWebhook, Notifier: &Webhook{URL: rec.srv.URL, Client: httpClient(t)}}},
		DispatcherOptions{Backoff: fastBackoff, After: res.add, Registerer: reg})
	if err := d.Enqueue(testMessage("hook", StatusFiring)); err != nil {
		t.Fatal(err)
	}
	r := res.wait(t)
	if !r.OK || r.Attempts != 2 || len(rec.received()) != 2 {
		t.Fatalf("result %+v after %d requests; want ok on attempt 2", r, len(rec.received()))
	}
	if got := testutil.ToFloat64(d.metrics.attemptsFailed.WithLabelValues("hook")); got != 1 {
		t.Errorf("failed attempts counter = %v", got)
	}
	if got := testutil.ToFloat64(d.metrics.sent.WithLabelValues("hook")); got != 1 {
		t.Errorf("sent counter = %v", got)
	}
	st := d.Status()[0]
	if !st.Healthy() || st.Sent != 1 || st.LastSuccess.IsZero() {
		t.Errorf("status %+v", st)
	}
	if n, err := testutil.GatherAndCount(reg, "corpintel_alerts_notifications_total", "corpintel_alerts_notifications_failed_total"); err != nil || n != 2 {
		t.Errorf("registered series %d (%v)", n, err)
	}
}

// A permanent failure (400) is not retried; retryable ones stop after the attempts; both
// are visible in the channel's status and the failure counter.
func TestDispatcherGivesUp(t *testing.T) {
	bad := newRecorder(t, http.StatusBadRequest)
	down := newRecorder(t, http.StatusServiceUnavailable)
	res := newResults()
	d := startDispatcher(t, []Channel{
		{Name: "bad", Notifier: &Webhook{URL: bad.srv.URL, Client: httpClient(t)}},
		{Name: "down", Notifier: &Webhook{URL: down.srv.URL, Client: httpClient(t)}},
	}, DispatcherOptions{Backoff: fastBackoff, After: res.add})
	_ = d.Enqueue(testMessage("bad", StatusFiring))
	_ = d.Enqueue(testMessage("down", StatusFiring))
	byChan := map[string]Result{}
	for range 2 {
		r := res.wait(t)
		byChan[r.Channel] = r
	}
	if r := byChan["bad"]; r.OK || r.Attempts != 1 || !strings.Contains(r.Error, "400") {
		t.Errorf("bad: %+v", r)
	}
	if r := byChan["down"]; r.OK || r.Attempts != fastBackoff.Attempts || len(down.received()) != fastBackoff.Attempts {
		t.Errorf("down: %+v (%d requests)", r, len(down.received()))
	}
	for _, st := range d.Status() {
		if st.Healthy() || st.Failed != 1 || st.LastError == "" {
			t.Errorf("status %+v", st)
		}
		if got := testutil.ToFloat64(d.metrics.failed.WithLabelValues(st.Name)); got != 1 {
			t.Errorf("%s failed counter = %v", st.Name, got)
		}
	}
}

// A channel whose server hangs does not delay another channel: the healthy one delivers
// while the hanging one is still waiting for its answer.
func TestDispatcherHangingChannelDoesNotBlockOthers(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer once.Do(func() { close(release) })
	fast := newRecorder(t, http.StatusOK)
	res := newResults()
	d := startDispatcher(t, []Channel{
		{Name: "hang", Notifier: &Webhook{URL: hang.URL, Client: httpClient(t)}, Timeout: time.Hour},
		{Name: "fast", Notifier: &Webhook{URL: fast.srv.URL, Client: httpClient(t)}},
	}, DispatcherOptions{Backoff: fastBackoff, After: res.add})
	_ = d.Enqueue(testMessage("hang", StatusFiring))
	_ = d.Enqueue(testMessage("fast", StatusFiring))
	r := res.wait(t)
	if r.Channel != "fast" || !r.OK {
		t.Fatalf("first result %+v, want fast delivered", r)
	}
	var hanging ChannelStatus
	for _, st := range d.Status() {
		if st.Name == "hang" {
			hanging = st
		}
	}
	if !hanging.Sending {
		t.Errorf("hanging channel not shown as sending: %+v", hanging)
	}
	once.Do(func() { close(release) })
	if r := res.wait(t); r.Channel != "hang" {
		t.Errorf("second result %+v", r)
	}
}

// An attempt that exceeds the channel's timeout is cut off and retried.
func TestDispatcherAttemptTimeout(t *testing.T) {
	var calls int
	var mu sync.Mutex
	n := NotifierFunc(func(ctx context.Context, m *Message) (bool, error) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			<-ctx.Done()
			return false, ctx.Err()
		}
		return false, nil
	})
	res := newResults()
	d := startDispatcher(t, []Channel{{Name: "slow", Notifier: n, Timeout: 20 * time.Millisecond}}, DispatcherOptions{Backoff: fastBackoff, After: res.add})
	_ = d.Enqueue(testMessage("slow", StatusFiring))
	if r := res.wait(t); !r.OK || r.Attempts != 2 {
		t.Errorf("result %+v", r)
	}
}

// A newer message for a group replaces the one still queued: the group's latest state
// is sent, once.
func TestDispatcherCoalescesQueuedGroup(t *testing.T) {
	rec := newRecorder(t, http.StatusOK)
	res := newResults()
	d, err := NewDispatcher([]Channel{{Name: "hook", Notifier: &Webhook{URL: rec.srv.URL, Client: httpClient(t)}}},
		DispatcherOptions{Backoff: fastBackoff, After: res.add, QueueLimit: 2})
	if err != nil {
		t.Fatal(err)
	}
	_ = d.Enqueue(testMessage("hook", StatusFiring))
	_ = d.Enqueue(testMessage("hook", StatusResolved))
	if q := d.Status()[0].Queued; q != 1 {
		t.Fatalf("queued %d, want 1", q)
	}
	// Over the queue limit the oldest group is dropped, and reported.
	other := func(gk string) *Message { m := testMessage("hook", StatusFiring); m.GroupKey = gk; return m }
	_ = d.Enqueue(other("b"))
	_ = d.Enqueue(other("c"))
	if r := res.wait(t); r.OK || !strings.Contains(r.Error, "queue full") || r.GroupKey != testMessage("hook", StatusFiring).GroupKey {
		t.Fatalf("drop result %+v", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	res.wait(t)
	res.wait(t)
	cancel()
	<-done
	if n := len(rec.received()); n != 2 {
		t.Errorf("delivered %d messages, want 2 (b and c)", n)
	}
	if err := d.Enqueue(testMessage("nope", StatusFiring)); !errors.Is(err, ErrUnknownChannel) {
		t.Errorf("unknown channel: %v", err)
	}
}

func TestDispatcherSendAndRestore(t *testing.T) {
	rec := newRecorder(t, http.StatusOK)
	d, err := NewDispatcher([]Channel{{Name: "hook", Type: TypeWebhook, Notifier: &Webhook{URL: rec.srv.URL, Client: httpClient(t)}}},
		DispatcherOptions{Backoff: fastBackoff})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := d.Send(context.Background(), testMessage("hook", StatusFiring)); err != nil || !res.OK {
		t.Fatalf("Send: %+v %v", res, err)
	}
	if _, err := d.Send(context.Background(), testMessage("nope", StatusFiring)); !errors.Is(err, ErrUnknownChannel) {
		t.Errorf("unknown channel: %v", err)
	}
	d.Restore(ChannelStatus{Name: "hook", LastError: "earlier", ConsecutiveFailures: 3, Queued: 9})
	d.Restore(ChannelStatus{Name: "gone"})
	st := d.Status()
	if len(st) != 1 || st[0].ConsecutiveFailures != 3 || st[0].Queued != 0 || st[0].Type != TypeWebhook {
		t.Errorf("restored %+v", st)
	}
	if got := d.Channels(); len(got) != 1 || got[0] != "hook" {
		t.Errorf("Channels = %v", got)
	}
}

func TestNewDispatcherErrors(t *testing.T) {
	n := NotifierFunc(func(context.Context, *Message) (bool, error) { return false, nil })
	if _, err := NewDispatcher([]Channel{{Name: "a", Notifier: n}, {Name: "a", Notifier: n}}, DispatcherOptions{}); err == nil {
		t.Error("duplicate channel accepted")
	}
	if _, err := NewDispatcher([]Channel{{Name: "a"}}, DispatcherOptions{}); err == nil {
		t.Error("channel without notifier accepted")
	}
	reg := prometheus.NewRegistry()
	if _, err := NewDispatcher(nil, DispatcherOptions{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDispatcher(nil, DispatcherOptions{Registerer: reg}); err == nil {
		t.Error("registering twice succeeded")
	}
	b := Backoff{}.withDefaults()
	if b != DefaultBackoff || b.delay(1) != time.Second || b.delay(3) != 4*time.Second || b.delay(10) != 30*time.Second {
		t.Errorf("backoff %+v: %s %s %s", b, b.delay(1), b.delay(3), b.delay(10))
	}
}
