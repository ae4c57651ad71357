// Package notify delivers alert notifications to PagerDuty (Events API v2), Slack incoming
// webhooks, e-mail over SMTP and generic webhooks speaking Alertmanager's webhook JSON.
//
// It follows Alertmanager's split of duties: a [Notifier] makes one delivery attempt and
// says whether a failure is worth retrying; the [Dispatcher] owns retries with exponential
// backoff, per-channel queues (a hanging channel never delays another), per-attempt
// timeouts, and the visible state of every channel (last result, Prometheus counters).
//
// Channel secrets (routing keys, webhook URLs, SMTP passwords, bearer tokens) are read from
// files at send time, so a rotated file takes effect without a restart; they never appear
// in errors or logs (URLs in errors are reduced to scheme and host).
package notify

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// Alert statuses, as Alertmanager spells them.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Alert is one alert inside a notification, shaped like Alertmanager's webhook alert.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Name is the alert's rule name (its alertname label).
func (a Alert) Name() string { return a.Labels["alertname"] }

// Message is one notification for one channel: the alerts of one group, firing and
// resolved, as they stand at the group's flush.
type Message struct {
	// Channel is the name of the channel it is for.
	Channel string
	// GroupKey identifies the group (route and group labels); stable across restarts.
	GroupKey string
	// DedupKey is derived from GroupKey; PagerDuty gets it as dedup_key so trigger and
	// resolve of one incident meet, whichever supervisor process sends them.
	DedupKey string
	// Status is firing when any alert fires, resolved when all are resolved.
	Status            string
	GroupLabels       map[string]string
	CommonLabels      map[string]string
	CommonAnnotations map[string]string
	Alerts            []Alert
	// ExternalURL links back to the console.
	ExternalURL string
	// Test marks a notification sent by `corpintel alerts test`.
	Test bool
}

// NewMessage builds a message, computing its status and common labels the way
// Alertmanager's template data does. Alerts are ordered firing first, then by name and
// labels, so every channel shows them alike.
func NewMessage(channel, groupKey, dedupKey string, groupLabels map[string]string, alerts []Alert) *Message {
	as := slices.Clone(alerts)
	sort.SliceStable(as, func(i, j int) bool {
		if as[i].Status != as[j].Status {
			return as[i].Status == StatusFiring
		}
		if as[i].Name() != as[j].Name() {
			return as[i].Name() < as[j].Name()
		}
		return formatLabels(as[i].Labels) < formatLabels(as[j].Labels)
	})
	m := &Message{
		Channel: channel, GroupKey: groupKey, DedupKey: dedupKey,
		Status: StatusResolved, GroupLabels: maps.Clone(groupLabels),
		CommonLabels: map[string]string{}, CommonAnnotations: map[string]string{},
		Alerts: as,
	}
	if m.GroupLabels == nil {
		m.GroupLabels = map[string]string{}
	}
	for _, a := range as {
		if a.Status == StatusFiring {
			m.Status = StatusFiring
		}
	}
	if len(as) > 0 {
		m.CommonLabels = common(as, func(a Alert) map[string]string { return a.Labels })
		m.CommonAnnotations = common(as, func(a Alert) map[string]string { return a.Annotations })
	}
	return m
}

func common(as []Alert, get func(Alert) map[string]string) map[string]string {
	out := maps.Clone(get(as[0]))
	if out == nil {
		out = map[string]string{}
	}
	for _, a := range as[1:] {
		m := get(a)
		for k, v := range out {
			if m[k] != v {
				delete(out, k)
			}
		}
	}
	return out
}

// Firing returns the firing alerts.
func (m *Message) Firing() []Alert { return m.filter(StatusFiring) }

// Resolved returns the resolved alerts.
func (m *Message) Resolved() []Alert { return m.filter(StatusResolved) }

func (m *Message) filter(status string) []Alert {
	var out []Alert
	for _, a := range m.Alerts {
		if a.Status == status {
			out = append(out, a)
		}
	}
	return out
}

// Severity is the common severity label, or the highest one present.
func (m *Message) Severity() string {
	if s := m.CommonLabels["severity"]; s != "" {
		return s
	}
	best := ""
	for _, a := range m.Alerts {
		if severityRank(a.Labels["severity"]) > severityRank(best) {
			best = a.Labels["severity"]
		}
	}
	return best
}

func severityRank(s string) int {
	switch s {
	case "critical":
		return 3
	case "warning":
		return 2
	case "info":
		return 1
	}
	return 0
}

// Title is the one-line summary every channel uses: "[FIRING:2] APIDown (critical)".
func (m *Message) Title() string {
	var b strings.Builder
	if m.Test {
		b.WriteString("[TEST] ")
	}
	if m.Status == StatusFiring {
		fmt.Fprintf(&b, "[FIRING:%d] ", len(m.Firing()))
	} else {
		b.WriteString("[RESOLVED] ")
	}
	names := m.names()
	b.WriteString(strings.Join(names, ", "))
	if s := m.Severity(); s != "" {
		fmt.Fprintf(&b, " (%s)", s)
	}
	return b.String()
}

func (m *Message) names() []string {
	var names []string
	for _, a := range m.Alerts {
		if n := a.Name(); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		names = []string{"alerts"}
	}
	return names
}

// Text is the plain-text body: one paragraph per alert, firing first.
func (m *Message) Text() string {
	var b strings.Builder
	for _, section := range []struct {
		title  string
		alerts []Alert
	}{{"Firing", m.Firing()}, {"Resolved", m.Resolved()}} {
		if len(section.alerts) == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s (%d):\n", section.title, len(section.alerts))
		for _, a := range section.alerts {
			b.WriteString("- " + alertLine(a) + "\n")
			if d := a.Annotations["description"]; d != "" {
				b.WriteString("  " + d + "\n")
			}
			b.WriteString("  since " + a.StartsAt.UTC().Format(time.RFC3339))
			if a.Status == StatusResolved && !a.EndsAt.IsZero() {
				b.WriteString(", resolved " + a.EndsAt.UTC().Format(time.RFC3339))
			}
			b.WriteString("\n  labels: " + formatLabels(a.Labels) + "\n")
		}
	}
	if m.ExternalURL != "" {
		b.WriteString("\nConsole: " + m.ExternalURL + "\n")
	}
	return b.String()
}

// alertLine is "APIDown: the API failed 3 health checks in a row".
func alertLine(a Alert) string {
	s := a.Name()
	if sum := a.Annotations["summary"]; sum != "" {
		s += ": " + sum
	}
	return s
}

func formatLabels(l map[string]string) string {
	keys := slices.Sorted(maps.Keys(l))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, " ")
}

// Notifier makes one delivery attempt of a message. On failure it reports whether a retry
// may succeed (the server was unreachable, overloaded or rate-limiting) or not (the
// request itself is wrong: bad key, rejected payload), as Alertmanager's notifiers do.
type Notifier interface {
	Notify(ctx context.Context, m *Message) (retry bool, err error)
}

// NotifierFunc adapts a function to [Notifier].
type NotifierFunc func(ctx context.Context, m *Message) (bool, error)

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, m *Message) (bool, error) { return f(ctx, m) }

// truncate cuts s to at most n runes, marking the cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
