package supervisor

import (
	"fmt"
	"slices"
	"strings"

	"github.com/corpintel/corpintel/supervisor/reconcile"
)

// onSnapshot is the reconciler's hook after every observation: the edge's backends
// follow it, and the status watchers (the console's live pages) hear about changes.
func (d *Daemon) onSnapshot(s reconcile.Snapshot) {
	d.setBackends(s)
	if s.Err != "" {
		return
	}
	fp := fingerprint(s)
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	if fp == d.lastPrint {
		return // status calls refresh the snapshot too: only a change is news
	}
	d.lastPrint = fp
	for ch := range d.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// fingerprint is what the status of a snapshot depends on, apart from resource
// counters: which containers exist, their state, health, readiness and restarts.
func fingerprint(s reconcile.Snapshot) string {
	parts := make([]string, 0, len(s.Observed.Containers))
	for _, c := range s.Observed.Containers {
		parts = append(parts, fmt.Sprintf("%s/%s/%s/%s/%t/%d", c.Service, c.ID, c.State, c.Health, s.Serving(c), c.RestartCount))
	}
	slices.Sort(parts)
	return strings.Join(parts, ";")
}

// WatchStatus returns a channel that receives when the observed stack changes (a
// container appears, goes, changes state or health) and a function that ends the watch.
// The console's live pages use it instead of polling.
func (d *Daemon) WatchStatus() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	d.watchMu.Lock()
	if d.watchers == nil {
		d.watchers = map[chan struct{}]struct{}{}
	}
	d.watchers[ch] = struct{}{}
	d.watchMu.Unlock()
	return ch, func() {
		d.watchMu.Lock()
		delete(d.watchers, ch)
		d.watchMu.Unlock()
	}
}
