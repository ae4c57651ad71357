package certs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ProberConfig says which listener to probe for which names.
type ProberConfig struct {
	// Addr is the HTTPS listener, host:port (e.g. 127.0.0.1:443).
	Addr string
	// Names are sent as SNI, one handshake each; an IP address is sent as no SNI (what a
	// client connecting by IP does).
	Names []string
	// Interval between probes (Run). Default 1 min.
	Interval time.Duration
	// Timeout of one handshake. Default 5 s.
	Timeout time.Duration
}

// ProbeResult is what one handshake showed.
type ProbeResult struct {
	Name     string    `json:"name"`
	NotAfter time.Time `json:"not_after,omitzero"`
	Serial   string    `json:"serial,omitempty"`
	Issuer   string    `json:"issuer,omitempty"`
	Protocol string    `json:"alpn,omitempty"`
	At       time.Time `json:"at"`
	Error    string    `json:"error,omitempty"`
}

// Prober measures the certificate the edge actually serves: it shakes hands with the
// listener like a client and exports the leaf's NotAfter as
// corpintel_cert_expiry_timestamp_seconds{name}. A renewed certificate that was never
// installed, or a listener that serves something else, shows up here and nowhere else.
type Prober struct {
	cfg    ProberConfig
	clock  Clock
	expiry *prometheus.GaugeVec
	ok     *prometheus.GaugeVec

	mu   sync.Mutex
	last []ProbeResult
}

// NewProber builds a Prober; deps.Clock and deps.Registerer are used.
func NewProber(cfg ProberConfig, deps Deps) (*Prober, error) {
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("certs: prober address %q: %w", cfg.Addr, err)
	}
	if len(cfg.Names) == 0 {
		return nil, errors.New("certs: prober needs at least one name")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	p := &Prober{cfg: cfg, clock: deps.Clock}
	if p.clock == nil {
		p.clock = SystemClock{}
	}
	var err error
	p.expiry, err = register(deps.Registerer, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MetricExpiry,
		Help: "NotAfter (Unix seconds) of the certificate the edge serves for the name, read from a TLS handshake with the listener.",
	}, []string{"name"}))
	if err != nil {
		return nil, err
	}
	p.ok, err = register(deps.Registerer, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MetricProbeSuccess,
		Help: "1 if the last TLS handshake with the edge for the name succeeded, else 0 (the expiry metric then holds the last value seen).",
	}, []string{"name"}))
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Probe shakes hands once per name and updates the metrics. A failed handshake keeps the
// last expiry value (so an expiry alert still fires) and sets the success gauge to 0.
func (p *Prober) Probe(ctx context.Context) []ProbeResult {
	out := make([]ProbeResult, 0, len(p.cfg.Names))
	for _, name := range p.cfg.Names {
		r := p.probeOne(ctx, name)
		if r.Error != "" {
			p.ok.WithLabelValues(name).Set(0)
		} else {
			p.ok.WithLabelValues(name).Set(1)
			p.expiry.WithLabelValues(name).Set(float64(r.NotAfter.Unix()))
		}
		out = append(out, r)
	}
	p.mu.Lock()
	p.last = out
	p.mu.Unlock()
	return out
}

func (p *Prober) probeOne(ctx context.Context, name string) ProbeResult {
	r := ProbeResult{Name: name, At: p.clock.Now()}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	sni := name
	if net.ParseIP(strings.Trim(name, "[]")) != nil {
		sni = ""
	}
	d := tls.Dialer{Config: &tls.Config{
		ServerName: sni,
		NextProtos: []string{"h2", "http/1.1"},
		// What is served is measured, trusted or not: an expired or self-signed
		// certificate must be reported, not refused.
		InsecureSkipVerify: true, // #nosec G402 -- a measurement, nothing is sent
	}}
	conn, err := d.DialContext(ctx, "tcp", p.cfg.Addr)
	if err != nil {
		r.Error = fmt.Sprintf("handshake with %s for %q: %v", p.cfg.Addr, name, err)
		return r
	}
	defer conn.Close()
	st := conn.(*tls.Conn).ConnectionState()
	if len(st.PeerCertificates) == 0 {
		r.Error = "no certificate in the handshake"
		return r
	}
	leaf := st.PeerCertificates[0]
	r.NotAfter = leaf.NotAfter
	r.Serial = serialHex(leaf)
	r.Issuer = leaf.Issuer.String()
	r.Protocol = st.NegotiatedProtocol
	return r
}

// Results are the last probe's results.
func (p *Prober) Results() []ProbeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ProbeResult(nil), p.last...)
}

// Run probes every Interval until ctx ends.
func (p *Prober) Run(ctx context.Context) error {
	for {
		p.Probe(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-p.clock.After(p.cfg.Interval):
		}
	}
}
