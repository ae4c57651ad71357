package notify

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/corpintel/corpintel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func htpasswd(t *testing.T, user, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(p, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func trusting(t *testing.T, caFile string) *tls.Config {
	t.Helper()
	c, err := TLSConfig(caFile)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A real SMTP server (mailpit) over STARTTLS with authentication receives a multipart
// mail with the plain-text and HTML bodies; read back through mailpit's API.
func TestEmailSTARTTLSWithAuth(t *testing.T) {
	caFile, cert, key := testCA(t)
	mp := testenv.MailpitServer(t, testenv.MailpitOptions{CertFile: cert, KeyFile: key, RequireSTARTTLS: true,
		AuthFile: htpasswd(t, "corpintel", "correct horse")})
	e := &Email{Host: mp.SMTPHost, Port: mp.SMTPPort, TLS: TLSStartTLS, TLSConfig: trusting(t, caFile),
		Username: "corpintel", PasswordFile: secretFile(t, "correct horse\n"),
		From: "corpintel <alerts@corp.example.com>", To: []string{"ops@corp.example.com", "oncall@corp.example.com"}}
	m := NewMessage("mail", "critical/{}", "dedupkey", nil, []Alert{
		testAlert("APIDown", StatusFiring, nil), testAlert("RedisDown", StatusResolved, map[string]string{"service": "redis"})})
	m.ExternalURL = "https://corp.example.com/admin/alerts"
	if retry, err := e.Notify(context.Background(), m); err != nil {
		t.Fatalf("send: %v (retry %v)", err, retry)
	}
	msgs := mp.WaitMessages(t, 1, 10*time.Second)
	got := msgs[0]
	if got.Subject != "[FIRING:1] APIDown, RedisDown (critical)" || got.From.Address != "alerts@corp.example.com" || len(got.To) != 2 {
		t.Errorf("received subject %q from %v to %v", got.Subject, got.From, got.To)
	}
	for _, want := range []string{"Firing (1):", "- APIDown: APIDown summary", "Resolved (1):", "Console: https://corp.example.com/admin/alerts"} {
		if !strings.Contains(got.Text, want) {
			t.Errorf("text part lacks %q:\n%s", want, got.Text)
		}
	}
	for _, want := range []string{"<h3>Firing (1)</h3>", "<b>APIDown</b>", `<a href="https://corp.example.com/admin/alerts">`} {
		if !strings.Contains(got.HTML, want) {
			t.Errorf("HTML part lacks %q:\n%s", want, got.HTML)
		}
	}

	// The wrong password is refused and not worth retrying.
	e.PasswordFile = secretFile(t, "wrong")
	retry, err := e.Notify(context.Background(), m)
	if err == nil || retry {
		t.Errorf("wrong password: retry %v, err %v", retry, err)
	}
	if err != nil && strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the password: %v", err)
	}
	// Without the CA bundle the server's certificate is not trusted.
	e.PasswordFile = secretFile(t, "correct horse")
	e.TLSConfig = nil
	if _, err := e.Notify(context.Background(), m); err == nil {
		t.Error("untrusted certificate accepted")
	}
	if n := len(mp.Messages(t)); n != 1 {
		t.Errorf("mailpit holds %d messages, want 1", n)
	}
}

// Implicit TLS (port 465 style).
func TestEmailImplicitTLS(t *testing.T) {
	caFile, cert, key := testCA(t)
	mp := testenv.MailpitServer(t, testenv.MailpitOptions{CertFile: cert, KeyFile: key, ImplicitTLS: true})
	e := &Email{Host: mp.SMTPHost, Port: mp.SMTPPort, TLS: TLSImplicit, TLSConfig: trusting(t, caFile),
		From: "alerts@corp.example.com", To: []string{"ops@corp.example.com"}, Hello: "corpintel.test"}
	if _, err := e.Notify(context.Background(), testMessage("mail", StatusResolved)); err != nil {
		t.Fatal(err)
	}
	if got := mp.WaitMessages(t, 1, 10*time.Second)[0].Subject; got != "[RESOLVED] APIDown (critical)" {
		t.Errorf("subject %q", got)
	}
}

// STARTTLS is mandatory by default: a relay that does not offer it gets nothing; an
// explicit tls = "none" sends in the clear.
func TestEmailTLSPolicy(t *testing.T) {
	mp := testenv.MailpitServer(t, testenv.MailpitOptions{})
	e := &Email{Host: mp.SMTPHost, Port: mp.SMTPPort, From: "alerts@corp.example.com", To: []string{"ops@corp.example.com"}}
	if retry, err := e.Notify(context.Background(), testMessage("mail", StatusFiring)); err == nil || retry {
		t.Errorf("plain relay with STARTTLS mandatory: retry %v, err %v", retry, err)
	}
	e.TLS = TLSNone
	if _, err := e.Notify(context.Background(), testMessage("mail", StatusFiring)); err != nil {
		t.Fatal(err)
	}
	mp.WaitMessages(t, 1, 10*time.Second)
	mp.Stop()
	if retry, err := e.Notify(context.Background(), testMessage("mail", StatusFiring)); err == nil || !retry {
		t.Errorf("relay down: retry %v, err %v", retry, err)
	}
}

func TestEmailBadAddresses(t *testing.T) {
	for _, e := range []*Email{
		{Host: "h", Port: 25, From: "not an address", To: []string{"a@b.c"}},
		{Host: "h", Port: 25, From: "a@b.c", To: []string{"bad"}},
		{Host: "h", Port: 25, From: "a@b.c", To: []string{"a@b.c"}, Username: "u", PasswordFile: "/missing"},
	} {
		if retry, err := e.Notify(context.Background(), testMessage("mail", StatusFiring)); err == nil || retry {
			t.Errorf("%+v: retry %v, err %v", e, retry, err)
		}
	}
}
