package certs

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

func TestProberConfig(t *testing.T) {
	if _, err := NewProber(ProberConfig{Addr: "no-port", Names: []string{"a"}}, Deps{}); err == nil {
		t.Fatal("address without port accepted")
	}
	if _, err := NewProber(ProberConfig{Addr: "127.0.0.1:1"}, Deps{}); err == nil {
		t.Fatal("no names accepted")
	}
}

func TestProberListenerDown(t *testing.T) {
	m, err := New(Config{Mode: ModeSelfSigned, Names: []string{"edge.corpintel.test", "127.0.0.1"}, StateDir: t.TempDir()}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e := startEdge(t, m, nil, 0, 0)
	reg := prometheus.NewRegistry()
	clock := newFakeClock(time.Now())
	p, err := NewProber(ProberConfig{Addr: e.tlsAddr, Names: []string{"edge.corpintel.test", "127.0.0.1"}, Interval: time.Minute},
		Deps{Registerer: reg, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	eventually(t, 5*time.Second, "first probe", func() bool { return len(p.Results()) == 2 })
	for _, r := range p.Results() {
		if r.Error != "" || r.NotAfter.IsZero() || r.Protocol != "h2" {
			t.Fatalf("probe %+v", r)
		}
	}
	want := counterValue(t, reg, MetricExpiry, "127.0.0.1")
	if want == 0 || counterValue(t, reg, MetricProbeSuccess, "127.0.0.1") != 1 {
		t.Fatal("gauges not set")
	}

	// The listener goes away: success drops to 0, the last expiry stays for alerts.
	e.stop()
	clock.Advance(time.Minute)
	eventually(t, 5*time.Second, "probe failure", func() bool {
		r := p.Results()
		return len(r) == 2 && r[1].Error != ""
	})
	if counterValue(t, reg, MetricProbeSuccess, "edge.corpintel.test") != 0 {
		t.Fatal("success gauge still 1")
	}
	if got := counterValue(t, reg, MetricExpiry, "127.0.0.1"); got != want {
		t.Fatalf("expiry gauge changed to %v after a failed probe", got)
	}
	if r := p.Results()[0]; !strings.Contains(r.Error, "connection refused") {
		t.Fatalf("probe error %q", r.Error)
	}
	cancel()
	<-done
}

// TestProberMeasuresServedCertificate replaces the cached ACME certificate file behind the
// Manager's back: the expiry metric keeps reporting what the listener serves.
func TestProberMeasuresServedCertificate(t *testing.T) {
	pb := testenv.StartPebble(t, testenv.PebbleOptions{CertValidity: 2 * time.Hour})
	clock := newFakeClock(time.Now())
	env := newACMEEnv(t, pb, t.TempDir(), clock, nil)
	name := "edge.corpintel.test"
	env.m.maintain(context.Background())
	served := statusOf(t, env.m, name)
	p, err := NewProber(ProberConfig{Addr: env.tlsAddr, Names: []string{name}}, Deps{Registerer: env.reg})
	if err != nil {
		t.Fatal(err)
	}
	p.Probe(context.Background())
	if got := counterValue(t, env.reg, MetricExpiry, name); int64(got) != served.NotAfter.Unix() {
		t.Fatalf("expiry gauge %v, want %v", got, served.NotAfter.Unix())
	}

	// A different certificate (expiring in a year) lands in the cache file.
	ca := newTestCA(t)
	c, k, fake := ca.issue(t, leafOpts{names: []string{name}, notAfter: time.Now().Add(365 * 24 * time.Hour)})
	replaceFile(t, env.m.acme.certPath(name), append(k, c...))
	p.Probe(context.Background())
	if got := counterValue(t, env.reg, MetricExpiry, name); int64(got) != served.NotAfter.Unix() || int64(got) == fake.NotAfter.Unix() {
		t.Fatalf("expiry gauge %v follows the file (%v), want the served %v", got, fake.NotAfter.Unix(), served.NotAfter.Unix())
	}
	// After a restart the Manager serves the file's certificate, and so the gauge says.
	env = env.restart(t)
	p2, err := NewProber(ProberConfig{Addr: env.tlsAddr, Names: []string{name}}, Deps{Registerer: env.reg})
	if err != nil {
		t.Fatal(err)
	}
	p2.Probe(context.Background())
	if got := counterValue(t, env.reg, MetricExpiry, name); int64(got) != fake.NotAfter.Unix() {
		t.Fatalf("expiry gauge %v after restart, want the now served %v", got, fake.NotAfter.Unix())
	}
}
