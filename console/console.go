// Package console is the appliance's admin web console, served by the supervisor under
// /admin through the edge (HTTPS) and on the loopback listener: server-rendered
// html/template pages, static assets embedded and addressed by their content checksum,
// no JavaScript needed (a small script adds live updates over Server-Sent Events).
//
// Every route is in one table (routes.go) with the role it requires and the action it
// records in the audit log; a route without both is refused when the console is built,
// and nothing is served outside the table. Sessions live server-side in the Store,
// cookies are __Host-, Secure, HttpOnly and SameSite=Strict (without Secure on the
// plain-HTTP loopback listener), every state-changing form carries a CSRF token and
// passes net/http's cross-origin protection, and one function sets the security
// headers of every response.
//
// The console changes the stack only through the Operations it declares (the same ones
// the CLI's local API calls); cmd/corpintel wires the supervisor in. It imports nothing
// of the supervisor.
package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/corpintel/corpintel/internal/password"
)

// Options configure a Console.
type Options struct {
	Ops   Operations
	Store Store
	Log   *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// ClientAddr is the real client address of a request — the edge's, which knows
	// about trusted proxies (default: the TCP peer).
	ClientAddr func(*http.Request) netip.Addr
	// Secure reports whether the request reached the appliance over HTTPS (default:
	// r.TLS != nil). Plain-HTTP requests (the loopback listener) get cookies without
	// Secure and so without the __Host- prefix.
	Secure func(*http.Request) bool
	// SessionIdle and SessionMax are the idle and absolute session timeouts (30 min,
	// 12 h); InviteTTL is how long an invite stays usable (24 h).
	SessionIdle, SessionMax, InviteTTL time.Duration
	// Project names the stack (page titles, the TOTP issuer).
	Project string
	// FirstPasswordFile is where the first admin's generated password was written; it
	// is removed once that password has been changed.
	FirstPasswordFile string
	// Hash overrides the password hashing parameters (tests use cheap ones).
	Hash *password.Params
	// Refresh is how often live pages get fresh resource numbers while someone
	// watches (default 5 s); changes of state are pushed at once.
	Refresh time.Duration
}

// Console is the admin console: an http.Handler for /admin.
type Console struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	handler http.Handler
	tmpl    *templates
	assets  *assets
	hub     *hub
	actions *actions
	// heartbeat is how often a stream sends a comment and checks its session.
	heartbeat time.Duration
}

// Defaults.
const (
	defaultIdle    = 30 * time.Minute
	defaultMax     = 12 * time.Hour
	defaultInvite  = 24 * time.Hour
	defaultRefresh = 5 * time.Second
)

// New checks opts and the route table and returns the console.
func New(opts Options) (*Console, error) {
	if opts.Ops == nil || opts.Store == nil {
		return nil, errors.New("console: operations and store are required")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ClientAddr == nil {
		opts.ClientAddr = peerAddr
	}
	if opts.Secure == nil {
		opts.Secure = func(r *http.Request) bool { return r.TLS != nil }
	}
	opts.SessionIdle = orDefault(opts.SessionIdle, defaultIdle)
	opts.SessionMax = orDefault(opts.SessionMax, defaultMax)
	opts.InviteTTL = orDefault(opts.InviteTTL, defaultInvite)
	opts.Refresh = orDefault(opts.Refresh, defaultRefresh)
	if opts.Project == "" {
		opts.Project = "corpintel"
	}
	as, err := loadAssets()
	if err != nil {
		return nil, err
	}
	c := &Console{opts: opts, log: opts.Log, now: opts.Now, assets: as, heartbeat: heartbeat}
	if c.tmpl, err = parseTemplates(as, opts.Now); err != nil {
		return nil, err
	}
	c.hub = newHub(c)
	c.actions = newActions(c)
	mux, err := c.buildMux(routes)
	if err != nil {
		return nil, err
	}
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.log.Warn("console: cross-origin request refused", "method", r.Method, "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		c.renderError(w, r, nil, &httpError{status: http.StatusForbidden, msg: "This request came from another site and was refused. Use the console's own pages."})
	}))
	c.handler = securityHeaders(cop.Handler(mux))
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// ServeHTTP serves the console.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

// Run serves the live updates' status feed and sweeps expired sessions until ctx ends.
func (c *Console) Run(ctx context.Context) {
	go c.hub.run(ctx)
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		c.sweepSessions(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Console) sweepSessions(ctx context.Context) {
	now := c.now()
	if n, err := c.opts.Store.DeleteExpiredSessions(ctx, now, now.Add(-c.opts.SessionIdle)); err != nil {
		c.log.Warn("console: sweep expired sessions", "err", err)
	} else if n > 0 {
		c.log.Info("console: expired sessions removed", "sessions", n)
	}
}

// peerAddr is the TCP peer of a request.
func peerAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// Role is what a route requires.
type Role int

// Roles, ordered: each includes the ones before it. The zero value is no role at all,
// which the route table refuses (deny by default).
const (
	roleMissing Role = iota
	// Public routes need no session (login, static assets, accepting an invite).
	Public
	// Pending routes need a session whose password step is done and whose second
	// factor is due.
	Pending
	Viewer
	Operator
	Admin
)

func (r Role) String() string {
	switch r {
	case Public:
		return "public"
	case Pending:
		return "pending"
	case Viewer:
		return "viewer"
	case Operator:
		return "operator"
	case Admin:
		return "admin"
	}
	return "missing"
}

// userRoles are the roles a user can have.
var userRoles = []string{"viewer", "operator", "admin"}

// roleOf maps a user's role to a Role (roleMissing for an unknown one: no access).
func roleOf(s string) Role {
	switch s {
	case "viewer":
		return Viewer
	case "operator":
		return Operator
	case "admin":
		return Admin
	}
	return roleMissing
}

// httpError is an error with the status and the message a person sees.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return fmt.Sprintf("%d: %s", e.status, e.msg) }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}
