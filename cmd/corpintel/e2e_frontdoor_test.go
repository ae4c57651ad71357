package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/stack"
	"github.com/corpintel/corpintel/internal/testenv"
)

// The front door on the real stack: HTTPS with the local CA, the redirect, what each
// listener serves, client addresses (spoofed from outside and from another container),
// the per-client rate limit, and zero failed requests while the API is scaled and
// restarted under load.
func TestEndToEndFrontDoor(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped with -short")
	}
	testenv.Docker(t)
	requireImages(t)
	s := newE2EStackWith(t, "[api]\nreplicas = 2\n")
	s.edgeExtra = "rate_limit = 10\nrate_burst = 10\n"
	s.writeConfig("")
	s.startSupervisor()
	s.waitFor("cold start", 6*time.Minute, healthyWith(2))
	loopback := "http://127.0.0.1:" + s.port

	// HTTPS with the local CA: HTTP/2, HSTS, /health; never /metrics or /health/ready.
	caPEM, err := s.corpintel("tls", "ca")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		t.Fatalf("tls ca printed no certificate: %q", caPEM)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}, ForceAttemptHTTP2: true}
	https := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	httpsURL := "https://127.0.0.1:" + s.httpsPort
	resp, err := https.Get(httpsURL + "/health")
	if err != nil {
		t.Fatalf("HTTPS with the local CA: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.Contains(resp.Header.Get("Strict-Transport-Security"), "max-age=63072000; includeSubDomains") {
		t.Errorf("HTTPS /health: %s %s HSTS %q", resp.Status, resp.Proto, resp.Header.Get("Strict-Transport-Security"))
	}
	for _, path := range []string{"/metrics", "/health/ready"} {
		resp, err := https.Get(httpsURL + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("public %s: %s", path, resp.Status)
		}
	}
	resp, err = http.Get(loopback + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(metrics), `corpintel_edge_requests_total{code="2xx",listener="public"}`) || !strings.Contains(string(metrics), "corpintel_cert_expiry_timestamp_seconds") {
		t.Errorf("loopback /metrics is not the supervisor's:\n%.2000s", metrics)
	}
	// :80 redirects to HTTPS, path and query kept.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get("http://127.0.0.1:" + s.httpPort + "/api/v1/companies?q=acme&limit=5")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || !strings.HasSuffix(resp.Header.Get("Location"), ":"+s.httpsPort+"/api/v1/companies?q=acme&limit=5") {
		t.Errorf("redirect: %s %q", resp.Status, resp.Header.Get("Location"))
	}

	// Client addresses: a client's own X-Forwarded-For is replaced; another container
	// on the stack network is not believed either.
	probe := func(id string) string {
		out, err := s.corpintel("logs", "api")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, id) {
				i := strings.Index(line, `"client_ip":"`)
				if i >= 0 {
					rest := line[i+len(`"client_ip":"`):]
					return rest[:strings.Index(rest, `"`)]
				}
			}
		}
		return ""
	}
	req, _ := http.NewRequest(http.MethodGet, httpsURL+"/api/v1/companies", nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("X-Request-ID", "e2e-spoof-outside")
	if resp, err := https.Do(req); err == nil {
		_ = resp.Body.Close()
	}
	network := stack.NetworkName(s.project)
	out, err := exec.Command("docker", "run", "--rm", "--network", network, "--entrypoint", "sh", "corpintel/minio:latest", "-c", // #nosec G204 -- test
		`curl -s -o /dev/null -H 'X-Forwarded-For: 6.6.6.6' -H 'X-Request-ID: e2e-spoof-inside' http://api:8080/api/v1/companies; hostname -i`).CombinedOutput()
	if err != nil {
		t.Fatalf("curl from a neighbour container: %v %s", err, out)
	}
	neighbour := strings.TrimSpace(string(out))
	deadline := time.Now().Add(30 * time.Second)
	var outside, inside string
	for time.Now().Before(deadline) && (outside == "" || inside == "") {
		outside, inside = probe("e2e-spoof-outside"), probe("e2e-spoof-inside")
		time.Sleep(200 * time.Millisecond)
	}
	if outside != "127.0.0.1" {
		t.Errorf("a client's spoofed address: the API saw %q, want 127.0.0.1", outside)
	}
	if inside != neighbour || inside == "6.6.6.6" {
		t.Errorf("a neighbour container's spoofed address: the API saw %q, want %q", inside, neighbour)
	}

	// Rate limit on the public listener: 127.0.0.2 is limited, 127.0.0.3 is not.
	from := func(src string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	}
	limited := 0
	c2 := from("127.0.0.2")
	for range 25 {
		resp, err := c2.Get(httpsURL + "/health")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
			if resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		}
	}
	if limited == 0 {
		t.Error("25 quick requests from 127.0.0.2 were never limited")
	}
	if resp, err := from("127.0.0.3").Get(httpsURL + "/health"); err != nil || resp.StatusCode != 200 {
		t.Errorf("127.0.0.3 limited by 127.0.0.2: %v %v", resp, err)
	}

	zeroDowntime(t, s, loopback)
}

