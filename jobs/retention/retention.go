// Package retention decides which backups and stored objects may be deleted. Decide
// is a pure function — backups and blobs in, a Plan with a stable String() out — so
// every rule is golden-tested without a filesystem; jobs/backup observes the root,
// calls it and executes the plan.
//
// The rules, in order: a backup newer than the clock (the clock was set back) stops
// everything; pinned, incomplete, unreadable and the newest good backup of each tier
// are kept; a complete backup older than its tier's period is deleted (default: daily
// 7 days, weekly 30, monthly 365; a tier without a period is kept forever). Objects are
// deleted only when no remaining backup references them, and not at all while any
// backup's references are unknown (a partial or unreadable one).
package retention

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Policy is how long each tier is kept.
type Policy struct {
	Keep map[string]time.Duration
	// ClockSlack is how far in the future a backup may lie before the clock is taken
	// to have gone back (default 10 minutes).
	ClockSlack time.Duration
}

// Day is 24 hours; retention periods are counted in them.
const Day = 24 * time.Hour

// DefaultPolicy is the seed's: daily 7 days, weekly 30, monthly 365.
func DefaultPolicy() Policy {
	return Policy{Keep: map[string]time.Duration{"daily": 7 * Day, "weekly": 30 * Day, "monthly": 365 * Day}}
}

// Backup is one backup as retention sees it.
type Backup struct {
	Tier     string
	Name     string
	Time     time.Time // UTC start
	Complete bool      // false: a partial directory (running or interrupted)
	Readable bool      // its manifest (and object index) could be read
	Verified bool
	Pinned   bool
	Blobs    []string // blobs it references (meaningful when Readable)
}

// ID is "tier/name".
func (b Backup) ID() string { return b.Tier + "/" + b.Name }

// Input is everything Decide looks at.
type Input struct {
	Now     time.Time
	Backups []Backup
	Blobs   []string // every blob in the store
}

// Decision is one backup's fate and why.
type Decision struct {
	Backup string
	Reason string
}

// Plan is what to delete.
type Plan struct {
	Now           time.Time
	Halted        string // non-empty: nothing is deleted, and why
	Delete        []Decision
	Keep          []Decision
	DeleteBlobs   []string
	KeptBlobs     int
	BlobsHeldBack string // non-empty: no blob is deleted, and why
}

// Decide computes the plan. It never deletes a pinned, incomplete or unreadable
// backup, nor the newest good backup of any tier.
func Decide(in Input, pol Policy) Plan {
	if pol.ClockSlack == 0 {
		pol.ClockSlack = 10 * time.Minute
	}
	p := Plan{Now: in.Now.UTC()}
	backups := append([]Backup(nil), in.Backups...)
	sort.Slice(backups, func(i, j int) bool {
		if !backups[i].Time.Equal(backups[j].Time) {
			return backups[i].Time.Before(backups[j].Time)
		}
		return backups[i].ID() < backups[j].ID()
	})

	for _, b := range backups {
		if b.Time.After(p.Now.Add(pol.ClockSlack)) {
			p.Halted = fmt.Sprintf("the clock (%s) is behind backup %s (%s): was it set back? nothing is deleted until it has caught up",
				p.Now.Format(time.RFC3339), b.ID(), b.Time.UTC().Format(time.RFC3339))
			for _, b := range backups {
				p.Keep = append(p.Keep, Decision{b.ID(), "retention halted"})
			}
			p.KeptBlobs = len(in.Blobs)
			p.BlobsHeldBack = "retention halted"
			return p
		}
	}

	newestGood := map[string]string{}
	for _, b := range backups {
		if b.Complete && b.Readable && b.Verified {
			newestGood[b.Tier] = b.ID() // sorted ascending: the last one wins
		}
	}
	deleted := map[string]bool{}
	for _, b := range backups {
		keep, why := decide(b, p.Now, pol, newestGood[b.Tier] == b.ID())
		if keep {
			p.Keep = append(p.Keep, Decision{b.ID(), why})
		} else {
			p.Delete = append(p.Delete, Decision{b.ID(), why})
			deleted[b.ID()] = true
		}
	}

	referenced := map[string]bool{}
	for _, b := range backups {
		if deleted[b.ID()] {
			continue
		}
		switch {
		case !b.Complete && p.BlobsHeldBack == "":
			p.BlobsHeldBack = "backup " + b.ID() + " is incomplete (running or interrupted): its objects are not known yet"
		case !b.Readable && b.Complete && p.BlobsHeldBack == "":
			p.BlobsHeldBack = "backup " + b.ID() + " is unreadable: the objects it references are not known"
		}
		for _, s := range b.Blobs {
			referenced[s] = true
		}
	}
	blobs := append([]string(nil), in.Blobs...)
	sort.Strings(blobs)
	for _, s := range blobs {
		if p.BlobsHeldBack == "" && !referenced[s] {
			p.DeleteBlobs = append(p.DeleteBlobs, s)
		} else {
			p.KeptBlobs++
		}
	}
	return p
}

func decide(b Backup, now time.Time, pol Policy, newestGood bool) (keep bool, why string) {
	age := now.Sub(b.Time)
	period, hasPeriod := pol.Keep[b.Tier]
	switch {
	case b.Pinned:
		return true, "pinned"
	case !b.Complete:
		return true, "incomplete (running or interrupted)"
	case !b.Readable:
		return true, "unreadable manifest: kept for inspection"
	case newestGood:
		return true, "newest good backup of " + b.Tier
	case !hasPeriod:
		return true, "tier " + b.Tier + " has no retention period"
	case age > period:
		return false, fmt.Sprintf("expired: %s old, %s keeps %s", days(age), b.Tier, days(period))
	}
	state := "good"
	if !b.Verified {
		state = "bad"
	}
	return true, fmt.Sprintf("%s, %s old, within %s", state, days(age), days(period))
}

// days renders a duration as days and hours ("7d", "2d3h").
func days(d time.Duration) string {
	d = d.Round(time.Hour)
	dd, h := int(d/Day), int((d%Day)/time.Hour)
	switch {
	case dd == 0:
		return fmt.Sprintf("%dh", h)
	case h == 0:
		return fmt.Sprintf("%dd", dd)
	}
	return fmt.Sprintf("%dd%dh", dd, h)
}

// String renders the plan in a stable form (golden tests, `backup prune --dry-run`).
func (p Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "retention at %s\n", p.Now.Format(time.RFC3339))
	if p.Halted != "" {
		fmt.Fprintf(&b, "HALTED: %s\n", p.Halted)
	}
	for _, d := range p.Delete {
		fmt.Fprintf(&b, "delete %s: %s\n", d.Backup, d.Reason)
	}
	for _, d := range p.Keep {
		fmt.Fprintf(&b, "keep   %s: %s\n", d.Backup, d.Reason)
	}
	for _, s := range p.DeleteBlobs {
		fmt.Fprintf(&b, "delete object %s\n", s)
	}
	fmt.Fprintf(&b, "keep   %d objects\n", p.KeptBlobs)
	if p.BlobsHeldBack != "" {
		fmt.Fprintf(&b, "objects held back: %s\n", p.BlobsHeldBack)
	}
	return b.String()
}
