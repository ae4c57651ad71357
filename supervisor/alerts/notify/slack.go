package notify

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Slack posts to a Slack incoming webhook; the webhook URL is the secret.
type Slack struct {
	URLFile string
	Client  *http.Client
}

var _ Notifier = (*Slack)(nil)

// SlackMessage is an incoming-webhook body: text is the notification fallback, blocks the
// rendered message.
type SlackMessage struct {
	Text   string       `json:"text"`
	Blocks []SlackBlock `json:"blocks,omitempty"`
}

// SlackBlock is one Block Kit block (header or section).
type SlackBlock struct {
	Type string     `json:"type"`
	Text *SlackText `json:"text,omitempty"`
}

// SlackText is a Block Kit text object.
type SlackText struct {
	Type string `json:"type"` // plain_text or mrkdwn
	Text string `json:"text"`
}

// Notify implements [Notifier].
func (s *Slack) Notify(ctx context.Context, m *Message) (bool, error) {
	u, err := ReadSecretFile(s.URLFile)
	if err != nil {
		return false, fmt.Errorf("slack webhook URL: %w", err)
	}
	return postJSON(ctx, s.Client, u, BuildSlackMessage(m), nil)
}

// BuildSlackMessage renders m; Block Kit limits headers to 150 and sections to 3000
// characters.
func BuildSlackMessage(m *Message) SlackMessage {
	var b strings.Builder
	for _, a := range m.Alerts {
		icon := ":red_circle:"
		if a.Status == StatusResolved {
			icon = ":large_green_circle:"
		}
		fmt.Fprintf(&b, "%s *%s* %s\n", icon, slackEscape(a.Name()), slackEscape(a.Annotations["summary"]))
		if l := formatLabels(without(a.Labels, "alertname")); l != "" {
			fmt.Fprintf(&b, "      `%s`\n", slackEscape(l))
		}
	}
	if m.ExternalURL != "" {
		fmt.Fprintf(&b, "<%s|Open the console>\n", m.ExternalURL)
	}
	return SlackMessage{
		Text: truncate(m.Title(), 3000),
		Blocks: []SlackBlock{
			{Type: "header", Text: &SlackText{Type: "plain_text", Text: truncate(m.Title(), 150)}},
			{Type: "section", Text: &SlackText{Type: "mrkdwn", Text: truncate(b.String(), 3000)}},
		},
	}
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning to.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func without(l map[string]string, drop string) map[string]string {
	out := make(map[string]string, len(l))
	for k, v := range l {
		if k != drop {
			out[k] = v
		}
	}
	return out
}
