package certs

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/acme"
)

func TestUnknownSNI(t *testing.T) {
	for _, reject := range []bool{false, true} {
		t.Run(fmt.Sprintf("reject=%v", reject), func(t *testing.T) {
			m, err := New(Config{Mode: ModeSelfSigned, Names: []string{"edge.corpintel.test", "alt.corpintel.test"},
				StateDir: t.TempDir(), RejectUnknownSNI: reject}, Deps{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			e := startEdge(t, m, nil, 0, 0)
			for _, sni := range []string{"unknown.example", "UNKNOWN.example.", strings.Repeat("a", 63) + ".example", "x"} {
				leaf, err := handshake(t, e.tlsAddr, sni, nil)
				if reject {
					if err == nil {
						t.Fatalf("unknown SNI %q got a certificate", sni)
					}
				} else if err != nil || leaf.DNSNames[0] != "edge.corpintel.test" {
					t.Fatalf("unknown SNI %q: %v, want the default certificate", sni, err)
				}
			}
			// Known names (any case, trailing dot) and clients without SNI are served, and
			// the listener survived the failed handshakes.
			for _, sni := range []string{"alt.corpintel.test", "EDGE.corpintel.test.", ""} {
				if _, err := handshake(t, e.tlsAddr, sni, nil); err != nil {
					t.Fatalf("SNI %q: %v", sni, err)
				}
			}
		})
	}
}

func TestGetCertificateEdgeCases(t *testing.T) {
	m, err := New(Config{Mode: ModeACME, Names: []string{"edge.corpintel.test"}, StateDir: t.TempDir(),
		ACME: ACMEConfig{DirectoryURL: "https://127.0.0.1:1/dir"}}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.GetCertificate(nil); err == nil {
		t.Fatal("nil hello accepted")
	}
	if _, err := m.GetCertificate(helloFor("edge.corpintel.test")); err == nil || !strings.Contains(err.Error(), "pending or failing") {
		t.Fatalf("ACME before issuance: %v", err)
	}
	if _, err := m.GetCertificate(helloFor("edge.corpintel.test", ALPNProtoACME)); err == nil || !strings.Contains(err.Error(), "no TLS-ALPN-01 challenge") {
		t.Fatalf("acme-tls/1 without a challenge: %v", err)
	}
	cert := &tls.Certificate{}
	defer m.chal.putALPN("edge.corpintel.test", cert)()
	if got, err := m.GetCertificate(helloFor("edge.corpintel.test", ALPNProtoACME)); err != nil || got != cert {
		t.Fatalf("challenge certificate not served: %v", err)
	}
	// A challenge certificate is only for acme-tls/1 handshakes.
	if _, err := m.GetCertificate(helloFor("edge.corpintel.test", ALPNProtoACME, "h2")); err == nil {
		t.Fatal("challenge served to a normal client")
	}
	if !strings.Contains(strings.Join(m.TLSConfig().NextProtos, ","), ALPNProtoACME) {
		t.Fatal("acme-tls/1 missing from ALPN with TLS-ALPN-01 enabled")
	}
}

func TestWildcardFromFile(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	c, k, _ := ca.issue(t, leafOpts{names: []string{"*.corpintel.test"}})
	writeFile(t, filepath.Join(dir, "c"), c)
	writeFile(t, filepath.Join(dir, "k"), k)
	m, err := New(Config{Mode: ModeFile, StateDir: filepath.Join(dir, "s"), RejectUnknownSNI: true,
		File: FileConfig{CertFile: filepath.Join(dir, "c"), KeyFile: filepath.Join(dir, "k")}}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.GetCertificate(helloFor("api.corpintel.test")); err != nil {
		t.Fatalf("wildcard: %v", err)
	}
	if _, err := m.GetCertificate(helloFor("a.b.corpintel.test")); err == nil {
		t.Fatal("wildcard matched two labels")
	}
	if st := m.Status(); st.Certificates[0].Name != "default" {
		t.Fatalf("file mode slot name %q", st.Certificates[0].Name)
	}
}

func TestStateDirLock(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Mode: ModeSelfSigned, Names: []string{"edge.corpintel.test"}, StateDir: dir}
	m, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, Deps{}); err == nil || !strings.Contains(err.Error(), "in use by another certificate manager") {
		t.Fatalf("second Manager on the same state dir: %v", err)
	}
	_ = m.Close()
	_ = m.Close() // idempotent
	m2, err := New(cfg, Deps{})
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	_ = m2.Close()
}

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no state dir", Config{Mode: ModeSelfSigned, Names: []string{"a.test"}}, "state directory is empty"},
		{"unknown mode", Config{Mode: "magic", StateDir: dir}, `unknown mode "magic"`},
		{"acme without names", Config{Mode: ModeACME, StateDir: dir}, "at least one DNS name"},
		{"acme with IP", Config{Mode: ModeACME, StateDir: dir, Names: []string{"192.0.2.1"}}, "is an IP address"},
		{"acme wildcard", Config{Mode: ModeACME, StateDir: dir, Names: []string{"*.a.test"}}, "wildcard"},
		{"bad name", Config{Mode: ModeSelfSigned, StateDir: dir, Names: []string{"a_b.test"}}, "not a valid DNS name"},
		{"long label", Config{Mode: ModeSelfSigned, StateDir: dir, Names: []string{strings.Repeat("a", 64) + ".test"}}, "not a valid DNS name"},
		{"http directory", Config{Mode: ModeACME, StateDir: dir, Names: []string{"a.test"}, ACME: ACMEConfig{DirectoryURL: "http://ca.test/dir"}}, "not an https URL"},
		{"bad email", Config{Mode: ModeACME, StateDir: dir, Names: []string{"a.test"}, ACME: ACMEConfig{Email: "nobody"}}, "not an e-mail"},
		{"half EAB", Config{Mode: ModeACME, StateDir: dir, Names: []string{"a.test"}, ACME: ACMEConfig{EAB: &EAB{KeyID: "k"}}}, "both a key id and an HMAC key"},
		{"EAB not base64url", Config{Mode: ModeACME, StateDir: dir, Names: []string{"a.test"}, ACME: ACMEConfig{EAB: &EAB{KeyID: "k", HMACKey: "a+b/c"}}}, "not base64url"},
		{"bad challenge", Config{Mode: ModeACME, StateDir: dir, Names: []string{"a.test"}, ACME: ACMEConfig{Challenges: []string{"dns-01"}}}, `challenge "dns-01" is not supported`},
		{"default not a name", Config{Mode: ModeSelfSigned, StateDir: dir, Names: []string{"a.test"}, DefaultName: "b.test"}, "not one of the names"},
		{"self-signed without names", Config{Mode: ModeSelfSigned, StateDir: dir}, "at least one name"},
		{"CA shorter than leaf", Config{Mode: ModeSelfSigned, StateDir: dir, Names: []string{"a.test"},
			SelfSigned: SelfSignedConfig{LeafValidity: 48 * time.Hour, CAValidity: 24 * time.Hour}}, "shorter than the leaf"},
		{"file without key", Config{Mode: ModeFile, StateDir: dir, File: FileConfig{CertFile: "c"}}, "both a certificate file and a key file"},
		{"port out of range", Config{Mode: ModeSelfSigned, StateDir: dir, Names: []string{"a.test"}, HTTPSPort: 70000}, "out of range"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, Deps{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}

	// Defaults.
	c, err := Config{Mode: ModeACME, StateDir: dir, Names: []string{" Edge.Corpintel.Test. ", "edge.corpintel.test"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.ACME.DirectoryURL != LetsEncryptProduction || c.ACME.FailedOrderInterval != time.Hour ||
		len(c.Names) != 1 || c.Names[0] != "edge.corpintel.test" || c.DefaultName != "edge.corpintel.test" ||
		c.HTTPPort != 80 || c.HTTPSPort != 443 || c.ACME.RetryMin != time.Minute || c.ACME.RetryMax != time.Hour {
		t.Fatalf("defaults: %+v", c)
	}
	// Let's Encrypt staging cannot be configured below one failed order per hour; another
	// CA can.
	c, _ = Config{Mode: ModeACME, StateDir: dir, Names: []string{"a.test"},
		ACME: ACMEConfig{DirectoryURL: LetsEncryptStaging, FailedOrderInterval: time.Minute}}.withDefaults()
	if c.ACME.FailedOrderInterval != time.Hour {
		t.Fatalf("staging failed-order interval %s", c.ACME.FailedOrderInterval)
	}
	c, _ = Config{Mode: ModeACME, StateDir: dir, Names: []string{"a.test"},
		ACME: ACMEConfig{DirectoryURL: "https://ca.internal/acme/dir"}}.withDefaults()
	if c.ACME.FailedOrderInterval != 0 {
		t.Fatalf("other CA failed-order interval %s", c.ACME.FailedOrderInterval)
	}
	if s := (EAB{KeyID: "k", HMACKey: "secret"}).String(); strings.Contains(s, "secret") {
		t.Fatalf("EAB.String leaks the key: %s", s)
	}
}

// failingIssuer lets the backoff schedule be tested without a CA.
type failingIssuer struct{ err error }

func (f failingIssuer) restore(*slot) (*tls.Certificate, error) { return nil, nil }
func (f failingIssuer) obtain(context.Context, *slot) (*tls.Certificate, error) {
	return nil, f.err
}
func (f failingIssuer) nextCheck(*tls.Certificate, time.Time) time.Time { return time.Time{} }
func (f failingIssuer) retryBounds() (time.Duration, time.Duration) {
	return time.Minute, 10 * time.Minute
}

func TestBackoffSchedule(t *testing.T) {
	clock := newFakeClock(time.Now())
	reg := prometheus.NewRegistry()
	m, err := New(Config{Mode: ModeACME, Names: []string{"edge.corpintel.test"}, StateDir: t.TempDir(),
		ACME: ACMEConfig{DirectoryURL: "https://127.0.0.1:1/dir"}}, Deps{Clock: clock, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rateLimited := &acme.Error{StatusCode: 429, ProblemType: "urn:ietf:params:acme:error:rateLimited",
		Header: map[string][]string{"Retry-After": {"3600"}}}
	cases := []struct {
		err  error
		want time.Duration
	}{
		{errors.New("boom"), time.Minute},
		{errors.New("boom"), 2 * time.Minute},
		{errors.New("boom"), 4 * time.Minute},
		{errors.New("boom"), 8 * time.Minute},
		{errors.New("boom"), 10 * time.Minute}, // capped
		{rateLimited, time.Hour},               // the CA's Retry-After wins
	}
	s := m.slots[0]
	for i, tc := range cases {
		m.iss = failingIssuer{err: tc.err}
		m.refresh(context.Background(), s)
		st := statusOf(t, m, "edge.corpintel.test")
		if got := st.NextAttempt.Sub(clock.Now()); got != tc.want {
			t.Fatalf("failure %d: next attempt in %s, want %s", i+1, got, tc.want)
		}
		if st.ConsecutiveFailures != i+1 || st.LastAttempt.IsZero() {
			t.Fatalf("status %+v", st)
		}
	}
	if got := counterValue(t, reg, MetricRenewalFailures, "edge.corpintel.test"); got != float64(len(cases)) {
		t.Fatalf("failure counter %v", got)
	}
	want := []string{MetricRenewalFailures}
	if got := metricNames(t, reg); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("metrics %v, want %v", got, want)
	}

	// Status is JSON for `corpintel status`.
	b, err := json.Marshal(m.Status())
	if err != nil || !strings.Contains(string(b), `"consecutive_failures":6`) || !strings.Contains(string(b), `"mode":"acme"`) {
		t.Fatalf("status JSON %s: %v", b, err)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	m, err := New(Config{Mode: ModeSelfSigned, Names: []string{"edge.corpintel.test"}, StateDir: t.TempDir()}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	m.Wake()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestMetricsReuseAcrossManagers(t *testing.T) {
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		m, err := New(Config{Mode: ModeSelfSigned, Names: []string{"edge.corpintel.test"}, StateDir: dir}, Deps{Registerer: reg})
		if err != nil {
			t.Fatalf("Manager %d on one registry: %v", i, err)
		}
		_ = m.Close()
	}
	// A conflicting collector under the same name is an error, not a panic.
	bad := prometheus.NewRegistry()
	bad.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricRenewals, Help: "x"}))
	if _, err := New(Config{Mode: ModeSelfSigned, Names: []string{"a.test"}, StateDir: t.TempDir()}, Deps{Registerer: bad}); err == nil {
		t.Fatal("conflicting metric accepted")
	}
}
