package edge

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// edgeMetrics are the edge's own series. Labels are bounded: the listener kind and the
// status class, never a client or a path.
type edgeMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	limited  *prometheus.CounterVec
	retries  prometheus.Counter
	clients  prometheus.Gauge
	backends prometheus.Gauge
}

func newEdgeMetrics(reg prometheus.Registerer) *edgeMetrics {
	m := &edgeMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "corpintel_edge_requests_total",
			Help: "Requests answered by the edge, by listener and status class (2xx … 5xx)."}, []string{"listener", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "corpintel_edge_request_duration_seconds",
			Help:    "Time from a request's arrival at the edge to its response, by listener.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 120}}, []string{"listener"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "corpintel_edge_rate_limited_total",
			Help: "Requests refused with 429 by the per-client rate limit."}, []string{"listener"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "corpintel_edge_retries_total",
			Help: "Requests sent again to another replica because the first could not be reached."}),
		clients: prometheus.NewGauge(prometheus.GaugeOpts{Name: "corpintel_edge_rate_limit_clients",
			Help: "Clients the rate limiter tracks."}),
		backends: prometheus.NewGauge(prometheus.GaugeOpts{Name: "corpintel_edge_backends",
			Help: "API replicas the edge forwards to."}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.limited, m.retries, m.clients, m.backends)
	}
	return m
}

func (m *edgeMetrics) observe(listener string, code int, d time.Duration) {
	m.requests.WithLabelValues(listener, strconv.Itoa(code/100)+"xx").Inc()
	m.duration.WithLabelValues(listener).Observe(d.Seconds())
}

func (m *edgeMetrics) setClients(n int)  { m.clients.Set(float64(n)) }
func (m *edgeMetrics) setBackends(n int) { m.backends.Set(float64(n)) }
