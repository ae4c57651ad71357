package web

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/corpintel/corpintel/internal/requestid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// HeaderRequestID carries the request id in both directions.
const HeaderRequestID = requestid.Header

// RequestID returns the id of the request c (set by the RequestIDs middleware).
func RequestID(c echo.Context) string {
	return c.Response().Header().Get(HeaderRequestID)
}

// RequestIDs accepts a sane incoming X-Request-ID (from the supervisor's proxy) or makes
// one, and echoes it in the response.
func RequestIDs() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Response().Header().Set(HeaderRequestID, requestid.Accept(c.Request().Header.Get(HeaderRequestID)))
			return next(c)
		}
	}
}

// SecurityHeaders sets the headers every JSON response carries. The /docs page sets its
// own CSP (it needs its inline-free script and style).
func SecurityHeaders() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("Cache-Control", "no-store")
			return next(c)
		}
	}
}

// CORS allows exactly the configured origins; with none configured it adds nothing, so
// browsers refuse cross-origin calls.
func CORS(origins []string) echo.MiddlewareFunc {
	if len(origins) == 0 {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	return middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOrigins:  origins,
		AllowMethods:  []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
		AllowHeaders:  []string{echo.HeaderAuthorization, echo.HeaderContentType, HeaderRequestID},
		ExposeHeaders: []string{HeaderRequestID},
		MaxAge:        600,
	})
}

// AccessLog writes one structured line per request. Fast successful reads and health
// probes are logged at debug so that a loaded replica does not spend its CPU on logs.
func AccessLog(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			req := c.Request()
			d := time.Since(start)
			status := c.Response().Status
			level := slog.LevelInfo
			if status < 400 && (req.Method == http.MethodGet || req.Method == http.MethodHead) && d < 100*time.Millisecond {
				level = slog.LevelDebug
			}
			if status >= 500 {
				level = slog.LevelError
			}
			attrs := []slog.Attr{slog.String("request_id", RequestID(c)), slog.String("method", req.Method),
				slog.String("route", c.Path()), slog.String("path", req.URL.Path),
				slog.Int("status", status), slog.Int64("bytes", c.Response().Size),
				slog.Float64("duration_ms", float64(d.Microseconds())/1000), slog.String("client_ip", c.RealIP())}
			if aerr, ok := c.Get(auditErrorKey).(error); ok {
				level = slog.LevelError
				attrs = append(attrs, slog.String("audit_error", aerr.Error()))
			}
			if log.Enabled(req.Context(), level) {
				log.LogAttrs(req.Context(), level, "request", attrs...)
			}
			return nil
		}
	}
}

// HTTPMetrics holds the request metrics the seed's dashboards and alerts use.
type HTTPMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
}

// NewHTTPMetrics registers the HTTP metrics on reg.
func NewHTTPMetrics(reg prometheus.Registerer) *HTTPMetrics {
	m := &HTTPMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corpintel_api_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "corpintel_api_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "corpintel_api_http_requests_in_flight", Help: "HTTP requests being served.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inflight)
	return m
}

// Middleware observes every request; it must run inside AccessLog so that errors are
// already rendered and the status is final.
func (m *HTTPMetrics) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			m.inflight.Inc()
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			m.inflight.Dec()
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			method := c.Request().Method
			m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
			m.requests.WithLabelValues(route, method, strconv.Itoa(c.Response().Status)).Inc()
			return nil
		}
	}
}
