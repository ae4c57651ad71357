package reconcile

import (
	"context"
	"testing"
	"time"
)

// waitBeat polls the heartbeat until cond holds (deadline 10 s).
func waitBeat(t *testing.T, r *Reconciler, what string, cond func(Heartbeat) bool) Heartbeat {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if hb := r.Heartbeat(); cond(hb) {
			return hb
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	t.Fatalf("%s: not reached; heartbeat %+v", what, r.Heartbeat())
	return Heartbeat{}
}

func TestHeartbeatTurnsAndStopsWhenTheLoopIsBlocked(t *testing.T) {
	r, _ := newFakeReconciler(t, "dev")
	if hb := r.Heartbeat(); !hb.Last.IsZero() || !hb.PassSince.IsZero() {
		t.Fatalf("heartbeat before Run: %+v", hb)
	}
	ctx, cancel := context.WithCancel(context.Background())
	inject := make(chan func())
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, LoopOptions{Resync: time.Hour, Heartbeat: 10 * time.Millisecond, Inject: inject})
	}()
	// The first pass (adoption) runs at once and ends; then the idle loop keeps beating.
	first := waitBeat(t, r, "first turn", func(hb Heartbeat) bool { return !hb.Last.IsZero() && hb.PassSince.IsZero() })
	waitBeat(t, r, "idle turns", func(hb Heartbeat) bool { return hb.Last.After(first.Last) })

	// A function injected runs on the loop's goroutine: while it blocks, nothing beats.
	release := make(chan struct{})
	entered := make(chan struct{})
	inject <- func() { close(entered); <-release }
	<-entered
	blocked := r.Heartbeat()
	time.Sleep(50 * time.Millisecond) // five heartbeat periods pass without a turn
	if now := r.Heartbeat(); !now.Last.Equal(blocked.Last) {
		t.Errorf("heartbeat moved while the loop was blocked: %v → %v", blocked.Last, now.Last)
	}
	close(release)
	waitBeat(t, r, "turning again", func(hb Heartbeat) bool { return hb.Last.After(blocked.Last) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestHeartbeatMarksAPassInProgress(t *testing.T) {
	var h heartbeat
	t0 := time.Unix(1000, 0)
	h.beat(t0)
	h.passStarted(t0.Add(time.Second))
	r := &Reconciler{}
	r.hb.last.Store(h.last.Load())
	r.hb.passSince.Store(h.passSince.Load())
	if hb := r.Heartbeat(); !hb.PassSince.Equal(t0.Add(time.Second)) || !hb.Last.Equal(t0) {
		t.Fatalf("in pass: %+v", hb)
	}
	r.hb.passEnded(t0.Add(5 * time.Second))
	if hb := r.Heartbeat(); !hb.PassSince.IsZero() || !hb.Last.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("after the pass: %+v", hb)
	}
}
