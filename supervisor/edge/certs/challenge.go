package certs

import (
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// challengePath is where HTTP-01 challenges (and the preflight's own token) are served.
const challengePath = "/.well-known/acme-challenge/"

// challenges holds the answers to pending ACME challenges.
type challenges struct {
	mu     sync.RWMutex
	http01 map[string]string           // token → key authorization
	alpn   map[string]*tls.Certificate // name → TLS-ALPN-01 certificate
}

func (c *challenges) init() {
	c.http01 = map[string]string{}
	c.alpn = map[string]*tls.Certificate{}
}

func (c *challenges) putHTTP01(token, keyAuth string) func() {
	c.mu.Lock()
	c.http01[token] = keyAuth
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.http01, token)
		c.mu.Unlock()
	}
}

func (c *challenges) http01Response(token string) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.http01[token]
	return v, ok
}

func (c *challenges) putALPN(name string, cert *tls.Certificate) func() {
	c.mu.Lock()
	c.alpn[name] = cert
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		if c.alpn[name] == cert {
			delete(c.alpn, name)
		}
		c.mu.Unlock()
	}
}

func (c *challenges) alpnCert(name string) *tls.Certificate {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.alpn[name]
}

// HTTPHandler is the handler of the plain-HTTP listener (:80): it answers ACME HTTP-01
// challenges under /.well-known/acme-challenge/, serves the self-signed CA's CRL at
// /.well-known/corpintel/ca.crl, and hands everything else to next, or, when next is nil,
// redirects it to HTTPS (301, path and query kept).
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token, ok := strings.CutPrefix(r.URL.Path, challengePath); ok {
			m.serveChallenge(w, r, token)
			return
		}
		if r.URL.Path == crlPath && m.self != nil {
			m.serveCRL(w, r)
			return
		}
		if next != nil {
			next.ServeHTTP(w, r)
			return
		}
		m.redirectHTTPS(w, r)
	})
}

func (m *Manager) serveChallenge(w http.ResponseWriter, r *http.Request, token string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, ok := m.chal.http01Response(token)
	if !ok || token == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(body))
}

// redirectHTTPS sends the client to the same host over HTTPS. The target host is the one
// the client asked for, so this is no open redirect: nobody but the client chooses it.
func (m *Manager) redirectHTTPS(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" || strings.ContainsAny(host, "/\\@ ") {
		http.Error(w, "missing or invalid Host header", http.StatusBadRequest)
		return
	}
	if m.cfg.HTTPSPort != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(m.cfg.HTTPSPort))
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	target := "https://" + host + r.URL.RequestURI()
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusMovedPermanently)
}
