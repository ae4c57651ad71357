package edge

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestAnswersCountWhatNoReplicaAnswered(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := NewAnswers(reg)
	if err != nil {
		t.Fatal(err)
	}
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	p := NewProxy(discardLog())
	p.CountAnswers(a)
	get := func(header, remote string) int {
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		if header != "" {
			req.Header.Set(ProbeHeader, header)
		}
		if remote != "" {
			req.RemoteAddr = remote
		}
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		return rec.Code
	}
	// No replica: the edge answers 503 itself — counted, except its own health check
	// from loopback; the header from elsewhere changes nothing.
	if get("", "") != http.StatusServiceUnavailable || get("1", "127.0.0.1:4000") != http.StatusServiceUnavailable ||
		get("1", "203.0.113.7:4000") != http.StatusServiceUnavailable {
		t.Fatal("no backend")
	}
	// A replica that answers 500 answered: not counted here.
	p.SetBackends([]Backend{{ID: "r1", Addr: strings.TrimPrefix(failing.URL, "http://")}})
	if get("", "") != http.StatusInternalServerError {
		t.Fatal("replica 500")
	}
	// A replica that is gone: the edge answers.
	p.SetBackends([]Backend{{ID: "r2", Addr: deadAddr(t)}})
	if code := get("", ""); code/100 != 5 {
		t.Fatalf("dead backend: %d", code)
	}
	if got := a.ByClass(); got["5xx"] != 3 || got["2xx"] != 0 || len(got) != 5 {
		t.Errorf("ByClass = %v", got)
	}
	if v := testutil.ToFloat64(a.vec.WithLabelValues("5xx")); v != 3 {
		t.Errorf("exposed %v", v)
	}
	if n, err := testutil.GatherAndCount(reg, "corpintel_edge_answered_total"); err != nil || n != 2 {
		t.Errorf("series %d %v", n, err)
	}
	if _, err := NewAnswers(reg); err == nil {
		t.Error("registered twice")
	}
	a.observe(httptest.NewRequest(http.MethodGet, "/", nil), 42) // out of range counts as 5xx
	if a.ByClass()["5xx"] != 4 || fromLoopback(&http.Request{RemoteAddr: "garbage"}) {
		t.Error("edge cases")
	}
}
