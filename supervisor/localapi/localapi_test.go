package localapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/corpintel/corpintel/supervisor/edge/certs"
	"github.com/corpintel/corpintel/supervisor/health"
)

// recordingOps answers every operation and records what was asked.
type recordingOps struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (o *recordingOps) rec(call string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, call)
	return o.err
}

func (o *recordingOps) Status(context.Context) (health.StatusReport, error) {
	return health.StatusReport{Project: "p", Supervisor: true}, o.rec("status")
}
func (o *recordingOps) Scale(_ context.Context, s string, n int) error {
	return o.rec("scale " + s + "=" + string(rune('0'+n)))
}
func (o *recordingOps) Restart(_ context.Context, s string) error { return o.rec("restart " + s) }
func (o *recordingOps) Stop(context.Context) error                { return o.rec("stop") }
func (o *recordingOps) Start(context.Context) error               { return o.rec("start") }
func (o *recordingOps) CreateAdmin(_ context.Context, email string, pw []byte) error {
	return o.rec("create-admin " + email + " " + string(pw))
}
func (o *recordingOps) TLSCheck(context.Context) ([]certs.Finding, error) {
	return []certs.Finding{{Name: "x.example", Check: "dns", Severity: certs.SeverityError, Message: "no A record"}}, o.rec("tls-check")
}
func (o *recordingOps) Logs(_ context.Context, s string, opts LogOptions, w io.Writer) error {
	if err := o.rec("logs " + s); err != nil {
		return err
	}
	_, err := io.WriteString(w, "line\n")
	return err
}

func serve(t *testing.T, ops Operations) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewHandler(ops, slog.New(slog.DiscardHandler))}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return NewClient(sock)
}

func TestRoutesRoundTrip(t *testing.T) {
	ops := &recordingOps{}
	c := serve(t, ops)
	ctx := context.Background()
	if rep, err := c.Status(ctx); err != nil || rep.Project != "p" || !rep.Supervisor {
		t.Fatalf("status %+v %v", rep, err)
	}
	for _, err := range []error{c.Scale(ctx, "api", 3), c.Restart(ctx, "redis"), c.Stop(ctx), c.Start(ctx), c.CreateAdmin(ctx, "a@b.c", []byte("pw"))} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if fs, err := c.TLSCheck(ctx); err != nil || len(fs) != 1 || fs[0].Message != "no A record" {
		t.Fatalf("tls check %+v %v", fs, err)
	}
	var b bytes.Buffer
	if err := c.Logs(ctx, "api", LogOptions{Tail: 3, Follow: true}, &b); err != nil || b.String() != "line\n" {
		t.Fatalf("logs %q %v", b.String(), err)
	}
	want := "status|scale api=3|restart redis|stop|start|create-admin a@b.c pw|tls-check|logs api"
	if got := strings.Join(ops.calls, "|"); got != want {
		t.Errorf("calls %q, want %q", got, want)
	}
	seen := map[string]bool{}
	for _, r := range Routes {
		if r.Summary == "" || r.Handle == nil || seen[r.Method+r.Path] {
			t.Errorf("route %s %s incomplete or duplicate", r.Method, r.Path)
		}
		seen[r.Method+r.Path] = true
	}
	// Nothing outside the table answers.
	resp, err := c.hc.Get("http://corpintel/v1/secrets")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown route: %d", resp.StatusCode)
	}
}

