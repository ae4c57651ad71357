package localapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"

	"github.com/corpintel/corpintel/supervisor/edge/certs"
	"github.com/corpintel/corpintel/supervisor/health"
)

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
		return fmt.Errorf("permission denied on %s — run as root or as a member of group %s: %w", c.socket, Group, err)
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
func (c *Client) Status(ctx context.Context) (health.StatusReport, error) {
	var rep health.StatusReport
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

// CreateAdmin asks the supervisor to create an API admin.
func (c *Client) CreateAdmin(ctx context.Context, email string, password []byte) error {
	return c.call(ctx, http.MethodPost, "/v1/create-admin", createAdminRequest{Email: email, Password: string(password)}, nil)
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

// TLSCheck runs the certificate preflight on the supervisor.
func (c *Client) TLSCheck(ctx context.Context) ([]certs.Finding, error) {
	var fs []certs.Finding
	err := c.call(ctx, http.MethodPost, "/v1/tls/check", nil, &fs)
	return fs, err
}
