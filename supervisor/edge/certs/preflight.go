package certs

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/crypto/acme"
)

// Severity of a preflight finding.
type Severity string

// Severities: Error means issuance will fail as things are.
const (
	SeverityOK      Severity = "ok"
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
)

// Finding is one result of the preflight.
type Finding struct {
	Name     string   `json:"name"`
	Check    string   `json:"check"` // ca, dns, http-port, https-port, caa
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	Fix      string   `json:"fix,omitempty"`
}

func (f Finding) String() string {
	s := fmt.Sprintf("%-7s %-10s %s: %s", f.Severity, f.Check, f.Name, f.Message)
	if f.Fix != "" {
		s += " — " + f.Fix
	}
	return s
}

// HasErrors reports whether any finding is an error.
func HasErrors(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == SeverityError })
}

const preflightTimeout = 5 * time.Second

// Check is the ACME preflight (`corpintel check tls`, and at start in ACME mode): what
// would make issuance fail, before an order burns the CA's failed-validation limit.
//
//   - ca: the directory answers (and which CAA identities the CA uses).
//   - dns: each name resolves (A/AAAA, asked of ACME.DNSServer) to an address of one of
//     this host's interfaces. Behind NAT the public address is not on an interface: a
//     warning, since port forwarding may still make validation work.
//   - http-port / https-port: for addresses of this host, a request to port 80 for a
//     random token under /.well-known/acme-challenge/, and a TLS-ALPN handshake on 443,
//     must reach this very Manager (its listeners must be up). Reachability from the
//     internet (firewalls, cloud security groups) cannot be seen from inside the host.
//   - caa: the CAA records that apply to the name (RFC 8659 tree climbing) allow the CA,
//     including the accounturi and validationmethods parameters (RFC 8657).
//
// names defaults to the configured names. Other addresses than this host's are never
// connected to.
func (m *Manager) Check(ctx context.Context, names []string) []Finding {
	if len(names) == 0 {
		names = m.cfg.Names
	}
	if m.cfg.Mode != ModeACME {
		return []Finding{{Name: strings.Join(names, ","), Check: "ca", Severity: SeverityOK,
			Message: fmt.Sprintf("the edge runs in %s mode: no CA to ask, no preflight needed", m.cfg.Mode)}}
	}
	var out []Finding
	caIDs, caFinding := m.checkCA(ctx)
	out = append(out, caFinding)

	server, err := m.dnsServer()
	if err != nil {
		return append(out, Finding{Name: strings.Join(names, ","), Check: "dns", Severity: SeverityError,
			Message: err.Error(), Fix: "set the DNS server the preflight asks (ACME DNSServer) or fix /etc/resolv.conf"})
	}
	local, err := m.localAddrs()
	if err != nil {
		out = append(out, Finding{Check: "dns", Severity: SeverityWarning, Message: "cannot list this host's addresses: " + err.Error()})
	}
	for _, name := range names {
		addrs, f := m.checkResolves(ctx, server, name, local)
		out = append(out, f)
		out = append(out, m.checkPorts(ctx, name, addrs)...)
		out = append(out, m.checkCAA(ctx, server, name, caIDs))
	}
	return out
}

func (m *Manager) checkCA(ctx context.Context) ([]string, Finding) {
	f := Finding{Name: m.cfg.ACME.DirectoryURL, Check: "ca"}
	c := &acme.Client{DirectoryURL: m.cfg.ACME.DirectoryURL, HTTPClient: m.http, UserAgent: "corpintel"}
	ctx, cancel := context.WithTimeout(ctx, 2*preflightTimeout)
	defer cancel()
	dir, err := c.Discover(ctx)
	ids := dir.CAA
	if len(ids) == 0 && isLetsEncrypt(m.cfg.ACME.DirectoryURL) {
		ids = []string{"letsencrypt.org"}
	}
	if err != nil {
		f.Severity = SeverityError
		f.Message = "the ACME directory does not answer: " + err.Error()
		f.Fix = "check the directory URL and this host's outbound HTTPS (DNS, firewall, proxy)"
		return ids, f
	}
	f.Severity = SeverityOK
	f.Message = "the ACME directory answers"
	if len(ids) > 0 {
		f.Message += "; CAA identities " + strings.Join(ids, ", ")
	}
	return ids, f
}

