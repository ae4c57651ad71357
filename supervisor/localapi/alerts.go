package localapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"os/user"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corpintel/corpintel/supervisor/alerts"
	"github.com/corpintel/corpintel/supervisor/alerts/notify"
)

// AlertOperations are the alert engine's operations: what `corpintel alerts` and the
// console's alerts page call.
type AlertOperations interface {
	// Alerts returns active and recently resolved alerts, silences and channel states.
	Alerts(ctx context.Context) (alerts.Snapshot, error)
	// Silence creates a silence; req.Author is who made it (the local API sets it from
	// the socket's peer, whatever the client sent).
	Silence(ctx context.Context, req alerts.SilenceRequest) (alerts.Silence, error)
	// Unsilence ends a silence now.
	Unsilence(ctx context.Context, id string) (alerts.Silence, error)
	// TestChannel sends a test notification through one channel and says how it went.
	TestChannel(ctx context.Context, channel string) (notify.Result, error)
	// PrometheusRules renders the configured rules as a Prometheus rule file.
	PrometheusRules(ctx context.Context) ([]byte, error)
}

// silenceRequest is a silence on the wire. SudoUser is whom a root client says it acts
// for; the author itself comes from the socket's peer credentials.
type silenceRequest struct {
	Rule     string   `json:"rule,omitempty"`
	Matchers []string `json:"matchers,omitempty"`
	// For is a Go duration ("2h0m0s").
	For      string `json:"for"`
	Comment  string `json:"comment"`
	SudoUser string `json:"sudo_user,omitempty"`
}

type idRequest struct {
	ID string `json:"id"`
}

type channelRequest struct {
	Channel string `json:"channel"`
}

func serveAlerts(ops Operations, w http.ResponseWriter, r *http.Request) error {
	snap, err := ops.Alerts(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, snap)
	return nil
}

func serveSilence(ops Operations, w http.ResponseWriter, r *http.Request) error {
	var req silenceRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	d, err := parseDuration(req.For)
	if err != nil {
		return err
	}
	sl, err := ops.Silence(r.Context(), alerts.SilenceRequest{Rule: req.Rule, Matchers: req.Matchers, For: d, Comment: req.Comment,
		Author: Author(r.Context(), req.SudoUser)})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sl)
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, RequestErrorf("the duration must look like 30m or 2h, got %q", s)
	}
	return v, nil
}

func serveUnsilence(ops Operations, w http.ResponseWriter, r *http.Request) error {
	var req idRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	sl, err := ops.Unsilence(r.Context(), req.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sl)
	return nil
}

func serveTestChannel(ops Operations, w http.ResponseWriter, r *http.Request) error {
	var req channelRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	res, err := ops.TestChannel(r.Context(), req.Channel)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func servePrometheusRules(ops Operations, w http.ResponseWriter, r *http.Request) error {
	rules, err := ops.PrometheusRules(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, err = w.Write(rules)
	return err
}

// PrometheusRules fetches the supervisor's rules as a Prometheus rule file.
func (c *Client) PrometheusRules(ctx context.Context) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/alerts/rules", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 16<<20))
}

// Alerts asks for the active and recent alerts.
func (c *Client) Alerts(ctx context.Context) (alerts.Snapshot, error) {
	var s alerts.Snapshot
	err := c.call(ctx, http.MethodGet, "/v1/alerts", nil, &s)
	return s, err
}

// Silence creates a silence; req.Author, if set, is passed on as the user a root
// client acts for (sudo), the supervisor records the socket's peer as the author.
func (c *Client) Silence(ctx context.Context, req alerts.SilenceRequest) (alerts.Silence, error) {
	var sl alerts.Silence
	err := c.call(ctx, http.MethodPost, "/v1/alerts/silences", silenceRequest{Rule: req.Rule, Matchers: req.Matchers,
		For: req.For.String(), Comment: req.Comment, SudoUser: req.Author}, &sl)
	return sl, err
}

// Unsilence ends a silence now.
func (c *Client) Unsilence(ctx context.Context, id string) (alerts.Silence, error) {
	var sl alerts.Silence
	err := c.call(ctx, http.MethodPost, "/v1/alerts/unsilence", idRequest{ID: id}, &sl)
	return sl, err
}

// TestChannel sends a test notification through a channel.
func (c *Client) TestChannel(ctx context.Context, channel string) (notify.Result, error) {
	var res notify.Result
	err := c.call(ctx, http.MethodPost, "/v1/alerts/test", channelRequest{Channel: channel}, &res)
	return res, err
}

type peerKey struct{}

// peer is the process at the other end of the socket.
type peer struct{ uid int }

// ConnContext records the peer credentials of a unix-socket connection
// (http.Server.ConnContext), so that operations know who asked.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) // #nosec G115 -- a file descriptor
	}); err != nil || cerr != nil || cred == nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, peer{uid: int(cred.Uid)})
}

// Author names the unix user behind a request: the user name of the socket's peer, and
// for root the sudo user it says it acts for ("root (sudo by alice)"). Without peer
// credentials it is "unknown".
func Author(ctx context.Context, sudoUser string) string {
	p, ok := ctx.Value(peerKey{}).(peer)
	if !ok {
		return "unknown"
	}
	return authorName(p.uid, sudoUser)
}

func authorName(uid int, sudoUser string) string {
	name := "uid " + strconv.Itoa(uid)
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		name = u.Username
	}
	if uid == 0 && sudoUser != "" && sudoUser != "root" {
		return name + " (sudo by " + sudoUser + ")"
	}
	return name
}
