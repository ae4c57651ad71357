package edge

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure the edge.
type Options struct {
	Log *slog.Logger
	// Proxy forwards to the replicas (NewProxyWith).
	Proxy *Proxy
	// Metrics is the supervisor's own exposition (served at /metrics on the loopback
	// listener, and on public ones with the bearer token).
	Metrics http.Handler
	// Registerer gets the edge's metrics (nil: none).
	Registerer prometheus.Registerer
	// TrustedProxies are load balancers in front whose forwarding headers count.
	TrustedProxies Prefixes
	// RateLimit applies to public listeners; the loopback listener is exempt.
	RateLimit RateLimit
	// MetricsToken, when set, is a file whose content as a bearer token opens /metrics
	// on the public listeners (for an external Prometheus).
	MetricsTokenFile string
	// BodyLimit bounds request bodies (default 10 MiB); UploadLimit bounds them on
	// UploadPrefix routes (document uploads).
	BodyLimit, UploadLimit int64
	UploadPrefix           string
	// Names, when set, are the host names the public listeners answer for; a request
	// for another name (not an IP literal) gets 421.
	Names []string
	// AccessLog receives one JSON line per request (nil: none). Never tokens or cookies,
	// never the query string (it can carry signatures).
	AccessLog io.Writer
	// Now is the clock of the rate limiter (tests).
	Now func() time.Time
	// Admin, when set, serves every path under /admin (the console) on both kinds of
	// listener, after the host check and the rate limit, exempt from maintenance mode;
	// ClientAddr and ForwardedProto tell it what the edge worked out.
	Admin http.Handler
}

// Listener kinds.
const (
	Loopback = "loopback"
	Public   = "public"
)

// Edge is the front door: the handlers of the loopback and the public listeners.
type Edge struct {
	opts    Options
	proxy   *Proxy
	limiter *limiter
	metrics *edgeMetrics
	maint   atomic.Pointer[Maintenance]
	logMu   sync.Mutex
}

// Maintenance is what the edge says while an operation holds the stack.
type Maintenance struct {
	// Reason names the operation ("restore #4").
	Reason string
	// RetryAfter is what clients are told to wait.
	RetryAfter time.Duration
}

// New returns the edge.
func New(o Options) *Edge {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.BodyLimit <= 0 {
		o.BodyLimit = 10 << 20
	}
	if o.Proxy == nil {
		o.Proxy = NewProxyWith(o.Log, ProxyOptions{TrustedProxies: o.TrustedProxies})
	}
	e := &Edge{opts: o, proxy: o.Proxy, limiter: newLimiter(o.RateLimit, o.Now), metrics: newEdgeMetrics(o.Registerer)}
	e.proxy.trusted = o.TrustedProxies
	e.proxy.onRetry = e.metrics.retries.Inc
	if e.metrics.clients != nil {
		e.metrics.clients.Set(0)
	}
	return e
}

// Proxy is the edge's forwarding part.
func (e *Edge) Proxy() *Proxy { return e.proxy }

// Run sweeps idle rate-limit buckets and keeps the proxy's checks alive until ctx ends.
func (e *Edge) Run(ctx context.Context) {
	go e.proxy.Run(ctx)
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.limiter.sweep()
			e.metrics.setClients(e.limiter.clients())
			e.metrics.setBackends(len(e.proxy.pool.backends()))
		}
	}
}

// SetMaintenance switches maintenance mode on (m != nil) or off. While on, API routes
// answer 503 with Retry-After; the console routes (/admin) stay reachable.
func (e *Edge) SetMaintenance(m *Maintenance) {
	if m != nil && m.RetryAfter <= 0 {
		m.RetryAfter = 30 * time.Second
	}
	e.maint.Store(m)
	if m != nil {
		e.opts.Log.Info("edge: maintenance mode on", "reason", m.Reason)
	} else {
		e.opts.Log.Info("edge: maintenance mode off")
	}
}

// InMaintenance returns the maintenance state (nil: serving).
func (e *Edge) InMaintenance() *Maintenance { return e.maint.Load() }

// Paths the edge treats itself.
const (
	PathMetrics = "/metrics"
	PathReady   = "/health/ready"
	PathAdmin   = "/admin"
)

// Handler returns the handler of a listener of kind Loopback or Public.
func (e *Edge) Handler(kind string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{client: clientAddr(r, e.opts.TrustedProxies), proto: forwardedProto(r, e.opts.TrustedProxies), listener: kind}
		if kind == Loopback {
			info.client, info.proto = peerAddr(r), "http" // nobody is in front of loopback
		}
		r = withInfo(r, info)
		rec := &statusRecorder{ResponseWriter: w}
		e.serve(kind, rec, r)
		d := time.Since(start)
		e.metrics.observe(kind, rec.status(), d)
		e.accessLog(info, r, rec, d)
	})
}

