// Command tlsbench is bench/tls.sh's helper for full TLS handshakes per second:
//
//	tlsbench gencert -dir DIR -name edge.corpintel.test
//	    an ECDSA P-256 CA and leaf: DIR/ca.pem, DIR/cert.pem (leaf + CA), DIR/key.pem;
//	tlsbench serve -addr 127.0.0.1:PORT -cert C -key K [-tickets]
//	    an HTTPS server with the edge's TLS configuration (supervisor/edge/certs in file
//	    mode: the same GetCertificate and policy the edge serves with); answers "ok";
//	tlsbench load -addr 127.0.0.1:PORT -sni NAME -conc 16 -duration 10s [-curves x25519]
//	    [-tls 1.3] [-pids 1,2,3]
//	    closed loop: every request is a new TCP connection with a full handshake (no
//	    session cache), one HTTP/1.1 GET with Connection: close, read to EOF. With -pids
//	    it also reads those processes' CPU time (utime+stime from /proc) before and after,
//	    so handshakes per CPU second of the server can be compared on a shared machine.
//
// load prints one JSON object. Both servers listen on 127.0.0.1 only.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/corpintel/corpintel/supervisor/edge/certs"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tlsbench gencert|serve|load [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gencert":
		err = gencert(os.Args[2:])
	case "serve":
		err = serve(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlsbench:", err)
		os.Exit(1)
	}
}

