package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/stack"
	"github.com/corpintel/corpintel/supervisor/edge"
	"github.com/corpintel/corpintel/supervisor/edge/certs"
	"github.com/corpintel/corpintel/supervisor/localapi"
	"github.com/corpintel/corpintel/supervisor/reconcile"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
	"gopkg.in/natefinch/lumberjack.v2"
)

// uploadPrefix is where the API takes document uploads (companies/{id}/documents),
// which get the upload body limit instead of the default one.
const uploadPrefix = "/api/v1/companies/"

// newEdge builds the front door from the config.
func (d *Daemon) newEdge(cfg *config.Config) (*edge.Edge, error) {
	trusted, err := edge.ParsePrefixes(cfg.Edge.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("edge.trusted_proxies: %w", err)
	}
	allow, err := edge.ParsePrefixes(cfg.Edge.RateLimitAllow)
	if err != nil {
		return nil, fmt.Errorf("edge.rate_limit_allow: %w", err)
	}
	o := edge.Options{
		Log:            d.log,
		Proxy:          edge.NewProxyWith(d.log, edge.ProxyOptions{TrustedProxies: trusted, ResponseTimeout: time.Duration(cfg.Edge.RequestTimeout)}),
		Metrics:        promhttp.HandlerFor(d.metrics, promhttp.HandlerOpts{Registry: d.metrics}),
		Registerer:     d.metrics,
		TrustedProxies: trusted,
		RateLimit: edge.RateLimit{Rate: cfg.Edge.RateLimit, Burst: cfg.Edge.RateBurst, Allow: allow,
			Routes: []edge.RouteLimit{{Prefix: "/api/v1/auth/login", Rate: cfg.Edge.LoginRateLimit, Burst: 5},
				// The console's login (form and post, second factor) on top of its own
				// per-account and per-address throttle.
				{Prefix: "/admin/login", Rate: cfg.Edge.LoginRateLimit, Burst: 10}}},
		MetricsTokenFile: cfg.Edge.MetricsTokenFile,
		BodyLimit:        int64(cfg.Edge.BodyLimit),
		UploadLimit:      cfg.API.UploadMaxBytes + 1<<20, // multipart framing
		UploadPrefix:     uploadPrefix,
		Names:            cfg.TLS.Names,
		Now:              d.now,
		Admin:            d.opts.Admin,
	}
	if cfg.Edge.AccessLog {
		dir := filepath.Join(cfg.StateDir, "logs")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("access log: %w", err)
		}
		o.AccessLog = &lumberjack.Logger{Filename: filepath.Join(dir, "access.log"),
			MaxSize: max(1, int(cfg.Edge.AccessLogMaxSize/config.MiB)), MaxBackups: 5, Compress: true}
	}
	return edge.New(o), nil
}

// setBackends points the edge at the serving API replicas of a snapshot. A failed
// observation keeps the previous set: the replicas may well be serving while the
// engine does not answer.
func (d *Daemon) setBackends(s reconcile.Snapshot) {
	if s.Err != "" {
		return
	}
	var bs []edge.Backend
	for _, c := range s.Observed.ServiceContainers(stack.ServiceAPI) {
		if c.IP != "" && s.Serving(c) {
			bs = append(bs, edge.Backend{ID: c.ID, Addr: net.JoinHostPort(c.IP, strconv.Itoa(stack.PortAPI))})
		}
	}
	d.edge.Proxy().SetBackends(bs)
}

// drain is the reconciler's hook before an API replica stops.
func (d *Daemon) drain(ctx context.Context, id string) {
	if n := d.edge.Proxy().Drain(ctx, id); n > 0 {
		d.log.Warn("replica stops with requests in flight (its own drain finishes them)", "container", id[:min(12, len(id))], "in_flight", n)
	}
}

// publicListeners are the listeners of the public side, bound by Run.
type publicListeners struct {
	https, http net.Listener
	certs       *certs.Manager
	prober      *certs.Prober
}

func (p *publicListeners) close() {
	for _, ln := range []net.Listener{p.https, p.http} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	if p.certs != nil {
		_ = p.certs.Close()
	}
}

// tlsNames are the names the certificate covers: the configured ones, else this
// machine's host name, localhost and the loopback address.
func tlsNames(cfg *config.Config) []string {
	if len(cfg.TLS.Names) > 0 {
		return cfg.TLS.Names
	}
	names := []string{"localhost", "127.0.0.1"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		names = append([]string{h}, names...)
	}
	return names
}

