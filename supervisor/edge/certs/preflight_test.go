package certs

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/miekg/dns"
)

func findingFor(t *testing.T, fs []Finding, name, check string) Finding {
	t.Helper()
	for _, f := range fs {
		if f.Name == name && f.Check == check {
			return f
		}
	}
	t.Fatalf("no %s finding for %s in %v", check, name, fs)
	return Finding{}
}

func loopbackOnly() ([]net.IP, error) { return []net.IP{net.IPv4(127, 0, 0, 1)}, nil }

// TestPreflight runs the preflight against Pebble and challtestsrv's DNS server, with the
// edge listening where Pebble's VA would validate.
func TestPreflight(t *testing.T) {
	pb := testenv.StartPebble(t, testenv.PebbleOptions{})
	env := newACMEEnv(t, pb, t.TempDir(), newFakeClock(time.Now()), func(c *Config) {
		c.Names = []string{"ok.corpintel.test", "caa-other.corpintel.test", "caa-pebble.corpintel.test",
			"sub.caa-parent.corpintel.test", "servfail.corpintel.test", "elsewhere.corpintel.test"}
	})
	env.m.localIPs = loopbackOnly
	pb.ChallSrv(t, "/add-caa", map[string]any{"host": "caa-other.corpintel.test",
		"policies": []map[string]string{{"tag": "issue", "value": "other-ca.example"}}})
	pb.ChallSrv(t, "/add-caa", map[string]any{"host": "caa-pebble.corpintel.test",
		"policies": []map[string]string{{"tag": "issue", "value": "other-ca.example"}, {"tag": "issue", "value": "pebble.letsencrypt.org"}}})
	pb.ChallSrv(t, "/add-caa", map[string]any{"host": "caa-parent.corpintel.test",
		"policies": []map[string]string{{"tag": "issue", "value": ";"}}})
	pb.ChallSrv(t, "/set-servfail", map[string]any{"host": "servfail.corpintel.test"})
	pb.ChallSrv(t, "/add-a", map[string]any{"host": "elsewhere.corpintel.test", "addresses": []string{"127.0.0.2"}})

	fs := env.m.Check(context.Background(), nil)
	for _, f := range fs {
		t.Log(f)
	}
	if f := findingFor(t, fs, pb.DirectoryURL, "ca"); f.Severity != SeverityOK || !strings.Contains(f.Message, "pebble.letsencrypt.org") {
		t.Fatalf("ca: %v", f)
	}
	for _, c := range []struct {
		name, check string
		sev         Severity
		contains    string
	}{
		{"ok.corpintel.test", "dns", SeverityOK, "127.0.0.1 (this host)"},
		{"ok.corpintel.test", "http-port", SeverityOK, "reaches this edge"},
		{"ok.corpintel.test", "https-port", SeverityOK, "reaches this edge"},
		{"ok.corpintel.test", "caa", SeverityOK, "no CAA records"},
		{"caa-other.corpintel.test", "caa", SeverityError, "only other-ca.example may issue"},
		{"caa-pebble.corpintel.test", "caa", SeverityOK, "allow pebble.letsencrypt.org"},
		{"sub.caa-parent.corpintel.test", "caa", SeverityError, "forbids every CA"},
		{"servfail.corpintel.test", "dns", SeverityError, "SERVFAIL"},
		{"servfail.corpintel.test", "caa", SeverityError, "SERVFAIL"},
		{"elsewhere.corpintel.test", "dns", SeverityWarning, "127.0.0.2, not an address of this host"},
	} {
		f := findingFor(t, fs, c.name, c.check)
		if f.Severity != c.sev || !strings.Contains(f.Message, c.contains) {
			t.Errorf("%s %s: %v, want %s containing %q", c.name, c.check, f, c.sev, c.contains)
		}
		if f.Severity != SeverityOK && f.Fix == "" {
			t.Errorf("%s %s: no fix given: %v", c.name, c.check, f)
		}
	}
	if !HasErrors(fs) {
		t.Fatal("HasErrors is false")
	}
	// Addresses not of this host are never connected to.
	for _, f := range fs {
		if f.Name == "elsewhere.corpintel.test" && strings.HasSuffix(f.Check, "-port") {
			t.Fatalf("probed a foreign address: %v", f)
		}
	}
	// The preflight leaves no challenge answers behind.
	if len(env.m.chal.http01) != 0 || len(env.m.chal.alpn) != 0 {
		t.Fatal("preflight tokens left behind")
	}

	// Listeners down and the CA down: errors that say what to do.
	env.edge.stop()
	pb.Stop(t)
	fs = env.m.Check(context.Background(), []string{"ok.corpintel.test"})
	for _, c := range []string{"http-port", "https-port"} {
		if f := findingFor(t, fs, "ok.corpintel.test", c); f.Severity != SeverityError || !strings.Contains(f.Message, "does not answer") && !strings.Contains(f.Message, "failed") {
			t.Errorf("%s with the listener down: %v", c, f)
		}
	}
	if f := findingFor(t, fs, pb.DirectoryURL, "ca"); f.Severity != SeverityError || !strings.Contains(f.Fix, "directory URL") {
		t.Errorf("ca down: %v", f)
	}
}

