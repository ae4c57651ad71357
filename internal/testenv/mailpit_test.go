package testenv

import (
	"net"
	"net/smtp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMailpit(t *testing.T) {
	m := MailpitServer(t, MailpitOptions{})
	addr := net.JoinHostPort(m.SMTPHost, strconv.Itoa(m.SMTPPort))
	body := "From: a@example.com\r\nTo: b@example.com\r\nSubject: hello mailpit\r\n\r\nbody text\r\n"
	if err := smtp.SendMail(addr, nil, "a@example.com", []string{"b@example.com"}, []byte(body)); err != nil {
		t.Fatal(err)
	}
	msgs := m.WaitMessages(t, 1, 10*time.Second)
	if msgs[0].Subject != "hello mailpit" || msgs[0].From.Address != "a@example.com" || !strings.Contains(msgs[0].Text, "body text") {
		t.Errorf("received %+v", msgs[0])
	}
	m.Stop()
	if err := smtp.SendMail(addr, nil, "a@example.com", []string{"b@example.com"}, []byte(body)); err == nil {
		t.Error("a stopped mailpit accepted mail")
	}
}

func TestMailpitMissing(t *testing.T) {
	t.Setenv("CORPINTEL_MAILPIT_BIN", "/nonexistent/mailpit")
	if _, err := startMailpit(MailpitOptions{}); err == nil || !strings.Contains(err.Error(), "CORPINTEL_MAILPIT_BIN") {
		t.Errorf("startMailpit: %v", err)
	}
	if !strings.HasSuffix(defaultMailpitPath(), "/tools/mailpit-"+MailpitVersion+"/mailpit") {
		t.Errorf("default path %s", defaultMailpitPath())
	}
}
