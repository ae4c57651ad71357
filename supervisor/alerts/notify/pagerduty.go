package notify

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// PagerDutyEventsURL is the Events API v2 endpoint.
const PagerDutyEventsURL = "https://events.pagerduty.com/v2/enqueue"

// PagerDuty sends Events API v2 events: trigger while any alert of the group fires,
// resolve once all are resolved, both with the group's stable dedup key.
type PagerDuty struct {
	// URL is the events endpoint (default PagerDutyEventsURL).
	URL string
	// RoutingKeyFile holds the integration's routing key.
	RoutingKeyFile string
	// Source names the affected system in the event (default "corpintel").
	Source string
	Client *http.Client
}

var _ Notifier = (*PagerDuty)(nil)

// PagerDutyEvent is an Events API v2 request body.
type PagerDutyEvent struct {
	RoutingKey  string            `json:"routing_key"`
	EventAction string            `json:"event_action"`
	DedupKey    string            `json:"dedup_key"`
	Payload     *PagerDutyPayload `json:"payload,omitempty"`
	Client      string            `json:"client,omitempty"`
	ClientURL   string            `json:"client_url,omitempty"`
}

// PagerDutyPayload is the trigger event's payload.
type PagerDutyPayload struct {
	Summary       string            `json:"summary"`
	Source        string            `json:"source"`
	Severity      string            `json:"severity"`
	Timestamp     string            `json:"timestamp,omitempty"`
	Component     string            `json:"component,omitempty"`
	Group         string            `json:"group,omitempty"`
	Class         string            `json:"class,omitempty"`
	CustomDetails map[string]string `json:"custom_details,omitempty"`
}

// Notify implements [Notifier].
func (p *PagerDuty) Notify(ctx context.Context, m *Message) (bool, error) {
	key, err := ReadSecretFile(p.RoutingKeyFile)
	if err != nil {
		return false, fmt.Errorf("pagerduty routing key: %w", err)
	}
	ev := BuildPagerDutyEvent(m, key, p.Source)
	url := p.URL
	if url == "" {
		url = PagerDutyEventsURL
	}
	return postJSON(ctx, p.Client, url, ev, nil)
}

// BuildPagerDutyEvent renders m as an event; resolve events carry no payload, as the
// Events API v2 documents.
func BuildPagerDutyEvent(m *Message, routingKey, source string) PagerDutyEvent {
	ev := PagerDutyEvent{RoutingKey: routingKey, DedupKey: m.DedupKey, EventAction: "resolve"}
	if m.Status != StatusFiring {
		return ev
	}
	if source == "" {
		source = "corpintel"
	}
	ev.EventAction = "trigger"
	ev.Client = "corpintel"
	ev.ClientURL = m.ExternalURL
	firing := m.Firing()
	first := firing[0]
	details := map[string]string{
		"firing":      fmt.Sprint(len(firing)),
		"resolved":    fmt.Sprint(len(m.Resolved())),
		"description": truncate(m.Text(), 4000),
	}
	for k, v := range m.GroupLabels {
		details["group_"+k] = v
	}
	ev.Payload = &PagerDutyPayload{
		// PagerDuty truncates summaries at 1024 characters.
		Summary:       truncate(m.Title()+": "+alertLine(first), 1024),
		Source:        source,
		Severity:      pagerDutySeverity(m.Severity()),
		Timestamp:     first.StartsAt.UTC().Format(time.RFC3339),
		Component:     first.Labels["service"],
		Group:         first.Name(),
		Class:         first.Labels["severity"],
		CustomDetails: details,
	}
	return ev
}

// pagerDutySeverity maps our severities onto the four the API accepts.
func pagerDutySeverity(s string) string {
	switch s {
	case "critical", "warning", "info":
		return s
	}
	return "error"
}
