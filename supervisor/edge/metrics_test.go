package edge

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsCountWhoAnswered(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/boom" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok")) // implicit 200
	}))
	t.Cleanup(failing.Close)
	p := NewProxy(discardLog())
	h := m.Wrap(p)
	get := func(path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}

	// No replica: the edge answers 503 itself.
	if code := get("/x"); code != http.StatusServiceUnavailable {
		t.Fatalf("no backend: %d", code)
	}
	// A replica that answers, 200 and 500: the replica answered.
	p.SetBackends([]string{strings.TrimPrefix(failing.URL, "http://")})
	if get("/ok") != http.StatusOK || get("/boom") != http.StatusInternalServerError {
		t.Fatal("replica answers")
	}
	// A replica that is gone: 502/503 by the edge.
	p.SetBackends([]string{deadAddr(t)})
	if code := get("/x"); code/100 != 5 {
		t.Fatalf("dead backend: %d", code)
	}

	// The supervisor's own checks from loopback are served, not counted; the header
	// from elsewhere changes nothing.
	probe := httptest.NewRequest(http.MethodGet, "/health", nil)
	probe.Header.Set(ProbeHeader, "1")
	probe.RemoteAddr = "127.0.0.1:40000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, probe)
	if rec.Code/100 != 5 {
		t.Fatalf("probe not served: %d", rec.Code)
	}
	spoofed := httptest.NewRequest(http.MethodGet, "/health", nil)
	spoofed.Header.Set(ProbeHeader, "1")
	spoofed.RemoteAddr = "203.0.113.9:40000"
	h.ServeHTTP(httptest.NewRecorder(), spoofed)

	count := func(class, who string) float64 {
		return testutil.ToFloat64(m.requests.WithLabelValues(class, who))
	}
	if count("5xx", AnsweredByEdge) != 3 || count("5xx", AnsweredByReplica) != 1 || count("2xx", AnsweredByReplica) != 1 || count("2xx", AnsweredByEdge) != 0 {
		t.Errorf("counts: edge 5xx %v, replica 5xx %v, replica 2xx %v", count("5xx", AnsweredByEdge), count("5xx", AnsweredByReplica), count("2xx", AnsweredByReplica))
	}
	if got := m.EdgeAnswered(); got["5xx"] != 3 || got["2xx"] != 0 || len(got) != 5 {
		t.Errorf("EdgeAnswered = %v", got)
	}
	if n := testutil.CollectAndCount(m.duration); n != 1 || fromLoopback(&http.Request{RemoteAddr: "garbage"}) {
		t.Errorf("duration histogram series: %d", n)
	}
	// Every class × answerer exists from the start (a rate needs no first request).
	if n, err := testutil.GatherAndCount(reg, "corpintel_edge_requests_total"); err != nil || n != 8 {
		t.Errorf("edge request series: %d %v", n, err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering twice succeeded")
	}
}

func TestCodeClassAndStatusWriter(t *testing.T) {
	for status, want := range map[int]string{200: "2xx", 204: "2xx", 301: "3xx", 404: "4xx", 499: "4xx", 503: "5xx", 42: "5xx", 700: "5xx"} {
		if got := CodeClass(status); got != want {
			t.Errorf("CodeClass(%d) = %s, want %s", status, got, want)
		}
	}
	rec := httptest.NewRecorder()
	sw := &statusWriter{ResponseWriter: rec}
	sw.WriteHeader(http.StatusContinue) // informational: not the final status
	sw.WriteHeader(http.StatusCreated)
	if sw.status != http.StatusCreated || sw.Unwrap() != rec {
		t.Errorf("status %d", sw.status)
	}
	// Streaming stays possible through the wrapper.
	if err := http.NewResponseController(sw).Flush(); err != nil {
		t.Errorf("flush through the wrapper: %v", err)
	}
	markAnswered(httptest.NewRequest(http.MethodGet, "/", nil)) // outside Wrap: no effect, no panic
}
