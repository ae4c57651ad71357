package edge

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/corpintel/corpintel/internal/requestid"
)

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// backendServer starts an httptest server that answers with its name and echoes
// selected request headers; like the API it answers with the request id it accepts
// (internal/requestid).
func backendServer(t testing.TB, name string) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(requestIDHeader, requestid.Accept(r.Header.Get(requestIDHeader)))
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Seen-Request-ID", r.Header.Get(requestIDHeader))
		w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
		if r.Method == http.MethodPost {
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			w.Header().Set("X-Body-Len", itoa(n))
			_, _ = io.WriteString(w, hex.EncodeToString(h.Sum(nil)))
			return
		}
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv, strings.TrimPrefix(srv.URL, "http://")
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// deadAddr returns a loopback address on which nothing listens.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestProxyRoundRobinAndHeaders(t *testing.T) {
	_, a := backendServer(t, "a")
	_, b := backendServer(t, "b")
	p := NewProxy(discardLog())
	p.SetBackends(bs(a, b))
	front := httptest.NewServer(p)
	defer front.Close()

	seen := map[string]int{}
	for range 10 {
		resp, err := http.Get(front.URL + "/health")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		seen[string(body)]++
		if id := resp.Header.Get(requestIDHeader); id == "" || id != resp.Header.Get("X-Seen-Request-ID") {
			t.Errorf("request id %q not generated and passed on (backend saw %q)", id, resp.Header.Get("X-Seen-Request-ID"))
		}
		if xff := resp.Header.Get("X-Seen-XFF"); xff != "127.0.0.1" {
			t.Errorf("X-Forwarded-For = %q, want 127.0.0.1", xff)
		}
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Errorf("round robin uneven: %v", seen)
	}
}

