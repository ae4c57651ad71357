package certs

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newSelfSigned(t *testing.T, dir string, clock Clock, names ...string) (*Manager, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(Config{Mode: ModeSelfSigned, Names: names, StateDir: dir,
		SelfSigned: SelfSignedConfig{LeafValidity: 30 * 24 * time.Hour}}, Deps{Clock: clock, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m, reg
}

func caPool(t *testing.T, m *Manager) *x509.CertPool {
	t.Helper()
	b, err := m.CACertificatePEM()
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("CA PEM does not parse: %q", b)
	}
	return p
}

func TestSelfSignedLeafAndCA(t *testing.T) {
	dir := t.TempDir()
	m, _ := newSelfSigned(t, dir, nil, "edge.corpintel.test", "127.0.0.1", "::1")
	e := startEdge(t, m, nil, 0, 0)
	roots := caPool(t, m)
	// The leaf verifies against the exported CA for every name, and for clients that
	// connect by IP (no SNI).
	for _, sni := range []string{"edge.corpintel.test", ""} {
		leaf := mustHandshake(t, e.tlsAddr, sni, nil)
		for _, host := range []string{"edge.corpintel.test", "127.0.0.1", "::1"} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
				t.Fatalf("leaf for %s does not verify (SNI %q): %v", host, sni, err)
			}
		}
		if leaf.PublicKeyAlgorithm != x509.ECDSA {
			t.Fatalf("leaf key %v", leaf.PublicKeyAlgorithm)
		}
	}
	// ReadCACertificate gives the same CA without a Manager (for `corpintel tls ca`).
	want, _ := m.CACertificatePEM()
	got, err := ReadCACertificate(dir)
	if err != nil || string(got) != string(want) {
		t.Fatalf("ReadCACertificate: %v", err)
	}
	if _, err := ReadCACertificate(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no self-signed CA") {
		t.Fatalf("ReadCACertificate of an empty dir: %v", err)
	}
	assertPrivateFiles(t, dir)

	// A restart keeps the CA and the leaf.
	leafBefore := statusOf(t, m, "edge.corpintel.test").Serial
	_ = m.Close()
	m2, _ := newSelfSigned(t, dir, nil, "edge.corpintel.test", "127.0.0.1", "::1")
	if got, _ := m2.CACertificatePEM(); string(got) != string(want) {
		t.Fatal("the CA changed across a restart")
	}
	if st := statusOf(t, m2, "edge.corpintel.test"); st.Serial != leafBefore {
		t.Fatal("the leaf changed across a restart")
	}
	_ = m2.Close()

	// Other names: same CA, a new leaf for them.
	m3, _ := newSelfSigned(t, dir, nil, "new.corpintel.test")
	if got, _ := m3.CACertificatePEM(); string(got) != string(want) {
		t.Fatal("the CA changed with the names")
	}
	st := statusOf(t, m3, "new.corpintel.test")
	if st.Serial == leafBefore || st.Names[0] != "new.corpintel.test" {
		t.Fatalf("no new leaf for new names: %+v", st)
	}
}

func TestSelfSignedRenewalAndCRL(t *testing.T) {
	clock := newFakeClock(time.Now())
	m, reg := newSelfSigned(t, t.TempDir(), clock, "edge.corpintel.test")
	e := startEdge(t, m, reg, 0, 0)
	roots := caPool(t, m)
	first := mustHandshake(t, e.tlsAddr, "edge.corpintel.test", roots)
	st := statusOf(t, m, "edge.corpintel.test")
	if !st.NextAttempt.Equal(renewAt(first)) {
		t.Fatalf("next attempt %s, want %s", st.NextAttempt, renewAt(first))
	}
	if len(first.CRLDistributionPoints) != 1 || !strings.HasSuffix(first.CRLDistributionPoints[0], crlPath) {
		t.Fatalf("CRL distribution points %v", first.CRLDistributionPoints)
	}

	// Run renews the leaf when a third of its life is left, on the clock.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	eventually(t, 5*time.Second, "Run waiting", func() bool { return clock.pendingWaiters() > 0 })
	for i := 0; i < 5 && counterValue(t, reg, MetricRenewals, "edge.corpintel.test") < 2; i++ {
		// Run sleeps at most maxWait at a time: move the clock in steps, each time
		// waiting until Run has done its pass and sleeps again.
		clock.Advance(5 * 24 * time.Hour)
		eventually(t, 5*time.Second, "Run's next sleep", func() bool { return clock.pendingWaiters() > 0 })
	}
	eventually(t, 5*time.Second, "renewal", func() bool {
		return counterValue(t, reg, MetricRenewals, "edge.corpintel.test") == 2
	})
	cancel()
	<-done
	second := mustHandshake(t, e.tlsAddr, "edge.corpintel.test", nil)
	if second.Equal(first) {
		t.Fatal("leaf not renewed")
	}
	if _, err := second.Verify(x509.VerifyOptions{Roots: roots, DNSName: "edge.corpintel.test", CurrentTime: clock.Now()}); err != nil {
		t.Fatalf("renewed leaf: %v", err)
	}

	// The CRL, served on the HTTP listener, lists the superseded leaf.
	resp, err := http.Get("http://" + e.httpAddr + crlPath)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("CRL content type %q", resp.Header.Get("Content-Type"))
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := m.CACertificatePEM()
	blk, _ := pem.Decode(caPEM)
	ca, _ := x509.ParseCertificate(blk.Bytes)
	if err := crl.CheckSignatureFrom(ca); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("CRL lists %+v, want the first leaf %s", crl.RevokedCertificateEntries, first.SerialNumber)
	}
	if second := mustSerialNotIn(crl, second); !second {
		t.Fatal("the current leaf is listed as revoked")
	}
}

