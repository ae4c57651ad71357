package console

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// serveLogin checks a user name and password. Failures are throttled per account and
// per client address and recorded; the message never says which of the two was wrong.
// Success starts a new session (a new id, whatever cookie came in) — at the second
// factor's stage when the user has TOTP on.
func serveLogin(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	name := strings.TrimSpace(r.PostFormValue("name"))
	pw := r.PostFormValue("password")
	next := r.PostFormValue("next")
	again := func(status int, msg string) error {
		return c.render(w, r, rq, status, "login", view{Title: "Log in", Error: msg, Data: loginData{Name: name, Next: next}})
	}
	if name == "" || pw == "" {
		return again(http.StatusUnprocessableEntity, "Enter your user name and password.")
	}
	target := "user:" + truncate(name, 64)
	if msg, err := c.lockout(ctx, name, rq.client); err != nil {
		return err
	} else if msg != "" {
		c.audit(ctx, rq, "locked", target, "login refused while locked")
		return again(http.StatusTooManyRequests, msg)
	}
	u, err := c.opts.Store.UserByName(ctx, name)
	var user *User
	switch {
	case err == nil:
		user = &u
	case !errors.Is(err, ErrNotFound):
		return err
	}
	if !checkPassword(user, pw) {
		c.recordFailure(ctx, name, rq.client)
		c.audit(ctx, rq, "failure", target, "wrong user name or password")
		return again(http.StatusUnauthorized, "Wrong user name or password.")
	}
	if !u.Active {
		c.audit(ctx, rq, "denied", target, "account deactivated")
		return again(http.StatusForbidden, "This account is deactivated. Ask an admin to reactivate it.")
	}
	if err := c.opts.Store.ClearLoginFailures(ctx, accountKey(name)); err != nil {
		return err
	}
	if u.TOTPEnabled() {
		if err := c.startSession(ctx, w, r, rq, u, stageTOTP); err != nil {
			return err
		}
		c.auditAs(ctx, rq, u.Name, u.Role, "login", "password_ok", target, "second factor due")
		return seeOther(w, r, "/admin/login/totp?next="+url.QueryEscape(next))
	}
	return c.completeLogin(w, r, rq, u, "password", next)
}

// completeLogin starts the full session and sends the user on (to the password change
// first when it is due).
func (c *Console) completeLogin(w http.ResponseWriter, r *http.Request, rq *request, u User, how, next string) error {
	ctx := r.Context()
	if err := c.startSession(ctx, w, r, rq, u, stageFull); err != nil {
		return err
	}
	u.LastLoginAt = c.now()
	if err := c.opts.Store.UpdateUser(ctx, u); err != nil {
		return err
	}
	*rq.user = u
	c.auditAs(ctx, rq, u.Name, u.Role, "login", "success", "user:"+u.Name, how)
	if u.MustChange {
		return seeOther(w, r, "/admin/account/password")
	}
	return seeOther(w, r, safeNext(next))
}
