package console

import (
	"net/http"
	"strconv"
)

// serveUserActive deactivates (ending every session) or reactivates a user. Nobody
// deactivates the last active admin, themselves included.
func serveUserActive(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	u, err := c.targetUser(ctx, r)
	if err != nil {
		return err
	}
	target := "user:" + u.Name
	active := r.PostFormValue("active") == "1"
	if !active {
		if last, err := c.lastAdmin(ctx, u); err != nil {
			return err
		} else if last {
			c.audit(ctx, rq, "failure", target, "last admin")
			return c.usersPageError(w, r, rq, u.Name+" is the only active admin and cannot be deactivated.")
		}
	}
	u.Active = active
	if err := c.opts.Store.UpdateUser(ctx, u); err != nil {
		return err
	}
	detail := "reactivated"
	if !active {
		n, err := c.opts.Store.DeleteUserSessions(ctx, u.ID, "")
		if err != nil {
			return err
		}
		detail = "deactivated; sessions ended: " + strconv.Itoa(n)
	}
	c.audit(ctx, rq, "success", target, detail)
	if !active && u.ID == rq.user.ID {
		return seeOther(w, r, "/admin/login")
	}
	return seeOther(w, r, "/admin/users")
}
