package edge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// frontDoor is an edge in front of test backends, with a public and a loopback
// listener on 127.0.0.1.
type frontDoor struct {
	e        *Edge
	public   *httptest.Server
	loopback *httptest.Server
	reg      *prometheus.Registry
	log      *bytes.Buffer
}

func newFrontDoor(t *testing.T, o Options, backends ...string) *frontDoor {
	t.Helper()
	fd := &frontDoor{reg: prometheus.NewRegistry(), log: &bytes.Buffer{}}
	o.Registerer = fd.reg
	o.AccessLog = &lockedBuffer{b: fd.log}
	if o.Metrics == nil {
		o.Metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "supervisor_metric 1\n") })
	}
	fd.e = New(o)
	fd.e.Proxy().SetBackends(bs(backends...))
	fd.public = httptest.NewServer(fd.e.Handler(Public))
	fd.loopback = httptest.NewServer(fd.e.Handler(Loopback))
	t.Cleanup(fd.public.Close)
	t.Cleanup(fd.loopback.Close)
	return fd
}

type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// clientFrom returns an HTTP client whose connections come from a given loopback
// address (127.0.0.2, 127.0.0.3, … are all this machine).
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

func get(t *testing.T, c *http.Client, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestClientAddresses(t *testing.T) {
	_, a := backendServer(t, "a")
	// Without trusted proxies a client's X-Forwarded-For is replaced by its address.
	fd := newFrontDoor(t, Options{}, a)
	resp, _ := get(t, clientFrom("127.0.0.5"), fd.public.URL+"/x", map[string]string{"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6", "X-Forwarded-Proto": "https"})
	if got := resp.Header.Get("X-Seen-XFF"); got != "127.0.0.5" {
		t.Errorf("spoofed X-Forwarded-For passed on: backend saw %q", got)
	}
	if got := resp.Header.Get("X-Seen-Proto"); got != "http" {
		t.Errorf("spoofed X-Forwarded-Proto passed on: %q", got)
	}
	// With the load balancer at 127.0.0.6 trusted, the right-most untrusted entry is
	// the client; what the client put before it does not count.
	trusted, _ := ParsePrefixes([]string{"127.0.0.6", "10.0.0.0/8"})
	fd2 := newFrontDoor(t, Options{TrustedProxies: trusted}, a)
	resp, _ = get(t, clientFrom("127.0.0.6"), fd2.public.URL+"/x", map[string]string{"X-Forwarded-For": "6.6.6.6, 203.0.113.7, 10.1.1.1", "X-Forwarded-Proto": "https"})
	if got := resp.Header.Get("X-Seen-XFF"); got != "203.0.113.7" {
		t.Errorf("behind a trusted proxy: backend saw %q", got)
	}
	if got := resp.Header.Get("X-Seen-Proto"); got != "https" {
		t.Errorf("trusted proxy's proto: %q", got)
	}
	// An untrusted peer claiming to be behind a proxy is the client itself.
	resp, _ = get(t, clientFrom("127.0.0.7"), fd2.public.URL+"/x", map[string]string{"X-Forwarded-For": "203.0.113.7"})
	if got := resp.Header.Get("X-Seen-XFF"); got != "127.0.0.7" {
		t.Errorf("untrusted peer: backend saw %q", got)
	}
	if _, err := ParsePrefixes([]string{"not-an-ip"}); err == nil {
		t.Error("bad prefix accepted")
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "127.0.0.6:1"
	r.Header.Set("X-Forwarded-For", "garbage")
	if got := clientAddr(r, trusted); got.String() != "127.0.0.6" {
		t.Errorf("malformed chain: %s", got)
	}
}

func TestRateLimitPerClient(t *testing.T) {
	_, a := backendServer(t, "a")
	now := time.Unix(1_800_000_000, 0)
	allow, _ := ParsePrefixes([]string{"127.0.0.9"})
	fd := newFrontDoor(t, Options{RateLimit: RateLimit{Rate: 10, Burst: 10, Allow: allow}, Now: func() time.Time { return now }}, a)
	c2, c3, c9 := clientFrom("127.0.0.2"), clientFrom("127.0.0.3"), clientFrom("127.0.0.9")
	for i := 1; i <= 10; i++ {
		if resp, _ := get(t, c2, fd.public.URL+"/api/v1/x", nil); resp.StatusCode != 200 {
			t.Fatalf("request %d from 127.0.0.2: %d", i, resp.StatusCode)
		}
	}
	resp, body := get(t, c2, fd.public.URL+"/api/v1/x", nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, "rate limit") {
		t.Errorf("11th request within a second: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, _ := get(t, c3, fd.public.URL+"/api/v1/x", nil); resp.StatusCode != 200 {
		t.Errorf("127.0.0.3 was limited by 127.0.0.2's requests: %d", resp.StatusCode)
	}
	for range 30 {
		if resp, _ := get(t, c9, fd.public.URL+"/api/v1/x", nil); resp.StatusCode != 200 {
			t.Fatalf("allowlisted client limited: %d", resp.StatusCode)
		}
	}
	// The loopback listener is exempt.
	for range 30 {
		if resp, _ := get(t, http.DefaultClient, fd.loopback.URL+"/api/v1/x", nil); resp.StatusCode != 200 {
			t.Fatalf("loopback limited: %d", resp.StatusCode)
		}
	}
	now = now.Add(time.Second)
	if resp, _ := get(t, c2, fd.public.URL+"/api/v1/x", nil); resp.StatusCode != 200 {
		t.Errorf("a second later: %d", resp.StatusCode)
	}
	if n := testutil.ToFloat64(fd.e.metrics.limited.WithLabelValues(Public)); n != 1 {
		t.Errorf("limited counter %v", n)
	}
}

func TestRateLimitRoutesAndIPv6(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newLimiter(RateLimit{Rate: 100, Burst: 100, Routes: []RouteLimit{{Prefix: "/api/v1/auth/login", Rate: 1, Burst: 2}}}, func() time.Time { return now })
	c := netip.MustParseAddr("192.0.2.1")
	for i, want := range []bool{true, true, false} {
		if ok, _ := l.allow(c, "/api/v1/auth/login"); ok != want {
			t.Errorf("login %d: %v", i, ok)
		}
	}
	if ok, _ := l.allow(c, "/api/v1/companies"); !ok {
		t.Error("other routes share the login bucket")
	}
	// One /64 is one client.
	v6 := newLimiter(RateLimit{Rate: 1, Burst: 1}, func() time.Time { return now })
	if ok, _ := v6.allow(netip.MustParseAddr("2001:db8::1"), "/"); !ok {
		t.Fatal("first v6")
	}
	if ok, _ := v6.allow(netip.MustParseAddr("2001:db8::ffff"), "/"); ok {
		t.Error("same /64 not grouped")
	}
	if ok, _ := v6.allow(netip.MustParseAddr("2001:db8:0:1::1"), "/"); !ok {
		t.Error("another /64 limited")
	}
	if ok, _ := newLimiter(RateLimit{}, nil).allow(c, "/"); !ok {
		t.Error("no limit configured but limited")
	}
}

// 100 000 distinct client addresses: the limiter tracks at most MaxClients and the
// rest share one bucket; idle buckets are swept.
func TestRateLimitMemoryBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newLimiter(RateLimit{Rate: 10, Burst: 10, MaxClients: 50_000, Idle: time.Minute}, func() time.Time { return now })
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range 100_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.allow(a, "/")
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := l.clients(); n != 50_000 {
		t.Errorf("tracked %d clients, want the cap 50 000", n)
	}
	t.Logf("100 000 distinct clients: %d tracked, heap %+.1f MiB", l.clients(), float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20))
	now = now.Add(2 * time.Minute)
	l.sweep()
	if n := l.clients(); n != 0 {
		t.Errorf("after sweep %d clients", n)
	}
}

func TestMaintenanceMode(t *testing.T) {
	_, a := backendServer(t, "a")
	fd := newFrontDoor(t, Options{}, a)
	fd.e.SetMaintenance(&Maintenance{Reason: "restore #4", RetryAfter: 90 * time.Second})
	for _, url := range []string{fd.public.URL + "/api/v1/companies", fd.loopback.URL + "/health"} {
		resp, body := get(t, http.DefaultClient, url, nil)
		var p problem
		_ = json.Unmarshal([]byte(body), &p)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "90" || !strings.Contains(p.Detail, "restore #4") || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s in maintenance: %d %q %s", url, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	if resp, _ := get(t, http.DefaultClient, fd.public.URL+"/admin/", nil); resp.StatusCode != 200 {
		t.Errorf("console route in maintenance: %d", resp.StatusCode)
	}
	if fd.e.InMaintenance() == nil {
		t.Error("InMaintenance")
	}
	fd.e.SetMaintenance(nil)
	if resp, _ := get(t, http.DefaultClient, fd.public.URL+"/api/v1/companies", nil); resp.StatusCode != 200 {
		t.Errorf("after maintenance: %d", resp.StatusCode)
	}
}

func TestListenerRoutes(t *testing.T) {
	_, a := backendServer(t, "a")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fd := newFrontDoor(t, Options{MetricsTokenFile: tokenFile, Names: []string{"corp.example"}}, a)
	c := http.DefaultClient
	for _, x := range []struct {
		url    string
		hdr    map[string]string
		status int
		body   string
	}{
		{fd.public.URL + "/metrics", nil, 404, ""},
		{fd.public.URL + "/metrics", map[string]string{"Authorization": "Bearer wrong"}, 404, ""},
		{fd.public.URL + "/metrics", map[string]string{"Authorization": "Bearer s3cret"}, 200, "supervisor_metric 1"},
		{fd.public.URL + "/health/ready", nil, 404, ""},
		{fd.public.URL + "/health", nil, 200, "a"},
		{fd.public.URL + "/docs", map[string]string{"Host": "corp.example"}, 200, "a"},
		{fd.public.URL + "/docs", map[string]string{"Host": "evil.example"}, 421, "evil.example"},
		{fd.loopback.URL + "/metrics", nil, 200, "supervisor_metric 1"},
		{fd.loopback.URL + "/health/ready", nil, 200, "a"},
	} {
		req, _ := http.NewRequest(http.MethodGet, x.url, nil)
		for k, v := range x.hdr {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != x.status || !strings.Contains(string(b), x.body) {
			t.Errorf("%s %v: %d %q", x.url, x.hdr, resp.StatusCode, b)
		}
	}
	resp, err := http.Post(fd.loopback.URL+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", resp.StatusCode)
	}
	// The access log has one JSON line per request, without query strings or headers.
	_, _ = get(t, c, fd.public.URL+"/api/v1/documents/1/download?signature=SIGN&user=u", map[string]string{"Authorization": "Bearer TOKEN", "Cookie": "s=COOKIE"})
	log := fd.log.String()
	for _, secret := range []string{"SIGN", "TOKEN", "COOKIE"} {
		if strings.Contains(log, secret) {
			t.Errorf("access log contains %s", secret)
		}
	}
	lines := strings.Split(strings.TrimSpace(log), "\n")
	var last accessEntry
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Path != "/api/v1/documents/1/download" || last.Status != 200 || last.Listener != Public || last.Client != "127.0.0.1" || last.RequestID == "" {
		t.Errorf("access log entry %+v %v", last, err)
	}
}

func TestBodyLimits(t *testing.T) {
	_, a := backendServer(t, "a")
	fd := newFrontDoor(t, Options{BodyLimit: 1 << 10, UploadLimit: 1 << 20, UploadPrefix: "/api/v1/companies/"}, a)
	post := func(path string, body io.Reader, n int64) int {
		req, _ := http.NewRequest(http.MethodPost, fd.public.URL+path, body)
		req.ContentLength = n
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/api/v1/x", bytes.NewReader(make([]byte, 2<<10)), 2<<10); code != 413 {
		t.Errorf("declared too large: %d", code)
	}
	if code := post("/api/v1/x", io.MultiReader(bytes.NewReader(make([]byte, 2<<10))), -1); code != 413 {
		t.Errorf("chunked too large: %d", code)
	}
	if code := post("/api/v1/companies/1/documents", bytes.NewReader(make([]byte, 64<<10)), 64<<10); code != 200 {
		t.Errorf("upload within its limit: %d", code)
	}
}

// A replica taken out by Drain gets no new requests; Drain returns once its requests
// in flight are done.
func TestDrain(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "slow")
	}))
	defer slow.Close()
	_, other := backendServer(t, "other")
	p := NewProxy(discardLog())
	slowAddr := strings.TrimPrefix(slow.URL, "http://")
	p.SetBackends([]Backend{{ID: "s", Addr: slowAddr}, {ID: "o", Addr: other}})
	front := httptest.NewServer(p)
	defer front.Close()
	// Send /slow until it lands on the slow replica.
	done := make(chan string, 1)
	go func() {
		for {
			resp, err := http.Get(front.URL + "/slow")
			if err != nil {
				done <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) == "slow" {
				done <- "slow"
				return
			}
		}
	}()
	<-started
	drained := make(chan int64, 1)
	go func() { drained <- p.Drain(context.Background(), "s") }()
	time.Sleep(50 * time.Millisecond) // the drain is waiting for the request in flight
	select {
	case <-drained:
		t.Fatal("drain returned with a request in flight")
	default:
	}
	for range 20 {
		if resp, body := get(t, http.DefaultClient, front.URL+"/", nil); resp.StatusCode != 200 || body != "other" {
			t.Fatalf("request during the drain went to %q", body)
		}
	}
	// A snapshot that still lists the draining replica does not bring it back.
	p.SetBackends([]Backend{{ID: "s", Addr: slowAddr}, {ID: "o", Addr: other}})
	if len(p.Backends()) != 1 {
		t.Errorf("draining replica back in the set: %v", p.Backends())
	}
	close(release)
	if n := <-drained; n != 0 || <-done != "slow" {
		t.Errorf("drain left %d", n)
	}
	// Once the container is gone from the snapshot, the drain is forgotten.
	p.SetBackends([]Backend{{ID: "o", Addr: other}})
	p.SetBackends([]Backend{{ID: "s", Addr: slowAddr}, {ID: "o", Addr: other}})
	if len(p.Backends()) != 2 {
		t.Errorf("forgotten drain still excludes: %v", p.Backends())
	}
	// A drain that times out reports what was still in flight.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	p.pool.backends()[0].inflight.Add(1)
	if n := p.Drain(ctx, p.pool.backends()[0].ID); n != 1 {
		t.Errorf("timed-out drain: %d", n)
	}
}

