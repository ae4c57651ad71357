package console

import (
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"
)

// serveInviteAccept creates the invited account: only with the e-mail address the
// invite was made for, once.
func serveInviteAccept(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	token := r.PathValue("token")
	inv, err := c.openInvite(ctx, token)
	if err != nil {
		c.audit(ctx, rq, "failure", "invite", "invalid or used invite")
		return err
	}
	d := inviteData{Token: token, Role: inv.Role, Email: strings.TrimSpace(r.PostFormValue("email")),
		Name: strings.TrimSpace(r.PostFormValue("name")), FullName: strings.TrimSpace(r.PostFormValue("full_name"))}
	pw, confirm := r.PostFormValue("password"), r.PostFormValue("confirm")
	fail := func(err error) error {
		c.audit(ctx, rq, "failure", "invite:"+itoa64(inv.ID), err.Error())
		return c.render(w, r, rq, http.StatusUnprocessableEntity, "invite", view{Title: "Create your account", Error: err.Error(), Data: d})
	}
	switch {
	case !strings.EqualFold(d.Email, inv.Email):
		return fail(invalid("This invite is for a different e-mail address."))
	case !validUserName(d.Name):
		return fail(invalid("A user name has 2 to 64 letters, digits or . _ - @ (no spaces)."))
	case utf8.RuneCountInString(d.FullName) > 100:
		return fail(invalid("The full name is longer than 100 characters."))
	}
	if err := validatePassword(pw, confirm, d.Name); err != nil {
		return fail(err)
	}
	hash, err := c.hashPassword(pw)
	if err != nil {
		return err
	}
	now := c.now()
	u, err := c.opts.Store.AcceptInvite(ctx, tokenHash(token), now, User{Name: d.Name, Email: inv.Email, FullName: d.FullName,
		Role: inv.Role, PasswordHash: hash, Active: true, CreatedAt: now, PasswordChangedAt: now})
	switch {
	case errors.Is(err, ErrExists):
		return fail(invalid("The user name %s is taken; choose another.", d.Name))
	case errors.Is(err, ErrNotFound):
		return errorf(http.StatusNotFound, "This invite link is not valid any more. Ask an admin for a new one.")
	case err != nil:
		return err
	}
	c.auditAs(ctx, rq, u.Name, u.Role, rq.route.Audit, "success", "user:"+u.Name, "invited by "+inv.CreatedBy+" as "+inv.Role+" for "+inv.Email)
	return seeOther(w, r, "/admin/login?created=1")
}
