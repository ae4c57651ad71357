package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/corpintel/corpintel/supervisor/edge/certs"
)

// hstsMinAge is the shortest HSTS max-age the check accepts (one year; the edge sends
// two).
const hstsMinAge = 365 * 24 * 3600

// postTLS connects to the edge's HTTPS listener for every configured name, verifies
// the chain (the system's roots, plus the local CA in self-signed mode), the
// certificate's lifetime left, and HSTS on an answer.
func postTLS(ctx context.Context, c *collector, o PostOptions) {
	cfg := o.Config
	if cfg.Edge.HTTPS == "" {
		c.add("tls", Warn, "the HTTPS listener is off (edge.https is empty)", "set edge.https (default :443)")
		return
	}
	addr := o.TLSAddr
	if addr == "" {
		_, port, err := net.SplitHostPort(cfg.Edge.HTTPS)
		if err != nil {
			c.add("tls", Fail, "edge.https is not host:port: "+cfg.Edge.HTTPS, "fix edge.https")
			return
		}
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if cfg.TLS.Mode == string(certs.ModeSelfSigned) || cfg.TLS.Mode == string(certs.ModeACME) && len(cfg.TLS.Names) == 0 {
		if pem, err := certs.ReadCACertificate(filepath.Join(cfg.StateDir, "tls")); err == nil {
			roots.AppendCertsFromPEM(pem)
		}
	}
	names := cfg.TLS.Names
	if len(names) == 0 {
		names = []string{"localhost"}
	}
	for _, name := range names {
		checkName(ctx, c, o, addr, name, roots)
	}
}

func checkName(ctx context.Context, c *collector, o PostOptions, addr, name string, roots *x509.CertPool) {
	check := "tls " + name
	tcfg := &tls.Config{RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS12}
	d := &tls.Dialer{Config: tcfg, NetDialer: &net.Dialer{Timeout: 10 * time.Second}}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		fix := "corpintel status shows the certificate manager's state; corpintel check tls runs the ACME preflight"
		if o.Config.TLS.Mode == string(certs.ModeSelfSigned) {
			fix = "clients must trust the local CA: corpintel tls ca > corpintel-ca.pem"
		}
		c.add(check, Fail, fmt.Sprintf("handshake with %s failed: %v", addr, err), fix)
		return
	}
	state := conn.(*tls.Conn).ConnectionState()
	_ = conn.Close()
	leaf := state.PeerCertificates[0]
	now := o.Now()
	left, life := leaf.NotAfter.Sub(now), leaf.NotAfter.Sub(leaf.NotBefore)
	chain := fmt.Sprintf("chain valid (issuer %q), expires %s (%s left)", leaf.Issuer.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339), humanDuration(left))
	hsts, herr := hstsHeader(ctx, tcfg, addr, name)
	switch {
	case left < 24*time.Hour:
		c.add(check, Fail, chain, "renewal is failing: corpintel status (tls) says why; corpintel check tls for ACME")
	case left < life/3:
		c.add(check, Warn, chain+": renewal is overdue (due at a third of the lifetime)", "corpintel status (tls) shows the renewal errors")
	case herr != nil:
		c.add(check, Warn, chain+"; no answer to read HSTS from: "+herr.Error(), "check the API answers: corpintel status")
	case hstsMaxAge(hsts) < hstsMinAge:
		c.add(check, Fail, fmt.Sprintf("%s; Strict-Transport-Security is %q", chain, hsts), "the edge sets HSTS on every HTTPS answer: is a proxy in front stripping it?")
	default:
		c.ok(check, "%s; HSTS %s", chain, hsts)
	}
}

// hstsHeader fetches /health over the edge with the name as Host.
func hstsHeader(ctx context.Context, tcfg *tls.Config, addr, name string) (string, error) {
	tr := &http.Transport{TLSClientConfig: tcfg, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	host := name
	if ip := net.ParseIP(name); ip != nil && ip.To4() == nil {
		host = "[" + name + "]"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/health", nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	_ = resp.Body.Close()
	return resp.Header.Get("Strict-Transport-Security"), nil
}

// hstsMaxAge reads max-age from an HSTS header (0 when absent or malformed).
func hstsMaxAge(h string) int {
	for _, part := range strings.Split(h, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && strings.EqualFold(k, "max-age") {
			n, err := strconv.Atoi(strings.Trim(v, `"`))
			if err == nil {
				return n
			}
		}
	}
	return 0
}