func (e *Edge) serve(kind string, w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if kind == Public && !e.hostAllowed(r.Host) {
		writeProblem(w, r, http.StatusMisdirectedRequest, "Misdirected Request", "this server does not answer for "+strconv.Quote(hostOnly(r.Host)))
		return
	}
	if isPath(path, PathMetrics) {
		if kind == Public && !e.metricsAuthorized(r) {
			writeProblem(w, r, http.StatusNotFound, "Not Found", "")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeProblem(w, r, http.StatusMethodNotAllowed, "Method Not Allowed", "")
			return
		}
		if e.opts.Metrics == nil {
			writeProblem(w, r, http.StatusNotFound, "Not Found", "")
			return
		}
		e.opts.Metrics.ServeHTTP(w, r)
		return
	}
	if kind == Public && isPath(path, PathReady) {
		// Readiness names dependencies and their errors: for the operator, not the world.
		writeProblem(w, r, http.StatusNotFound, "Not Found", "")
		return
	}
	if kind == Public {
		if ok, wait := e.limiter.allow(infoOf(r).client, path); !ok {
			e.metrics.limited.WithLabelValues(kind).Inc()
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
			writeProblem(w, r, http.StatusTooManyRequests, "Too Many Requests", "rate limit exceeded; slow down and retry after the Retry-After seconds")
			return
		}
	}
	if m := e.maint.Load(); m != nil && !isPath(path, PathAdmin) {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(m.RetryAfter)))
		writeProblem(w, r, http.StatusServiceUnavailable, "Service Unavailable", "maintenance: "+m.Reason+" is in progress; the API is back when it ends")
		return
	}
	limit := e.opts.BodyLimit
	if e.opts.UploadPrefix != "" && e.opts.UploadLimit > 0 && strings.HasPrefix(path, e.opts.UploadPrefix) {
		limit = e.opts.UploadLimit
	}
	if r.ContentLength > limit {
		writeProblem(w, r, http.StatusRequestEntityTooLarge, "Request Entity Too Large", fmt.Sprintf("the request body is larger than %d bytes", limit))
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	if e.opts.Admin != nil && isPath(path, PathAdmin) {
		e.opts.Admin.ServeHTTP(w, r)
		return
	}
	e.proxy.ServeHTTP(w, r)
}

func isPath(path, p string) bool { return path == p || strings.HasPrefix(path, p+"/") }

func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// hostAllowed accepts the configured names, IP literals and localhost; with no names
// configured every host is accepted.
func (e *Edge) hostAllowed(host string) bool {
	if len(e.opts.Names) == 0 {
		return true
	}
	h := strings.ToLower(strings.TrimSuffix(hostOnly(host), "."))
	if h == "localhost" {
		return true
	}
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return true
	}
	for _, n := range e.opts.Names {
		if strings.EqualFold(n, h) {
			return true
		}
	}
	return false
}

// metricsAuthorized checks the bearer token of /metrics on a public listener (the token
// file is read again when it changes, so a rotated token takes effect without a restart).
func (e *Edge) metricsAuthorized(r *http.Request) bool {
	if e.opts.MetricsTokenFile == "" {
		return false
	}
	b, err := os.ReadFile(e.opts.MetricsTokenFile)
	if err != nil {
		e.opts.Log.Warn("edge: read the metrics token", "err", err)
		return false
	}
	want := strings.TrimSpace(string(b))
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// statusRecorder notes the status and size of a response and passes Flush on, so that
// streamed responses stay streamed.
type statusRecorder struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

type accessEntry struct {
	Time      string  `json:"time"`
	Listener  string  `json:"listener"`
	Client    string  `json:"client"`
	Method    string  `json:"method"`
	Path      string  `json:"path"`
	Proto     string  `json:"proto"`
	Status    int     `json:"status"`
	Bytes     int64   `json:"bytes"`
	Duration  float64 `json:"duration_ms"`
	RequestID string  `json:"request_id,omitempty"`
}

func (e *Edge) accessLog(info *requestInfo, r *http.Request, rec *statusRecorder, d time.Duration) {
	if e.opts.AccessLog == nil {
		return
	}
	path := r.URL.Path
	if len(path) > 512 {
		path = path[:512] + "…"
	}
	b, _ := json.Marshal(accessEntry{Time: time.Now().UTC().Format(time.RFC3339Nano), Listener: info.listener, Client: info.client.String(),
		Method: r.Method, Path: path, Proto: info.proto, Status: rec.status(), Bytes: rec.bytes,
		Duration: float64(d.Microseconds()) / 1000, RequestID: rec.Header().Get(requestIDHeader)})
	b = append(b, '\n')
	e.logMu.Lock()
	_, _ = e.opts.AccessLog.Write(b)
	e.logMu.Unlock()
}
