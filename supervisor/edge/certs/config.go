package certs

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Mode says where certificates come from.
type Mode string

// The three certificate modes.
const (
	ModeACME       Mode = "acme"
	ModeSelfSigned Mode = "self-signed"
	ModeFile       Mode = "file"
)

// Challenge types this package answers.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

// Let's Encrypt's directories; against them at most one failed order per name per hour is
// placed whatever the configuration says (their limit is 5 failed validations per name per
// hour, and a crash-looping supervisor must not burn it).
const (
	LetsEncryptProduction = "https://acme-v02.api.letsencrypt.org/directory"
	LetsEncryptStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// Config is what the operator decides. Zero values take the defaults documented per field.
type Config struct {
	Mode Mode
	// Names are the DNS names the edge answers for; self-signed mode also takes IP
	// addresses. ACME mode gets one certificate per name (one failing name never blocks
	// the others), self-signed mode one leaf for all of them.
	Names []string
	// StateDir holds keys, certificates and the ACME account (created 0700; files 0600).
	StateDir string
	// DefaultName's certificate answers handshakes whose SNI matches no name and those
	// without SNI (clients connecting by IP). Default: Names[0].
	DefaultName string
	// RejectUnknownSNI makes a handshake for an unknown name fail cleanly instead of
	// getting the default certificate.
	RejectUnknownSNI bool
	// HTTPPort and HTTPSPort are the public ports: the redirect of HTTPHandler names
	// HTTPSPort when it is not 443, and the preflight checks both. Defaults 80 and 443.
	HTTPPort  int
	HTTPSPort int

	// TicketKeyRotation is how often a new session ticket key starts encrypting tickets;
	// the last TicketKeysKept keys still decrypt, so a ticket lives at most
	// TicketKeyRotation × TicketKeysKept. Defaults 6 h and 3.
	TicketKeyRotation time.Duration
	TicketKeysKept    int
	// DisableSessionTickets turns resumption off.
	DisableSessionTickets bool

	ACME       ACMEConfig
	SelfSigned SelfSignedConfig
	File       FileConfig
}

// ACMEConfig configures ACME mode.
type ACMEConfig struct {
	// DirectoryURL of the CA. Default: Let's Encrypt production.
	DirectoryURL string
	// Email is the account contact (optional; Let's Encrypt sends no expiry mail anymore).
	Email string
	// EAB is the External Account Binding some CAs require (ZeroSSL, Google, step-ca).
	EAB *EAB
	// Challenges in order of preference; after a failed order the next one is tried.
	// Default: tls-alpn-01, http-01.
	Challenges []string
	// FailedOrderInterval is the least time between two orders for a name after one
	// failed. Let's Encrypt directories always get at least an hour. Default: 1 h for Let's
	// Encrypt, else 0 (backoff only).
	FailedOrderInterval time.Duration
	// RetryMin and RetryMax bound the exponential backoff after a failed attempt.
	// Defaults 1 min and 1 h.
	RetryMin, RetryMax time.Duration
	// OrderTimeout bounds one order from account check to certificate. Default 3 min.
	OrderTimeout time.Duration
	// DNSServer (host:port) answers the preflight's A/AAAA/CAA queries. Default: the
	// first nameserver of /etc/resolv.conf.
	DNSServer string
}

// EAB is an External Account Binding as CAs hand it out: a key id and a base64url MAC key.
type EAB struct {
	KeyID   string
	HMACKey string
}

// String keeps the MAC key out of logs.
func (e EAB) String() string { return "EAB{KeyID: " + e.KeyID + ", HMACKey: <redacted>}" }

// SelfSignedConfig configures self-signed mode.
type SelfSignedConfig struct {
	// LeafValidity of the leaf certificates. Default 90 days (renewed with 30 left).
	LeafValidity time.Duration
	// CAValidity of the local CA, created once. Default 10 years.
	CAValidity time.Duration
	// Organization shown in the CA's subject. Default "corpintel".
	Organization string
}

// FileConfig configures file mode.
type FileConfig struct {
	CertFile string // PEM: leaf first, then intermediates
	KeyFile  string // PEM private key
	// PollInterval between checks for changed files. Default 10 s.
	PollInterval time.Duration
}

// Deps are the Manager's collaborators.
type Deps struct {
	Clock  Clock        // default SystemClock
	Logger *slog.Logger // default: discard
	// Registerer gets the metrics; nil registers nothing (the metrics still count).
	Registerer prometheus.Registerer
	// HTTPClient talks to the ACME CA, OCSP responders and the preflight's port-80 check.
	// Default: a client with timeouts.
	HTTPClient *http.Client
}

const (
	defaultRetryMin            = time.Minute
	defaultRetryMax            = time.Hour
	defaultOrderTimeout        = 3 * time.Minute
	letsEncryptFailedOrderWait = time.Hour
	defaultLeafValidity        = 90 * 24 * time.Hour
	defaultCAValidity          = 10 * 365 * 24 * time.Hour
	defaultPollInterval        = 10 * time.Second
	defaultTicketRotation      = 6 * time.Hour
	defaultTicketKeysKept      = 3
)

// isLetsEncrypt reports whether the directory is one of Let's Encrypt's.
func isLetsEncrypt(directoryURL string) bool {
	u, err := url.Parse(directoryURL)
	if err != nil {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return h == "acme-v02.api.letsencrypt.org" || h == "acme-staging-v02.api.letsencrypt.org"
}

// withDefaults validates cfg and fills in defaults. The error names the setting and what
// to do.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if cfg.StateDir == "" {
		bad("certs: state directory is empty: set the supervisor's state dir")
	}
	names := make([]string, 0, len(cfg.Names))
	seen := map[string]bool{}
	for _, n := range cfg.Names {
		n = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		names = append(names, n)
	}
	cfg.Names = names
	for _, n := range cfg.Names {
		ip := net.ParseIP(n) != nil
		switch {
		case ip && cfg.Mode == ModeACME:
			bad("certs: name %q is an IP address: ACME mode issues certificates for DNS names only; use a DNS name or the self-signed mode", n)
		case strings.HasPrefix(n, "*.") && cfg.Mode == ModeACME:
			bad("certs: name %q is a wildcard: wildcards need the DNS-01 challenge, which this edge does not answer; list the names instead", n)
		case !ip && !validDNSName(n):
			bad("certs: name %q is not a valid DNS name", n)
		}
	}
	if cfg.DefaultName != "" {
		cfg.DefaultName = strings.TrimSuffix(strings.ToLower(cfg.DefaultName), ".")
		if !seen[cfg.DefaultName] && cfg.Mode != ModeFile {
			bad("certs: default name %q is not one of the names %v", cfg.DefaultName, cfg.Names)
		}
	} else if len(cfg.Names) > 0 {
		cfg.DefaultName = cfg.Names[0]
	}
	if cfg.HTTPPort == 0 {
		cfg.HTTPPort = 80
	}
	if cfg.HTTPSPort == 0 {
		cfg.HTTPSPort = 443
	}
	if cfg.HTTPPort < 0 || cfg.HTTPPort > 65535 || cfg.HTTPSPort < 0 || cfg.HTTPSPort > 65535 {
		bad("certs: ports %d/%d out of range", cfg.HTTPPort, cfg.HTTPSPort)
	}
	if cfg.TicketKeyRotation <= 0 {
		cfg.TicketKeyRotation = defaultTicketRotation
	}
	if cfg.TicketKeysKept <= 0 {
		cfg.TicketKeysKept = defaultTicketKeysKept
	}

	switch cfg.Mode {
	case ModeACME:
		if len(cfg.Names) == 0 {
			bad("certs: acme mode needs at least one DNS name: set the edge's names (e.g. the host's public DNS name)")
		}
		a := &cfg.ACME
		if a.DirectoryURL == "" {
			a.DirectoryURL = LetsEncryptProduction
		}
		if u, err := url.Parse(a.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
			bad("certs: ACME directory URL %q is not an https URL", a.DirectoryURL)
		}
		if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " \t\r\n")) {
			bad("certs: ACME e-mail %q is not an e-mail address", a.Email)
		}
		if a.EAB != nil {
			if a.EAB.KeyID == "" || a.EAB.HMACKey == "" {
				bad("certs: external account binding needs both a key id and an HMAC key (from the CA's account page)")
			} else if _, err := decodeEABKey(a.EAB.HMACKey); err != nil {
				bad("certs: external account binding HMAC key is not base64url: %v", err)
			}
		}
		if len(a.Challenges) == 0 {
			a.Challenges = []string{ChallengeTLSALPN01, ChallengeHTTP01}
		}
		for _, c := range a.Challenges {
			if c != ChallengeHTTP01 && c != ChallengeTLSALPN01 {
				bad("certs: challenge %q is not supported: use %s and/or %s", c, ChallengeHTTP01, ChallengeTLSALPN01)
			}
		}
		if a.RetryMin <= 0 {
			a.RetryMin = defaultRetryMin
		}
		if a.RetryMax <= 0 {
			a.RetryMax = defaultRetryMax
		}
		if a.RetryMax < a.RetryMin {
			a.RetryMax = a.RetryMin
		}
		if a.OrderTimeout <= 0 {
			a.OrderTimeout = defaultOrderTimeout
		}
		if isLetsEncrypt(a.DirectoryURL) && a.FailedOrderInterval < letsEncryptFailedOrderWait {
			a.FailedOrderInterval = letsEncryptFailedOrderWait
		}
	case ModeSelfSigned:
		if len(cfg.Names) == 0 {
			bad("certs: self-signed mode needs at least one name or IP address")
		}
		s := &cfg.SelfSigned
		if s.LeafValidity <= 0 {
			s.LeafValidity = defaultLeafValidity
		}
		if s.CAValidity <= 0 {
			s.CAValidity = defaultCAValidity
		}
		if s.CAValidity < s.LeafValidity {
			bad("certs: self-signed CA validity %s is shorter than the leaf validity %s", s.CAValidity, s.LeafValidity)
		}
		if s.Organization == "" {
			s.Organization = "corpintel"
		}
	case ModeFile:
		if cfg.File.CertFile == "" || cfg.File.KeyFile == "" {
			bad("certs: file mode needs both a certificate file and a key file")
		}
		if cfg.File.PollInterval <= 0 {
			cfg.File.PollInterval = defaultPollInterval
		}
	default:
		bad("certs: unknown mode %q: use %s, %s or %s", cfg.Mode, ModeACME, ModeSelfSigned, ModeFile)
	}
	return cfg, errors.Join(errs...)
}

func decodeEABKey(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	return base64.RawURLEncoding.DecodeString(s)
}

// validDNSName accepts LDH labels (and a leading "*." wildcard label), at most 253 octets.
func validDNSName(n string) bool {
	if len(n) == 0 || len(n) > 253 {
		return false
	}
	n = strings.TrimPrefix(n, "*.")
	for _, label := range strings.Split(n, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
				return false
			}
		}
	}
	return true
}
