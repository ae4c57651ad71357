package certs

import (
	"crypto/tls"
	"net/http"
)

// ALPNProtoACME is the ALPN protocol of the TLS-ALPN-01 challenge (RFC 8737).
const ALPNProtoACME = "acme-tls/1"

// HSTSMaxAge is the HSTS max-age of the edge: two years, as the seed's nginx sent.
const HSTSMaxAge = 63072000

// CipherSuites are the TLS 1.2 suites the edge accepts: ECDHE key exchange with an AEAD
// cipher only (Mozilla "intermediate" without DHE, which crypto/tls does not implement).
// TLS 1.3 suites are not configurable in crypto/tls and are all AEAD. The RSA variants stay
// for operator-provided RSA certificates (file mode).
var CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// CurvePreferences are the key exchange groups: the hybrid post-quantum X25519MLKEM768
// first, then X25519, P-256 and P-384 for clients without it.
var CurvePreferences = []tls.CurveID{
	tls.X25519MLKEM768,
	tls.X25519,
	tls.CurveP256,
	tls.CurveP384,
}

// PolicyOptions are the parts of the edge's TLS configuration that vary.
type PolicyOptions struct {
	// GetCertificate picks the certificate for a handshake (normally Manager.GetCertificate).
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ACMEALPN adds acme-tls/1 to the ALPN protocols, which TLS-ALPN-01 validation needs:
	// crypto/tls refuses a client whose protocols share none with the server's.
	ACMEALPN bool
	// DisableSessionTickets turns resumption off (benchmarks of full handshakes).
	DisableSessionTickets bool
}

// ServerTLSConfig is the edge's TLS policy: TLS 1.2 and 1.3 only, ECDHE+AEAD suites, the
// groups of [CurvePreferences], HTTP/2 and HTTP/1.1 over ALPN.
func ServerTLSConfig(opts PolicyOptions) *tls.Config {
	protos := []string{"h2", "http/1.1"}
	if opts.ACMEALPN {
		protos = append(protos, ALPNProtoACME)
	}
	return &tls.Config{
		MinVersion:             tls.VersionTLS12,
		MaxVersion:             tls.VersionTLS13,
		CipherSuites:           append([]uint16(nil), CipherSuites...),
		CurvePreferences:       append([]tls.CurveID(nil), CurvePreferences...),
		NextProtos:             protos,
		GetCertificate:         opts.GetCertificate,
		SessionTicketsDisabled: opts.DisableSessionTickets,
	}
}

// HSTSValue is the Strict-Transport-Security header value of the edge. Preload is opt-in:
// once a domain is on the browsers' preload list, leaving it takes months.
func HSTSValue(preload bool) string {
	v := "max-age=63072000; includeSubDomains"
	if preload {
		v += "; preload"
	}
	return v
}

// WithHSTS sets the HSTS header on every response served over TLS (browsers ignore it
// over plain HTTP, and sending it there would only confuse).
func WithHSTS(next http.Handler, preload bool) http.Handler {
	value := HSTSValue(preload)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", value)
		}
		next.ServeHTTP(w, r)
	})
}