func (m *Manager) dnsServer() (string, error) {
	if m.cfg.ACME.DNSServer != "" {
		return m.cfg.ACME.DNSServer, nil
	}
	cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return "", fmt.Errorf("no DNS server to ask: %w", err)
	}
	if len(cc.Servers) == 0 {
		return "", errors.New("no DNS server in /etc/resolv.conf")
	}
	return net.JoinHostPort(cc.Servers[0], cc.Port), nil
}

// localAddrs lists this host's interface addresses; tests replace it.
func (m *Manager) localAddrs() ([]net.IP, error) {
	if m.localIPs != nil {
		return m.localIPs()
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ips = append(ips, n.IP)
		}
	}
	return ips, nil
}

// query asks server one question, over TCP when the UDP answer was truncated.
func query(ctx context.Context, server, name string, qtype uint16) (*dns.Msg, error) {
	msg := new(dns.Msg)
	msg.SetQuestion(dns.Fqdn(name), qtype)
	msg.RecursionDesired = true
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	c := &dns.Client{Timeout: preflightTimeout}
	in, _, err := c.ExchangeContext(ctx, msg, server)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, msg, server)
	}
	if err != nil {
		return nil, fmt.Errorf("ask %s for %s %s: %w", server, name, dns.TypeToString[qtype], err)
	}
	return in, nil
}

// checkResolves returns the name's addresses that belong to this host.
func (m *Manager) checkResolves(ctx context.Context, server, name string, local []net.IP) ([]net.IP, Finding) {
	f := Finding{Name: name, Check: "dns"}
	var all []net.IP
	var failures []string
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		in, err := query(ctx, server, name, qt)
		if err != nil {
			failures = append(failures, err.Error())
			continue
		}
		if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
			failures = append(failures, fmt.Sprintf("%s %s: %s", name, dns.TypeToString[qt], dns.RcodeToString[in.Rcode]))
			continue
		}
		for _, rr := range in.Answer {
			switch r := rr.(type) {
			case *dns.A:
				all = append(all, r.A)
			case *dns.AAAA:
				all = append(all, r.AAAA)
			}
		}
	}
	if len(all) == 0 {
		f.Severity = SeverityError
		f.Message = "does not resolve"
		if len(failures) > 0 {
			f.Message += ": " + strings.Join(failures, "; ")
		}
		f.Fix = "create an A (and/or AAAA) record for " + name + " pointing at this host's public address"
		return nil, f
	}
	var mine, foreign []string
	var mineIPs []net.IP
	for _, ip := range all {
		if slices.ContainsFunc(local, ip.Equal) {
			mine = append(mine, ip.String())
			mineIPs = append(mineIPs, ip)
		} else {
			foreign = append(foreign, ip.String())
		}
	}
	switch {
	case len(foreign) == 0:
		f.Severity = SeverityOK
		f.Message = "resolves to " + strings.Join(mine, ", ") + " (this host)"
	case len(mine) == 0:
		f.Severity = SeverityWarning
		f.Message = "resolves to " + strings.Join(foreign, ", ") + ", not an address of this host"
		f.Fix = "point the A/AAAA records at this host; if it sits behind NAT, forward ports " +
			strconv.Itoa(m.cfg.HTTPPort) + " and " + strconv.Itoa(m.cfg.HTTPSPort) + " to it (then this warning is expected)"
	default:
		f.Severity = SeverityWarning
		f.Message = "resolves to " + strings.Join(mine, ", ") + " (this host) and also to " + strings.Join(foreign, ", ") + " (not this host)"
		f.Fix = "the CA may validate against any of them: remove the records that do not lead here"
	}
	if len(failures) > 0 && f.Severity == SeverityOK {
		f.Severity = SeverityWarning
		f.Message += "; but " + strings.Join(failures, "; ")
	}
	return mineIPs, f
}

