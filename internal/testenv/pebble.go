package testenv

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// PebbleVersion is the Pebble release scripts/install-deps.sh builds (pebble and
// pebble-challtestsrv).
const PebbleVersion = "v2.10.1"

func init() {
	hints["pebble"] = "pebble and pebble-challtestsrv are looked up in $CORPINTEL_PEBBLE_BIN / $CORPINTEL_CHALLTESTSRV_BIN, " +
		toolPath("pebble", PebbleVersion) + " and PATH"
}

// toolPath is where scripts/install-deps.sh puts a Go tool.
func toolPath(name, version string) string {
	cache := os.Getenv("CORPINTEL_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "/root"
		}
		cache = filepath.Join(home, ".cache", "corpintel")
	}
	return filepath.Join(cache, "tools", name+"-"+version, name)
}

// lookTool finds a versioned tool: $envVar, then the install-deps cache (the pinned
// version), then PATH (which may hold another version, e.g. Debian's pebble 2.4).
func lookTool(envVar, name, version string) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("$%s=%s is not an executable file", envVar, p)
	}
	if p := toolPath(name, version); isExecutable(p) {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s %s not found", name, version)
}

// PebbleOptions configures a Pebble test CA.
type PebbleOptions struct {
	// CertValidity of issued certificates (whole seconds). Default 90 days.
	CertValidity time.Duration
	// EABKeys (key id → base64url HMAC key) turns External Account Binding on and
	// makes it required.
	EABKeys map[string]string
}

// Pebble is a private Pebble ACME CA (run with -strict, real validation: PEBBLE_VA_NOSLEEP
// only removes the VA's random sleeps) plus pebble-challtestsrv as its DNS server, which
// answers 127.0.0.1 for every A query. Pebble's VA validates HTTP-01 at
// 127.0.0.1:HTTPPort and TLS-ALPN-01 at 127.0.0.1:TLSPort: the test serves those.
type Pebble struct {
	DirectoryURL string // https://127.0.0.1:port/dir
	HTTPPort     int    // where the VA connects for HTTP-01
	TLSPort      int    // where the VA connects for TLS-ALPN-01
	DNSAddr      string // challtestsrv's DNS server, 127.0.0.1:port (UDP and TCP)
	ChallSrvURL  string // challtestsrv's management API (add CAA, A, SERVFAIL records)
	// CAPEM is the CA of Pebble's own HTTPS listener (made by testenv, not the issuing
	// root: see Roots).
	CAPEM []byte

	dir        string
	configPath string
	mgmtAddr   string
	pebbleBin  string
	pebble     *server
	challtest  *server
}

// StartPebble starts a private Pebble and challtestsrv for the test, on free 127.0.0.1
// ports, stopped when the test ends. Missing binaries skip the test locally and fail it
// under CI=true.
func StartPebble(t testing.TB, opts PebbleOptions) *Pebble {
	t.Helper()
	p, err := startPebble(opts)
	Require(t, "pebble", err)
	t.Cleanup(func() {
		p.stopProcs()
		_ = os.RemoveAll(p.dir)
	})
	return p
}

