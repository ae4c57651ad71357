package follow

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLoop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	runs := 0
	// connected on the 3rd run: the wait starts over after it.
	Loop(ctx, 300*time.Millisecond, func(context.Context) (bool, error) {
		runs++
		if runs == 6 {
			cancel()
		}
		return runs == 3, errors.New("gone")
	}, func(err error, retryIn time.Duration) {
		if err == nil || err.Error() != "gone" {
			t.Errorf("down got %v", err)
		}
		waits = append(waits, retryIn)
	})
	want := []time.Duration{First, 2 * First, First, 2 * First, 300 * time.Millisecond}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Errorf("waits %v, want %v", waits, want)
			break
		}
	}
	// An ended context returns at once, without running.
	Loop(ctx, time.Second, func(context.Context) (bool, error) { t.Error("ran after the end"); return false, nil }, nil)
}
