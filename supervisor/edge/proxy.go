// Package edge is the supervisor's entry point for HTTP traffic: the loopback listener
// (DESIGN.md "Port 8000") and the public listeners (HTTPS on :443, ACME challenges and
// the redirect on :80). It balances requests over the API replicas the reconciler's
// snapshot reports (least outstanding requests, passive failure detection, active
// re-checks), drains a replica before it is stopped, retries what never reached a
// replica, sets the client's real address, rate-limits per client, answers for the
// stack in maintenance mode, enforces timeouts and limits and writes the access log.
// Its backend set comes from the reconciler, never from the engine itself.
package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/corpintel/corpintel/internal/requestid"
)

// Proxy forwards requests to the API replicas.
type Proxy struct {
	pool      *pool
	rp        *httputil.ReverseProxy
	transport *http.Transport
	log       *slog.Logger
	// retryAfter is what a client is told to wait when no replica can answer.
	retryAfter time.Duration
	// trusted are the proxies in front whose forwarding headers are believed.
	trusted Prefixes
	// onRetry, when set, counts a request sent again to another replica.
	onRetry func()
	// answers counts what the proxy answered itself (answered.go).
	answers answerCounter
}

var _ http.Handler = (*Proxy)(nil)

// requestIDHeader carries a request's correlation id end to end (one rule for the
// edge and the API: internal/requestid).
const requestIDHeader = requestid.Header

// ProxyOptions configure a Proxy.
type ProxyOptions struct {
	// TrustedProxies are load balancers in front of the edge whose X-Forwarded-For and
	// X-Forwarded-Proto are believed.
	TrustedProxies Prefixes
	// ResponseTimeout bounds the wait for a replica's response headers (the seed's 120
	// s proxy timeout); a streaming body may take longer.
	ResponseTimeout time.Duration
}

// NewProxy returns a proxy with no backends; SetBackends feeds it.
func NewProxy(log *slog.Logger) *Proxy { return NewProxyWith(log, ProxyOptions{}) }

// NewProxyWith returns a proxy with options.
func NewProxyWith(log *slog.Logger, o ProxyOptions) *Proxy {
	if o.ResponseTimeout <= 0 {
		o.ResponseTimeout = 120 * time.Second
	}
	p := &Proxy{log: log, retryAfter: 5 * time.Second, trusted: o.TrustedProxies}
	dialer := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	p.transport = &http.Transport{
		Proxy:                 nil, // never route stack traffic through an environment proxy
		DialContext:           dialer.DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: o.ResponseTimeout,
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
	p.pool = newPool(probeHealth(&http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}))
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// Rewrite starts from a request without X-Forwarded-*; the client's own
			// claims of an address never pass.
			info := infoOf(pr.In)
			pr.Out.URL.Scheme = "http"
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Del("X-Real-IP")
			pr.Out.Header.Del("Forwarded")
			if info.client.IsValid() {
				pr.Out.Header.Set("X-Forwarded-For", info.client.String())
				pr.Out.Header.Set("X-Real-IP", info.client.String())
			}
			pr.Out.Header.Set("X-Forwarded-Proto", info.proto)
			pr.Out.Header.Set("X-Forwarded-Host", pr.In.Host)
		},
		Transport:    &retryTransport{base: p.transport, proxy: p},
		ErrorHandler: p.upstreamError,
		// Streaming responses (SSE, chunked downloads) are flushed as they come; the
		// ReverseProxy does that by itself for unknown lengths and event streams.
		FlushInterval: 0,
		BufferPool:    copyBuffers{},
	}
	return p
}

// Run keeps the proxy's background checks (re-probing replicas that failed) alive
// until ctx ends.
func (p *Proxy) Run(ctx context.Context) {
	p.pool.mu.Lock()
	p.pool.ctx = ctx
	p.pool.mu.Unlock()
	<-ctx.Done()
	p.transport.CloseIdleConnections()
}

// SetBackends replaces the set of serving replicas.
func (p *Proxy) SetBackends(bs []Backend) { p.pool.set(bs) }

// Backends returns the addresses of the replicas requests go to now.
func (p *Proxy) Backends() []string {
	var out []string
	for _, b := range p.pool.backends() {
		out = append(out, b.Addr)
	}
	return out
}

// Drain takes the replica (a container ID) out of the backend set before it is told to
// stop, and waits until its requests in flight have finished or ctx ends. It returns
// how many were still running then (the replica's own drain finishes those).
func (p *Proxy) Drain(ctx context.Context, id string) int64 { return p.pool.drain(ctx, id) }

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The replica echoes the id it was sent (the same rule accepts it there), so the
	// response carries it once; only answers made here set it themselves.
	r.Header.Set(requestIDHeader, requestid.Accept(r.Header.Get(requestIDHeader)))
	if _, ok := r.Context().Value(clientKey{}).(*requestInfo); !ok {
		r = withInfo(r, &requestInfo{client: clientAddr(r, p.trusted), proto: forwardedProto(r, p.trusted), listener: "direct"})
	}
	if len(p.pool.backends()) == 0 {
		p.unavailable(w, r, "no healthy API replica is running")
		return
	}
	// A body that was not read yet can be sent again if the first replica refuses the
	// connection; replayBody notices whether anything was read.
	if r.Body != nil && r.Body != http.NoBody && r.GetBody == nil {
		rb := &replayBody{rc: r.Body}
		r.Body = rb
		infoOf(r).body = rb
	}
	p.rp.ServeHTTP(w, r)
}