// zeroDowntime runs GETs on 16 connections and a loop of POSTs while the API is scaled
// to 4, to 1, restarted and scaled to 2; no request may fail.
func zeroDowntime(t *testing.T, s *e2eStack, base string) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("front door password 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.corpintel("create-admin", "--email", "fd@e2e.example", "--password-file", pwFile); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	body, _ := json.Marshal(map[string]string{"email": "fd@e2e.example", "password": "front door password 1"})
	resp, err := client.Post(base+"/api/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	_ = resp.Body.Close()
	if tok.AccessToken == "" {
		t.Fatalf("login: %s", resp.Status)
	}
	do := func(method, path string, payload any) (int, []byte, error) {
		var rd io.Reader
		if payload != nil {
			b, _ := json.Marshal(payload)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, nil
	}
	var ids []string
	for i := range 20 {
		code, b, err := do(http.MethodPost, "/api/v1/companies", map[string]string{"name": fmt.Sprintf("Front Door %d", i)})
		var c struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(b, &c)
		if err != nil || code != http.StatusCreated || c.ID == "" {
			t.Fatalf("create company: %d %v %s", code, err, b)
		}
		ids = append(ids, c.ID)
	}

	var gets, posts, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	var slowest time.Duration
	record := func(what string, start time.Time, code int, err error, want int) {
		d := time.Since(start)
		mu.Lock()
		defer mu.Unlock()
		slowest = max(slowest, d)
		if err != nil || code != want {
			failed.Add(1)
			if len(failures) < 20 {
				failures = append(failures, fmt.Sprintf("%s: %d %v", what, code, err))
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i++ {
				start := time.Now()
				code, _, err := do(http.MethodGet, "/api/v1/companies/"+ids[i%len(ids)], nil)
				gets.Add(1)
				record("GET", start, code, err, http.StatusOK)
			}
		})
	}
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			start := time.Now()
			code, _, err := do(http.MethodPost, "/api/v1/companies", map[string]string{"name": fmt.Sprintf("Under Load %d", i)})
			posts.Add(1)
			record("POST", start, code, err, http.StatusCreated)
			time.Sleep(20 * time.Millisecond) // a steady trickle of writes
		}
	})
	steps := []struct {
		args []string
		n    int
	}{{[]string{"scale", "api=4"}, 4}, {[]string{"scale", "api=1"}, 1}, {[]string{"restart", "api"}, 1}, {[]string{"scale", "api=2"}, 2}}
	for _, st := range steps {
		if _, err := s.corpintel(st.args...); err != nil {
			cancel()
			wg.Wait()
			t.Fatal(err)
		}
		s.waitFor(strings.Join(st.args, " "), 3*time.Minute, healthyWith(st.n))
	}
	// Enough traffic through the whole sequence.
	for gets.Load() < 10_000 || posts.Load() < 200 {
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	sort.Strings(failures)
	t.Logf("zero downtime: %d GETs, %d POSTs during scale 4 → 1 → restart → 2; %d failed; slowest %s", gets.Load(), posts.Load(), failed.Load(), slowest.Round(time.Millisecond))
	if failed.Load() != 0 {
		t.Errorf("%d requests failed: %v", failed.Load(), failures)
	}
	if rep, err := s.status(); err == nil && !healthyWith(2)(rep) {
		t.Errorf("not healthy afterwards: %+v", rep)
	}
}