// A replica that refuses connections is taken out (passive check) and back in as soon
// as it answers again (active check); a POST whose body was never read goes to another.
func TestPassiveAndActiveChecks(t *testing.T) {
	var gotBody atomic.Value
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody.Store(string(b))
		_, _ = io.WriteString(w, "good")
	}))
	defer good.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()
	p := NewProxy(discardLog())
	p.pool.recheck = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	time.Sleep(10 * time.Millisecond) // let Run install its context
	p.SetBackends([]Backend{{ID: "dead", Addr: deadAddr}, {ID: "good", Addr: strings.TrimPrefix(good.URL, "http://")}})
	front := httptest.NewServer(p)
	defer front.Close()
	for range 6 {
		resp, err := http.Post(front.URL+"/companies", "application/json", strings.NewReader(`{"name":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "good" || gotBody.Load() != `{"name":"x"}` {
			t.Fatalf("POST while a replica refuses: %d %q body %v", resp.StatusCode, b, gotBody.Load())
		}
	}
	var dead *backend
	for _, b := range p.pool.backends() {
		if b.ID == "dead" {
			dead = b
		}
	}
	if !dead.down(time.Now()) {
		t.Fatal("refusing replica not marked down")
	}
	// It comes back: listen on its address, answer /health.
	ln2, err := net.Listen("tcp", deadAddr)
	if err != nil {
		t.Skipf("address %s taken meanwhile: %v", deadAddr, err)
	}
	back := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "back") })}
	go func() { _ = back.Serve(ln2) }()
	defer back.Close()
	deadline := time.Now().Add(5 * time.Second)
	for dead.down(time.Now()) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if dead.down(time.Now()) {
		t.Error("replica not back after answering its health check")
	}
}

// Malformed requests, oversized headers and slowloris connections get clean errors and
// leave no goroutines behind.
func TestBadInputNoLeaks(t *testing.T) {
	_, a := backendServer(t, "a")
	e := New(Options{})
	e.Proxy().SetBackends(bs(a))
	srv := NewServer(e.Handler(Public), discardLog())
	srv.ReadHeaderTimeout = 200 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	addr := ln.Addr().String()
	time.Sleep(20 * time.Millisecond)
	before := runtime.NumGoroutine()
	raw := func(payload string) string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, payload)
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	if l := raw("GARBAGE\r\n\r\n"); !strings.Contains(l, "400") {
		t.Errorf("malformed request line: %q", l)
	}
	if l := raw("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n"); !strings.Contains(l, "431") {
		t.Errorf("oversized header: %q", l)
	}
	// Slowloris: half a request line, then nothing; the server hangs up.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 1024)); err == nil {
		// the server may answer 408 before closing; then the next read ends it
		if _, err := c.Read(make([]byte, 1024)); err == nil {
			t.Error("slowloris connection still open")
		}
	}
	c.Close()
	if l := raw("GET / HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.Contains(l, "200") {
		t.Errorf("a sane request after all that: %q", l)
	}
	// Keep-alive connections to the replica are the proxy's pool, not a leak.
	e.Proxy().transport.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("goroutines %d before, %d after", before, n)
	}
	_ = srv.Close()
}
