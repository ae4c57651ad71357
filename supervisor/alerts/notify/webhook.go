package notify

import (
	"context"
	"fmt"
	"net/http"
)

// Webhook posts Alertmanager's webhook JSON (version 4), so an operator's own
// Alertmanager, chat bridge or ticketing hook can consume corpintel's alerts.
type Webhook struct {
	// URL is the endpoint; URLFile (a secret file) is used instead when set.
	URL     string
	URLFile string
	// BearerTokenFile, when set, is sent as "Authorization: Bearer …".
	BearerTokenFile string
	// MaxAlerts caps the alerts in one payload (0: no cap); the rest are counted in
	// truncatedAlerts.
	MaxAlerts int
	Client    *http.Client
}

var _ Notifier = (*Webhook)(nil)

// WebhookPayload is Alertmanager's webhook body, version 4.
type WebhookPayload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Notify implements [Notifier].
func (w *Webhook) Notify(ctx context.Context, m *Message) (bool, error) {
	u := w.URL
	if w.URLFile != "" {
		var err error
		if u, err = ReadSecretFile(w.URLFile); err != nil {
			return false, fmt.Errorf("webhook URL: %w", err)
		}
	}
	var header http.Header
	if w.BearerTokenFile != "" {
		tok, err := ReadSecretFile(w.BearerTokenFile)
		if err != nil {
			return false, fmt.Errorf("webhook bearer token: %w", err)
		}
		header = http.Header{"Authorization": {"Bearer " + tok}}
	}
	return postJSON(ctx, w.Client, u, BuildWebhookPayload(m, w.MaxAlerts), header)
}

// BuildWebhookPayload renders m as Alertmanager would.
func BuildWebhookPayload(m *Message, maxAlerts int) WebhookPayload {
	alerts := m.Alerts
	truncated := 0
	if maxAlerts > 0 && len(alerts) > maxAlerts {
		truncated = len(alerts) - maxAlerts
		alerts = alerts[:maxAlerts]
	}
	if alerts == nil {
		alerts = []Alert{}
	}
	return WebhookPayload{
		Version: "4", GroupKey: m.GroupKey, TruncatedAlerts: truncated, Status: m.Status,
		Receiver: m.Channel, GroupLabels: m.GroupLabels, CommonLabels: m.CommonLabels,
		CommonAnnotations: m.CommonAnnotations, ExternalURL: m.ExternalURL, Alerts: alerts,
	}
}