// checkPorts checks that port 80 and 443 on this host's addresses reach this Manager.
func (m *Manager) checkPorts(ctx context.Context, name string, addrs []net.IP) []Finding {
	if len(addrs) == 0 {
		return nil
	}
	ip := addrs[0]
	httpSev, httpsSev := SeverityWarning, SeverityWarning
	if m.acme.enabled(ChallengeHTTP01) {
		httpSev = SeverityError
	}
	if m.acme.enabled(ChallengeTLSALPN01) {
		httpsSev = SeverityError
	}
	var out []Finding
	if err := m.probeHTTP(ctx, name, ip); err != nil {
		out = append(out, Finding{Name: name, Check: "http-port", Severity: httpSev, Message: err.Error(),
			Fix: fmt.Sprintf("serve the edge's HTTP handler on port %d and open it in the firewall (HTTP-01 validation and the HTTPS redirect use it)", m.cfg.HTTPPort)})
	} else {
		out = append(out, Finding{Name: name, Check: "http-port", Severity: SeverityOK,
			Message: fmt.Sprintf("port %d on %s reaches this edge", m.cfg.HTTPPort, ip)})
	}
	if err := m.probeTLS(ctx, name, ip); err != nil {
		out = append(out, Finding{Name: name, Check: "https-port", Severity: httpsSev, Message: err.Error(),
			Fix: fmt.Sprintf("serve the edge's TLS listener on port %d and open it in the firewall", m.cfg.HTTPSPort)})
	} else {
		out = append(out, Finding{Name: name, Check: "https-port", Severity: SeverityOK,
			Message: fmt.Sprintf("port %d on %s reaches this edge", m.cfg.HTTPSPort, ip)})
	}
	return out
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// probeHTTP fetches a token only this Manager knows through port 80 of ip.
func (m *Manager) probeHTTP(ctx context.Context, name string, ip net.IP) error {
	token, want := "corpintel-preflight-"+randomToken(), randomToken()
	defer m.chal.putHTTP01(token, want)()
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(m.cfg.HTTPPort))
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+challengePath+token, nil)
	if err != nil {
		return err
	}
	req.Host = name
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("port %d on %s does not answer: %w", m.cfg.HTTPPort, ip, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || string(body) != want {
		return fmt.Errorf("port %d on %s is answered by something else than this edge (%s)", m.cfg.HTTPPort, ip, resp.Status)
	}
	return nil
}

// probeTLS makes a TLS-ALPN-01 style handshake on port 443 of ip and checks that this
// Manager answered it.
func (m *Manager) probeTLS(ctx context.Context, name string, ip net.IP) error {
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(m.cfg.HTTPSPort))
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	probe, err := m.preflightCert(name)
	if err != nil {
		return err
	}
	if m.chal.alpnCert(name) != nil {
		// A real TLS-ALPN-01 challenge is pending: do not disturb it, just connect.
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("port %d on %s does not answer: %w", m.cfg.HTTPSPort, ip, err)
		}
		return c.Close()
	}
	defer m.chal.putALPN(name, probe)()
	d := tls.Dialer{Config: &tls.Config{
		ServerName:         name,
		NextProtos:         []string{ALPNProtoACME},
		InsecureSkipVerify: true, // #nosec G402 -- identity is checked below by comparing the certificate
	}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("TLS-ALPN handshake with port %d on %s failed: %w", m.cfg.HTTPSPort, ip, err)
	}
	defer conn.Close()
	st := conn.(*tls.Conn).ConnectionState()
	if len(st.PeerCertificates) == 0 || !st.PeerCertificates[0].Equal(probe.Leaf) {
		return fmt.Errorf("port %d on %s is answered by something else than this edge", m.cfg.HTTPSPort, ip)
	}
	return nil
}

// preflightCert is a throwaway certificate that identifies this Manager in probeTLS.
func (m *Manager) preflightCert(name string) (*tls.Certificate, error) {
	key, err := newECDSAKey()
	if err != nil {
		return nil, err
	}
	c := &acme.Client{Key: key}
	cert, err := c.TLSALPN01ChallengeCert(randomToken(), name)
	if err != nil {
		return nil, fmt.Errorf("preflight certificate: %w", err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("preflight certificate: %w", err)
		}
	}
	return &cert, nil
}

