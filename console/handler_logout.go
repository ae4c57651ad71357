package console

import "net/http"

// serveLogout ends this session.
func serveLogout(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	c.audit(r.Context(), rq, "success", "user:"+rq.user.Name, "")
	if err := c.endSession(r.Context(), w, rq); err != nil {
		return err
	}
	return seeOther(w, r, "/admin/login?bye=1")
}
