package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/corpintel/corpintel/internal/sdnotify"
	"github.com/corpintel/corpintel/supervisor/health"
)

// Talking to systemd (systemd/corpintel.service is Type=notify with WatchdogSec=):
//
//   - READY=1 once the supervisor's own parts are up — the listeners are bound and
//     served, the local API answers, the reconcile loop turns. It is not gated on a
//     healthy stack: repairing the stack is what the supervisor is there for, and
//     systemd would otherwise give up on a supervisor waiting for a broken PostgreSQL.
//   - STATUS= lines say what the stack does (`systemctl status corpintel` shows them).
//   - WATCHDOG=1 only while the self-check passes: the reconcile loop turns (or a pass
//     in it has not run for longer than any pass may) and the state store takes a
//     write. A blocked loop or an unwritable store gets the supervisor restarted. The
//     Docker Engine not answering is reported (STATUS, log, the alerts' Docker metric)
//     but never stops the pings: a restart does not repair dockerd.
//   - STOPPING=1 on the way out.

// The STATUS= line is looked at every statusPoll and sent when it changed, or after
// systemdStatusEvery in any case.
const (
	statusPoll         = 2 * time.Second
	systemdStatusEvery = time.Minute
)

// passAllowance is how long one reconcile pass may run before the self-check calls the
// loop stuck: a pass can include the migration job (api.migrate_timeout) and health
// gates of stateful recreates.
const passAllowance = 5 * time.Minute

// watchdogTiming derives the self-check's timing from systemd's watchdog interval.
type watchdogTiming struct {
	ping      time.Duration // how often WATCHDOG=1 is sent while healthy
	heartbeat time.Duration // how often the idle reconcile loop turns
	stale     time.Duration // an idle loop not turned for this long is blocked
}

func timingFor(interval time.Duration) watchdogTiming {
	if interval <= 0 {
		return watchdogTiming{heartbeat: time.Second}
	}
	return watchdogTiming{
		ping:      interval / 3,
		heartbeat: min(max(interval/10, 10*time.Millisecond), time.Second),
		stale:     interval / 2,
	}
}

// loopHeartbeat is the reconcile loop's heartbeat period for this daemon.
func (d *Daemon) loopHeartbeat() time.Duration {
	return timingFor(d.opts.Notify.WatchdogInterval()).heartbeat
}

// loopInject is what the reconcile loop runs on its own goroutine: the tests' channel,
// else the test hooks of a binary built with them (none in production builds).
func (d *Daemon) loopInject(ctx context.Context) <-chan func() {
	if d.inject != nil {
		return d.inject
	}
	return testHooks(ctx, d.log)
}

// selfCheck is what the watchdog pings depend on. A nil error means the supervisor
// works, whatever state the stack or the Docker Engine is in.
func (d *Daemon) selfCheck(ctx context.Context, t watchdogTiming) error {
	now := d.now()
	hb := d.rec.Heartbeat()
	switch {
	case hb.Last.IsZero():
		return errors.New("the reconcile loop has not started")
	case !hb.PassSince.IsZero():
		limit := time.Duration(d.rec.Config().API.MigrateTimeout) + passAllowance
		if took := now.Sub(hb.PassSince); took > limit {
			return fmt.Errorf("a reconcile pass has been running for %s (limit %s)", took.Round(time.Second), limit)
		}
	case t.stale > 0 && now.Sub(hb.Last) > t.stale:
		return fmt.Errorf("the reconcile loop has not turned for %s", now.Sub(hb.Last).Round(time.Millisecond))
	}
	timeout := t.ping
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := d.store.Writable(wctx); err != nil {
		return fmt.Errorf("the state store does not take writes: %w", err)
	}
	return nil
}

// stackLine is the STATUS= text: what the stack does, from the last snapshot (no call
// to the engine of its own).
func (d *Daemon) stackLine(ctx context.Context) string {
	snap := d.rec.Snapshot()
	if snap.Err != "" {
		return "Docker Engine unreachable (the stack's containers keep running; retrying): " + snap.Err
	}
	if stopped, _, err := d.store.Stopped(ctx); err == nil && stopped {
		return "stack stopped by the operator; `corpintel start` brings it back"
	}
	if snap.At.IsZero() {
		return "observing the stack"
	}
	var prefix string
	if op, ok, err := d.store.RunningOperation(ctx); err == nil && ok {
		prefix = op.Name() + " running; "
	}
	last := d.rec.LastPass()
	svcs := health.NewCollector(nil).Services(ctx, health.Inputs{Snapshot: snap, Desired: d.rec.Services(ctx),
		Backoffs: d.rec.Backoffs(), Reports: last.Reports, Now: d.now()})
	healthy, parts := true, make([]string, 0, len(svcs))
	for _, s := range svcs {
		part := fmt.Sprintf("%s %d/%d", s.Service, s.Healthy, s.Desired)
		if s.Healthy < s.Desired || s.Running != s.Desired {
			healthy = false
			part += " " + s.State
		}
		parts = append(parts, part)
	}
	word := "healthy"
	if !healthy {
		word = "degraded"
	}
	return prefix + "stack " + word + ": " + strings.Join(parts, ", ")
}

// notifySystemd runs while Run does: READY=1 once the loop turns, STATUS= lines, and
// the watchdog pings behind the self-check; STOPPING=1 when ctx ends.
func (d *Daemon) notifySystemd(ctx context.Context) {
	n := d.opts.Notify
	if !n.Enabled() {
		return
	}
	t := timingFor(n.WatchdogInterval())
	send := func(lines ...string) {
		if err := n.Notify(lines...); err != nil {
			d.log.Warn("systemd notification", "err", err)
		}
	}
	// READY once the loop has gone round once (it is started just before this).
	poll := time.NewTicker(10 * time.Millisecond)
	for d.rec.Heartbeat().Last.IsZero() {
		select {
		case <-ctx.Done():
			poll.Stop()
			return
		case <-poll.C:
		}
	}
	poll.Stop()
	send(sdnotify.Ready, sdnotify.Status("supervisor up; "+d.stackLine(ctx)))
	d.log.Info("told systemd we are ready", "watchdog", n.WatchdogInterval())

	// The loop wakes every statusPoll: STATUS= is sent when the line changes (and once a
	// minute anyway); the self-check and WATCHDOG=1 run every ping interval.
	every := statusPoll
	if t.ping > 0 {
		every = min(every, t.ping)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var lastLine string
	var lastStatus, lastCheck time.Time
	var failing string
	for {
		select {
		case <-ctx.Done():
			send(sdnotify.Stopping, sdnotify.Status("stopping; the stack keeps running"))
			return
		case <-tick.C:
		}
		now := time.Now()
		if t.ping > 0 && now.Sub(lastCheck) >= t.ping-t.ping/20 {
			lastCheck = now
			err := d.selfCheck(ctx, t)
			switch {
			case err != nil:
				if failing == "" {
					d.log.Error("self-check failed: no watchdog pings until it passes (systemd restarts the supervisor when the watchdog expires)", "err", err)
				}
				failing = err.Error()
				send(sdnotify.Status("self-check failing: " + failing))
				lastLine = ""
				continue
			case failing != "":
				d.log.Info("self-check passes again", "was", failing)
				failing = ""
			}
			send(sdnotify.Watchdog)
		}
		if failing != "" {
			continue
		}
		if line := d.stackLine(ctx); line != lastLine || now.Sub(lastStatus) >= systemdStatusEvery {
			send(sdnotify.Status(line))
			lastLine, lastStatus = line, now
		}
	}
}
