package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// request is what the route wrapper works out for a handler.
type request struct {
	route   *route
	client  netip.Addr
	secure  bool
	session *Session
	user    *User
	token   string // the session cookie's value
	// expired is set when the request came with a session that had timed out;
	// staleCookie when its cookie points at no session.
	expired, staleCookie bool
	start                time.Time
	// statusDur is the time spent asking the supervisor for status (Server-Timing).
	statusDur   time.Duration
	statusFresh bool
}

// maxForm bounds a form body.
const maxForm = 64 << 10

// errHandled means the response has been written (a redirect).
var errHandled = errors.New("handled")

// serveRoute wraps a route's handler with what every route gets: the session, the role
// check, the must-change-password gate, CSRF on state changes, the body limit.
func (c *Console) serveRoute(rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rq := &request{route: rt, client: c.opts.ClientAddr(r), secure: c.opts.Secure(r), start: time.Now()}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		}
		err := c.authorize(w, r, rq)
		if err == nil {
			err = rt.Handler(c, w, r, rq)
		}
		if err != nil && !errors.Is(err, errHandled) {
			c.renderError(w, r, rq, err)
		}
	})
}

func (c *Console) authorize(w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	rt := rq.route
	if err := c.loadSession(ctx, r, rq); err != nil {
		return err
	}
	if rq.staleCookie && rq.session == nil {
		http.SetCookie(w, rq.cookie(rq.sessionCookieName(), "", -1))
	}
	switch rt.Role {
	case Public:
	case Pending:
		if rq.session == nil || rq.session.Stage != stageTOTP {
			return seeOther(w, r, loginURL("", rq.expired))
		}
	default:
		if rq.session == nil || rq.session.Stage != stageFull {
			if r.Method == http.MethodGet && !isEventStream(r) {
				return seeOther(w, r, loginURL(r.URL.RequestURI(), rq.expired))
			}
			return errorf(http.StatusUnauthorized, "You are not logged in (or your session has ended). Log in again.")
		}
		if have := roleOf(rq.user.Role); have < rt.Role {
			c.auditDenied(ctx, rq, r, "needs the "+rt.Role.String()+" role")
			return errorf(http.StatusForbidden, "This needs the %s role; you are %s. Ask an admin if you need it.", rt.Role, rq.user.Role)
		}
		if rq.user.MustChange && !rt.AllowMustChange {
			if r.Method == http.MethodGet && !isEventStream(r) {
				return seeOther(w, r, "/admin/account/password")
			}
			return errorf(http.StatusForbidden, "Change your password first (Account → Password).")
		}
	}
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			return errorf(http.StatusBadRequest, "The form could not be read (%v).", err)
		}
		if !c.checkCSRF(r, rq) {
			c.auditDenied(ctx, rq, r, "missing or wrong CSRF token")
			return errorf(http.StatusForbidden, "This form has expired or did not come from this console (the CSRF token is missing or wrong). Reload the page and try again.")
		}
	}
	c.touch(ctx, rq)
	return nil
}

func isEventStream(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// loginURL is the login page, coming back to next afterwards.
func loginURL(next string, expired bool) string {
	q := url.Values{}
	if next != "" && next != "/admin/" {
		q.Set("next", next)
	}
	if expired {
		q.Set("expired", "1")
	}
	if len(q) == 0 {
		return "/admin/login"
	}
	return "/admin/login?" + q.Encode()
}

// safeNext accepts only the console's own paths as where to go after login (no open
// redirect to another site).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/admin/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") ||
		strings.HasPrefix(next, "/admin/login") {
		return "/admin/"
	}
	return next
}

func seeOther(w http.ResponseWriter, r *http.Request, to string) error {
	http.Redirect(w, r, to, http.StatusSeeOther) // #nosec G710 -- targets are the console's own paths (next goes through safeNext)
	return errHandled
}

// securityHeaders sets the security headers of every console response, in this one
// place: a CSP without inline scripts or styles, no framing, no sniffing, no referrer
// leaving the console, no caching of pages (assets override it).
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// contentSecurityPolicy allows the console's own scripts, styles and images (and the
// TOTP QR code as a data: image) and nothing else; no inline code at all.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// audit records an entry for the request's route action (actor: the request's user,
// else anonymous). A failure to record is logged loudly: the action already happened.
func (c *Console) audit(ctx context.Context, rq *request, outcome, target, detail string) {
	actor, role := "anonymous", ""
	if rq.user != nil {
		actor, role = rq.user.Name, rq.user.Role
	}
	c.auditAs(ctx, rq, actor, role, rq.route.Audit, outcome, target, detail)
}

func (c *Console) auditAs(ctx context.Context, rq *request, actor, role, action, outcome, target, detail string) {
	client := ""
	if rq != nil && rq.client.IsValid() {
		client = rq.client.String()
	}
	_, err := c.opts.Store.AppendAudit(context.WithoutCancel(ctx), AuditEntry{At: c.now(), Actor: actor, Role: role, Action: action,
		Target: target, Outcome: outcome, Client: client, Detail: truncate(detail, 1000)})
	if err != nil {
		c.log.Error("console: audit entry NOT recorded", "action", action, "actor", actor, "outcome", outcome, "err", err)
	}
}

// auditDenied records a refused request.
func (c *Console) auditDenied(ctx context.Context, rq *request, r *http.Request, why string) {
	action := rq.route.Audit
	if action == NoAudit {
		action = "access"
	}
	actor, role := "anonymous", ""
	if rq.user != nil {
		actor, role = rq.user.Name, rq.user.Role
	}
	c.auditAs(ctx, rq, actor, role, action, "denied", r.Method+" "+truncate(r.URL.Path, 200), why)
}

// formError re-renders a form with a message (422).
type formError struct{ msg string }

func (e *formError) Error() string { return e.msg }

func invalid(format string, args ...any) error { return &formError{msg: fmt.Sprintf(format, args...)} }
