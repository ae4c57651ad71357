package console

import (
	"errors"
	"net/http"
	"os"
	"strings"
)

// removeFirstPassword removes the file with the generated first password once that
// password is no longer anybody's.
func (c *Console) removeFirstPassword(old string) {
	f := c.opts.FirstPasswordFile
	if f == "" {
		return
	}
	b, err := os.ReadFile(f)
	if err != nil || strings.TrimSpace(string(b)) != old {
		return
	}
	if err := os.Remove(f); err != nil {
		c.log.Warn("console: remove the generated password file", "file", f, "err", err)
		return
	}
	c.log.Info("console: the first admin chose a password; removed the generated one", "file", f)
}

// servePasswordChange changes the user's password: the current one is checked (a
// failure counts towards the throttle), the session id is rotated and every other
// session ends. Once the first admin has chosen a password, the file with the
// generated one goes.
func servePasswordChange(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	u := *rq.user
	fail := func(status int, err error) error {
		c.audit(ctx, rq, "failure", "user:"+u.Name, err.Error())
		return c.render(w, r, rq, status, "password", view{Title: "Password", Nav: "account", Error: err.Error()})
	}
	if msg, err := c.lockout(ctx, u.Name, rq.client); err != nil {
		return err
	} else if msg != "" {
		return fail(http.StatusTooManyRequests, errors.New(msg))
	}
	if !checkPassword(&u, r.PostFormValue("current")) {
		c.recordFailure(ctx, u.Name, rq.client)
		return fail(http.StatusUnprocessableEntity, invalid("The current password is wrong."))
	}
	pw := r.PostFormValue("new")
	if err := validatePassword(pw, r.PostFormValue("confirm"), u.Name); err != nil {
		return fail(http.StatusUnprocessableEntity, err)
	}
	if pw == r.PostFormValue("current") {
		return fail(http.StatusUnprocessableEntity, invalid("The new password is the old one; choose a new one."))
	}
	hash, err := c.hashPassword(pw)
	if err != nil {
		return err
	}
	current := r.PostFormValue("current")
	u.PasswordHash, u.MustChange, u.PasswordChangedAt = hash, false, c.now()
	if err := c.opts.Store.UpdateUser(ctx, u); err != nil {
		return err
	}
	if err := c.startSession(ctx, w, r, rq, u, stageFull); err != nil {
		return err
	}
	n, err := c.opts.Store.DeleteUserSessions(ctx, u.ID, rq.session.IDHash)
	if err != nil {
		return err
	}
	c.audit(ctx, rq, "success", "user:"+u.Name, "other sessions ended: "+itoa64(int64(n)))
	c.removeFirstPassword(current)
	return seeOther(w, r, "/admin/account?done=password")
}
