package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fakeClock is a Clock the test moves by hand. After channels fire when Advance passes
// their deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(start time.Time) *fakeClock { return &fakeClock{now: start} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// pendingWaiters is how many After channels have not fired.
func (c *fakeClock) pendingWaiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// edge is a Manager behind real listeners: an HTTP listener with HTTPHandler and a TLS
// listener with TLSConfig, both on 127.0.0.1.
type edge struct {
	m        *Manager
	reg      *prometheus.Registry
	httpAddr string
	tlsAddr  string
	servers  []*http.Server
}

// startEdge serves m on 127.0.0.1:httpPort and 127.0.0.1:tlsPort (0: any free port).
func startEdge(t *testing.T, m *Manager, reg *prometheus.Registry, httpPort, tlsPort int) *edge {
	t.Helper()
	e := &edge{m: m, reg: reg}
	hl, err := net.Listen("tcp", testenv.LoopbackAddr(httpPort))
	if err != nil {
		t.Fatalf("listen http: %v", err)
	}
	tl, err := net.Listen("tcp", testenv.LoopbackAddr(tlsPort))
	if err != nil {
		t.Fatalf("listen tls: %v", err)
	}
	e.httpAddr, e.tlsAddr = hl.Addr().String(), tl.Addr().String()
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s over %s", r.Host, r.Proto)
	})
	hs := &http.Server{Handler: m.HTTPHandler(nil), ReadHeaderTimeout: 5 * time.Second}
	ts := &http.Server{Handler: WithHSTS(app, false), TLSConfig: m.TLSConfig(), ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}
	e.servers = []*http.Server{hs, ts}
	go func() { _ = hs.Serve(hl) }()
	go func() { _ = ts.ServeTLS(tl, "", "") }()
	t.Cleanup(e.stop)
	return e
}

func (e *edge) stop() {
	for _, s := range e.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.Shutdown(ctx)
		cancel()
	}
}

// handshake connects to the TLS listener with the SNI name and returns the served leaf.
func handshake(t *testing.T, addr, sni string, roots *x509.CertPool) (*x509.Certificate, error) {
	t.Helper()
	cfg := &tls.Config{ServerName: sni, RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}}
	if roots == nil {
		cfg.InsecureSkipVerify = true
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

func mustHandshake(t *testing.T, addr, sni string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	leaf, err := handshake(t, addr, sni, roots)
	if err != nil {
		t.Fatalf("handshake %s with SNI %q: %v", addr, sni, err)
	}
	return leaf
}

func counterValue(t *testing.T, reg *prometheus.Registry, metric, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "name" && l.GetValue() == name {
					if m.Counter != nil {
						return m.Counter.GetValue()
					}
					return m.Gauge.GetValue()
				}
			}
		}
	}
	return 0
}

func metricNames(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		out = append(out, mf.GetName())
	}
	sort.Strings(out)
	return out
}

func statusOf(t *testing.T, m *Manager, name string) CertStatus {
	t.Helper()
	for _, c := range m.Status().Certificates {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no status for %q in %+v", name, m.Status())
	return CertStatus{}
}

func helloFor(name string, alpn ...string) *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{ServerName: name, SupportedProtos: alpn}
}
