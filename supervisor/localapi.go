package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Operations are what the local API offers the CLI; the daemon implements them.
type Operations interface {
	Status(ctx context.Context) (StatusReport, error)
	Scale(ctx context.Context, service string, replicas int) error
	Restart(ctx context.Context, service string) error
	Stop(ctx context.Context) error
	// Start undoes Stop: the stack is reconciled (brought up) again.
	Start(ctx context.Context) error
	Logs(ctx context.Context, service string, opts LogOptions, w io.Writer) error
}

// LogOptions select what `corpintel logs` shows.
type LogOptions struct {
	Follow bool
	// Tail is the number of lines from the end; negative means all.
	Tail int
}

// RequestError is a problem with what the caller asked for (unknown service, scale out
// of bounds). The CLI exits with status 2 on it.
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

// requestErrorf builds a RequestError.
func requestErrorf(format string, args ...any) error {
	return &RequestError{Msg: fmt.Sprintf(format, args...)}
}

// LocalGroup is the group whose members may use the local API besides root.
const LocalGroup = "corpintel"

// ListenLocalAPI creates the unix socket for the local API: directory 0750, socket
// 0660, both owned by group corpintel when it exists (else root only). A stale socket
// left by a killed supervisor is replaced; a live one means another supervisor runs.
func ListenLocalAPI(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("local API: create %s: %w", dir, err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		_ = c.Close()
		return nil, fmt.Errorf("local API: another supervisor is already listening on %s — stop it first (`corpintel status` shows it)", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("local API: remove stale socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("local API: listen on %s: %w", path, err)
	}
	gid := -1
	if g, err := user.LookupGroup(LocalGroup); err == nil {
		gid, _ = strconv.Atoi(g.Gid)
	}
	mode := os.FileMode(0o600)
	if gid >= 0 {
		mode = 0o660
		// The directory may be shared with other files of root; only chown what we made.
		_ = os.Chown(path, -1, gid)
		_ = os.Chown(dir, -1, gid)
	}
	if err := os.Chmod(path, mode); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("local API: chmod %s: %w", path, err)
	}
	return ln, nil
}

// NewLocalAPIHandler serves ops over HTTP (on the unix socket).
func NewLocalAPIHandler(ops Operations, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		rep, err := ops.Status(r.Context())
		if err != nil {
			writeLocalError(w, log, err)
			return
		}
		writeJSON(w, http.StatusOK, rep)
	})
	mux.HandleFunc("POST /v1/scale", func(w http.ResponseWriter, r *http.Request) {
		var req scaleRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
			writeLocalError(w, log, requestErrorf("bad scale request: %v", err))
			return
		}
		if err := ops.Scale(r.Context(), req.Service, req.Replicas); err != nil {
			writeLocalError(w, log, err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	})
	mux.HandleFunc("POST /v1/restart", func(w http.ResponseWriter, r *http.Request) {
		var req serviceRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
			writeLocalError(w, log, requestErrorf("bad restart request: %v", err))
			return
		}
		if err := ops.Restart(r.Context(), req.Service); err != nil {
			writeLocalError(w, log, err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	})
	mux.HandleFunc("POST /v1/stop", func(w http.ResponseWriter, r *http.Request) {
		if err := ops.Stop(r.Context()); err != nil {
			writeLocalError(w, log, err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	})
	mux.HandleFunc("POST /v1/start", func(w http.ResponseWriter, r *http.Request) {
		if err := ops.Start(r.Context()); err != nil {
			writeLocalError(w, log, err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	})
	mux.HandleFunc("GET /v1/logs", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		opts := LogOptions{Follow: q.Get("follow") == "1", Tail: -1}
		if t := q.Get("tail"); t != "" {
			n, err := strconv.Atoi(t)
			if err != nil {
				writeLocalError(w, log, requestErrorf("tail must be a number, got %q", t))
				return
			}
			opts.Tail = n
		}
		fw := &firstWriteHeader{w: w}
		err := ops.Logs(r.Context(), q.Get("service"), opts, fw)
		if err != nil && !fw.started {
			writeLocalError(w, log, err)
			return
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("local API: log stream ended", "err", err)
		}
	})
	return mux
}

// firstWriteHeader commits a 200 text response on the first write and flushes every
// write, so that `logs -f` shows lines as they come and errors before the first line
// can still be reported with a status code.
type firstWriteHeader struct {
	w       http.ResponseWriter
	started bool
}

func (f *firstWriteHeader) Write(p []byte) (int, error) {
	if !f.started {
		f.started = true
		f.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		f.w.WriteHeader(http.StatusOK)
	}
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

type scaleRequest struct {
	Service  string `json:"service"`
	Replicas int    `json:"replicas"`
}

type serviceRequest struct {
	Service string `json:"service"`
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeLocalError(w http.ResponseWriter, log *slog.Logger, err error) {
	var re *RequestError
	if errors.As(err, &re) {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: re.Msg})
		return
	}
	log.Error("local API: operation failed", "err", err)
	writeJSON(w, http.StatusInternalServerError, errorBody{Error: err.Error()})
}

// Client talks to the supervisor's local API over its unix socket.
type Client struct {
	socket string
	hc     *http.Client
}

var _ Operations = (*Client)(nil)

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableCompression: true,
	}
	return &Client{socket: path, hc: &http.Client{Transport: tr}}
}

// ErrNotRunning means no supervisor answers on the socket.
var ErrNotRunning = errors.New("supervisor not running")

func (c *Client) explain(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("no supervisor is listening on %s — start it with `corpintel supervisor` or `systemctl start corpintel`: %w", c.socket, ErrNotRunning)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("permission denied on %s — run as root or as a member of group %s: %w", c.socket, LocalGroup, err)
	}
	return fmt.Errorf("local API %s: %w", c.socket, err)
}

func (c *Client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://corpintel"+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.explain(err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var eb errorBody
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&eb)
	if eb.Error == "" {
		eb.Error = resp.Status
	}
	if resp.StatusCode == http.StatusBadRequest {
		return nil, &RequestError{Msg: eb.Error}
	}
	return nil, fmt.Errorf("supervisor: %s", eb.Error)
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.do(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("local API %s: decode answer: %w", path, err)
	}
	return nil
}