func mustSerialNotIn(crl *x509.RevocationList, c *x509.Certificate) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(c.SerialNumber) == 0 {
			return false
		}
	}
	return true
}

func TestSelfSignedDamagedCA(t *testing.T) {
	cases := []struct {
		name    string
		damage  func(dir string) error
		wantErr string
	}{
		{"key missing", func(dir string) error { return os.Remove(filepath.Join(dir, "self-signed", "ca.key")) }, "incomplete"},
		{"certificate garbage", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "self-signed", "ca.pem"), []byte("junk"), 0o600)
		}, "restore ca.pem and ca.key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m, _ := newSelfSigned(t, dir, nil, "edge.corpintel.test")
			caBefore, _ := os.ReadFile(filepath.Join(dir, "self-signed", "ca.pem"))
			_ = m.Close()
			if err := tc.damage(dir); err != nil {
				t.Fatal(err)
			}
			_, err := New(Config{Mode: ModeSelfSigned, Names: []string{"edge.corpintel.test"}, StateDir: dir}, Deps{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New with a damaged CA: %v, want %q", err, tc.wantErr)
			}
			// Nothing was replaced behind the operator's back.
			if tc.name == "key missing" {
				if caAfter, _ := os.ReadFile(filepath.Join(dir, "self-signed", "ca.pem")); string(caAfter) != string(caBefore) {
					t.Fatal("the CA certificate was replaced")
				}
			}
		})
	}
}

func TestSelfSignedLeafCappedByCA(t *testing.T) {
	clock := newFakeClock(time.Now())
	dir := t.TempDir()
	m, err := New(Config{Mode: ModeSelfSigned, Names: []string{"edge.corpintel.test"}, StateDir: dir,
		SelfSigned: SelfSignedConfig{LeafValidity: 10 * 24 * time.Hour, CAValidity: 15 * 24 * time.Hour}}, Deps{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Past the CA's end the leaf ends with it, and once it has expired renewal fails
	// with what to do.
	clock.Advance(12 * 24 * time.Hour)
	m.maintain(context.Background())
	st := statusOf(t, m, "edge.corpintel.test")
	ca := m.self.ca
	if !st.NotAfter.Equal(ca.NotAfter) {
		t.Fatalf("leaf ends %s, CA %s", st.NotAfter, ca.NotAfter)
	}
	clock.Advance(4 * 24 * time.Hour)
	m.Wake()
	m.maintain(context.Background())
	if st := statusOf(t, m, "edge.corpintel.test"); !strings.Contains(st.LastError, "local CA expired") {
		t.Fatalf("expired CA: %+v", st)
	}
}

func TestSelfSignedRenewalDueAtStart(t *testing.T) {
	clock := newFakeClock(time.Now())
	dir := t.TempDir()
	m, _ := newSelfSigned(t, dir, clock, "edge.corpintel.test")
	first := statusOf(t, m, "edge.corpintel.test")
	_ = m.Close()
	// The supervisor was down past the renewal time: the first pass renews.
	clock.Advance(25 * 24 * time.Hour)
	m, reg := newSelfSigned(t, dir, clock, "edge.corpintel.test")
	if st := statusOf(t, m, "edge.corpintel.test"); st.Serial != first.Serial || st.NextAttempt.After(clock.Now()) {
		t.Fatalf("restored leaf not due at once: %+v", st)
	}
	m.maintain(context.Background())
	if st := statusOf(t, m, "edge.corpintel.test"); st.Serial == first.Serial || counterValue(t, reg, MetricRenewals, "edge.corpintel.test") != 1 {
		t.Fatalf("not renewed at start: %+v", st)
	}
}