func TestLocalAPIErrors(t *testing.T) {
	ops := &recordingOps{err: errors.New("engine gone")}
	c := serve(t, ops)
	ctx := context.Background()
	if _, err := c.Status(ctx); err == nil || !strings.Contains(err.Error(), "engine gone") {
		t.Errorf("status: %v", err)
	}
	if err := c.Stop(ctx); err == nil {
		t.Error("stop: no error")
	}
	ops.err = RequestErrorf("unknown service %q", "x")
	var re *RequestError
	if err := c.Restart(ctx, "x"); !errors.As(err, &re) || re.Msg != `unknown service "x"` {
		t.Errorf("restart: %v", err)
	}
	if err := c.Logs(ctx, "x", LogOptions{Follow: true}, io.Discard); !errors.As(err, &re) {
		t.Errorf("logs: %v", err)
	}
	// Malformed requests are the caller's fault: bad JSON, unknown fields, bad tail.
	for path, body := range map[string]string{"/v1/scale": "{", "/v1/restart": `{"service":"api","extra":1}`, "/v1/create-admin": "[]"} {
		resp, err := c.hc.Post("http://corpintel"+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s: %d", path, body, resp.StatusCode)
		}
	}
	resp, err := c.hc.Get("http://corpintel/v1/logs?tail=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("tail=x: %d", resp.StatusCode)
	}
	if err := NewClient(c.socket).explain(os.ErrPermission); !strings.Contains(err.Error(), "group corpintel") {
		t.Errorf("explain: %v", err)
	}
	if _, err := NewClient(filepath.Join(t.TempDir(), "none.sock")).Status(ctx); !errors.Is(err, ErrNotRunning) {
		t.Errorf("no supervisor: %v", err)
	}
}

func TestListen(t *testing.T) {
	// A stale socket of a killed supervisor is replaced; a live one is refused.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l2, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l2.(*net.UnixListener).SetUnlinkOnClose(false)
	l2.Close()
	l3, err := Listen(stale)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer l3.Close()
	if _, err := Listen(stale); err == nil || !strings.Contains(err.Error(), "another supervisor") {
		t.Errorf("live socket: %v", err)
	}
	if fi, err := os.Stat(stale); err != nil || fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("socket mode %v %v", fi.Mode(), err)
	}

	// A directory that existed keeps its mode (and group); one Listen made is 0750.
	shared := t.TempDir()
	if err := os.Chmod(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	l4, err := Listen(filepath.Join(shared, "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	l4.Close()
	if fi, _ := os.Stat(shared); fi.Mode().Perm() != 0o755 {
		t.Errorf("existing directory changed to %v", fi.Mode().Perm())
	}
	fresh := filepath.Join(t.TempDir(), "run", "corpintel")
	l5, err := Listen(filepath.Join(fresh, "b.sock"))
	if err != nil {
		t.Fatal(err)
	}
	l5.Close()
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o750 {
		t.Errorf("new directory mode %v", fi.Mode().Perm())
	}
	file := filepath.Join(t.TempDir(), "f")
	_ = os.WriteFile(file, nil, 0o600)
	if _, err := Listen(filepath.Join(file, "x.sock")); err == nil {
		t.Error("Listen under a file")
	}
}

func TestGetJSON(t *testing.T) {
	ops := &recordingOps{}
	c := serve(t, ops)
	b, err := c.GetJSON(context.Background(), "/v1/status")
	if err != nil || !strings.Contains(string(b), `"project":"p"`) {
		t.Fatalf("status: %s %v", b, err)
	}
	if _, err := c.GetJSON(context.Background(), "/v1/not-a-route"); !errors.Is(err, ErrNoRoute) {
		t.Errorf("unknown route: %v, want ErrNoRoute", err)
	}
	if _, err := c.GetJSON(context.Background(), "/v1/scale"); !errors.Is(err, ErrNoRoute) {
		t.Errorf("a POST route read with GET: %v, want ErrNoRoute", err)
	}
	ops.err = RequestErrorf("not now")
	var re *RequestError
	if _, err := c.GetJSON(context.Background(), "/v1/status"); !errors.As(err, &re) {
		t.Errorf("request error: %v", err)
	}
	ops.err = errors.New("engine on fire")
	if _, err := c.GetJSON(context.Background(), "/v1/status"); err == nil || !strings.Contains(err.Error(), "engine on fire") {
		t.Errorf("server error: %v", err)
	}
	if _, err := NewClient(filepath.Join(t.TempDir(), "none.sock")).GetJSON(context.Background(), "/v1/status"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("no supervisor: %v", err)
	}
}
