package console

import "net/http"

// servePasswordForm shows the password change (the only page a user whose password
// must change can reach).
func servePasswordForm(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	return c.render(w, r, rq, http.StatusOK, "password", view{Title: "Password", Nav: "account"})
}
