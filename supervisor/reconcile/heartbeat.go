package reconcile

import (
	"sync/atomic"
	"time"
)

// Heartbeat says whether the event loop is turning: Last is when it last went round
// (it goes round at least every LoopOptions.Heartbeat while idle), PassSince when the
// pass it is in started (zero while it waits). The supervisor's self-check for the
// systemd watchdog reads it: an idle loop whose Last is old is blocked; a pass may run
// longer (a migration, a health gate), but not for ever.
type Heartbeat struct {
	Last      time.Time
	PassSince time.Time
}

// heartbeat is the loop's side of Heartbeat (unix nanoseconds; 0: never/none).
type heartbeat struct {
	last, passSince atomic.Int64
}

func (h *heartbeat) beat(now time.Time)        { h.last.Store(now.UnixNano()) }
func (h *heartbeat) passStarted(now time.Time) { h.passSince.Store(now.UnixNano()) }
func (h *heartbeat) passEnded(now time.Time) {
	h.passSince.Store(0)
	h.beat(now)
}

func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Heartbeat returns the event loop's last turn (zero before Run started).
func (r *Reconciler) Heartbeat() Heartbeat {
	return Heartbeat{Last: unixNano(r.hb.last.Load()), PassSince: unixNano(r.hb.passSince.Load())}
}