// unavailable answers 503 as RFC 9457 problem+json with Retry-After.
func (p *Proxy) unavailable(w http.ResponseWriter, r *http.Request, detail string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(p.retryAfter/time.Second)))
	p.answer(w, r, http.StatusServiceUnavailable, "Service Unavailable", detail)
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
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		p.answer(w, r, http.StatusRequestEntityTooLarge, "Request Entity Too Large", fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit))
		return
	}
	p.log.Warn("edge: upstream error", "method", r.Method, "path", r.URL.Path, "request_id", r.Header.Get(requestIDHeader), "err", err)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		p.answer(w, r, http.StatusGatewayTimeout, "Gateway Timeout", "the API replica did not answer in time")
		return
	}
	p.answer(w, r, http.StatusBadGateway, "Bad Gateway", "the API replica did not answer")
}

type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

func writeProblem(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
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

// replayBody remembers whether the transport read from it; an unread body can go to
// another replica.
type replayBody struct {
	rc   io.ReadCloser
	read bool
}

func (b *replayBody) Read(p []byte) (int, error) {
	b.read = true
	return b.rc.Read(p)
}

// Close does nothing: the transport closes a request's body when a connection fails,
// and this one may still go to another replica. The server closes the real body when
// the handler returns.
func (b *replayBody) Close() error { return nil }

// retryTransport picks a replica per attempt and counts its requests in flight. A
// request that never reached a replica (the connection could not be made) goes to
// another one, whatever its method; one that may have reached it is sent again only
// when it is idempotent and its body can be replayed.
type retryTransport struct {
	base  http.RoundTripper
	proxy *Proxy
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tried := map[*backend]bool{}
	var lastErr error
	for {
		b := t.proxy.pool.pick(tried)
		if b == nil {
			if lastErr == nil {
				lastErr = errors.New("the backend set is empty")
			}
			return nil, fmt.Errorf("%w: %w", errNoBackend, lastErr)
		}
		tried[b] = true
		out := req
		if len(tried) > 1 {
			if out = t.replay(req); out == nil {
				return nil, lastErr
			}
			if t.proxy.onRetry != nil {
				t.proxy.onRetry()
			}
		}
		u := *req.URL
		u.Host = b.Addr
		out.URL = &u
		b.inflight.Add(1)
		resp, err := t.base.RoundTrip(out)
		if err == nil {
			resp.Body = &trackedBody{rc: resp.Body, body: resp.Body, b: b}
			return resp, nil
		}
		b.inflight.Add(-1)
		lastErr = err
		if req.Context().Err() != nil {
			return nil, err
		}
		switch {
		case isDialError(err):
			t.proxy.pool.markDown(b)
			if !bodyUntouched(req) {
				return nil, err
			}
		case retryable(req):
		default:
			return nil, err
		}
	}
}

// replay returns a copy of req to send again, or nil when its body cannot be.
func (t *retryTransport) replay(req *http.Request) *http.Request {
	out := req.Clone(req.Context())
	switch {
	case req.Body == nil || req.Body == http.NoBody:
	case req.GetBody != nil:
		body, err := req.GetBody()
		if err != nil {
			return nil
		}
		out.Body = body
	case bodyUntouched(req):
		// The ReverseProxy's wrapper of the body was closed by the failed attempt; the
		// body underneath is unread.
		out.Body = infoOf(req).body
	default:
		return nil
	}
	return out
}

// bodyUntouched reports whether the request's body has not been read yet (the
// ReverseProxy wraps it, so the edge remembers it in the request's context).
func bodyUntouched(req *http.Request) bool {
	if req.Body == nil || req.Body == http.NoBody || req.GetBody != nil {
		return true
	}
	rb := infoOf(req).body
	return rb != nil && !rb.read
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH)
}

// retryable reports whether req may be sent again after it may have reached a
// replica: an idempotent method (or an Idempotency-Key) whose body is empty or can be
// replayed.
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
		return nil, fmt.Errorf("edge: %s is already in use by another process — find it with `ss -ltnp 'sport = :%s'`, stop it, or choose another address in the config: %w", addr, port, err)
	}
	return nil, fmt.Errorf("edge: listen on %s: %w", addr, err)
}

// NewServer wraps a handler of the edge in an http.Server with timeouts that still
// allow long uploads and streamed downloads: headers must arrive within 10 s (slowloris),
// idle keep-alive connections close after 120 s, headers are at most 32 KiB.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
