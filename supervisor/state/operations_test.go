package state

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOperationLockAndJournal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })

	if _, ok, err := s.RunningOperation(ctx); ok || err != nil {
		t.Fatalf("running before any: %v %v", ok, err)
	}
	if owned, err := s.OwnedServices(ctx); len(owned) != 0 || err != nil {
		t.Fatalf("owned before any: %v %v", owned, err)
	}
	op, err := s.BeginOperation(ctx, OpRequest{Kind: "backup", Services: []string{"postgres", "redis"}, Owner: "sup-1",
		Detail: "daily", Expected: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if op.ID == 0 || op.State != OpRunning || !op.ExpectedEnd.Equal(now.Add(10*time.Minute)) || op.Name() != "backup #1" {
		t.Errorf("op %+v", op)
	}
	if err := s.OperationStep(ctx, op.ID, "dump", "postgres"); err != nil {
		t.Fatal(err)
	}
	if err := s.OperationStep(ctx, op.ID, "verify", ""); err != nil {
		t.Fatal(err)
	}

	// A second operation — from this process or another handle on the same file —
	// is refused with the one that runs.
	other, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = other.BeginOperation(ctx, OpRequest{Kind: "restore", Owner: "sup-2"})
	var busy *BusyError
	if !errors.As(err, &busy) || busy.Current.ID != op.ID || !strings.Contains(err.Error(), "backup #1") || !strings.Contains(err.Error(), "step verify") {
		t.Fatalf("second begin: %v", err)
	}
	owned, err := other.OwnedServices(ctx)
	if err != nil || owned["postgres"] != "backup #1" || owned["redis"] != "backup #1" || owned["api"] != "" {
		t.Errorf("owned %v %v", owned, err)
	}
	cur, ok, err := other.RunningOperation(ctx)
	if err != nil || !ok || len(cur.Steps) != 2 || cur.LastStep() != "verify" || cur.Steps[0].Detail != "postgres" || cur.Owner != "sup-1" {
		t.Errorf("running %+v %v %v", cur, ok, err)
	}

	now = now.Add(time.Minute)
	if err := s.EndOperation(ctx, op.ID, OpSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.EndOperation(ctx, op.ID, OpFailed, "again"); !errors.Is(err, ErrNoOperation) {
		t.Errorf("second end: %v", err)
	}
	if err := s.EndOperation(ctx, op.ID, "done", ""); err == nil {
		t.Error("invalid outcome accepted")
	}
	got, err := s.Operation(ctx, op.ID)
	if err != nil || got.State != OpSucceeded || !got.EndedAt.Equal(now) || len(got.Steps) != 2 {
		t.Errorf("ended op %+v %v", got, err)
	}
	if _, err := s.Operation(ctx, 99); !errors.Is(err, ErrNoOperation) {
		t.Errorf("missing op: %v", err)
	}
	// Free again.
	op2, err := other.BeginOperation(ctx, OpRequest{Kind: "restore", Owner: "sup-2", Maintenance: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.EndOperation(ctx, op2.ID, OpFailed, "boom"); err != nil {
		t.Fatal(err)
	}
	recent, err := s.RecentOperations(ctx, 10)
	if err != nil || len(recent) != 2 || recent[0].Kind != "restore" || recent[0].Error != "boom" || !recent[0].Maintenance {
		t.Errorf("recent %+v %v", recent, err)
	}
	if _, err := s.BeginOperation(ctx, OpRequest{Kind: "x"}); err == nil {
		t.Error("operation without owner accepted")
	}
}

// Many goroutines racing for the lock: exactly one wins.
func TestOperationLockIsExclusive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, busy := 0, 0
	for i := range 8 {
		s, err := Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		wg.Go(func() {
			_, err := s.BeginOperation(ctx, OpRequest{Kind: "drill", Owner: "p" + string(rune('a'+i))})
			mu.Lock()
			defer mu.Unlock()
			var b *BusyError
			switch {
			case err == nil:
				won++
			case errors.As(err, &b):
				busy++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won != 1 || busy != 7 {
		t.Errorf("won %d busy %d", won, busy)
	}
}

func TestStoppedAndHolds(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	if stopped, _, err := s.Stopped(ctx); stopped || err != nil {
		t.Fatalf("stopped before: %v %v", stopped, err)
	}
	if err := s.SetStopped(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHold(ctx, "postgres", Hold{Hash: "abc", At: now, Error: "not healthy"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHold(ctx, "postgres", Hold{Hash: "def", At: now, Error: "exited"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Both survive a supervisor restart (and a reboot: it is a file).
	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if stopped, at, err := s.Stopped(ctx); !stopped || !at.Equal(now) || err != nil {
		t.Errorf("stopped after reopen: %v %v %v", stopped, at, err)
	}
	holds, err := s.Holds(ctx)
	if err != nil || len(holds) != 1 || holds["postgres"].Hash != "def" || holds["postgres"].Error != "exited" || !holds["postgres"].At.Equal(now) {
		t.Errorf("holds %+v %v", holds, err)
	}
	if err := s.ClearHold(ctx, "postgres"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStopped(ctx, false); err != nil {
		t.Fatal(err)
	}
	if holds, _ := s.Holds(ctx); len(holds) != 0 {
		t.Errorf("holds after clear %v", holds)
	}
	if stopped, _, _ := s.Stopped(ctx); stopped {
		t.Error("still stopped")
	}
	if err := s.Writable(ctx); err != nil {
		t.Errorf("writable: %v", err)
	}
}

func TestLiveAndRetiredVolumes(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	if lv, err := s.LiveVolumes(ctx); err != nil || len(lv) != 0 {
		t.Fatalf("live before %v %v", lv, err)
	}
	if err := s.SwitchVolume(ctx, "postgres", "p_postgres_data", "p_postgres_data_r1", now.Add(24*time.Hour), "restore #3"); err != nil {
		t.Fatal(err)
	}
	lv, _ := s.LiveVolumes(ctx)
	rv, _ := s.RetiredVolumes(ctx)
	if lv["postgres"] != "p_postgres_data_r1" || len(rv) != 1 || rv[0].Volume != "p_postgres_data" || !rv[0].KeepUntil.Equal(now.Add(24*time.Hour)) || rv[0].Reason != "restore #3" {
		t.Errorf("after switch: live %v retired %+v", lv, rv)
	}
	// Switching back takes the old one off the retired list and retires the new one.
	if err := s.SwitchVolume(ctx, "postgres", "p_postgres_data_r1", "p_postgres_data", now.Add(time.Hour), "switched back"); err != nil {
		t.Fatal(err)
	}
	lv, _ = s.LiveVolumes(ctx)
	rv, _ = s.RetiredVolumes(ctx)
	if lv["postgres"] != "p_postgres_data" || len(rv) != 1 || rv[0].Volume != "p_postgres_data_r1" {
		t.Errorf("after switching back: live %v retired %+v", lv, rv)
	}
	if err := s.ForgetRetiredVolume(ctx, "p_postgres_data_r1"); err != nil {
		t.Fatal(err)
	}
	if rv, _ := s.RetiredVolumes(ctx); len(rv) != 0 {
		t.Errorf("forgotten %+v", rv)
	}
}
