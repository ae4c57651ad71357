package edge

import (
	"net"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// ProbeHeader marks the supervisor's own health checks through the edge: they are
// answered like any request but not counted here (a check answered 503 during an
// outage is no client's error, and would keep the error rate up after it). Honoured
// only from loopback peers.
const ProbeHeader = "X-Corpintel-Probe"

// Answers counts the requests the proxy answered itself because no replica did: 503
// with no replica to send to, 502/504 when the chosen one did not answer. The replicas'
// own counters miss exactly those, so the error rate (the alert rules' "edge" replica)
// reads both.
type Answers struct {
	vec     *prometheus.CounterVec
	byClass [6]atomic.Uint64
}

// NewAnswers registers corpintel_edge_answered_total on reg.
func NewAnswers(reg prometheus.Registerer) (*Answers, error) {
	a := &Answers{vec: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "corpintel_edge_answered_total",
		Help: "Requests the edge answered itself because no API replica did (no replica to send to, or it did not answer), by status class."},
		[]string{"code_class"})}
	if err := reg.Register(a.vec); err != nil {
		return nil, err
	}
	for _, c := range []string{"4xx", "5xx"} {
		a.vec.WithLabelValues(c) // from the start, so a rate over the first minutes is right
	}
	return a, nil
}

// ByClass returns the counts since the supervisor started, by status class ("5xx": 3).
func (a *Answers) ByClass() map[string]float64 {
	out := map[string]float64{}
	for i := 1; i < len(a.byClass); i++ {
		out[strconv.Itoa(i)+"xx"] = float64(a.byClass[i].Load())
	}
	return out
}

func (a *Answers) observe(r *http.Request, status int) {
	if r.Header.Get(ProbeHeader) != "" && fromLoopback(r) {
		return
	}
	class := status / 100
	if class < 1 || class > 5 {
		class = 5
	}
	a.byClass[class].Add(1)
	a.vec.WithLabelValues(strconv.Itoa(class) + "xx").Inc()
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// answerCounter is the proxy's (optional) Answers.
type answerCounter struct{ p atomic.Pointer[Answers] }

// CountAnswers makes the proxy count its own answers in a.
func (p *Proxy) CountAnswers(a *Answers) { p.answers.p.Store(a) }

// answer writes the proxy's own answer and counts it.
func (p *Proxy) answer(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
	if a := p.answers.p.Load(); a != nil {
		a.observe(r, status)
	}
	writeProblem(w, r, status, title, detail)
}
