package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"html/template"
	"net"
	"time"

	mail "github.com/wneessen/go-mail"
)

// E-mail transport security.
const (
	// TLSStartTLS upgrades a plain connection with STARTTLS and refuses servers that
	// cannot (port 587).
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (port 465).
	TLSImplicit = "tls"
	// TLSNone sends in the clear; only for a relay on the same host or network.
	TLSNone = "none"
)

// Email sends a multipart (plain text + HTML) mail per notification over SMTP.
type Email struct {
	Host string
	Port int
	// TLS is TLSStartTLS (default), TLSImplicit or TLSNone.
	TLS string
	// TLSConfig supplies trusted roots (see [TLSConfig]); ServerName is set to Host.
	TLSConfig *tls.Config
	// Username and PasswordFile enable SMTP AUTH (the mechanism is negotiated; PLAIN and
	// LOGIN only over TLS).
	Username     string
	PasswordFile string
	From         string
	To           []string
	// Hello is the EHLO name (default: the host name).
	Hello string
}

var _ Notifier = (*Email)(nil)

// Notify implements [Notifier].
func (e *Email) Notify(ctx context.Context, m *Message) (bool, error) {
	msg, err := e.build(m)
	if err != nil {
		return false, err
	}
	opts := []mail.Option{mail.WithPort(e.Port), mail.WithTimeout(30 * time.Second)}
	if deadline, ok := ctx.Deadline(); ok {
		opts[1] = mail.WithTimeout(time.Until(deadline))
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.TLSConfig != nil {
		tlsConf = e.TLSConfig.Clone()
	}
	tlsConf.ServerName = e.Host
	switch e.TLS {
	case TLSImplicit:
		opts = append(opts, mail.WithSSL(), mail.WithTLSConfig(tlsConf))
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory), mail.WithTLSConfig(tlsConf))
	}
	if e.Hello != "" {
		opts = append(opts, mail.WithHELO(e.Hello))
	}
	if e.Username != "" {
		pw, err := ReadSecretFile(e.PasswordFile)
		if err != nil {
			return false, fmt.Errorf("smtp password: %w", err)
		}
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(e.Username), mail.WithPassword(pw))
	}
	c, err := mail.NewClient(e.Host, opts...)
	if err != nil {
		return false, fmt.Errorf("smtp client for %s: %w", e.addr(), err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return retryableSMTP(err), fmt.Errorf("send mail via %s: %w", e.addr(), err)
	}
	return false, nil
}

func (e *Email) addr() string { return net.JoinHostPort(e.Host, fmt.Sprint(e.Port)) }

func (e *Email) build(m *Message) (*mail.Msg, error) {
	msg := mail.NewMsg()
	if err := msg.From(e.From); err != nil {
		return nil, fmt.Errorf("email from %q: %w", e.From, err)
	}
	if err := msg.To(e.To...); err != nil {
		return nil, fmt.Errorf("email to %v: %w", e.To, err)
	}
	msg.Subject(m.Title())
	msg.SetDate()
	msg.SetMessageID()
	// Mail clients thread by these headers: one thread per incident.
	msg.SetGenHeader("X-Corpintel-Group", m.DedupKey)
	msg.SetBodyString(mail.TypeTextPlain, m.Text())
	html, err := renderHTML(m)
	if err != nil {
		return nil, err
	}
	msg.AddAlternativeString(mail.TypeTextHTML, html)
	return msg, nil
}

// retryableSMTP: a temporary (4xx) reply or a network failure may pass later; a permanent
// (5xx) reply, failed authentication or a TLS policy refusal will not.
func retryableSMTP(err error) bool {
	var se *mail.SendError
	if errors.As(err, &se) {
		return se.IsTemp()
	}
	if errors.Is(err, mail.ErrNoSupportedAuthDiscovered) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

var htmlTemplate = template.Must(template.New("mail").Parse(`<!DOCTYPE html>
<html><body style="font-family:sans-serif">
<h2>{{.Title}}</h2>
{{range .Sections}}{{if .Alerts}}<h3>{{.Name}} ({{len .Alerts}})</h3>
<table cellpadding="4" style="border-collapse:collapse">
{{range .Alerts}}<tr style="border-top:1px solid #ccc"><td><b>{{.Labels.alertname}}</b></td><td>{{.Annotations.summary}}</td></tr>
{{with .Annotations.description}}<tr><td></td><td>{{.}}</td></tr>{{end}}
<tr><td></td><td style="color:#666">since {{.StartsAt.UTC.Format "2006-01-02 15:04:05 MST"}}{{if eq .Status "resolved"}}, resolved {{.EndsAt.UTC.Format "2006-01-02 15:04:05 MST"}}{{end}}</td></tr>
{{end}}</table>{{end}}{{end}}
{{with .URL}}<p><a href="{{.}}">Open the console</a></p>{{end}}
</body></html>
`))

func renderHTML(m *Message) (string, error) {
	type section struct {
		Name   string
		Alerts []Alert
	}
	data := struct {
		Title    string
		Sections []section
		URL      string
	}{m.Title(), []section{{"Firing", m.Firing()}, {"Resolved", m.Resolved()}}, m.ExternalURL}
	var b bytes.Buffer
	if err := htmlTemplate.Execute(&b, data); err != nil {
		return "", fmt.Errorf("render mail: %w", err)
	}
	return b.String(), nil
}