func TestProxyRequestIDPassthrough(t *testing.T) {
	_, a := backendServer(t, "a")
	p := NewProxy(discardLog())
	p.SetBackends(bs(a))
	front := httptest.NewServer(p)
	defer front.Close()
	cases := []struct {
		in       string
		passThru bool
	}{
		{"abc-123", true},
		{"", false},
		{strings.Repeat("x", 200), false},
		{"has space", false},
		{"slash/in/id", false}, // the old edge passed it on, the API replaced it: two ids
	}
	for _, c := range cases {
		req, _ := http.NewRequest(http.MethodGet, front.URL+"/", nil)
		if c.in != "" {
			req.Header.Set(requestIDHeader, c.in)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.Header.Get("X-Seen-Request-ID")
		if c.passThru && got != c.in {
			t.Errorf("id %q: backend saw %q", c.in, got)
		}
		if !c.passThru && (got == c.in || len(got) != 24) {
			t.Errorf("id %q: backend saw %q, want a fresh 24-hex id", c.in, got)
		}
		if ids := resp.Header.Values(requestIDHeader); len(ids) != 1 || ids[0] != got {
			t.Errorf("id %q: response carries %q, want exactly the one the backend saw (%q)", c.in, ids, got)
		}
	}
}

func TestProxyNoBackends(t *testing.T) {
	p := NewProxy(discardLog())
	front := httptest.NewServer(p)
	defer front.Close()
	resp, err := http.Get(front.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
	}
	var pr problem
	if err := json.NewDecoder(resp.Body).Decode(&pr); err != nil || pr.Status != 503 || pr.RequestID == "" {
		t.Fatalf("problem %+v, %v", pr, err)
	}
}

func TestProxyRetriesDialErrors(t *testing.T) {
	_, live := backendServer(t, "live")
	dead1, dead2 := deadAddr(t), deadAddr(t)
	cases := []struct {
		name     string
		backends []string
		method   string
		body     string
		key      string
		want     int
	}{
		{"get retried onto live replica", []string{dead1, live, dead2}, http.MethodGet, "", "", 200},
		{"all dead", []string{dead1, dead2}, http.MethodGet, "", "", 503},
		// A request that never reached a replica goes to another whatever its method
		// (DESIGN.md "Draining"); with none left the answer is 503, not 502.
		{"post retried onto live replica", []string{dead1, live, dead2}, http.MethodPost, "x", "", 200},
		{"post with no replica reachable", []string{dead1}, http.MethodPost, "x", "", 503},
		{"bodyless post with idempotency key retried", []string{dead1, live}, http.MethodPost, "", "k1", 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := NewProxy(discardLog())
			p.SetBackends(bs(c.backends...))
			front := httptest.NewServer(p)
			defer front.Close()
			for range 4 { // every starting point of the rotation
				var body io.Reader
				if c.body != "" {
					body = strings.NewReader(c.body)
				}
				req, _ := http.NewRequest(c.method, front.URL+"/x", body)
				if c.key != "" {
					req.Header.Set("Idempotency-Key", c.key)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if c.want != 200 {
					if resp.StatusCode != c.want {
						t.Fatalf("status %d, want %d", resp.StatusCode, c.want)
					}
					continue
				}
				if resp.StatusCode != 200 {
					t.Fatalf("status %d, want 200", resp.StatusCode)
				}
			}
		})
	}
}

// TestProxyStreamsLargeUpload checks that a large body is streamed, not buffered: the
// reader is produced on the fly and the backend sees every byte.
func TestProxyStreamsLargeUpload(t *testing.T) {
	_, a := backendServer(t, "a")
	p := NewProxy(discardLog())
	p.SetBackends(bs(a))
	front := httptest.NewServer(p)
	defer front.Close()

	const size = 100 << 20
	pr, pw := io.Pipe()
	h := sha256.New()
	var wg sync.WaitGroup
	wg.Go(func() {
		chunk := make([]byte, 1<<20)
		for i := range chunk {
			chunk[i] = byte(i)
		}
		for written := 0; written < size; written += len(chunk) {
			h.Write(chunk)
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	})
	resp, err := http.Post(front.URL+"/upload", "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	wg.Wait()
	if resp.Header.Get("X-Body-Len") != itoa(size) || string(got) != hex.EncodeToString(h.Sum(nil)) {
		t.Fatalf("backend saw %s bytes, digest %s", resp.Header.Get("X-Body-Len"), got)
	}
}

func TestListenPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Listen(ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) || !strings.Contains(err.Error(), "ss -ltnp") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Listen("256.0.0.1:1"); err == nil {
		t.Fatal("bad address accepted")
	}
	ok, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ok.Close()
}

func TestRetryableAndDialError(t *testing.T) {
	if isDialError(errors.New("x")) {
		t.Error("plain error is not a dial error")
	}
	if !isDialError(&net.OpError{Op: "dial", Err: errors.New("refused")}) {
		t.Error("dial OpError not recognised")
	}
	req := httptest.NewRequest(http.MethodPatch, "/", strings.NewReader("x"))
	if retryable(req) {
		t.Error("PATCH without key is not retryable")
	}
}

// BenchmarkProxy measures a GET through the proxy against the same GET sent straight
// to a replica (the proxy's own cost is the difference).
func BenchmarkProxy(b *testing.B) {
	srvA, a := backendServer(b, "a")
	_, c := backendServer(b, "c")
	p := NewProxy(discardLog())
	p.SetBackends(bs(a, c))
	front := httptest.NewServer(p)
	defer front.Close()
	b.Run("direct", func(b *testing.B) { benchGet(b, srvA.URL+"/health") })
	b.Run("proxied", func(b *testing.B) { benchGet(b, front.URL+"/health") })
}

func benchGet(b *testing.B, url string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// bs names each address as a container of its own.
func bs(addrs ...string) []Backend {
	var out []Backend
	for _, a := range addrs {
		out = append(out, Backend{ID: "c-" + a, Addr: a})
	}
	return out
}