func TestPreflightOtherModes(t *testing.T) {
	m, err := New(Config{Mode: ModeSelfSigned, Names: []string{"a.test"}, StateDir: t.TempDir()}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fs := m.Check(context.Background(), nil)
	if len(fs) != 1 || fs[0].Severity != SeverityOK || HasErrors(fs) {
		t.Fatalf("%v", fs)
	}
	if s := fs[0].String(); !strings.Contains(s, "self-signed") {
		t.Fatalf("String: %q", s)
	}
}

func TestCAAPermits(t *testing.T) {
	rr := func(flag uint8, tag, value string) *dns.CAA { return &dns.CAA{Flag: flag, Tag: tag, Value: value} }
	ids := []string{"letsencrypt.org"}
	acct := "https://acme.test/acct/1"
	methods := []string{ChallengeTLSALPN01, ChallengeHTTP01}
	cases := []struct {
		name string
		set  []*dns.CAA
		ok   bool
	}{
		{"issuewild only", []*dns.CAA{rr(0, "issuewild", "other.example")}, true},
		{"iodef only", []*dns.CAA{rr(0, "iodef", "mailto:x@y")}, true},
		{"allowed", []*dns.CAA{rr(0, "issue", "letsencrypt.org")}, true},
		{"allowed, case", []*dns.CAA{rr(0, "ISSUE", "LetsEncrypt.org")}, true},
		{"other CA", []*dns.CAA{rr(0, "issue", "pki.goog")}, false},
		{"nobody", []*dns.CAA{rr(0, "issue", ";")}, false},
		{"critical unknown tag", []*dns.CAA{rr(128, "tbs", "x"), rr(0, "issue", "letsencrypt.org")}, false},
		{"non-critical unknown tag", []*dns.CAA{rr(0, "tbs", "x"), rr(0, "issue", "letsencrypt.org")}, true},
		{"our account", []*dns.CAA{rr(0, "issue", "letsencrypt.org; accounturi="+acct)}, true},
		{"another account", []*dns.CAA{rr(0, "issue", "letsencrypt.org; accounturi=https://acme.test/acct/2")}, false},
		{"allowed method", []*dns.CAA{rr(0, "issue", "letsencrypt.org; validationmethods=dns-01,http-01")}, true},
		{"dns-01 only", []*dns.CAA{rr(0, "issue", "letsencrypt.org; validationmethods=dns-01")}, false},
	}
	for _, tc := range cases {
		if ok, why := caaPermits(tc.set, ids, acct, methods); ok != tc.ok {
			t.Errorf("%s: permits %v (%s), want %v", tc.name, ok, why, tc.ok)
		}
	}
}