// caaRecords finds the CAA record set that applies to name: the first non-empty one
// walking from name towards the root (RFC 8659 section 3).
func caaRecords(ctx context.Context, server, name string) (string, []*dns.CAA, error) {
	labels := dns.SplitDomainName(name)
	for i := range labels {
		domain := strings.Join(labels[i:], ".")
		in, err := query(ctx, server, domain, dns.TypeCAA)
		if err != nil {
			return domain, nil, err
		}
		if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
			return domain, nil, fmt.Errorf("CAA lookup for %s: %s", domain, dns.RcodeToString[in.Rcode])
		}
		var set []*dns.CAA
		for _, rr := range in.Answer {
			if caa, ok := rr.(*dns.CAA); ok {
				set = append(set, caa)
			}
		}
		if len(set) > 0 {
			return domain, set, nil
		}
	}
	return "", nil, nil
}

func (m *Manager) checkCAA(ctx context.Context, server, name string, caIDs []string) Finding {
	f := Finding{Name: name, Check: "caa"}
	domain, set, err := caaRecords(ctx, server, name)
	if err != nil {
		f.Severity = SeverityError
		f.Message = err.Error()
		f.Fix = "CAs refuse to issue when the CAA lookup fails: fix the DNS server of " + domain
		return f
	}
	if len(set) == 0 {
		f.Severity = SeverityOK
		f.Message = "no CAA records: any CA may issue"
		return f
	}
	if len(caIDs) == 0 {
		f.Severity = SeverityWarning
		f.Message = fmt.Sprintf("CAA records at %s exist but the CA publishes no CAA identity to compare with", domain)
		f.Fix = "check by hand that the records allow the CA"
		return f
	}
	ok, why := caaPermits(set, caIDs, m.acme.accountURI(), m.cfg.ACME.Challenges)
	if ok {
		f.Severity = SeverityOK
		f.Message = fmt.Sprintf("CAA records at %s allow %s", domain, strings.Join(caIDs, ", "))
		return f
	}
	f.Severity = SeverityError
	f.Message = fmt.Sprintf("CAA records at %s forbid the CA: %s", domain, why)
	f.Fix = fmt.Sprintf("add a CAA record `%s CAA 0 issue \"%s\"` or use a CA the records allow", domain, caIDs[0])
	return f
}

// caaPermits evaluates a relevant CAA record set for a non-wildcard name.
func caaPermits(set []*dns.CAA, caIDs []string, accountURI string, methods []string) (bool, string) {
	var issue []*dns.CAA
	for _, r := range set {
		tag := strings.ToLower(r.Tag)
		switch tag {
		case "issue":
			issue = append(issue, r)
		case "issuewild", "iodef", "issuemail", "issuevmc", "contactemail", "contactphone":
		default:
			if r.Flag&128 != 0 {
				return false, fmt.Sprintf("a critical record with the unknown tag %q", r.Tag)
			}
		}
	}
	if len(issue) == 0 {
		return true, ""
	}
	var reasons []string
	for _, r := range issue {
		domain, params := parseCAAValue(r.Value)
		if domain == "" {
			reasons = append(reasons, `"issue ;" forbids every CA`)
			continue
		}
		if !slices.Contains(caIDs, strings.ToLower(domain)) {
			reasons = append(reasons, "only "+domain+" may issue")
			continue
		}
		if u, ok := params["accounturi"]; ok && accountURI != "" && u != accountURI {
			reasons = append(reasons, "only the account "+u+" may order (this edge's is "+accountURI+")")
			continue
		}
		if vm, ok := params["validationmethods"]; ok {
			allowed := strings.Split(vm, ",")
			if !slices.ContainsFunc(methods, func(m string) bool { return slices.Contains(allowed, m) }) {
				reasons = append(reasons, "only the validation methods "+vm+" are allowed (this edge uses "+strings.Join(methods, ", ")+")")
				continue
			}
		}
		return true, ""
	}
	return false, strings.Join(reasons, "; ")
}

// parseCAAValue splits an issue value `ca.example; key=value; ...`.
func parseCAAValue(v string) (string, map[string]string) {
	parts := strings.Split(v, ";")
	params := map[string]string{}
	for _, p := range parts[1:] {
		if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok {
			params[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(val)
		}
	}
	return strings.TrimSpace(parts[0]), params
}
