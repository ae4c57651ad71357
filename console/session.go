package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Cookie names. Over HTTPS they carry the __Host- prefix, which browsers accept only
// with Secure, Path=/ and no Domain — so no subdomain and no plain-HTTP page can set or
// overwrite them. The plain-HTTP loopback listener (127.0.0.1, the operator's own
// machine) cannot have Secure cookies, so it gets the same cookies without Secure and
// without the prefix.
const (
	sessionCookieSecure = "__Host-corpintel-session"
	sessionCookiePlain  = "corpintel-session"
	csrfCookieSecure    = "__Host-corpintel-csrf"
	csrfCookiePlain     = "corpintel-csrf"
)

// Session stages.
const (
	stageTOTP = "totp"
	stageFull = "full"
)

// pendingTTL is how long the second-factor step may take after the password.
const pendingTTL = 5 * time.Minute

// reauthWindow is how long a typed password counts for destructive actions.
const reauthWindow = 5 * time.Minute

// touchEvery bounds the writes that keep a session alive to one a minute.
const touchEvery = time.Minute

// newToken returns 32 random bytes, URL-safe.
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// tokenHash is what the store keeps of a session id, invite token or recovery code.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func sameToken(a, b string) bool {
	return a != "" && len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func (rq *request) sessionCookieName() string {
	if rq.secure {
		return sessionCookieSecure
	}
	return sessionCookiePlain
}

func (rq *request) csrfCookieName() string {
	if rq.secure {
		return csrfCookieSecure
	}
	return csrfCookiePlain
}

func (rq *request) cookie(name, value string, maxAge int) *http.Cookie {
	// #nosec G124 -- Secure whenever the request came over HTTPS; without it only on the
	// plain-HTTP loopback listener (see the cookie names above)
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, Secure: rq.secure, HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

// loadSession finds the request's session. A session past its idle or absolute
// timeout, of a deactivated user or at a stage that timed out is deleted and the
// request is treated as anonymous (rq.expired tells the login page why).
func (c *Console) loadSession(ctx context.Context, r *http.Request, rq *request) error {
	ck, err := r.Cookie(rq.sessionCookieName())
	if err != nil || ck.Value == "" {
		return nil
	}
	h := tokenHash(ck.Value)
	s, err := c.opts.Store.Session(ctx, h)
	if errors.Is(err, ErrNotFound) {
		rq.staleCookie = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("load session: %w", err)
	}
	now := c.now()
	if !now.Before(s.ExpiresAt) || (s.Stage == stageFull && now.Sub(s.LastSeenAt) >= c.opts.SessionIdle) {
		_ = c.opts.Store.DeleteSession(ctx, h)
		rq.expired, rq.staleCookie = true, true
		return nil
	}
	u, err := c.opts.Store.UserByID(ctx, s.UserID)
	if errors.Is(err, ErrNotFound) || (err == nil && !u.Active) {
		_ = c.opts.Store.DeleteSession(ctx, h)
		rq.staleCookie = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("load session: %w", err)
	}
	rq.session, rq.user, rq.token = &s, &u, ck.Value
	return nil
}

// touch records activity on a full session (at most once a minute).
func (c *Console) touch(ctx context.Context, rq *request) {
	if rq.session == nil || rq.session.Stage != stageFull {
		return
	}
	now := c.now()
	if now.Sub(rq.session.LastSeenAt) < touchEvery {
		return
	}
	rq.session.LastSeenAt = now
	if err := c.opts.Store.UpdateSession(ctx, *rq.session); err != nil && !errors.Is(err, ErrNotFound) {
		c.log.Warn("console: touch session", "err", err)
	}
}

// startSession gives the user a new session at stage, replacing the request's old one
// (if any): the id changes at every step of logging in, so an id an attacker planted
// before the login is worth nothing after it.
func (c *Console) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request, u User, stage string) error {
	now := c.now()
	token := newToken()
	s := Session{IDHash: tokenHash(token), UserID: u.ID, Stage: stage, CSRF: newToken(), CreatedAt: now, LastSeenAt: now,
		ExpiresAt: now.Add(c.opts.SessionMax), ReauthAt: now, Client: rq.client.String(), UserAgent: truncate(r.UserAgent(), 200)}
	if stage == stageTOTP {
		s.ExpiresAt = now.Add(pendingTTL)
	}
	old := ""
	if ck, err := r.Cookie(rq.sessionCookieName()); err == nil && ck.Value != "" {
		old = tokenHash(ck.Value)
	}
	if err := c.opts.Store.RotateSession(ctx, old, s); err != nil {
		return fmt.Errorf("start session: %w", err)
	}
	http.SetCookie(w, rq.cookie(rq.sessionCookieName(), token, 0))
	rq.session, rq.user, rq.token = &s, &u, token
	return nil
}

// endSession deletes the request's session and its cookie.
func (c *Console) endSession(ctx context.Context, w http.ResponseWriter, rq *request) error {
	if rq.session != nil {
		if err := c.opts.Store.DeleteSession(ctx, rq.session.IDHash); err != nil {
			return fmt.Errorf("end session: %w", err)
		}
	}
	http.SetCookie(w, rq.cookie(rq.sessionCookieName(), "", -1))
	rq.session, rq.user, rq.token = nil, nil, ""
	return nil
}

// csrfToken is the token the request's forms carry: the session's, or — without a
// session (login, invites) — a double-submit token kept in its own cookie.
func (c *Console) csrfToken(w http.ResponseWriter, r *http.Request, rq *request) string {
	if rq.session != nil && rq.route.Role != Public {
		return rq.session.CSRF
	}
	if rq.session != nil && rq.session.Stage == stageFull {
		return rq.session.CSRF
	}
	if ck, err := r.Cookie(rq.csrfCookieName()); err == nil && len(ck.Value) >= 32 {
		return ck.Value
	}
	t := newToken()
	http.SetCookie(w, rq.cookie(rq.csrfCookieName(), t, 0))
	// A form rendered in this response must carry the new token, and a later read of
	// the cookie within this request must see it.
	r.AddCookie(&http.Cookie{Name: rq.csrfCookieName(), Value: t}) // #nosec G124 -- added to the incoming request, never sent
	return t
}

// checkCSRF verifies the token of a state-changing request.
func (c *Console) checkCSRF(r *http.Request, rq *request) bool {
	got := r.PostFormValue("csrf")
	if rq.route.Role != Public {
		return rq.session != nil && sameToken(got, rq.session.CSRF)
	}
	if rq.session != nil && rq.session.Stage == stageFull && sameToken(got, rq.session.CSRF) {
		return true
	}
	ck, err := r.Cookie(rq.csrfCookieName())
	return err == nil && sameToken(got, ck.Value)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
