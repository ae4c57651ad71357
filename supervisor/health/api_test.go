package health

import (
	"context"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/corpintel/corpintel/supervisor/alerts"
	"github.com/corpintel/corpintel/supervisor/reconcile"
)

// replica is a stand-in API replica: a real client_golang registry with the metric
// names and labels the API exports, served on its own loopback address.
type replica struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	db       *prometheus.HistogramVec
	srv      *http.Server
}

func newReplica(t *testing.T, ip string, port int) *replica {
	t.Helper()
	r := &replica{reg: prometheus.NewRegistry()}
	r.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: APIRequestsName, Help: "h"}, []string{"route", "method", "code"})
	r.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: APIRequestDuration, Help: "h", Buckets: []float64{.01, .1, 1}}, []string{"route", "method"})
	r.db = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: APIQueryDurationName, Help: "h", Buckets: []float64{.01, .1, 1, 2.5}}, []string{"operation", "outcome"})
	r.reg.MustRegister(r.requests, r.latency, r.db, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Skipf("cannot listen on %s (127.0.0.0/8 beyond .1 not routed here): %v", ip, err)
	}
	r.srv = &http.Server{Handler: promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(func() { _ = r.srv.Close() })
	return r
}

func (r *replica) serve(n int, code string, seconds float64) {
	for range n {
		r.requests.WithLabelValues("/api/v1/companies", "GET", code).Inc()
		r.latency.WithLabelValues("/api/v1/companies", "GET").Observe(seconds)
	}
}

func freePortOn(t *testing.T, ips ...string) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Skipf("cannot listen on %s: %v", ips[0], err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		ok := true
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			_ = l.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no common free port")
	return 0
}