func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// certConfig maps the [tls] config onto the certificate manager's.
func certConfig(cfg *config.Config) (certs.Config, error) {
	c := certs.Config{Mode: certs.Mode(cfg.TLS.Mode), Names: tlsNames(cfg), StateDir: filepath.Join(cfg.StateDir, "tls"),
		HTTPPort: portOf(cfg.Edge.HTTP), HTTPSPort: portOf(cfg.Edge.HTTPS)}
	switch c.Mode {
	case certs.ModeACME:
		if len(cfg.TLS.Names) == 0 {
			// ACME cannot certify a name nobody configured; serve a self-signed
			// certificate meanwhile and say so (status, log).
			c.Mode = certs.ModeSelfSigned
			break
		}
		c.ACME = certs.ACMEConfig{DirectoryURL: cfg.TLS.DirectoryURL, Email: cfg.TLS.Email}
		if cfg.TLS.EABKeyID != "" {
			b, err := os.ReadFile(cfg.TLS.EABHMACFile)
			if err != nil {
				return certs.Config{}, fmt.Errorf("tls.eab_hmac_file: %w", err)
			}
			c.ACME.EAB = &certs.EAB{KeyID: cfg.TLS.EABKeyID, HMACKey: string(trimNL(b))}
		}
	case certs.ModeFile:
		c.File = certs.FileConfig{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile}
	}
	return c, nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// listenPublic binds :443 and :80 (as configured). In the dev profile a port that is
// taken (or needs root) is skipped with a warning; elsewhere it is an error.
func (d *Daemon) listenPublic(cfg *config.Config) (*publicListeners, error) {
	p := &publicListeners{}
	if cfg.Edge.HTTPS == "" && cfg.Edge.HTTP == "" {
		return p, nil
	}
	bind := func(addr, what string) (net.Listener, error) {
		if addr == "" {
			return nil, nil
		}
		ln, err := edge.Listen(addr)
		if err != nil && cfg.Profile == "dev" && (errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EACCES)) {
			d.log.Warn("dev profile: "+what+" listener not started", "addr", addr, "err", err)
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return netutil.LimitListener(ln, cfg.Edge.MaxConnections), nil
	}
	var err error
	if p.https, err = bind(cfg.Edge.HTTPS, "HTTPS"); err != nil {
		return nil, err
	}
	if p.http, err = bind(cfg.Edge.HTTP, "HTTP"); err != nil {
		p.close()
		return nil, err
	}
	if p.https == nil && p.http == nil {
		return p, nil
	}
	cc, err := certConfig(cfg)
	if err != nil {
		p.close()
		return nil, err
	}
	if cc.Mode != certs.Mode(cfg.TLS.Mode) {
		d.log.Error("tls.mode is acme but tls.names is empty: serving a self-signed certificate until the names are configured")
	}
	m, err := certs.New(cc, certs.Deps{Logger: d.log, Registerer: d.metrics})
	if err != nil {
		p.close()
		return nil, fmt.Errorf("certificates: %w", err)
	}
	p.certs = m
	if p.https != nil {
		probeAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(portOf(p.https.Addr().String())))
		if p.prober, err = certs.NewProber(certs.ProberConfig{Addr: probeAddr, Names: cc.Names}, certs.Deps{Logger: d.log, Registerer: d.metrics}); err != nil {
			p.close()
			return nil, err
		}
	}
	return p, nil
}

// servePublic starts the public servers; they report a failure on errc.
func (d *Daemon) servePublic(ctx context.Context, cfg *config.Config, p *publicListeners, errc chan<- error, serve func(string, *http.Server, func() error)) []*http.Server {
	var servers []*http.Server
	if p.certs == nil {
		return nil
	}
	go func() {
		if err := p.certs.Run(ctx); err != nil && ctx.Err() == nil {
			errc <- fmt.Errorf("certificate manager stopped: %w", err)
		}
	}()
	if p.prober != nil {
		go p.prober.Run(ctx)
	}
	if cfg.TLS.Mode == string(certs.ModeACME) && len(cfg.TLS.Names) > 0 {
		// What would make issuance fail, said at start (also `corpintel check tls`).
		go func() {
			for _, f := range p.certs.Check(ctx, cfg.TLS.Names) {
				if f.Severity == certs.SeverityError {
					d.log.Error("tls preflight", "finding", f.String())
				} else {
					d.log.Info("tls preflight", "finding", f.String())
				}
			}
		}()
	}
	if p.https != nil {
		srv := edge.NewServer(certs.WithHSTS(d.edge.Handler(edge.Public), cfg.TLS.HSTSPreload), d.log)
		srv.TLSConfig = p.certs.TLSConfig()
		servers = append(servers, srv)
		serve("HTTPS listener", srv, func() error { return srv.ServeTLS(p.https, "", "") })
	}
	if p.http != nil {
		srv := edge.NewServer(p.certs.HTTPHandler(nil), d.log)
		servers = append(servers, srv)
		serve("HTTP listener", srv, func() error { return srv.Serve(p.http) })
	}
	return servers
}

// TLSCheck implements localapi.Operations: the certificate preflight of the running
// edge (in acme mode it is also run at start).
func (d *Daemon) TLSCheck(ctx context.Context) ([]certs.Finding, error) {
	d.mu.Lock()
	m := d.certs
	d.mu.Unlock()
	if m == nil {
		return nil, localapi.RequestErrorf("no HTTPS listener runs (edge.https is off, or the supervisor is not running)")
	}
	return m.Check(ctx, tlsNames(d.rec.Config())), nil
}
