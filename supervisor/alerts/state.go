package alerts

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"maps"
	"slices"
	"time"
)

// Alert states.
const (
	StatePending  = "pending"
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Alert is one alert instance: a rule's candidate, identified by its labels.
type Alert struct {
	Fingerprint string `json:"fingerprint"`
	Rule        string `json:"rule"`
	// Labels include alertname and severity.
	Labels      Labels  `json:"labels"`
	Annotations Labels  `json:"annotations,omitempty"`
	State       string  `json:"state"`
	Value       float64 `json:"value"`
	// ActiveAt is when the condition started to hold (the start of pending).
	ActiveAt   time.Time `json:"active_at"`
	FiredAt    time.Time `json:"fired_at,omitzero"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// LastTrueAt is the last evaluation at which the condition held.
	LastTrueAt time.Time `json:"last_true_at"`
	// FireEvents are the recent times it started firing, for flap detection.
	FireEvents []time.Time `json:"fire_events,omitempty"`
	Flapping   bool        `json:"flapping,omitempty"`
	// MutedBy says why a firing alert is not notified: a silence, an inhibiting alert,
	// or an operation's maintenance; empty when it is not muted.
	MutedBy string `json:"muted_by,omitempty"`
}

func (a Alert) clone() Alert {
	a.Labels = maps.Clone(a.Labels)
	a.Annotations = maps.Clone(a.Annotations)
	a.FireEvents = slices.Clone(a.FireEvents)
	return a
}

// Group is an aggregation group: the alerts one route sends together.
type Group struct {
	Key    string `json:"key"`
	Route  string `json:"route"`
	Labels Labels `json:"labels"`
	// Alerts are the member fingerprints: the firing alerts routed here and the
	// resolved ones whose resolve is still owed to a channel. Sorted.
	Alerts     []string  `json:"alerts"`
	CreatedAt  time.Time `json:"created_at"`
	NextFlush  time.Time `json:"next_flush"`
	LastFiring time.Time `json:"last_firing"`
}

// LogEntry is the notification log of one group on one channel: what was last
// delivered (and when), and what is being delivered right now.
type LogEntry struct {
	GroupKey string `json:"group_key"`
	Channel  string `json:"channel"`
	DedupKey string `json:"dedup_key"`
	// Firing and Resolved are the fingerprints of the last successful delivery.
	Firing   []string  `json:"firing,omitempty"`
	Resolved []string  `json:"resolved,omitempty"`
	SentAt   time.Time `json:"sent_at,omitzero"`
	// Pending is a delivery handed to the dispatcher and not yet reported back.
	Pending *Delivery `json:"pending,omitempty"`
}

// Delivery is what one notification carries.
type Delivery struct {
	Firing    []string  `json:"firing,omitempty"`
	Resolved  []string  `json:"resolved,omitempty"`
	PlannedAt time.Time `json:"planned_at"`
}

func (l LogEntry) clone() LogEntry {
	l.Firing = slices.Clone(l.Firing)
	l.Resolved = slices.Clone(l.Resolved)
	if l.Pending != nil {
		p := *l.Pending
		p.Firing, p.Resolved = slices.Clone(p.Firing), slices.Clone(p.Resolved)
		l.Pending = &p
	}
	return l
}

// Silence mutes the alerts its matchers select between StartsAt and EndsAt.
type Silence struct {
	ID        string    `json:"id"`
	Matchers  Matchers  `json:"matchers"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	CreatedBy string    `json:"created_by"`
	Comment   string    `json:"comment"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Silence states.
const (
	SilenceActive  = "active"
	SilencePending = "pending"
	SilenceExpired = "expired"
)

// Status is pending, active or expired at now.
func (s Silence) Status(now time.Time) string {
	switch {
	case now.Before(s.StartsAt):
		return SilencePending
	case now.Before(s.EndsAt):
		return SilenceActive
	}
	return SilenceExpired
}

// State is everything the evaluation carries from one cycle to the next, and what the
// store persists: active and recent alerts, aggregation groups, the notification log and
// the silences.
type State struct {
	Alerts   map[string]Alert    `json:"alerts"`
	Groups   map[string]Group    `json:"groups"`
	Log      map[string]LogEntry `json:"log"`
	Silences map[string]Silence  `json:"silences"`
}

// NewState returns an empty state.
func NewState() State {
	return State{Alerts: map[string]Alert{}, Groups: map[string]Group{}, Log: map[string]LogEntry{}, Silences: map[string]Silence{}}
}

// Clone returns a deep copy.
func (s State) Clone() State {
	out := NewState()
	for k, a := range s.Alerts {
		out.Alerts[k] = a.clone()
	}
	for k, g := range s.Groups {
		g.Labels = maps.Clone(g.Labels)
		g.Alerts = slices.Clone(g.Alerts)
		out.Groups[k] = g
	}
	for k, l := range s.Log {
		out.Log[k] = l.clone()
	}
	for k, sl := range s.Silences {
		sl.Matchers = slices.Clone(sl.Matchers)
		out.Silences[k] = sl
	}
	return out
}

// RecoverInFlight forgets deliveries that were under way when the previous process
// stopped (their outcome is unknown: sending again is better than never) and makes
// their groups flush at the next evaluation.
func (s *State) RecoverInFlight(now time.Time) {
	for k, l := range s.Log {
		if l.Pending == nil {
			continue
		}
		l.Pending = nil
		s.Log[k] = l
		if g, ok := s.Groups[l.GroupKey]; ok && g.NextFlush.After(now) {
			g.NextFlush = now
			s.Groups[l.GroupKey] = g
		}
	}
}

// LogKey is the notification log's key for a group on a channel.
func LogKey(groupKey, channel string) string { return channel + "\x00" + groupKey }

// Fingerprint identifies an alert by its labels (FNV-1a 64 over the sorted pairs).
func Fingerprint(l Labels) string {
	h := fnv.New64a()
	for _, k := range slices.Sorted(maps.Keys(l)) {
		h.Write([]byte(k))
		h.Write([]byte{0xff})
		h.Write([]byte(l[k]))
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// DedupKey derives PagerDuty's dedup_key from a group key: the same group gets the same
// key in every process, so a resolve after a restart closes the incident its trigger
// opened.
func DedupKey(groupKey string) string {
	sum := sha256.Sum256([]byte(groupKey))
	return hex.EncodeToString(sum[:16])
}

// GroupKey is "route/{label=\"value\",…}".
func GroupKey(route string, groupLabels Labels) string { return route + "/" + groupLabels.String() }

// MarkDelivered records the outcome of the delivery under way for a group on a channel:
// on success the log remembers what the channel was told; on failure the next flush of
// the group tries again. It reports whether a delivery was under way.
func (s *State) MarkDelivered(groupKey, channel string, ok bool, at time.Time) bool {
	lk := LogKey(groupKey, channel)
	entry, found := s.Log[lk]
	if !found || entry.Pending == nil {
		return false
	}
	if ok {
		entry.Firing, entry.Resolved = entry.Pending.Firing, entry.Pending.Resolved
		entry.SentAt = at
	}
	entry.Pending = nil
	s.Log[lk] = entry
	return true
}
