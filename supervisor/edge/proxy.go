// Package edge is the supervisor's entry point for HTTP traffic: today the loopback
// listener (DESIGN.md "Port 8000") that balances requests over the healthy API
// replicas; the TLS edge on :80/:443, rate limiting and maintenance mode grow here.
// Its backend set comes from the reconciler's snapshot, never from the engine itself.
package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/corpintel/corpintel/internal/requestid"
)

// Proxy is the loopback HTTP entry point (DESIGN.md "Port 8000"): it balances requests
// round-robin over the healthy API replicas. The TLS edge later wraps the same handler.
type Proxy struct {
	backends atomic.Pointer[[]string] // host:port of healthy replicas
	next     atomic.Uint64
	rp       *httputil.ReverseProxy
	log      *slog.Logger
	// retryAfter is what a client is told to wait when no replica is healthy.
	retryAfter time.Duration
}

var _ http.Handler = (*Proxy)(nil)

// requestIDHeader carries a request's correlation id end to end (one rule for the
// edge and the API: internal/requestid).
const requestIDHeader = requestid.Header

// NewProxy returns a proxy with no backends; SetBackends feeds it.
func NewProxy(log *slog.Logger) *Proxy {
	p := &Proxy{log: log, retryAfter: 5 * time.Second}
	empty := []string{}
	p.backends.Store(&empty)
	dialer := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:                 nil, // never route stack traffic through an environment proxy
		DialContext:           dialer.DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Pass the client's Accept-Encoding through untouched instead of asking for gzip
		// and unzipping here.
		DisableCompression: true,
		// Responses of a few tens of KiB (a year of metrics, a page of companies) in a
		// few reads and writes instead of many 4 KiB ones.
		WriteBufferSize: 32 << 10,
		ReadBufferSize:  32 << 10,
		// Replicas speak plain HTTP/1.1 on the stack network.
		ForceAttemptHTTP2: false,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host, _ = pr.In.Context().Value(backendKey{}).(string) // chosen in ServeHTTP
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:    &retryTransport{base: transport, proxy: p},
		ErrorHandler: p.upstreamError,
		// Streaming responses (SSE, chunked downloads) are flushed as they come; the
		// ReverseProxy does that by itself for unknown lengths and event streams.
		FlushInterval: 0,
		BufferPool:    copyBuffers{},
	}
	return p
}

// SetBackends replaces the set of healthy replicas (host:port).
func (p *Proxy) SetBackends(addrs []string) {
	cp := append([]string(nil), addrs...)
	p.backends.Store(&cp)
}

// Backends returns the current healthy replicas.
func (p *Proxy) Backends() []string { return append([]string(nil), *p.backends.Load()...) }

// pick returns the next backend in round-robin order, skipping those in tried.
func (p *Proxy) pick(tried map[string]bool) (string, bool) {
	bs := *p.backends.Load()
	if len(bs) == 0 {
		return "", false
	}
	start := p.next.Add(1)
	for i := range uint64(len(bs)) {
		b := bs[(start+i)%uint64(len(bs))]
		if !tried[b] {
			return b, true
		}
	}
	return "", false
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The replica echoes the id it was sent (the same rule accepts it there), so the
	// response carries it once; only answers made here set it themselves.
	r.Header.Set(requestIDHeader, requestid.Accept(r.Header.Get(requestIDHeader)))

	backend, ok := p.pick(nil)
	if !ok {
		p.unavailable(w, r, "no healthy API replica is running")
		return
	}
	// The context carries the chosen backend into Rewrite (the ReverseProxy makes the
	// one copy of the request that it sends).
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), backendKey{}, backend)))
}

type backendKey struct{}

// unavailable answers 503 as RFC 9457 problem+json with Retry-After.
func (p *Proxy) unavailable(w http.ResponseWriter, r *http.Request, detail string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(p.retryAfter/time.Second)))
	writeProblem(w, r, http.StatusServiceUnavailable, "Service Unavailable", detail)
}

func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) {
		// The client went away; nobody reads the answer.
		w.WriteHeader(499)
		return
	}
	if errors.Is(err, errNoBackend) {
		p.unavailable(w, r, "no healthy API replica is reachable")
		return
	}
	p.log.Warn("proxy: upstream error", "method", r.Method, "path", r.URL.Path, "backend", r.Context().Value(backendKey{}),
		"request_id", r.Header.Get(requestIDHeader), "err", err)
	writeProblem(w, r, http.StatusBadGateway, "Bad Gateway", "the API replica did not answer")
}

type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

func writeProblem(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
	markAnswered(r)
	w.Header().Set(requestIDHeader, r.Header.Get(requestIDHeader))
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{
		Type: "about:blank", Title: title, Status: status, Detail: detail,
		RequestID: r.Header.Get(requestIDHeader),
	})
}

// copyBuffers recycles the 32 KiB body-copy buffers across requests.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }

var errNoBackend = errors.New("no healthy backend")

// retryTransport retries an idempotent request on another replica when the connection
// could not be made at all (the replica died between health check and request). Nothing
// reached the replica then, so a retry cannot apply a request twice.
type retryTransport struct {
	base  http.RoundTripper
	proxy *Proxy
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil || !isDialError(err) || !retryable(req) {
		return resp, err
	}
	tried := map[string]bool{req.URL.Host: true}
	for {
		backend, ok := t.proxy.pick(tried)
		if !ok {
			return nil, fmt.Errorf("%w: %w", errNoBackend, err)
		}
		tried[backend] = true
		retry := req.Clone(req.Context())
		u := *req.URL
		u.Host = backend
		retry.URL = &u
		if req.GetBody != nil {
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			retry.Body = body
		}
		resp, err = t.base.RoundTrip(retry)
		if err == nil || !isDialError(err) {
			return resp, err
		}
	}
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH)
}

// retryable reports whether req may be sent again: an idempotent method whose body is
// empty or can be replayed.
func retryable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
	default:
		if req.Header.Get("Idempotency-Key") == "" {
			return false
		}
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// Listen binds a listener of the edge, explaining the usual failure.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		_, port, _ := net.SplitHostPort(addr)
		return nil, fmt.Errorf("proxy: %s is already in use by another process — find it with `ss -ltnp 'sport = :%s'`, stop it, or choose another listen address in the config: %w", addr, port, err)
	}
	return nil, fmt.Errorf("proxy: listen on %s: %w", addr, err)
}

// NewServer wraps a handler of the edge in an http.Server with timeouts that still
// allow long uploads and streamed downloads.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
