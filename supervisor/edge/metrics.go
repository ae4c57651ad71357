package edge

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the edge sees: every request by status class, and whether the
// edge answered it itself (no replica did: 502/503 when none is healthy or the chosen
// one does not answer) or a replica did. The replicas' own counters miss exactly the
// requests a dead replica never answered, so the error rate reads both.
type Metrics struct {
	requests *prometheus.CounterVec
	duration prometheus.Histogram
	// answered counts the requests the edge answered itself, by class (for the alert
	// engine, which reads it without a Gather).
	answered [6]atomic.Uint64
}

// ProbeHeader marks the supervisor's own health checks through the edge: they are
// served like any request but not counted (a check answered 503 during an outage is
// not a client's error, and would keep the error rate up after the outage). Honoured
// only from loopback peers.
const ProbeHeader = "X-Corpintel-Probe"

// Values of the answered_by label.
const (
	AnsweredByEdge    = "edge"
	AnsweredByReplica = "replica"
)

// NewMetrics registers the edge's request metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corpintel_edge_requests_total",
			Help: "Requests through the edge by status class and by who answered (a replica, or the edge itself because none did).",
		}, []string{"code_class", "answered_by"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "corpintel_edge_request_duration_seconds",
			Help:    "Time from a request's arrival at the edge to the end of its answer.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Every series exists from the start, so a rate over the first minutes is right.
	for _, class := range []string{"2xx", "3xx", "4xx", "5xx"} {
		m.requests.WithLabelValues(class, AnsweredByReplica)
		m.requests.WithLabelValues(class, AnsweredByEdge)
	}
	return m, nil
}

// Wrap observes every request h serves.
func (m *Metrics) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var byEdge atomic.Bool
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), answeredKey{}, &byEdge)))
		if r.Header.Get(ProbeHeader) != "" && fromLoopback(r) {
			return
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		class := CodeClass(status)
		who := AnsweredByReplica
		if byEdge.Load() {
			who = AnsweredByEdge
			m.answered[status/100].Add(1)
		}
		m.requests.WithLabelValues(class, who).Inc()
		m.duration.Observe(time.Since(start).Seconds())
	})
}

// EdgeAnswered returns how many requests the edge answered itself, by status class
// ("5xx": 3), since the supervisor started.
func (m *Metrics) EdgeAnswered() map[string]float64 {
	out := map[string]float64{}
	for i := 1; i < len(m.answered); i++ {
		out[strconv.Itoa(i)+"xx"] = float64(m.answered[i].Load())
	}
	return out
}

// CodeClass is "2xx" for 200…299 and so on ("5xx" for anything out of range).
func CodeClass(status int) string {
	if status < 100 || status > 599 {
		return "5xx"
	}
	return strconv.Itoa(status/100) + "xx"
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type answeredKey struct{}

// markAnswered records that the edge answers r itself.
func markAnswered(r *http.Request) {
	if b, ok := r.Context().Value(answeredKey{}).(*atomic.Bool); ok {
		b.Store(true)
	}
}

// statusWriter remembers the status; Unwrap keeps Flush (streaming) reachable for
// http.ResponseController, which the ReverseProxy uses.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