// Status returns the supervisor's view of the stack.
func (c *Client) Status(ctx context.Context) (StatusReport, error) {
	var rep StatusReport
	err := c.call(ctx, http.MethodGet, "/v1/status", nil, &rep)
	return rep, err
}

// Scale sets the desired replicas of service and waits for the reconcile.
func (c *Client) Scale(ctx context.Context, service string, replicas int) error {
	return c.call(ctx, http.MethodPost, "/v1/scale", scaleRequest{Service: service, Replicas: replicas}, nil)
}

// Restart recreates the containers of service.
func (c *Client) Restart(ctx context.Context, service string) error {
	return c.call(ctx, http.MethodPost, "/v1/restart", serviceRequest{Service: service}, nil)
}

// Stop stops every container of the stack, keeping the data.
func (c *Client) Stop(ctx context.Context) error {
	return c.call(ctx, http.MethodPost, "/v1/stop", nil, nil)
}

// Start asks the supervisor to bring a stopped stack up again.
func (c *Client) Start(ctx context.Context) error {
	return c.call(ctx, http.MethodPost, "/v1/start", nil, nil)
}

// Logs copies the logs of service to w until they end (or ctx ends when following).
func (c *Client) Logs(ctx context.Context, service string, opts LogOptions, w io.Writer) error {
	q := url.Values{"service": {service}, "tail": {strconv.Itoa(opts.Tail)}}
	if opts.Follow {
		q.Set("follow", "1")
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/logs?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, bufio.NewReader(resp.Body))
	if err != nil && ctx.Err() != nil {
		return nil // the operator pressed Ctrl-C
	}
	return err
}
