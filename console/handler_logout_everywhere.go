package console

import "net/http"

// serveLogoutEverywhere ends every session of the user, this one included.
func serveLogoutEverywhere(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	n, err := c.opts.Store.DeleteUserSessions(ctx, rq.user.ID, "")
	if err != nil {
		return err
	}
	c.audit(ctx, rq, "success", "user:"+rq.user.Name, "sessions ended: "+itoa64(int64(n)))
	http.SetCookie(w, rq.cookie(rq.sessionCookieName(), "", -1))
	return seeOther(w, r, "/admin/login?bye=1")
}
