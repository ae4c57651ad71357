package reconcile

import (
	"context"
	"time"

	"github.com/corpintel/corpintel/internal/stack"
)

// LoopOptions configure Run.
type LoopOptions struct {
	// Events is the engine's event stream (internal/docker.Client).
	Events EventSource
	// Resync is the period of the full pass that catches missed events (10 s).
	Resync time.Duration
	// Kick, when set, receives requests for a pass (a reload, a reconcile asked for by
	// an operation); pending kicks coalesce.
	Kick <-chan struct{}
	// Coalesce is how long the loop waits after an event before it passes, so that the
	// events of one incident (die + destroy, several containers killed together) make
	// one pass (default 100 ms).
	Coalesce time.Duration
	// Recheck is how soon replicas that Docker has not checked yet are probed again
	// (default 250 ms).
	Recheck time.Duration
	// Heartbeat is how often the idle loop goes round to show it is alive (see
	// Reconciler.Heartbeat; default 1 s).
	Heartbeat time.Duration
	// Inject runs functions on the loop's own goroutine, between passes. Only tests
	// set it (the watchdog test blocks the loop with it); nil in production.
	Inject <-chan func()
}

// Run keeps the stack reconciled until ctx ends: a pass at start (which adopts what
// exists), on events that mean a container was lost or failed, on every Resync, on
// kicks, and when a service's backoff ends. Health events refresh the snapshot (and so
// the edge's backends) at once, also while a pass runs. Errors of a pass are reported
// through LastPass and retried on the next trigger; Run itself only ends with ctx.
func (r *Reconciler) Run(ctx context.Context, o LoopOptions) error {
	if o.Resync <= 0 {
		o.Resync = 10 * time.Second
	}
	if o.Coalesce <= 0 {
		o.Coalesce = 100 * time.Millisecond
	}
	if o.Recheck <= 0 {
		o.Recheck = 250 * time.Millisecond
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = time.Second
	}
	evch := make(chan stackEvent, 64)
	passes := make(chan struct{}, 1)
	refreshes := make(chan struct{}, 1)
	done := make(chan struct{})
	evctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		if o.Events != nil {
			watchEvents(evctx, o.Events, r.Config().Project, evch, r.log)
		}
	}()
	go r.refresher(evctx, refreshes, o.Recheck)
	go r.dispatch(evctx, evch, passes, refreshes)

	timer := time.NewTimer(0) // the first pass adopts what exists
	var next time.Time
	schedule := func(delay time.Duration) {
		at := time.Now().Add(delay)
		if !next.IsZero() && !at.Before(next) {
			return
		}
		next = at
		timer.Reset(delay)
	}
	resync := time.NewTicker(o.Resync)
	defer resync.Stop()
	alive := time.NewTicker(o.Heartbeat)
	defer alive.Stop()
	for {
		r.hb.beat(r.now())
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-alive.C:
		case f := <-o.Inject:
			f()
		case <-passes:
			schedule(o.Coalesce)
		case <-o.Kick:
			schedule(0)
		case <-resync.C:
			schedule(0)
		case <-timer.C:
			next = time.Time{}
			start := time.Now()
			r.hb.passStarted(r.now())
			plan, err := r.Pass(ctx)
			r.hb.passEnded(r.now())
			switch {
			case err != nil && ctx.Err() == nil:
				r.log.Error("reconcile failed", "err", err, "took", time.Since(start).Round(time.Millisecond))
			case plan.HasChanges():
				r.log.Info("reconciled", "plan", plan.String(), "took", time.Since(start).Round(time.Millisecond))
			}
			notify(refreshes)
			if wake := r.NextWake(); !wake.IsZero() {
				schedule(time.Until(wake))
			}
		}
	}
}

// dispatch handles events as they come, also while a pass runs: a health change of an
// API replica refreshes the snapshot at once, a lost or failed container asks for a
// pass, and a broken stream (resync marker) asks for both.
func (r *Reconciler) dispatch(ctx context.Context, evch <-chan stackEvent, passes, refreshes chan<- struct{}) {
	for {
		var ev stackEvent
		select {
		case <-ctx.Done():
			return
		case ev = <-evch:
		}
		switch {
		case ev.Action == "":
			notify(refreshes)
			notify(passes)
			continue
		case ev.Service == "":
			continue // one-shot jobs: the pass that runs them waits for them itself
		}
		r.log.Debug("docker event", "service", ev.Service, "action", ev.Action, "container", shortID(ev.Container))
		if ev.Service == stack.ServiceAPI && ev.healthChange() {
			notify(refreshes)
		}
		if ev.gone() || ev.unhealthy() {
			notify(passes)
		}
	}
}

// refresher runs Refresh when asked, and again after recheck while some replica that
// Docker has not checked yet does not answer its probe.
func (r *Reconciler) refresher(ctx context.Context, asks <-chan struct{}, recheck time.Duration) {
	var again <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-asks:
		case <-again:
		}
		again = nil
		pending, err := r.Refresh(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("refresh the stack snapshot", "err", err)
		}
		if pending {
			again = time.After(recheck)
		}
	}
}

// notify sends on a 1-buffered channel without blocking; pending sends coalesce.
func notify(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func shortID(id string) string { return id[:min(12, len(id))] }
