package supervisor

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// eventSource is the Docker Engine's event stream.
type eventSource interface {
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
}

// stackEvent is a Docker container event of one of our services, reduced to what the
// daemon acts on.
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
// proxy should do. exec_* (every health check runs one) are not among them.
var watchedActions = []string{"start", "die", "destroy", "oom", "health_status"}

// eventFilter selects the container events of project.
func eventFilter(project string) filters.Args {
	f := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", LabelProject+"="+project),
	)
	for _, a := range watchedActions {
		f.Add("event", a)
	}
	return f
}

// toStackEvent filters and reduces a Docker message; ok is false for noise.
func toStackEvent(project string, m events.Message) (stackEvent, bool) {
	if m.Type != events.ContainerEventType || m.Actor.Attributes[LabelProject] != project {
		return stackEvent{}, false
	}
	action := string(m.Action)
	if strings.HasPrefix(action, "exec_") {
		return stackEvent{}, false
	}
	return stackEvent{Service: m.Actor.Attributes[LabelService], Container: m.Actor.ID, Action: action}, true
}

// watchEvents forwards the project's container events to out until ctx ends. When the
// stream breaks (dockerd restarted), it reconnects with backoff and sends a resync
// marker (an event with empty Action) because events may have been missed.
func watchEvents(ctx context.Context, src eventSource, project string, out chan<- stackEvent, log *slog.Logger) {
	backoff := 100 * time.Millisecond
	for {
		since := time.Now()
		sctx, cancel := context.WithCancel(ctx)
		msgs, errs := src.Events(sctx, events.ListOptions{Filters: eventFilter(project)})
		err := func() error {
			for {
				select {
				case m := <-msgs:
					if ev, ok := toStackEvent(project, m); ok {
						select {
						case out <- ev:
						case <-ctx.Done():
							return ctx.Err()
						}
					}
				case err := <-errs:
					return err
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}()
		cancel()
		if ctx.Err() != nil {
			return
		}
		if time.Since(since) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		log.Warn("docker events: stream ended, reconnecting", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, 10*time.Second)
		select {
		case out <- stackEvent{}: // resync: we may have missed something
		case <-ctx.Done():
			return
		}
	}
}
