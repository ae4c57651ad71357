// Package schedule decides when each backup tier runs (cron expressions parsed by
// robfig/cron/v3, in UTC unless configured otherwise) and runs them. Tiers that fall due
// at the same moment — weekly and monthly on a Sunday the 1st — run one after the other
// in the order configured, never concurrently. A run that falls due while another is
// still going is started as soon as it ends (once, not once per missed slot).
package schedule

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Spec is one tier's schedule.
type Spec struct {
	Tier string
	Cron string // standard 5-field cron expression
}

// Defaults are the seed's: daily 02:00, weekly Sunday 03:00, monthly the 1st 03:00.
func Defaults() []Spec {
	return []Spec{
		{Tier: "daily", Cron: "0 2 * * *"},
		{Tier: "weekly", Cron: "0 3 * * 0"},
		{Tier: "monthly", Cron: "0 3 1 * *"},
	}
}

// Schedule is a parsed set of specs.
type Schedule struct {
	specs []Spec
	sched []cron.Schedule
	loc   *time.Location
}

// New parses specs in loc (nil: UTC).
func New(specs []Spec, loc *time.Location) (*Schedule, error) {
	if loc == nil {
		loc = time.UTC
	}
	s := &Schedule{loc: loc}
	seen := map[string]bool{}
	for _, sp := range specs {
		if sp.Tier == "" || seen[sp.Tier] {
			return nil, fmt.Errorf("schedule: tier %q is empty or listed twice", sp.Tier)
		}
		seen[sp.Tier] = true
		if strings.Contains(sp.Cron, "TZ=") {
			return nil, fmt.Errorf("schedule: %s: set the time zone in the schedule's config, not in the expression", sp.Tier)
		}
		c, err := cron.ParseStandard(sp.Cron)
		if err != nil {
			return nil, fmt.Errorf("schedule: %s: %q is not a cron expression (minute hour day-of-month month day-of-week): %w", sp.Tier, sp.Cron, err)
		}
		if ss, ok := c.(*cron.SpecSchedule); ok {
			ss.Location = loc // ParseStandard defaults to the machine's local zone
		}
		s.specs = append(s.specs, sp)
		s.sched = append(s.sched, c)
	}
	if len(s.specs) == 0 {
		return nil, fmt.Errorf("schedule: no tier is scheduled")
	}
	return s, nil
}

// Next returns the first moment after t at which something is due and the tiers due
// then, in configured order.
func (s *Schedule) Next(t time.Time) (time.Time, []string) {
	var at time.Time
	var tiers []string
	for i, c := range s.sched {
		n := c.Next(t)
		switch {
		case n.IsZero():
		case at.IsZero() || n.Before(at):
			at, tiers = n, []string{s.specs[i].Tier}
		case n.Equal(at):
			tiers = append(tiers, s.specs[i].Tier)
		}
	}
	return at, tiers
}

// Run is one scheduled backup.
type Run struct {
	At   time.Time
	Tier string
}

func (r Run) String() string { return r.At.UTC().Format("2006-01-02 Mon 15:04") + " " + r.Tier }

// Between lists the runs due in (from, to], in order.
func (s *Schedule) Between(from, to time.Time) []Run {
	var out []Run
	for t := from; ; {
		at, tiers := s.Next(t)
		if at.IsZero() || at.After(to) {
			return out
		}
		for _, tier := range tiers {
			out = append(out, Run{At: at, Tier: tier})
		}
		t = at
	}
}

// Clock is the time source of Loop; tests inject a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// RealClock is the wall clock.
var RealClock Clock = realClock{}

// Loop runs fn for every tier as it falls due until ctx ends. fn's error is handed to
// onErr (logging, metrics); the schedule goes on. Tiers due together run in order.
func (s *Schedule) Loop(ctx context.Context, clock Clock, fn func(ctx context.Context, tier string) error, onErr func(tier string, err error)) error {
	last := clock.Now()
	for {
		at, tiers := s.Next(last)
		if at.IsZero() {
			return fmt.Errorf("schedule: nothing is ever due")
		}
		if wait := at.Sub(clock.Now()); wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-clock.After(wait):
			}
		}
		for _, tier := range tiers {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(ctx, tier); err != nil && onErr != nil {
				onErr(tier, err)
			}
		}
		// Measured from the slot, not from now: a slot that passed while these runs
		// took their time comes next, and runs at once.
		last = at
		if now := clock.Now(); now.Sub(last) > 0 {
			if next, _ := s.Next(last); !next.IsZero() && next.Before(now) {
				// Several slots passed: run the newest of them once, skip the older.
				for {
					n2, _ := s.Next(next)
					if n2.IsZero() || n2.After(now) {
						break
					}
					next = n2
				}
				last = next.Add(-time.Nanosecond)
			}
		}
	}
}
