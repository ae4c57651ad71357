package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/internal/stack"
)

func TestToStackEvent(t *testing.T) {
	attrs := map[string]string{stack.LabelProject: "p", stack.LabelService: "redis"}
	cases := []struct {
		name string
		ev   docker.Event
		ok   bool
		gone bool
	}{
		{"die", docker.Event{Action: "die", ContainerID: "x", Labels: attrs}, true, true},
		{"health", docker.Event{Action: "health_status: unhealthy", Labels: attrs}, true, false},
		{"exec noise", docker.Event{Action: "exec_create: redis-cli ping", Labels: attrs}, false, false},
		{"other project", docker.Event{Action: "die", Labels: map[string]string{stack.LabelProject: "q"}}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, ok := toStackEvent("p", c.ev)
			if ok != c.ok || ev.gone() != c.gone {
				t.Errorf("ok=%v gone=%v, want %v %v", ok, ev.gone(), c.ok, c.gone)
			}
			if ok && ev.Service != "redis" {
				t.Errorf("service %q", ev.Service)
			}
		})
	}
	if !(stackEvent{Action: "health_status: unhealthy"}).unhealthy() || !(stackEvent{Action: "start"}).healthChange() {
		t.Error("health classification")
	}
}

// fakeEvents is an event stream whose messages and breaks the test sends.
type fakeEvents struct {
	mu      sync.Mutex
	calls   int
	actions []string
	events  chan docker.Event
	errs    chan error
}

func (f *fakeEvents) Events(ctx context.Context, labels map[string]string, actions ...string) (<-chan docker.Event, <-chan error) {
	f.mu.Lock()
	f.calls++
	f.actions = actions
	f.mu.Unlock()
	out := make(chan docker.Event)
	errc := make(chan error, 1)
	go func() {
		defer close(out)
		for {
			select {
			case ev := <-f.events:
				if ev.Labels[stack.LabelProject] != labels[stack.LabelProject] {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			case err := <-f.errs:
				errc <- err
				return
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()
	return out, errc
}

func TestWatchEventsReconnects(t *testing.T) {
	fe := &fakeEvents{events: make(chan docker.Event), errs: make(chan error)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan stackEvent)
	done := make(chan struct{})
	go func() { watchEvents(ctx, fe, "p", out, slog.New(slog.DiscardHandler)); close(done) }()
	fe.events <- docker.Event{Action: "die", Labels: map[string]string{stack.LabelProject: "p", stack.LabelService: "api"}}
	if ev := <-out; ev.Action != "die" || ev.Service != "api" {
		t.Fatalf("event %+v", ev)
	}
	fe.errs <- errors.New("dockerd restarted")
	select {
	case ev := <-out:
		if ev.Action != "" {
			t.Fatalf("want resync marker, got %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no resync after the stream broke")
	}
	// The stream is read again after the reconnect.
	fe.events <- docker.Event{Action: "start", Labels: map[string]string{stack.LabelProject: "p", stack.LabelService: "api"}}
	if ev := <-out; ev.Action != "start" {
		t.Fatalf("event after reconnect %+v", ev)
	}
	fe.mu.Lock()
	calls, actions := fe.calls, fe.actions
	fe.mu.Unlock()
	if calls != 2 || !slices.Equal(actions, watchedActions) {
		t.Errorf("Events called %d times with %v", calls, actions)
	}
	cancel()
	<-done
}
