package console

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// serveInviteCreate makes a single-use invite bound to one e-mail address and shows
// its link once (only the token's hash is stored).
func serveInviteCreate(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	email := strings.TrimSpace(r.PostFormValue("email"))
	role := r.PostFormValue("role")
	d, err := c.usersData(r)
	if err != nil {
		return err
	}
	d.Email, d.Role = email, role
	fail := func(msg string) error {
		c.audit(ctx, rq, "failure", "email:"+truncate(email, 100), msg)
		return c.render(w, r, rq, http.StatusUnprocessableEntity, "users", view{Title: "Users", Nav: "users", Error: msg, Data: d})
	}
	if !validEmail(email) {
		return fail("Enter the e-mail address of the person to invite (like name@example.com).")
	}
	if !slices.Contains(userRoles, role) {
		d.Role = "viewer"
		return fail("Choose a role: viewer, operator or admin.")
	}
	token := newToken()
	now := c.now()
	inv, err := c.opts.Store.CreateInvite(ctx, Invite{TokenHash: tokenHash(token), Email: email, Role: role, CreatedBy: rq.user.Name,
		CreatedAt: now, ExpiresAt: now.Add(c.opts.InviteTTL)})
	if err != nil {
		return err
	}
	c.audit(ctx, rq, "success", "email:"+email, fmt.Sprintf("invite #%d as %s, valid until %s", inv.ID, role, absTime(inv.ExpiresAt)))
	if d, err = c.usersData(r); err != nil {
		return err
	}
	scheme := "http"
	if rq.secure {
		scheme = "https"
	}
	d.InviteLink = scheme + "://" + r.Host + "/admin/invite/" + token
	d.InviteEmail, d.InviteExpires = email, inv.ExpiresAt
	return c.render(w, r, rq, http.StatusOK, "users", view{Title: "Users", Nav: "users", Flash: "Invite created.", Data: d})
}
