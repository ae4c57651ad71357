package console

import "net/http"

// serveSessionRevoke ends one of the user's other sessions.
func serveSessionRevoke(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	handle := r.PathValue("id")
	list, err := c.opts.Store.UserSessions(ctx, rq.user.ID)
	if err != nil {
		return err
	}
	for _, s := range list {
		if len(handle) == 16 && sessionHandle(s) == handle {
			if err := c.opts.Store.DeleteSession(ctx, s.IDHash); err != nil {
				return err
			}
			c.audit(ctx, rq, "success", "user:"+rq.user.Name, "session from "+s.Client)
			if s.IDHash == rq.session.IDHash {
				return seeOther(w, r, "/admin/login?bye=1")
			}
			return seeOther(w, r, "/admin/account?done=session")
		}
	}
	return errorf(http.StatusNotFound, "That session has ended already.")
}
