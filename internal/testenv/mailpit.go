package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// MailpitVersion is the mailpit release scripts/install-deps.sh builds.
const MailpitVersion = "v1.33.1"

func defaultMailpitPath() string {
	return filepath.Join(filepath.Dir(filepath.Dir(defaultMinIOPath())), "mailpit-"+MailpitVersion, "mailpit")
}

// MailpitOptions shape a mailpit server.
type MailpitOptions struct {
	// CertFile and KeyFile enable TLS: STARTTLS, or implicit TLS with ImplicitTLS.
	CertFile, KeyFile string
	ImplicitTLS       bool
	// RequireSTARTTLS refuses mail on a connection that did not upgrade.
	RequireSTARTTLS bool
	// AuthFile is an htpasswd file of accepted SMTP users (bcrypt hashes).
	AuthFile string
}

// Mailpit is a running mailpit: an SMTP server that keeps what it receives and an HTTP
// API to read it back.
type Mailpit struct {
	SMTPHost string // 127.0.0.1
	SMTPPort int
	APIURL   string // http://127.0.0.1:port

	proc *server
}

// MailpitServer starts a private mailpit for this test, stopped when the test ends. It
// skips locally and fails under CI=true when mailpit is not installed.
func MailpitServer(t testing.TB, o MailpitOptions) *Mailpit {
	t.Helper()
	m, err := startMailpit(o)
	Require(t, "mailpit", err)
	t.Cleanup(m.proc.stop)
	return m
}

func startMailpit(o MailpitOptions) (*Mailpit, error) {
	bin, err := lookBin("CORPINTEL_MAILPIT_BIN", "mailpit", defaultMailpitPath())
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		m, err := runMailpit(bin, o)
		if err == nil {
			return m, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func runMailpit(bin string, o MailpitOptions) (*Mailpit, error) {
	dir, err := serverDir("mailpit")
	if err != nil {
		return nil, err
	}
	smtpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	m := &Mailpit{SMTPHost: "127.0.0.1", SMTPPort: smtpPort, APIURL: "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))}
	args := []string{
		"--smtp", net.JoinHostPort(m.SMTPHost, strconv.Itoa(smtpPort)),
		"--listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		"--database", filepath.Join(dir, "mailpit.db"),
		"--disable-version-check", "--quiet",
	}
	if o.CertFile != "" {
		args = append(args, "--smtp-tls-cert", o.CertFile, "--smtp-tls-key", o.KeyFile)
		if o.ImplicitTLS {
			args = append(args, "--smtp-require-tls")
		} else if o.RequireSTARTTLS {
			args = append(args, "--smtp-require-starttls")
		}
	}
	if o.AuthFile != "" {
		args = append(args, "--smtp-auth-file", o.AuthFile)
	} else {
		args = append(args, "--smtp-auth-accept-any")
		if o.CertFile == "" {
			args = append(args, "--smtp-auth-allow-insecure")
		}
	}
	cmd := exec.Command(bin, args...) // #nosec G204 -- the harness's own test server
	cmd.Dir = dir
	proc, err := startServer("mailpit", dir, cmd, syscall.SIGTERM, nil)
	if err != nil {
		return nil, err
	}
	m.proc = proc
	client := &http.Client{Timeout: 2 * time.Second}
	err = waitReady(proc, 30*time.Second, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.APIURL+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(m.SMTPHost, strconv.Itoa(smtpPort)))
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		proc.stop()
		return nil, fmt.Errorf("mailpit: %w", err)
	}
	return m, nil
}

// MailAddress is a mail address as mailpit reports it.
type MailAddress struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

// MailMessage is a received message as mailpit's API returns it.
type MailMessage struct {
	ID      string        `json:"ID"`
	From    MailAddress   `json:"From"`
	To      []MailAddress `json:"To"`
	Subject string        `json:"Subject"`
	Text    string        `json:"Text"`
	HTML    string        `json:"HTML"`
}

// Messages returns every received message, newest first, with bodies.
func (m *Mailpit) Messages(t testing.TB) []MailMessage {
	t.Helper()
	var list struct {
		Messages []MailMessage `json:"messages"`
	}
	m.getJSON(t, "/api/v1/messages?limit=500", &list)
	out := make([]MailMessage, 0, len(list.Messages))
	for _, msg := range list.Messages {
		var full MailMessage
		m.getJSON(t, "/api/v1/message/"+url.PathEscape(msg.ID), &full)
		out = append(out, full)
	}
	return out
}

// WaitMessages polls until at least n messages arrived (or fails after timeout).
func (m *Mailpit) WaitMessages(t testing.TB, n int, timeout time.Duration) []MailMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := m.Messages(t)
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: mailpit received %d messages, want %d within %s", len(msgs), n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (m *Mailpit) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := http.Get(m.APIURL + path) // #nosec G107 -- the harness's own loopback server
	if err != nil {
		t.Fatalf("testenv: mailpit %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("testenv: mailpit %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("testenv: mailpit %s: %v", path, err)
	}
}

// Stop shuts the server down.
func (m *Mailpit) Stop() { m.proc.stop() }