func gencert(args []string) error {
	fs := flag.NewFlagSet("gencert", flag.ExitOnError)
	dir := fs.String("dir", ".", "output directory")
	name := fs.String("name", "edge.corpintel.test", "DNS name of the leaf")
	_ = fs.Parse(args)
	caKey, err := ecdsaKey()
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tlsbench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsaKey()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: *name}, DNSNames: []string{*name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), caPEM...)
	for file, b := range map[string][]byte{
		"ca.pem": caPEM, "cert.pem": certPEM,
		"key.pem": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(filepath.Join(*dir, file), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func ecdsaKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	certFile := fs.String("cert", "cert.pem", "certificate chain")
	keyFile := fs.String("key", "key.pem", "private key")
	tickets := fs.Bool("tickets", false, "session tickets on (the edge's default); off measures full handshakes only")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile here until the server stops")
	_ = fs.Parse(args)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to listen on %s: benchmarks listen on 127.0.0.0/8 only", *addr)
	}
	state, err := os.MkdirTemp("", "tlsbench-state-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	m, err := certs.New(certs.Config{
		Mode: certs.ModeFile, StateDir: state, DisableSessionTickets: !*tickets,
		File: certs.FileConfig{CertFile: *certFile, KeyFile: *keyFile},
	}, certs.Deps{})
	if err != nil {
		return err
	}
	defer m.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String()) // the script reads the port from here
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "ok\n")
		}),
		TLSConfig:         m.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type loadResult struct {
	Handshakes      int64    `json:"handshakes"`
	Errors          int64    `json:"errors"`
	FirstErrors     []string `json:"first_errors,omitempty"`
	Seconds         float64  `json:"seconds"`
	PerSecond       float64  `json:"per_second"`
	Resumed         int64    `json:"resumed"`
	Version         string   `json:"tls_version"`
	Group           string   `json:"group"`
	Cipher          string   `json:"cipher"`
	ServerCPUSec    float64  `json:"server_cpu_seconds,omitempty"`
	PerServerCPUSec float64  `json:"handshakes_per_server_cpu_second,omitempty"`
	LatencyP50Ms    float64  `json:"latency_p50_ms"`
	LatencyP99Ms    float64  `json:"latency_p99_ms"`
	Conc            int      `json:"conc"`
	ClientProcs     int      `json:"client_gomaxprocs"`
}

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	addr := fs.String("addr", "", "server address 127.0.0.1:PORT")
	sni := fs.String("sni", "edge.corpintel.test", "server name")
	conc := fs.Int("conc", 16, "concurrent connections")
	duration := fs.Duration("duration", 10*time.Second, "run length")
	curves := fs.String("curves", "x25519", "client groups: default (Go's: X25519MLKEM768, X25519, P-256, P-384; shares for the first two), x25519 (X25519 share; P-256 also listed: OpenSSL requires the ECDSA certificate's curve among a TLS 1.2 client's groups), p256")
	version := fs.String("tls", "1.3", "TLS version: 1.2 or 1.3")
	pids := fs.String("pids", "", "comma-separated server pids whose CPU time to measure")
	_ = fs.Parse(args)
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to load %s: load goes to 127.0.0.0/8 only", *addr)
	}
	cfg := &tls.Config{
		ServerName: *sni,
		// The client's own verification would take CPU from the servers on a shared
		// 2-core box; both servers present the same certificate.
		InsecureSkipVerify: true, // #nosec G402 -- a benchmark client on loopback
		NextProtos:         []string{"http/1.1"},
	}
	switch *curves {
	case "default":
	case "x25519":
		cfg.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	case "p256":
		cfg.CurvePreferences = []tls.CurveID{tls.CurveP256}
	default:
		return fmt.Errorf("unknown -curves %q", *curves)
	}
	switch *version {
	case "1.3":
		cfg.MinVersion = tls.VersionTLS13
	case "1.2":
		cfg.MaxVersion, cfg.MinVersion = tls.VersionTLS12, tls.VersionTLS12
	default:
		return fmt.Errorf("unknown -tls %q", *version)
	}
	var pidList []int
	for _, p := range strings.Split(*pids, ",") {
		if p = strings.TrimSpace(p); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("-pids: %w", err)
			}
			pidList = append(pidList, n)
		}
	}
	req := []byte("GET / HTTP/1.1\r\nHost: " + *sni + "\r\nConnection: close\r\n\r\n")

	var handshakes, errs, resumed atomic.Int64
	var mu sync.Mutex
	var firstErrors []string
	var lat []time.Duration
	var last tls.ConnectionState
	cpu0 := cpuSeconds(pidList)
	start := time.Now()
	end := start.Add(*duration)
	ctx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			buf := make([]byte, 4096)
			d := &net.Dialer{Timeout: 5 * time.Second}
			for time.Now().Before(end) {
				t0 := time.Now()
				st, err := oneRequest(ctx, d, *addr, cfg, req, buf)
				if err != nil {
					if !time.Now().Before(end) {
						break // cut off by the end of the run, not a failure
					}
					errs.Add(1)
					mu.Lock()
					if len(firstErrors) < 5 {
						firstErrors = append(firstErrors, err.Error())
					}
					mu.Unlock()
					continue
				}
				mine = append(mine, time.Since(t0))
				handshakes.Add(1)
				if st.DidResume {
					resumed.Add(1)
				}
				if len(mine) == 1 {
					mu.Lock()
					last = st
					mu.Unlock()
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	cpu1 := cpuSeconds(pidList)
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	r := loadResult{
		Handshakes: handshakes.Load(), Errors: errs.Load(), FirstErrors: firstErrors,
		Seconds: elapsed, PerSecond: float64(handshakes.Load()) / elapsed, Resumed: resumed.Load(),
		Version: tls.VersionName(last.Version), Group: last.CurveID.String(), Cipher: tls.CipherSuiteName(last.CipherSuite),
		LatencyP50Ms: pct(0.5), LatencyP99Ms: pct(0.99), Conc: *conc, ClientProcs: runtime.GOMAXPROCS(0),
	}
	if len(pidList) > 0 {
		r.ServerCPUSec = cpu1 - cpu0
		if r.ServerCPUSec > 0 {
			r.PerServerCPUSec = float64(r.Handshakes) / r.ServerCPUSec
		}
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

func oneRequest(ctx context.Context, d *net.Dialer, addr string, cfg *tls.Config, req, buf []byte) (tls.ConnectionState, error) {
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	c := tls.Client(raw, cfg)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.HandshakeContext(ctx); err != nil {
		return tls.ConnectionState{}, err
	}
	if _, err := c.Write(req); err != nil {
		return tls.ConnectionState{}, err
	}
	n := 0
	for {
		k, err := c.Read(buf[n:])
		n += k
		if err != nil {
			if errors.Is(err, io.EOF) || n > 0 {
				break
			}
			return tls.ConnectionState{}, err
		}
		if n == len(buf) {
			n = 0
		}
	}
	if !strings.HasPrefix(string(buf[:min(n, 12)]), "HTTP/1.1 200") {
		return tls.ConnectionState{}, fmt.Errorf("unexpected response %q", buf[:min(n, 40)])
	}
	return c.ConnectionState(), nil
}

// cpuSeconds sums utime+stime of the processes (USER_HZ is 100 on Linux).
func cpuSeconds(pids []int) float64 {
	var total float64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command name; utime and stime are fields 14, 15.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+2:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		total += (u + st) / 100
	}
	return total
}
