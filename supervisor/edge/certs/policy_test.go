package certs

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestServerTLSConfigPolicy(t *testing.T) {
	c := ServerTLSConfig(PolicyOptions{})
	if c.MinVersion != tls.VersionTLS12 || c.MaxVersion != tls.VersionTLS13 {
		t.Fatalf("versions %x..%x", c.MinVersion, c.MaxVersion)
	}
	for _, id := range c.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20_POLY1305")) {
			t.Errorf("suite %s is not ECDHE+AEAD", name)
		}
		for _, insecure := range tls.InsecureCipherSuites() {
			if insecure.ID == id {
				t.Errorf("insecure suite %s", name)
			}
		}
	}
	if len(c.CipherSuites) != 6 {
		t.Errorf("%d suites, want the 6 ECDHE+AEAD ones", len(c.CipherSuites))
	}
	want := []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384}
	if !slices.Equal(c.CurvePreferences, want) {
		t.Errorf("curves %v, want %v", c.CurvePreferences, want)
	}
	if !slices.Equal(c.NextProtos, []string{"h2", "http/1.1"}) {
		t.Errorf("ALPN %v", c.NextProtos)
	}
	if c.SessionTicketsDisabled {
		t.Error("session tickets off by default")
	}
	a := ServerTLSConfig(PolicyOptions{ACMEALPN: true, DisableSessionTickets: true})
	if !slices.Equal(a.NextProtos, []string{"h2", "http/1.1", ALPNProtoACME}) || !a.SessionTicketsDisabled {
		t.Errorf("with ACME ALPN: %v, tickets disabled %v", a.NextProtos, a.SessionTicketsDisabled)
	}
	// The exported slices are copied: changing the config leaves the policy alone.
	c.CipherSuites[0] = 0
	if CipherSuites[0] == 0 {
		t.Fatal("ServerTLSConfig shares the CipherSuites slice")
	}
}

func TestHSTS(t *testing.T) {
	if got := HSTSValue(false); got != "max-age=63072000; includeSubDomains" {
		t.Fatalf("HSTSValue(false) = %q", got)
	}
	if got := HSTSValue(true); got != "max-age=63072000; includeSubDomains; preload" {
		t.Fatalf("HSTSValue(true) = %q", got)
	}
	h := WithHSTS(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), true)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://x/", nil))
	if rec.Header().Get("Strict-Transport-Security") != "" {
		t.Fatal("HSTS sent over plain HTTP")
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://x/", nil))
	if rec.Header().Get("Strict-Transport-Security") != HSTSValue(true) {
		t.Fatalf("HSTS over TLS: %q", rec.Header().Get("Strict-Transport-Security"))
	}
}

