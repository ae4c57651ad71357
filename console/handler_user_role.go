package console

import (
	"net/http"
	"slices"
)

// serveUserRole changes a user's role (the last active admin stays an admin).
func serveUserRole(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	u, err := c.targetUser(ctx, r)
	if err != nil {
		return err
	}
	role := r.PostFormValue("role")
	target := "user:" + u.Name
	if !slices.Contains(userRoles, role) {
		c.audit(ctx, rq, "failure", target, "invalid role")
		return c.usersPageError(w, r, rq, "Choose a role: viewer, operator or admin.")
	}
	if role != "admin" {
		if last, err := c.lastAdmin(ctx, u); err != nil {
			return err
		} else if last {
			c.audit(ctx, rq, "failure", target, "last admin")
			return c.usersPageError(w, r, rq, u.Name+" is the only active admin; make someone else an admin first.")
		}
	}
	old := u.Role
	u.Role = role
	if err := c.opts.Store.UpdateUser(ctx, u); err != nil {
		return err
	}
	c.audit(ctx, rq, "success", target, old+" → "+role)
	return seeOther(w, r, "/admin/users")
}
