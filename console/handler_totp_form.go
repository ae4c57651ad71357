package console

import "net/http"

// serveTOTPForm asks for the second factor after the password.
func serveTOTPForm(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	return c.render(w, r, rq, http.StatusOK, "login_totp", view{Title: "Second factor",
		Data: loginData{Name: rq.user.Name, Next: r.URL.Query().Get("next")}})
}
