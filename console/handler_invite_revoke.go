package console

import (
	"errors"
	"net/http"
	"strconv"
)

// serveInviteRevoke revokes an open invite.
func serveInviteRevoke(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return errorf(http.StatusNotFound, "No such invite.")
	}
	if err := c.opts.Store.RevokeInvite(ctx, id); errors.Is(err, ErrNotFound) {
		c.audit(ctx, rq, "failure", "invite:"+strconv.FormatInt(id, 10), "not open")
		return errorf(http.StatusConflict, "That invite is not open any more (used, revoked or unknown).")
	} else if err != nil {
		return err
	}
	c.audit(ctx, rq, "success", "invite:"+strconv.FormatInt(id, 10), "")
	return seeOther(w, r, "/admin/users")
}
