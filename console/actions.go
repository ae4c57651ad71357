package console

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"
)

// An action is a restart or scale the console started: it runs in the background (a
// browser that goes away does not cancel it) and its progress page follows it until
// the service is healthy again.
type action struct {
	ID       string
	Kind     string // restart or scale
	Service  string
	From, To int // scale: replicas before and asked for
	By       string
	State    string // running, succeeded, failed
	Started  time.Time
	Ended    time.Time
	Error    string
	Steps    []actionStep
}

type actionStep struct {
	At   time.Time
	Text string
}

// Action states.
const (
	actionRunning   = "running"
	actionSucceeded = "succeeded"
	actionFailed    = "failed"
)

// Title says what the action does.
func (a action) Title() string {
	if a.Kind == "scale" {
		return fmt.Sprintf("Scale %s from %d to %d", a.Service, a.From, a.To)
	}
	return "Restart " + a.Service
}

// Done reports whether the action has ended.
func (a action) Done() bool { return a.State != actionRunning }

// actions keeps the recent actions in memory (the audit log keeps them for good).
type actions struct {
	c     *Console
	mu    sync.Mutex
	byID  map[string]*action
	order []string
	// healthTimeout bounds the wait for healthy replicas after the operation.
	healthTimeout time.Duration
}

const keepActions = 50

func newActions(c *Console) *actions {
	return &actions{c: c, byID: map[string]*action{}, healthTimeout: 5 * time.Minute}
}

// get returns a copy of an action.
func (as *actions) get(id string) (action, bool) {
	as.mu.Lock()
	defer as.mu.Unlock()
	a, ok := as.byID[id]
	if !ok {
		return action{}, false
	}
	cp := *a
	cp.Steps = slices.Clone(a.Steps)
	return cp, true
}

// recent returns a service's last n actions, newest first.
func (as *actions) recent(service string, n int) []action {
	as.mu.Lock()
	defer as.mu.Unlock()
	var out []action
	for i := len(as.order) - 1; i >= 0 && len(out) < n; i-- {
		if a := as.byID[as.order[i]]; a != nil && a.Service == service {
			out = append(out, *a)
		}
	}
	return out
}

// running returns the running action on a service, if any.
func (as *actions) running(service string) (action, bool) {
	as.mu.Lock()
	defer as.mu.Unlock()
	for _, a := range as.byID {
		if a.Service == service && a.State == actionRunning {
			return *a, true
		}
	}
	return action{}, false
}

func (as *actions) step(a *action, format string, args ...any) {
	as.mu.Lock()
	a.Steps = append(a.Steps, actionStep{At: as.c.now(), Text: fmt.Sprintf(format, args...)})
	as.mu.Unlock()
	as.c.hub.broadcast()
}

func (as *actions) finish(a *action, err error) {
	as.mu.Lock()
	a.Ended = as.c.now()
	if err != nil {
		a.State, a.Error = actionFailed, err.Error()
	} else {
		a.State = actionSucceeded
	}
	as.mu.Unlock()
	as.c.hub.broadcast()
}

// start records a and runs it in the background: run does the operation, then the
// action waits until the service has its replicas healthy. The outcome is audited.
func (as *actions) start(rq *request, a *action, detail string, run func(ctx context.Context) error) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	a.ID, a.State, a.Started = hex.EncodeToString(b[:]), actionRunning, as.c.now()
	as.mu.Lock()
	as.byID[a.ID] = a
	as.order = append(as.order, a.ID)
	for len(as.order) > keepActions {
		if old := as.byID[as.order[0]]; old != nil && old.State == actionRunning {
			break
		}
		delete(as.byID, as.order[0])
		as.order = as.order[1:]
	}
	as.mu.Unlock()
	actor, role := rq.user.Name, rq.user.Role
	action := rq.route.Audit
	reqCopy := &request{client: rq.client}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		as.step(a, "%s: asked the supervisor", a.Title())
		err := run(ctx)
		if err == nil {
			as.step(a, "the supervisor reconciled; waiting for healthy replicas")
			err = as.waitHealthy(ctx, a)
		}
		if err != nil {
			as.step(a, "failed: %v", err)
		} else {
			as.step(a, "done in %s", as.c.now().Sub(a.Started).Round(100*time.Millisecond))
		}
		as.finish(a, err)
		outcome := "success"
		if err != nil {
			outcome, detail = "failure", detail+": "+err.Error()
		}
		as.c.auditAs(ctx, reqCopy, actor, role, action, outcome, a.Service, detail)
	}()
	return a.ID
}

// waitHealthy waits until the service has as many healthy, running replicas as it
// should have (for a scale: the new number).
func (as *actions) waitHealthy(ctx context.Context, a *action) error {
	ctx, cancel := context.WithTimeout(ctx, as.healthTimeout)
	defer cancel()
	changes, stop := as.c.opts.Ops.WatchStatus()
	defer stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := ""
	for {
		st, err := as.c.opts.Ops.Status(ctx)
		if err == nil {
			if svc, ok := findService(st, a.Service); ok {
				want := svc.Desired
				if a.Kind == "scale" {
					want = a.To
				}
				msg := fmt.Sprintf("%d of %d replicas healthy", svc.Healthy, want)
				if msg != last {
					as.step(a, "%s", msg)
					last = msg
				}
				if svc.Desired == want && svc.Healthy >= want && svc.Running == want {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s is not healthy within %s (%s); see its log", a.Service, as.healthTimeout, last)
		case <-changes:
		case <-tick.C:
		}
	}
}

func findService(st Status, name string) (Service, bool) {
	for _, s := range st.Services {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}
