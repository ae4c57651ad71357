// Package follow keeps a subscription-like connection (PostgreSQL LISTEN, Redis
// SUBSCRIBE) alive: it reruns it with exponential backoff until the context ends.
package follow

import (
	"context"
	"time"
)

// First is the first wait after a failure; the wait doubles up to the given maximum and
// starts over after a run that had connected.
const First = 100 * time.Millisecond

// Loop calls run until ctx ends. After every return of run it calls down (unless ctx has
// ended, then it returns at once) with run's error and the wait before the next try.
// run reports whether it had connected, which resets the backoff.
func Loop(ctx context.Context, maxWait time.Duration, run func(ctx context.Context) (connected bool, err error), down func(err error, retryIn time.Duration)) {
	wait := First
	for ctx.Err() == nil {
		connected, err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		if connected {
			wait = First
		}
		down(err, wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}
