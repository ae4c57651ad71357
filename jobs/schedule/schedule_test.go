package schedule

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustNew(t *testing.T, specs []Spec, loc *time.Location) *Schedule {
	t.Helper()
	s, err := New(specs, loc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// November/December 2026: Sunday 1 November has all three tiers due; they run daily at
// 02:00, then weekly and monthly at 03:00, one after the other.
func TestDefaultsBetween(t *testing.T) {
	s := mustNew(t, Defaults(), nil)
	from := time.Date(2026, 10, 31, 12, 0, 0, 0, time.UTC)
	var got []string
	for _, r := range s.Between(from, from.Add(9*24*time.Hour)) {
		got = append(got, r.String())
	}
	want := []string{
		"2026-11-01 Sun 02:00 daily",
		"2026-11-01 Sun 03:00 weekly",
		"2026-11-01 Sun 03:00 monthly",
		"2026-11-02 Mon 02:00 daily",
		"2026-11-03 Tue 02:00 daily",
		"2026-11-04 Wed 02:00 daily",
		"2026-11-05 Thu 02:00 daily",
		"2026-11-06 Fri 02:00 daily",
		"2026-11-07 Sat 02:00 daily",
		"2026-11-08 Sun 02:00 daily",
		"2026-11-08 Sun 03:00 weekly",
		"2026-11-09 Mon 02:00 daily",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("runs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTimeZoneIsConfigurable(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	s := mustNew(t, []Spec{{Tier: "daily", Cron: "0 2 * * *"}}, berlin)
	at, tiers := s.Next(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	if !at.Equal(time.Date(2026, 7, 2, 0, 0, 0, 0, time.UTC)) || tiers[0] != "daily" {
		t.Errorf("next = %v %v (02:00 CEST is 00:00 UTC)", at.UTC(), tiers)
	}
	// The default is UTC whatever the machine's zone.
	u := mustNew(t, []Spec{{Tier: "daily", Cron: "0 2 * * *"}}, nil)
	at, _ = u.Next(time.Date(2026, 7, 1, 12, 0, 0, 0, berlin))
	if !at.Equal(time.Date(2026, 7, 2, 2, 0, 0, 0, time.UTC)) {
		t.Errorf("UTC default: %v", at.UTC())
	}
}

func TestNewRefusesBadSpecs(t *testing.T) {
	for name, specs := range map[string][]Spec{
		"bad cron":  {{Tier: "daily", Cron: "every day"}},
		"duplicate": {{Tier: "daily", Cron: "0 2 * * *"}, {Tier: "daily", Cron: "0 3 * * *"}},
		"no tier":   {{Cron: "0 2 * * *"}},
		"tz inline": {{Tier: "daily", Cron: "CRON_TZ=Asia/Tokyo 0 2 * * *"}},
		"none":      nil,
	} {
		if _, err := New(specs, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// fakeClock's After advances its time at once: the loop runs through weeks instantly.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- now
	return ch
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestLoopRunsCoincidingTiersInOrder(t *testing.T) {
	s := mustNew(t, Defaults(), nil)
	clock := &fakeClock{now: time.Date(2026, 10, 31, 12, 0, 0, 0, time.UTC)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runs, failures []string
	fn := func(_ context.Context, tier string) error {
		runs = append(runs, clock.Now().Format("01-02 15:04")+" "+tier)
		clock.advance(10 * time.Minute) // a backup takes time
		if len(runs) == 5 {
			cancel()
		}
		if tier == "weekly" {
			return errors.New("disk full")
		}
		return nil
	}
	err := s.Loop(ctx, clock, fn, func(tier string, err error) { failures = append(failures, tier+": "+err.Error()) })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Loop = %v", err)
	}
	want := "11-01 02:00 daily,11-01 03:00 weekly,11-01 03:10 monthly,11-02 02:00 daily,11-03 02:00 daily"
	if got := strings.Join(runs, ","); got != want {
		t.Errorf("runs %s\nwant %s", got, want)
	}
	if len(failures) != 1 || failures[0] != "weekly: disk full" {
		t.Errorf("failures %v", failures)
	}
}

// A daily run that lasts past 03:00 on a Sunday: the weekly run starts as soon as it
// ends. After a long stall, only the newest missed slot runs.
func TestLoopCatchesUpOnce(t *testing.T) {
	s := mustNew(t, Defaults(), nil)
	clock := &fakeClock{now: time.Date(2026, 11, 7, 12, 0, 0, 0, time.UTC)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runs []string
	fn := func(_ context.Context, tier string) error {
		runs = append(runs, clock.Now().Format("01-02 15:04")+" "+tier)
		switch len(runs) {
		case 1:
			clock.advance(90 * time.Minute) // Sunday's daily runs until 03:30
		case 2:
			clock.advance(3*24*time.Hour + 5*time.Hour) // a stall of three days
		case 3:
			cancel()
		}
		return nil
	}
	_ = s.Loop(ctx, clock, fn, nil)
	want := "11-08 02:00 daily,11-08 03:30 weekly,11-11 08:30 daily"
	if got := strings.Join(runs, ","); got != want {
		t.Errorf("runs %s\nwant %s", got, want)
	}
}

func TestLoopStopsWhileWaiting(t *testing.T) {
	s := mustNew(t, Defaults(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	blocked := blockingClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := s.Loop(ctx, blocked, func(context.Context, string) error { t.Error("ran"); return nil }, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Loop = %v", err)
	}
	if RealClock.Now().IsZero() || RealClock.After(0) == nil {
		t.Error("real clock")
	}
}

type blockingClock struct{ now time.Time }

func (b blockingClock) Now() time.Time                     { return b.now }
func (blockingClock) After(time.Duration) <-chan time.Time { return make(chan time.Time) }
