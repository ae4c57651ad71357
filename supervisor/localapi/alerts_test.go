package localapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/supervisor/alerts"
	"github.com/corpintel/corpintel/supervisor/alerts/notify"
)

func (o *recordingOps) Alerts(context.Context) (alerts.Snapshot, error) {
	return alerts.Snapshot{Active: []alerts.Alert{{Rule: "APIDown", State: alerts.StateFiring}}}, o.rec("alerts")
}

func (o *recordingOps) Silence(_ context.Context, req alerts.SilenceRequest) (alerts.Silence, error) {
	err := o.rec("silence " + req.Rule + " " + req.For.String() + " " + req.Comment + " by " + req.Author)
	return alerts.Silence{ID: "s1", CreatedBy: req.Author, EndsAt: time.Unix(0, 0).Add(req.For)}, err
}

func (o *recordingOps) Unsilence(_ context.Context, id string) (alerts.Silence, error) {
	return alerts.Silence{ID: id}, o.rec("unsilence " + id)
}

func (o *recordingOps) TestChannel(_ context.Context, ch string) (notify.Result, error) {
	return notify.Result{Channel: ch, OK: true}, o.rec("test " + ch)
}

func (o *recordingOps) PrometheusRules(context.Context) ([]byte, error) {
	return []byte("groups: []\n"), o.rec("rules")
}

// serveWithPeers serves like the supervisor does: with peer credentials.
func serveWithPeers(t *testing.T, ops Operations) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewHandler(ops, slog.New(slog.DiscardHandler)), ConnContext: ConnContext}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return NewClient(sock)
}

func TestAlertRoutes(t *testing.T) {
	ops := &recordingOps{}
	c := serveWithPeers(t, ops)
	ctx := context.Background()
	snap, err := c.Alerts(ctx)
	if err != nil || len(snap.Active) != 1 || snap.Active[0].Rule != "APIDown" {
		t.Fatalf("alerts %+v %v", snap, err)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	sl, err := c.Silence(ctx, alerts.SilenceRequest{Rule: "APIDown", For: 2 * time.Hour, Comment: "deploy", Author: "claimed-alice"})
	if err != nil {
		t.Fatal(err)
	}
	// The author is the socket's peer, not what the client claims; a root client's
	// sudo user is kept beside it.
	want := me.Username
	if os.Getuid() == 0 {
		want = "root (sudo by claimed-alice)"
	}
	if sl.CreatedBy != want {
		t.Errorf("author %q, want %q", sl.CreatedBy, want)
	}
	if _, err := c.Unsilence(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if res, err := c.TestChannel(ctx, "mail"); err != nil || !res.OK || res.Channel != "mail" {
		t.Fatalf("test %+v %v", res, err)
	}
	if rules, err := c.PrometheusRules(ctx); err != nil || string(rules) != "groups: []\n" {
		t.Fatalf("rules %q %v", rules, err)
	}
	got := strings.Join(ops.calls, "|")
	if !strings.HasPrefix(got, "alerts|silence APIDown 2h0m0s deploy by ") || !strings.HasSuffix(got, "|unsilence s1|test mail|rules") {
		t.Errorf("calls %q", got)
	}

	// A duration that is not one is the caller's fault.
	resp, err := c.hc.Post("http://corpintel/v1/alerts/silences", "application/json", strings.NewReader(`{"rule":"APIDown","for":"two hours","comment":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad duration: %d", resp.StatusCode)
	}
	for path, body := range map[string]string{"/v1/alerts/unsilence": `{"id":1}`, "/v1/alerts/test": `{"chan":"x"}`, "/v1/alerts/silences": `[`} {
		resp, err := c.hc.Post("http://corpintel"+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s: %d", path, body, resp.StatusCode)
		}
	}

	ops.err = RequestErrorf("no such silence")
	var re *RequestError
	if _, err := c.Unsilence(ctx, "nope"); !errors.As(err, &re) {
		t.Errorf("unsilence: %v", err)
	}
	for _, err := range []error{
		func() error { _, err := c.Alerts(ctx); return err }(),
		func() error { _, err := c.Silence(ctx, alerts.SilenceRequest{For: time.Hour}); return err }(),
		func() error { _, err := c.TestChannel(ctx, "x"); return err }(),
		func() error { _, err := c.PrometheusRules(ctx); return err }(),
	} {
		if !errors.As(err, &re) {
			t.Errorf("error not passed on: %v", err)
		}
	}
}

func TestAuthorWithoutPeer(t *testing.T) {
	if got := Author(context.Background(), "alice"); got != "unknown" {
		t.Errorf("no peer: %q", got)
	}
	if got := authorName(0, "root"); !strings.HasPrefix(got, "root") || strings.Contains(got, "sudo") {
		t.Errorf("root as root: %q", got)
	}
	if got := authorName(987654, ""); got != "uid 987654" {
		t.Errorf("unknown uid: %q", got)
	}
	if got := authorName(987654, "alice"); got != "uid 987654" {
		t.Errorf("a non-root client cannot claim a sudo user: %q", got)
	}
}