// TestPolicyHandshakes shakes hands with a real listener using the edge's config.
func TestPolicyHandshakes(t *testing.T) {
	m, _ := newSelfSigned(t, t.TempDir(), nil, "edge.corpintel.test")
	e := startEdge(t, m, nil, 0, 0)
	roots := caPool(t, m)
	dial := func(c *tls.Config) (tls.ConnectionState, error) {
		c.ServerName = "edge.corpintel.test"
		c.RootCAs = roots
		conn, err := tls.Dial("tcp", e.tlsAddr, c)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer conn.Close()
		return conn.ConnectionState(), nil
	}
	cases := []struct {
		name  string
		cfg   *tls.Config
		ok    bool
		check func(tls.ConnectionState) string
	}{
		{"TLS 1.0 refused", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, false, nil},
		{"TLS 1.1 refused", &tls.Config{MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11}, false, nil},
		{"TLS 1.2 CBC refused", &tls.Config{MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}}, false, nil},
		{"TLS 1.2 GCM", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, true,
			func(s tls.ConnectionState) string {
				if s.Version != tls.VersionTLS12 {
					return "not TLS 1.2"
				}
				return ""
			}},
		{"TLS 1.3 default client gets the hybrid post-quantum group", &tls.Config{}, true,
			func(s tls.ConnectionState) string {
				if s.Version != tls.VersionTLS13 || s.CurveID != tls.X25519MLKEM768 {
					return "got " + tls.VersionName(s.Version) + " " + s.CurveID.String()
				}
				return ""
			}},
		{"X25519 only", &tls.Config{CurvePreferences: []tls.CurveID{tls.X25519}}, true, nil},
		{"P-256 only", &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP256}}, true, nil},
		{"P-384 only", &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP384}}, true, nil},
		{"P-521 only refused", &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP521}}, false, nil},
		{"ALPN h2", &tls.Config{NextProtos: []string{"h2", "http/1.1"}}, true,
			func(s tls.ConnectionState) string {
				if s.NegotiatedProtocol != "h2" {
					return "negotiated " + s.NegotiatedProtocol
				}
				return ""
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := dial(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("handshake error %v, want success %v", err, tc.ok)
			}
			if tc.check != nil {
				if msg := tc.check(st); msg != "" {
					t.Fatal(msg)
				}
			}
		})
	}

	// http.Server with TLSConfig() speaks HTTP/2, sets HSTS and names no server version.
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: "edge.corpintel.test"},
		ForceAttemptHTTP2: true,
	}, Timeout: 5 * time.Second}
	resp, err := client.Get("https://" + e.tlsAddr + "/path?q=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.Header.Get("Strict-Transport-Security") != HSTSValue(false) || resp.Header.Get("Server") != "" {
		t.Fatalf("proto %s, HSTS %q, Server %q, body %q", resp.Proto, resp.Header.Get("Strict-Transport-Security"), resp.Header.Get("Server"), body)
	}
}

func TestSessionTicketRotation(t *testing.T) {
	clock := newFakeClock(time.Now())
	m, err := New(Config{Mode: ModeSelfSigned, Names: []string{"edge.corpintel.test"}, StateDir: t.TempDir(),
		TicketKeyRotation: time.Hour, TicketKeysKept: 2}, Deps{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e := startEdge(t, m, nil, 0, 0)
	cache := tls.NewLRUClientSessionCache(8)
	resumed := func() bool {
		t.Helper()
		conn, err := tls.Dial("tcp", e.tlsAddr, &tls.Config{ServerName: "edge.corpintel.test", InsecureSkipVerify: true, ClientSessionCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// TLS 1.3 tickets arrive after the handshake: read once so the client stores them.
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = conn.Read(make([]byte, 1))
		return conn.ConnectionState().DidResume
	}
	if resumed() {
		t.Fatal("first connection resumed")
	}
	if !resumed() {
		t.Fatal("second connection did not resume with a fresh ticket")
	}
	// One rotation: the old key still decrypts.
	clock.Advance(time.Hour)
	m.maintain(t.Context())
	if !resumed() {
		t.Fatal("ticket of the previous key not accepted after one rotation")
	}
	// Two more rotations without new tickets: the key of the cached ticket is gone.
	cache2 := tls.NewLRUClientSessionCache(8)
	cache = cache2
	resumed()
	clock.Advance(time.Hour)
	m.maintain(t.Context())
	clock.Advance(time.Hour)
	m.maintain(t.Context())
	if resumed() {
		t.Fatal("ticket accepted after its key was rotated out")
	}
	if got := len(m.tickets.keys); got != 2 {
		t.Fatalf("%d ticket keys kept, want 2", got)
	}
}

func TestSessionTicketsDisabled(t *testing.T) {
	m, err := New(Config{Mode: ModeSelfSigned, Names: []string{"edge.corpintel.test"}, StateDir: t.TempDir(),
		DisableSessionTickets: true}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e := startEdge(t, m, nil, 0, 0)
	cache := tls.NewLRUClientSessionCache(8)
	for i := 0; i < 2; i++ {
		conn, err := tls.Dial("tcp", e.tlsAddr, &tls.Config{ServerName: "edge.corpintel.test", InsecureSkipVerify: true, ClientSessionCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = conn.Read(make([]byte, 1))
		if conn.ConnectionState().DidResume {
			t.Fatal("resumed with tickets disabled")
		}
		conn.Close()
	}
	m.maintain(t.Context()) // no rotation with tickets off
	if len(m.tickets.keys) != 0 {
		t.Fatal("ticket keys made with tickets disabled")
	}
}
