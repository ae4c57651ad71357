package config

import (
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Edge configures the public listeners (HTTPS on :443, the ACME challenges and the
// redirect on :80) and the front door's policies. The loopback listener is `listen`.
type Edge struct {
	// HTTPS and HTTP are the public listen addresses ("" switches a listener off).
	HTTPS string `toml:"https"`
	HTTP  string `toml:"http"`
	// TrustedProxies are load balancers in front of the appliance (IPs or CIDRs) whose
	// X-Forwarded-For is believed; everyone else's is replaced by their address.
	TrustedProxies []string `toml:"trusted_proxies"`
	// RateLimit is requests per second per client address (IPv6 per /64) on the public
	// listeners (the seed's 10/s; 0 switches it off); RateBurst how many at once.
	RateLimit float64 `toml:"rate_limit"`
	RateBurst int     `toml:"rate_burst"`
	// LoginRateLimit is the tighter limit of the login route (per client, per second).
	LoginRateLimit float64 `toml:"login_rate_limit"`
	// RateLimitAllow lists clients that are never limited (monitoring; a benchmark).
	RateLimitAllow []string `toml:"rate_limit_allow"`
	// MaxConnections bounds concurrent connections per public listener.
	MaxConnections int `toml:"max_connections"`
	// RequestTimeout bounds the wait for a replica's answer (the seed's 120 s).
	RequestTimeout Duration `toml:"request_timeout"`
	// BodyLimit bounds request bodies (uploads: api.upload_max_bytes and a margin).
	BodyLimit ByteSize `toml:"body_limit"`
	// AccessLog writes one JSON line per request to <state_dir>/logs/access.log,
	// rotated at AccessLogMaxSize (5 files kept).
	AccessLog        bool     `toml:"access_log"`
	AccessLogMaxSize ByteSize `toml:"access_log_max_size"`
	// MetricsTokenFile, when set, holds a bearer token that opens /metrics on the
	// public listeners (for an external Prometheus).
	MetricsTokenFile string `toml:"metrics_token_file"`
}

// TLS configures the certificates of the HTTPS listener.
type TLS struct {
	// Mode is acme (Let's Encrypt or any RFC 8555 CA), self-signed (a local CA in the
	// state dir) or file (operator-provided certificate and key, reloaded on change).
	Mode string `toml:"mode"`
	// Names are the DNS names (and IPs, in self-signed mode) the certificate covers;
	// empty: the machine's host name, localhost and 127.0.0.1. ACME needs them: in acme
	// mode without names the edge serves a self-signed certificate and `corpintel
	// status` says so.
	Names []string `toml:"names"`
	// ACME settings.
	DirectoryURL string `toml:"directory_url"`
	Email        string `toml:"email"`
	// EABKeyID and EABHMACFile are the External Account Binding some CAs require.
	EABKeyID    string `toml:"eab_key_id"`
	EABHMACFile string `toml:"eab_hmac_file"`
	// CertFile and KeyFile are the file mode's PEM files.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// HSTSPreload adds "preload" to the HSTS header (only once the names are submitted).
	HSTSPreload bool `toml:"hsts_preload"`
}

// TLS modes.
var tlsModes = []string{"acme", "self-signed", "file"}

func defaultEdge(profile string) Edge {
	e := Edge{
		HTTPS: ":443", HTTP: ":80",
		RateLimit: 10, RateBurst: 20, LoginRateLimit: 1,
		MaxConnections: 10_000, RequestTimeout: Duration(120 * time.Second),
		BodyLimit: 10 * MiB, AccessLog: true, AccessLogMaxSize: 50 * MiB,
	}
	return e
}

func defaultTLS(profile string) TLS {
	t := TLS{Mode: "self-signed", DirectoryURL: "https://acme-v02.api.letsencrypt.org/directory"}
	if profile == "prod" {
		t.Mode = "acme"
	}
	return t
}

func validListen(addr string) bool {
	if addr == "" {
		return true
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	// Port 0 takes any free port (tests).
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return false
	}
	return host == "" || net.ParseIP(host) != nil
}

func validPrefix(s string) bool {
	if _, err := netip.ParsePrefix(strings.TrimSpace(s)); err == nil {
		return true
	}
	_, err := netip.ParseAddr(strings.TrimSpace(s))
	return err == nil
}

func (c *Config) validateEdge(bad func(key, format string, args ...any)) {
	e, t := c.Edge, c.TLS
	if !validListen(e.HTTPS) {
		bad("edge.https", "must be [host]:port (\"\" switches HTTPS off), got %q", e.HTTPS)
	}
	if !validListen(e.HTTP) {
		bad("edge.http", "must be [host]:port (\"\" switches it off), got %q", e.HTTP)
	}
	for _, p := range e.TrustedProxies {
		if !validPrefix(p) {
			bad("edge.trusted_proxies", "%q is neither an IP address nor a CIDR", p)
		}
	}
	for _, p := range e.RateLimitAllow {
		if !validPrefix(p) {
			bad("edge.rate_limit_allow", "%q is neither an IP address nor a CIDR", p)
		}
	}
	if e.RateLimit < 0 || e.LoginRateLimit < 0 {
		bad("edge.rate_limit", "must be ≥ 0 requests per second (0: off), got %g", e.RateLimit)
	}
	if e.RateBurst < 1 {
		bad("edge.rate_burst", "must be ≥ 1, got %d", e.RateBurst)
	}
	if e.MaxConnections < 16 {
		bad("edge.max_connections", "must be ≥ 16, got %d", e.MaxConnections)
	}
	if e.RequestTimeout < Duration(time.Second) {
		bad("edge.request_timeout", "must be at least 1s, got %s", e.RequestTimeout)
	}
	if e.BodyLimit < 64*KiB {
		bad("edge.body_limit", "must be at least 64KiB, got %s", e.BodyLimit)
	}
	if e.AccessLogMaxSize < MiB {
		bad("edge.access_log_max_size", "must be at least 1MiB, got %s", e.AccessLogMaxSize)
	}
	if e.MetricsTokenFile != "" && !filepath.IsAbs(e.MetricsTokenFile) {
		bad("edge.metrics_token_file", "must be an absolute path, got %q", e.MetricsTokenFile)
	}
	if !slices.Contains(tlsModes, t.Mode) {
		bad("tls.mode", "must be one of %s, got %q", strings.Join(tlsModes, ", "), t.Mode)
	}
	switch t.Mode {
	case "acme":
		if !strings.HasPrefix(t.DirectoryURL, "https://") && !strings.HasPrefix(t.DirectoryURL, "http://127.") && !strings.HasPrefix(t.DirectoryURL, "http://localhost") {
			bad("tls.directory_url", "must be an https:// ACME directory URL, got %q", t.DirectoryURL)
		}
		if (t.EABKeyID == "") != (t.EABHMACFile == "") {
			bad("tls.eab_key_id", "External Account Binding needs both tls.eab_key_id and tls.eab_hmac_file")
		}
	case "file":
		if !filepath.IsAbs(t.CertFile) || !filepath.IsAbs(t.KeyFile) {
			bad("tls.cert_file", "file mode needs absolute tls.cert_file and tls.key_file paths")
		}
	}
}