func startPebble(opts PebbleOptions) (*Pebble, error) {
	pebbleBin, err := lookTool("CORPINTEL_PEBBLE_BIN", "pebble", PebbleVersion)
	if err != nil {
		return nil, err
	}
	challBin, err := lookTool("CORPINTEL_CHALLTESTSRV_BIN", "pebble-challtestsrv", PebbleVersion)
	if err != nil {
		return nil, err
	}
	dir, err := serverDir("pebble")
	if err != nil {
		return nil, err
	}
	ports := make([]int, 6)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	p := &Pebble{
		DirectoryURL: fmt.Sprintf("https://127.0.0.1:%d/dir", ports[0]),
		mgmtAddr:     fmt.Sprintf("127.0.0.1:%d", ports[1]),
		HTTPPort:     ports[2],
		TLSPort:      ports[3],
		DNSAddr:      fmt.Sprintf("127.0.0.1:%d", ports[4]),
		ChallSrvURL:  fmt.Sprintf("http://127.0.0.1:%d", ports[5]),
		dir:          dir,
		configPath:   filepath.Join(dir, "pebble-config.json"),
		pebbleBin:    pebbleBin,
	}
	certPath, keyPath, caPEM, err := writeListenerCert(dir)
	if err != nil {
		return nil, err
	}
	p.CAPEM = caPEM
	validity := uint64(90 * 24 * 3600)
	if opts.CertValidity > 0 {
		validity = uint64(opts.CertValidity / time.Second)
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"managementListenAddress":        p.mgmtAddr,
		"certificate":                    certPath,
		"privateKey":                     keyPath,
		"httpPort":                       p.HTTPPort,
		"tlsPort":                        p.TLSPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": len(opts.EABKeys) > 0,
		"externalAccountMACKeys":         opts.EABKeys,
		"domainBlocklist":                []string{"blocked-domain.example"},
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles": map[string]any{
			"default": map[string]any{"description": "testenv", "validityPeriod": validity},
		},
	}}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.configPath, b, 0o600); err != nil {
		return nil, fmt.Errorf("pebble config: %w", err)
	}

	run, err := os.MkdirTemp(dir, "challtestsrv-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(challBin,
		"-dnsserver", p.DNSAddr,
		"-defaultIPv4", "127.0.0.1",
		"-defaultIPv6", "",
		"-management", p.ChallSrvURL[len("http://"):],
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	cmd.Dir = run
	if p.challtest, err = startServer("pebble-challtestsrv", run, cmd, syscall.SIGTERM, nil); err != nil {
		return nil, err
	}
	if err := waitReady(p.challtest, 30*time.Second, func(ctx context.Context) error {
		return dialOK(ctx, p.ChallSrvURL[len("http://"):])
	}); err != nil {
		p.stopProcs()
		return nil, err
	}
	if err := p.startCA(); err != nil {
		p.stopProcs()
		return nil, err
	}
	return p, nil
}

func dialOK(ctx context.Context, addr string) error {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// startCA starts the pebble process with the config written by startPebble.
func (p *Pebble) startCA() error {
	run, err := os.MkdirTemp(p.dir, "pebble-")
	if err != nil {
		return err
	}
	cmd := exec.Command(p.pebbleBin, "-config", p.configPath, "-dnsserver", p.DNSAddr, "-strict")
	cmd.Dir = run
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1")
	if p.pebble, err = startServer("pebble", run, cmd, syscall.SIGTERM, nil); err != nil {
		return err
	}
	client := p.HTTPClient()
	return waitReady(p.pebble, 30*time.Second, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.DirectoryURL, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("directory: %s", resp.Status)
		}
		return nil
	})
}

func (p *Pebble) stopProcs() {
	if p.pebble != nil {
		p.pebble.stop()
	}
	if p.challtest != nil {
		p.challtest.stop()
	}
}

// Stop stops the CA (challtestsrv keeps running): a CA outage. Pebble keeps its state in
// memory, so after Start it knows no accounts, orders or roots of before.
func (p *Pebble) Stop(t testing.TB) {
	t.Helper()
	if p.pebble != nil {
		p.pebble.stop()
	}
}

// Start starts the CA again on the same ports after Stop.
func (p *Pebble) Start(t testing.TB) {
	t.Helper()
	if err := p.startCA(); err != nil {
		t.Fatalf("testenv: restart pebble: %v", err)
	}
}

// HTTPClient trusts Pebble's HTTPS listener.
func (p *Pebble) HTTPClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CAPEM)
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
}

// Roots returns the current issuing root of the CA (a new one after every Start), to
// verify issued certificates against.
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	resp, err := p.HTTPClient().Get("https://" + p.mgmtAddr + "/roots/0")
	if err != nil {
		t.Fatalf("testenv: pebble root: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("testenv: pebble root: %s %v", resp.Status, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("testenv: pebble root is not PEM: %q", b)
	}
	return pool
}

// ChallSrv posts one request to challtestsrv's management API, e.g.
// ChallSrv(t, "/add-caa", map[string]any{"host": "x.test", "policies": [...]}).
func (p *Pebble) ChallSrv(t testing.TB, path string, body any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(p.ChallSrvURL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("testenv: challtestsrv %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("testenv: challtestsrv %s: %s %s", path, resp.Status, msg)
	}
}

// writeListenerCert makes a throwaway CA and a certificate for 127.0.0.1/localhost for
// Pebble's HTTPS listeners (the module ships test certificates, the binary does not).
func writeListenerCert(dir string) (certPath, keyPath string, caPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "testenv pebble listener CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return "", "", nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", "", nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return "", "", nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	certPath, keyPath = filepath.Join(dir, "listener.pem"), filepath.Join(dir, "listener.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", nil, err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", nil, err
	}
	return certPath, keyPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), nil
}

// FreePort returns a free 127.0.0.1 port (another process may take it before use).
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// LoopbackAddr is 127.0.0.1:port.
func LoopbackAddr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
