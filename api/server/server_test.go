package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

type mod []web.Route

func (m mod) Routes() []web.Route { return m }

func newHandler(t *testing.T, checks []Check, mods ...web.Module) *Handler {
	t.Helper()
	h, err := New(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry(),
		Modules: mods, Checks: checks})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func get(h http.Handler, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestHealthReadinessMetricsDocs(t *testing.T) {
	up := Check{Name: "postgres", Probe: func(context.Context) error { return nil }}
	down := Check{Name: "redis", Probe: func(context.Context) error { return errors.New("connection refused") }}
	pub := mod{{Method: "GET", Path: "/ping", Perm: rbac.Public, Handler: func(c echo.Context) error { return c.NoContent(204) }}}

	h := newHandler(t, []Check{up}, pub)
	if rec := get(h, "/health"); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"status":"ok"`) {
		t.Fatalf("/health %d %s", rec.Code, rec.Body)
	}
	if rec := get(h, "/health/ready"); rec.Code != 200 {
		t.Fatalf("/health/ready %d %s", rec.Code, rec.Body)
	}
	get(h, "/api/v1/ping")
	if rec := get(h, "/metrics"); !strings.Contains(rec.Body.String(), `corpintel_api_http_requests_total{code="204",method="GET",route="/api/v1/ping"} 1`) {
		t.Fatalf("/metrics lacks the request counter:\n%s", rec.Body)
	}
	rec := get(h, "/openapi.json")
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || doc["openapi"] != "3.1.0" {
		t.Fatalf("/openapi.json: %v %s", err, rec.Body)
	}
	if rec := get(h, "/docs"); rec.Code != 200 {
		t.Fatalf("/docs %d", rec.Code)
	}

	h = newHandler(t, []Check{up, down})
	rec = get(h, "/health/ready")
	var r Readiness
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 503 || r.Checks["redis"].Status != "down" || r.Checks["postgres"].Status != "up" || !strings.Contains(r.Checks["redis"].Error, "refused") {
		t.Fatalf("readiness with redis down: %d %+v", rec.Code, r)
	}
}

func TestNewRejectsRouteWithoutPermission(t *testing.T) {
	_, err := New(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry(),
		Modules: []web.Module{mod{{Method: "GET", Path: "/x", Handler: func(echo.Context) error { return nil }}}}})
	if err == nil || !strings.Contains(err.Error(), "no permission") {
		t.Fatalf("New = %v", err)
	}
}

func TestServeDrainsInFlight(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "done")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- ServeListener(ctx, slow, ln, 10*time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	body := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			body <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body <- string(b)
	}()
	<-started
	cancel() // shutdown begins while the request is in flight
	close(release)
	if got := <-body; got != "done" {
		t.Fatalf("in-flight request got %q", got)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := Serve(context.Background(), slow, ln.Addr().String()+"x", time.Second, slog.Default()); err == nil {
		t.Fatal("Serve on a bad address succeeded")
	}
}

// Forwarding headers count only from the trusted proxy (the edge); another container
// on the stack network claiming a client address is not believed.
func TestIPExtractorTrustsOnlyTheEdge(t *testing.T) {
	_, edge, _ := net.ParseCIDR("172.28.0.1/32")
	ext := ipExtractor([]*net.IPNet{edge})
	req := func(peer, xff string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = peer + ":40000"
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		return r
	}
	for _, c := range []struct{ peer, xff, want string }{
		{"172.28.0.1", "203.0.113.9", "203.0.113.9"},
		{"172.28.0.7", "203.0.113.9", "172.28.0.7"}, // a neighbour container spoofing
		{"127.0.0.1", "203.0.113.9", "127.0.0.1"},
		{"172.28.0.1", "", "172.28.0.1"},
	} {
		if got := ext(req(c.peer, c.xff)); got != c.want {
			t.Errorf("peer %s xff %q: client %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
	if got := ipExtractor(nil)(req("172.28.0.1", "203.0.113.9")); got != "172.28.0.1" {
		t.Errorf("no trusted proxy: %s", got)
	}
}