func TestAPICollector(t *testing.T) {
	clk := newClock()
	port := freePortOn(t, "127.0.0.2", "127.0.0.3")
	r1 := newReplica(t, "127.0.0.2", port)
	r2 := newReplica(t, "127.0.0.3", port)

	var healthy atomic.Bool
	healthy.Store(true)
	healthSrv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			http.Error(w, "no replica", http.StatusServiceUnavailable)
		}
	})}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = healthSrv.Serve(hl) }()
	t.Cleanup(func() { _ = healthSrv.Close() })

	var mu sync.Mutex
	containers := []reconcile.ObservedContainer{
		{ID: "c1", Service: "api", Replica: 1, State: reconcile.StateRunning, IP: "127.0.0.2"},
		{ID: "c2", Service: "api", Replica: 2, State: reconcile.StateRunning, IP: "127.0.0.3"},
	}
	snapshot := func() reconcile.Snapshot {
		mu.Lock()
		defer mu.Unlock()
		return reconcile.Snapshot{Observed: reconcile.Observed{Containers: append([]reconcile.ObservedContainer(nil), containers...)}}
	}
	edge := map[string]float64{"5xx": 0}
	var edgeMu sync.Mutex
	a := NewAPI(APIOptions{Snapshot: snapshot, Port: port, HealthURL: "http://" + hl.Addr().String() + "/health", Now: clk.Now,
		EdgeAnswered: func() map[string]float64 {
			edgeMu.Lock()
			defer edgeMu.Unlock()
			return map[string]float64{"5xx": edge["5xx"]}
		}})
	m, err := NewMetrics(MetricsOptions{Sources: []Source{a}, Interval: 15 * time.Second, Now: clk.Now,
		Needs: map[string]time.Duration{alerts.MetricAPIRequests: 5 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	cycle := func() map[string]float64 {
		t.Helper()
		m.CollectOnce(context.Background())
		clk.Add(15 * time.Second)
		out := map[string]float64{}
		for _, v := range m.last {
			out[v.fam.name+"{"+strings.Join(v.labels, ",")+"}"] = v.v
		}
		return out
	}

	got := cycle()
	if got["corpintel_api_up{}"] != 1 || got["corpintel_api_health_consecutive_failures{}"] != 0 || got["corpintel_api_replica_scrape_up{1}"] != 1 ||
		got["corpintel_api_replica_scrape_up{2}"] != 1 {
		t.Fatalf("first cycle: %v", got)
	}
	if _, ok := got["corpintel_api_request_rate_per_second{}"]; ok {
		t.Error("a rate from one cycle")
	}
	// 15 s later: 900 ok requests fast, 90 slow 500s, the edge answered 10 itself; the
	// supervisor's own /metrics scrapes are not requests.
	r1.serve(600, "200", 0.005)
	r2.serve(300, "200", 0.005)
	r2.serve(90, "500", 0.5)
	edgeMu.Lock()
	edge["5xx"] = 10
	edgeMu.Unlock()
	r1.db.WithLabelValues("select", "ok").Observe(2)
	r1.db.WithLabelValues("select", "error").Observe(2)
	for range 18 {
		r1.db.WithLabelValues("select", "ok").Observe(0.005)
	}
	got = cycle()
	if rate := got["corpintel_api_request_rate_per_second{}"]; rate != 1000.0/15 {
		t.Errorf("rate %v, want %v", rate, 1000.0/15)
	}
	if er := got["corpintel_api_error_ratio{}"]; er != 0.1 {
		t.Errorf("error ratio %v", er)
	}
	p50, p99 := got["corpintel_api_request_duration_p50_seconds{}"], got["corpintel_api_request_duration_p99_seconds{}"]
	if p50 <= 0 || p50 > 0.01 || p99 <= 0.1 || p99 > 1 {
		t.Errorf("latency p50 %v p99 %v", p50, p99)
	}
	if p95 := got["corpintel_db_query_duration_p95_seconds{}"]; p95 != 1.75 {
		t.Errorf("db p95 %v (2 of 20 queries took 2 s: rank 19 of 20 is halfway into the (1, 2.5] bucket)", p95)
	}
	if got["corpintel_api_requests_total{1,2xx}"] != 600 || got["corpintel_api_requests_total{2,5xx}"] != 90 || got["corpintel_api_requests_total{edge,5xx}"] != 10 {
		t.Errorf("per-replica counters: %v", got)
	}

	// Replica 1 is replaced: its new container counts from 0 again; the exported
	// counter goes on from 600.
	r1.requests.Reset()
	r1.serve(5, "200", 0.005)
	mu.Lock()
	containers[0].ID = "c1-new"
	mu.Unlock()
	got = cycle()
	if got["corpintel_api_requests_total{1,2xx}"] != 605 {
		t.Errorf("after the replacement: %v", got["corpintel_api_requests_total{1,2xx}"])
	}
	if rate := got["corpintel_api_request_rate_per_second{}"]; rate <= 0 || rate > 1100.0/30 {
		t.Errorf("rate across the replacement %v", rate)
	}
	// The alert engine's view agrees: the increase over the window never goes negative.
	s, err := m.Samples(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var inc float64
	for _, sr := range s.Find(alerts.MetricAPIRequests, nil) {
		d, _ := alerts.Increase(sr.Points, 5*time.Minute, s.At)
		inc += d
	}
	if inc != 1005 {
		t.Errorf("increase over the window %v, want 1005", inc)
	}

	// A counter that goes down without a new container (the process restarted inside
	// it): also a reset.
	r2.requests.Reset()
	r2.serve(1, "200", 0.005)
	if got = cycle(); got["corpintel_api_requests_total{2,2xx}"] != 301 {
		t.Errorf("after a process restart: %v", got["corpintel_api_requests_total{2,2xx}"])
	}

	// Health fails three times in a row, then recovers.
	healthy.Store(false)
	for i := 1; i <= 3; i++ {
		if got = cycle(); got["corpintel_api_health_consecutive_failures{}"] != float64(i) || got["corpintel_api_up{}"] != 0 {
			t.Errorf("failure %d: %v", i, got["corpintel_api_health_consecutive_failures{}"])
		}
	}
	healthy.Store(true)
	if got = cycle(); got["corpintel_api_health_consecutive_failures{}"] != 0 {
		t.Errorf("after recovery: %v", got["corpintel_api_health_consecutive_failures{}"])
	}

	// A replica that does not answer its scrape: marked, the other still read, its
	// counter keeps its last value.
	_ = r2.srv.Close()
	b := &Batch{}
	if err := a.Collect(context.Background(), b); err == nil || !strings.Contains(err.Error(), "replica 2") {
		t.Errorf("dead replica: %v", err)
	}
	got = batchValues(b)
	if got["corpintel_api_replica_scrape_up{2}"] != 0 || got["corpintel_api_replica_scrape_up{1}"] != 1 || got["corpintel_api_requests_total{2,2xx}"] != 301 {
		t.Errorf("dead replica: %v", got)
	}
	if a.Name() != "api" {
		t.Error(a.Name())
	}
}

func TestAPICollectorWithoutHealthURL(t *testing.T) {
	a := NewAPI(APIOptions{Snapshot: func() reconcile.Snapshot { return reconcile.Snapshot{} }})
	b := &Batch{}
	if err := a.Collect(context.Background(), b); err == nil {
		t.Error("no health URL and no error")
	}
	if got := batchValues(b); got["corpintel_api_health_consecutive_failures{}"] != 1 || got["corpintel_api_requests_total{edge,5xx}"] != 0 {
		t.Errorf("%v", got)
	}
}

func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	cases := []struct {
		name    string
		q       float64
		buckets map[float64]float64
		want    float64
		ok      bool
	}{
		{"empty", 0.5, map[float64]float64{}, 0, false},
		{"no observations", 0.5, map[float64]float64{1: 0, inf: 0}, 0, false},
		{"first bucket", 0.5, map[float64]float64{1: 10, 2: 10, inf: 10}, 0.5, true},
		{"interpolated", 0.75, map[float64]float64{1: 50, 2: 100, inf: 100}, 1.5, true},
		{"in +Inf", 0.99, map[float64]float64{1: 10, 2: 10, inf: 20}, 2, true},
		{"only +Inf", 0.5, map[float64]float64{inf: 5}, 0, false},
		{"non-monotonic sums are fixed", 0.5, map[float64]float64{1: 10, 2: 5, inf: 10}, 0.5, true},
	}
	for _, c := range cases {
		got, ok := histogramQuantile(c.q, c.buckets)
		if ok != c.ok || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: %v %v, want %v %v", c.name, got, ok, c.want, c.ok)
		}
	}
	if codeClass(42) != "5xx" || codeClass(404) != "4xx" || bound("+Inf") != inf || bound("0.5") != 0.5 {
		t.Error("helpers")
	}
}

func TestAPIHealthGraceAndDesired(t *testing.T) {
	clk := newClock()
	var up, wanted atomic.Bool
	wanted.Store(true)
	var sawProbeHeader atomic.Bool
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawProbeHeader.Store(r.Header.Get("X-Probe") == "1")
		if !up.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	a := NewAPI(APIOptions{Snapshot: func() reconcile.Snapshot { return reconcile.Snapshot{} }, HealthURL: "http://" + ln.Addr().String() + "/health",
		ProbeHeader: "X-Probe", StartGrace: 5 * time.Minute, Now: clk.Now, Desired: func(string) bool { return wanted.Load() }})
	fails := func() float64 {
		t.Helper()
		b := &Batch{}
		_ = a.Collect(context.Background(), b)
		clk.Add(time.Minute)
		return batchValues(b)["corpintel_api_health_consecutive_failures{}"]
	}
	// A cold start: failures do not count during the grace …
	for i := range 4 {
		if n := fails(); n != 0 {
			t.Fatalf("minute %d of the grace: %v failures", i, n)
		}
	}
	if !sawProbeHeader.Load() {
		t.Error("the health check does not carry the probe header")
	}
	// … and do once it is over.
	if n := fails(); n != 0 {
		t.Fatalf("last grace minute: %v", n)
	}
	if n := fails(); n != 1 {
		t.Fatalf("after the grace: %v", n)
	}
	// Once it answered, every failure counts at once.
	up.Store(true)
	fails()
	up.Store(false)
	if n := fails(); n != 1 {
		t.Errorf("after an answer: %v", n)
	}
	// Stopped on purpose: nothing counts; started again: a new grace.
	wanted.Store(false)
	if n := fails(); n != 0 {
		t.Errorf("not wanted: %v", n)
	}
	wanted.Store(true)
	if n := fails(); n != 0 {
		t.Errorf("wanted again, inside the new grace: %v", n)
	}
}

func TestServicesNotWanted(t *testing.T) {
	no := func(string) bool { return false }
	for _, s := range []Source{
		NewPostgres(PostgresOptions{Desired: no, Target: loopback}),
		NewRedis(RedisOptions{Desired: no, Target: loopback}),
		NewMinIO(MinIOOptions{Desired: no, Target: loopback}),
	} {
		b := &Batch{}
		if err := s.Collect(context.Background(), b); err != nil || len(b.values) != 0 {
			t.Errorf("%s stopped on purpose: %v %v", s.Name(), err, batchValues(b))
		}
	}
}

// A rollout: replica 1's old and new container serve side by side; both count, and
// when the old one goes what it counted stays.
func TestAPICollectorRollout(t *testing.T) {
	clk := newClock()
	port := freePortOn(t, "127.0.0.4", "127.0.0.5")
	old := newReplica(t, "127.0.0.4", port)
	fresh := newReplica(t, "127.0.0.5", port)
	old.serve(100, "200", 0.001)
	containers := []reconcile.ObservedContainer{{ID: "old", Service: "api", Replica: 1, State: reconcile.StateRunning, IP: "127.0.0.4"}}
	var mu sync.Mutex
	a := NewAPI(APIOptions{Port: port, Now: clk.Now, Snapshot: func() reconcile.Snapshot {
		mu.Lock()
		defer mu.Unlock()
		return reconcile.Snapshot{Observed: reconcile.Observed{Containers: slices.Clone(containers)}}
	}})
	total := func() float64 {
		t.Helper()
		b := &Batch{}
		_ = a.Collect(context.Background(), b)
		clk.Add(15 * time.Second)
		return batchValues(b)["corpintel_api_requests_total{1,2xx}"]
	}
	if got := total(); got != 100 {
		t.Fatalf("before: %v", got)
	}
	mu.Lock()
	containers = append(containers, reconcile.ObservedContainer{ID: "new", Service: "api", Replica: 1, State: reconcile.StateRunning, IP: "127.0.0.5"})
	mu.Unlock()
	fresh.serve(10, "200", 0.001)
	for range 3 { // whatever order the two are read in
		if got := total(); got != 110 {
			t.Fatalf("side by side: %v", got)
		}
	}
	old.serve(5, "200", 0.001) // the old one's last requests before it stops
	if got := total(); got != 115 {
		t.Fatalf("old one still serving: %v", got)
	}
	mu.Lock()
	containers = containers[1:]
	mu.Unlock()
	fresh.serve(20, "200", 0.001)
	if got := total(); got != 135 {
		t.Fatalf("after the old one left: %v", got)
	}
}

func TestKeepFamilies(t *testing.T) {
	in := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 12
# HELP corpintel_api_http_requests_total HTTP requests.
# TYPE corpintel_api_http_requests_total counter
corpintel_api_http_requests_total{code="200"} 5
# TYPE corpintel_api_http_requests_totalish counter
corpintel_api_http_requests_totalish 1
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.7e+09
`
	got, err := keepFamilies(strings.NewReader(in), APIRequestsName, processStartTimeName)
	if err != nil {
		t.Fatal(err)
	}
	want := `# HELP corpintel_api_http_requests_total HTTP requests.
# TYPE corpintel_api_http_requests_total counter
corpintel_api_http_requests_total{code="200"} 5
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.7e+09
`
	if string(got) != want {
		t.Errorf("kept:\n%s\nwant:\n%s", got, want)
	}
}
