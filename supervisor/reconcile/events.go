package reconcile

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/internal/follow"
	"github.com/corpintel/corpintel/internal/stack"
)

// EventSource is the Docker Engine's event stream (internal/docker.Client).
type EventSource interface {
	Events(ctx context.Context, labels map[string]string, actions ...string) (<-chan docker.Event, <-chan error)
}

// stackEvent is a Docker container event of one of our services, reduced to what the
// loop acts on. An empty Action is a resync marker: the stream broke and events may
// have been missed.
type stackEvent struct {
	Service   string
	Container string
	Action    string // die, start, destroy, oom, health_status: healthy, …
}

// gone reports whether the event means a container stopped running.
func (e stackEvent) gone() bool {
	switch e.Action {
	case "die", "destroy", "oom", "kill":
		return true
	}
	return false
}

// healthChange reports whether the event changes which replicas may take traffic.
func (e stackEvent) healthChange() bool {
	return strings.HasPrefix(e.Action, "health_status") || e.Action == "start" || e.gone()
}

// unhealthy reports a failed health check.
func (e stackEvent) unhealthy() bool { return e.Action == "health_status: unhealthy" }

// watchedActions are the container events that can change what the reconciler or the
// edge should do. exec_* (every health check runs one) are not among them.
var watchedActions = []string{"start", "die", "destroy", "oom", "health_status"}

// toStackEvent filters and reduces an engine event; ok is false for noise.
func toStackEvent(project string, ev docker.Event) (stackEvent, bool) {
	if ev.Labels[stack.LabelProject] != project || strings.HasPrefix(ev.Action, "exec_") {
		return stackEvent{}, false
	}
	return stackEvent{Service: ev.Labels[stack.LabelService], Container: ev.ContainerID, Action: ev.Action}, true
}

// watchEvents forwards the project's container events to out until ctx ends. When the
// stream breaks (dockerd restarted), follow.Loop reconnects with backoff, and a resync
// marker (an event with empty Action) goes out because events may have been missed.
func watchEvents(ctx context.Context, src EventSource, project string, out chan<- stackEvent, log *slog.Logger) {
	send := func(ev stackEvent) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	first := true
	follow.Loop(ctx, 10*time.Second, func(ctx context.Context) (bool, error) {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		msgs, errs := src.Events(sctx, map[string]string{stack.LabelProject: project}, watchedActions...)
		if !first && !send(stackEvent{}) {
			return false, ctx.Err()
		}
		first = false
		connected := false
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					return connected, <-errs
				}
				connected = true
				if ev, ok := toStackEvent(project, m); ok && !send(ev) {
					return connected, ctx.Err()
				}
			case err := <-errs:
				return connected, err
			case <-ctx.Done():
				return connected, ctx.Err()
			}
		}
	}, func(err error, retryIn time.Duration) {
		log.Warn("docker events: stream ended, reconnecting", "err", err, "in", retryIn)
	})
}
