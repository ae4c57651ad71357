package supervisor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
)

func TestToStackEvent(t *testing.T) {
	attrs := map[string]string{LabelProject: "p", LabelService: "redis"}
	cases := []struct {
		name string
		m    events.Message
		ok   bool
		gone bool
	}{
		{"die", events.Message{Type: events.ContainerEventType, Action: "die", Actor: events.Actor{ID: "x", Attributes: attrs}}, true, true},
		{"health", events.Message{Type: events.ContainerEventType, Action: "health_status: unhealthy", Actor: events.Actor{Attributes: attrs}}, true, false},
		{"exec noise", events.Message{Type: events.ContainerEventType, Action: "exec_create: redis-cli ping", Actor: events.Actor{Attributes: attrs}}, false, false},
		{"other project", events.Message{Type: events.ContainerEventType, Action: "die", Actor: events.Actor{Attributes: map[string]string{LabelProject: "q"}}}, false, false},
		{"network event", events.Message{Type: events.NetworkEventType, Action: "connect", Actor: events.Actor{Attributes: attrs}}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, ok := toStackEvent("p", c.m)
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
	f := eventFilter("p")
	if got := f.Get("event"); len(got) != len(watchedActions) || !f.ExactMatch("label", LabelProject+"=p") {
		t.Errorf("filter %v", f)
	}
}

func TestWatchEventsReconnects(t *testing.T) {
	fd := &fakeDocker{events: make(chan events.Message), eventErrs: make(chan error)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan stackEvent)
	done := make(chan struct{})
	go func() { watchEvents(ctx, fd, "p", out, discardLog()); close(done) }()
	fd.events <- events.Message{Type: events.ContainerEventType, Action: "die", Actor: events.Actor{Attributes: map[string]string{LabelProject: "p", LabelService: "api"}}}
	if ev := <-out; ev.Action != "die" || ev.Service != "api" {
		t.Fatalf("event %+v", ev)
	}
	fd.eventErrs <- errors.New("dockerd restarted")
	select {
	case ev := <-out:
		if ev.Action != "" {
			t.Fatalf("want resync marker, got %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no resync after the stream broke")
	}
	// The stream is read again after the reconnect.
	fd.events <- events.Message{Type: events.ContainerEventType, Action: "start", Actor: events.Actor{Attributes: map[string]string{LabelProject: "p", LabelService: "api"}}}
	if ev := <-out; ev.Action != "start" {
		t.Fatalf("event after reconnect %+v", ev)
	}
	fd.mu.Lock()
	calls := fd.eventCalls
	fd.mu.Unlock()
	if calls != 2 {
		t.Errorf("Events called %d times, want 2", calls)
	}
	cancel()
	<-done
}
