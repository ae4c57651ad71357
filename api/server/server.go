// Package server assembles the API's HTTP handler: the middleware chain every request
// passes, the modules' routes under /api/v1, health and readiness, /metrics, and the
// OpenAPI document with its /docs page. It knows no module; api.Run passes them in.
package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/corpintel/corpintel/api/openapi"
	"github.com/corpintel/corpintel/api/web"
	"github.com/corpintel/corpintel/internal/version"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Prefix is where the modules' routes are mounted.
const Prefix = "/api/v1"

// Check is one readiness dependency.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
}

// Options are what the handler is assembled from.
type Options struct {
	Log         *slog.Logger
	Registry    *prometheus.Registry
	Auth        web.Authenticator
	Audit       web.Auditor
	Modules     []web.Module
	Checks      []Check
	CORSOrigins []string
	// TrustedProxies are the only peers whose X-Forwarded-For is believed (the edge).
	TrustedProxies []*net.IPNet
}

// Handler is the assembled API.
type Handler struct {
	*echo.Echo
	Routes []web.Route
	doc    []byte
}

// New assembles the handler. It fails when a route breaks the house rules.
func New(o Options) (*Handler, error) {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = web.ErrorHandler(o.Log)
	e.IPExtractor = ipExtractor(o.TrustedProxies)
	m := web.NewHTTPMetrics(o.Registry)
	e.Use(middleware.Recover(), web.RequestIDs(), web.AccessLog(o.Log), m.Middleware(),
		web.SecurityHeaders(), web.CORS(o.CORSOrigins))

	routes, err := web.Mount(e.Group(Prefix), o.Auth, o.Audit, o.Modules...)
	if err != nil {
		return nil, err
	}
	h := &Handler{Echo: e, Routes: routes}
	doc, err := json.Marshal(openapi.Build("corpintel API", version.Version, Prefix, routes))
	if err != nil {
		return nil, fmt.Errorf("build OpenAPI document: %w", err)
	}
	h.doc = doc

	e.GET("/health", func(c echo.Context) error {
		return web.JSON(c, http.StatusOK, map[string]string{"status": "ok", "version": version.Version})
	})
	e.GET("/health/ready", readiness(o.Checks))
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry})))
	e.GET("/openapi.json", func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, h.doc)
	})
	e.GET("/docs", openapi.DocsHandler)
	e.GET("/docs/docs.js", openapi.DocsScriptHandler)
	return h, nil
}

// CheckResult is one dependency's readiness.
type CheckResult struct {
	Status    string  `json:"status"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

// Readiness is the body of /health/ready.
type Readiness struct {
	Status string                 `json:"status"`
	Checks map[string]CheckResult `json:"checks"`
}

func readiness(checks []Check) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		r := Readiness{Status: "ready", Checks: map[string]CheckResult{}}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, ch := range checks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				err := ch.Probe(ctx)
				res := CheckResult{Status: "up", LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
				if err != nil {
					res.Status, res.Error = "down", err.Error()
				}
				mu.Lock()
				r.Checks[ch.Name] = res
				mu.Unlock()
			}()
		}
		wg.Wait()
		code := http.StatusOK
		names := make([]string, 0, len(r.Checks))
		for n := range r.Checks {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if r.Checks[n].Status != "up" {
				r.Status, code = "not ready", http.StatusServiceUnavailable
			}
		}
		return web.JSON(c, code, r)
	}
}

// Serve runs h on addr until ctx ends, then drains in-flight requests for up to drain.
func Serve(ctx context.Context, h http.Handler, addr string, drain time.Duration, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another process using the port?)", addr, err)
	}
	return ServeListener(ctx, h, ln, drain, log)
}

// ServeListener is Serve on an existing listener.
func ServeListener(ctx context.Context, h http.Handler, ln net.Listener, drain time.Duration, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("API listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	log.Info("draining in-flight requests", "timeout", drain)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	return nil
}

// ipExtractor believes X-Forwarded-For only from the trusted proxies (the edge); from
// anyone else — another container on the stack network included — the TCP peer is the
// client.
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
